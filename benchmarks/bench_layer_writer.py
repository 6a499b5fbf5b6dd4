"""Our deterministic layer writer next to umoci's, on one real rootfs (numbers printed, never asserted).

    sudo .venv/bin/python benchmarks/bench_layer_writer.py [--tree DIR | --layer TAR ...] [--rounds N]

Answers "keep our own OCI layer writing, or let umoci do it?" by measurement. On the same directory
tree, each side writes one layer, ``--rounds`` times (median printed):

* **ours**: :func:`localcluster.rootfs_tree.scan_tree` + :func:`localcluster.layer_tar.write_layer`,
  exactly what the builder does after ``mmdebstrap`` (scan, hash every file, write the tar, digest it);
* **umoci** (Debian package ``umoci``, only a benchmark tool here): ``umoci init`` + ``umoci new`` +
  ``umoci insert TREE /`` into a fresh OCI layout: one gzip layer holding the tree.

Then reproducibility, which the builder's cache and containerd's "already present" depend on: is the
layer digest the same every round, and still the same after the build-time mtimes change, as they do on
every cold ``mmdebstrap`` run (simulated by re-stamping every entry whose mtime is the clamp epoch)?
Last, the lines of code of our layer-writing modules. ``mmdebstrap`` itself is not timed: a cold build
runs it either way.

The tree is ``--tree DIR``, or the cached layers ``--layer TAR`` extracted in order (whiteouts applied)
into ``--work``; by default the cached base layer of ``DebianBase()`` plus the largest cached packages
layer built on it, i.e. a real rootfs of the project's images. Everything is written below ``--work``.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import tokenize
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from localcluster import layer_tar, reproducible, rootfs_tree
from localcluster.image_spec import DebianBase
from localcluster.paths import cache_dir

REPO = Path(__file__).resolve().parent.parent
LAYER_MODULES = (rootfs_tree, layer_tar, reproducible)
UMOCI_MISSING = "umoci is not on PATH: install it for this benchmark with `apt-get install -y umoci` (Debian >= 11)"


def default_layers() -> list[Path]:
    """The cached base layer of ``DebianBase()`` and the largest cached packages layer on top of it."""
    base = DebianBase()
    layers = cache_dir() / "layers"
    base_tar = layers / f"debian-{base.suite}-{base.key()[:16]}.tar"
    meta = base_tar.with_suffix(".json")
    if not meta.is_file():
        raise SystemExit(
            f"no cached base layer at {base_tar}: build any Debian image once (e.g. "
            "`sudo .venv/bin/python benchmarks/bench_images.py --cache /var/cache/geocube-acceptance`) "
            "or pass --tree DIR"
        )
    digest = json.loads(meta.read_text())["digest"]
    on_top = sorted(layers.glob(f"debian-{base.suite}-{digest[7:23]}-pkgs-*.tar"), key=lambda p: p.stat().st_size)
    return [base_tar, *on_top[-1:]]


def extract(layers: list[Path], target: Path) -> None:
    """Apply ``layers`` to ``target`` like a runtime would: extract in order, then honour whiteouts."""
    stamp = target.with_name(target.name + ".layers")
    wanted = "\n".join(str(p) for p in layers)
    if target.is_dir() and stamp.is_file() and stamp.read_text() == wanted:
        return  # extracted by an earlier run
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for layer in layers:
        tar = ["tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf", str(layer), "-C", str(target)]
        subprocess.run(tar, check=True)
        for marker in list(target.rglob(".wh.*")):
            victim = marker.with_name(marker.name.removeprefix(".wh."))
            if victim.is_dir() and not victim.is_symlink():
                shutil.rmtree(victim)
            else:
                victim.unlink(missing_ok=True)
            marker.unlink()
    stamp.write_text(wanted)


def ours(tree: Path, out: Path) -> tuple[str, int]:
    nodes = rootfs_tree.scan_tree(tree, skip_virtual=True)
    index = rootfs_tree.rootfs_index(nodes)
    layer = layer_tar.write_layer(layer_tar.rootfs_items(nodes, index, ()), out)
    return layer.digest, layer.size


def umoci(tree: Path, layout: Path) -> tuple[str, int]:
    shutil.rmtree(layout, ignore_errors=True)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(reproducible.EPOCH))
    for args in (
        ["init", "--layout", str(layout)],
        ["new", "--image", f"{layout}:bench"],
        ["insert", "--image", f"{layout}:bench", "--history.created", created, str(tree), "/"],
    ):
        subprocess.run(["umoci", *args], check=True, capture_output=True)
    (layer,) = manifest(layout)["layers"]
    return layer["digest"], layer["size"]


def manifest(layout: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(blob(layout, manifest_digest(layout)).read_text())
    return data


def manifest_digest(layout: Path) -> str:
    (entry,) = json.loads((layout / "index.json").read_text())["manifests"]
    return str(entry["digest"])


def blob(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.removeprefix("sha256:")


def uncompressed_size(path: Path) -> int:
    size = 0
    with gzip.open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            size += len(chunk)
    return size


def rounds(n: int, write: Callable[[int], tuple[str, int]]) -> tuple[list[float], list[str], int]:
    seconds, digests, size = [], [], 0
    for i in range(n):
        started = time.monotonic()
        digest, size = write(i)
        seconds.append(time.monotonic() - started)
        digests.append(digest)
    return seconds, digests, size


def restamp(tree: Path, mtime: float) -> list[Path]:
    """Set the mtime of every entry stamped with the clamp epoch (made at build time) to ``mtime``."""
    touched = []
    for path in [tree, *tree.rglob("*")]:
        if int(path.lstat().st_mtime) == reproducible.EPOCH:
            os.utime(path, (mtime, mtime), follow_symlinks=False)
            touched.append(path)
    return touched


def lines_of_code(path: Path) -> tuple[int, int]:
    """(all lines, code lines: neither blank, comment nor docstring) of a Python file."""
    source = path.read_text()
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str) and value.end_lineno:
                docstrings.update(range(value.lineno, value.end_lineno + 1))
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    code: set[int] = set()
    with open(path, "rb") as f:
        for token in tokenize.tokenize(f.readline):
            if token.type not in skip and token.type != tokenize.ENCODING:
                code.update(range(token.start[0], token.end[0] + 1))
    return len(source.splitlines()), len(code - docstrings)


def row(label: str, seconds: list[float], digests: list[str], size: int, extra: str = "") -> None:
    runs = " ".join(f"{s:.2f}" for s in seconds)
    same = "yes" if len(set(digests)) == 1 else "NO"
    print(f"{label:<34} {statistics.median(seconds):8.2f} s  ({runs})  {size / 1e6:8.1f} MB{extra}")
    print(f"{'':<34} digest {digests[0][:19]}  same every round: {same}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--tree", type=Path, help="directory tree to write as a layer (read only)")
    source.add_argument("--layer", type=Path, action="append", help="cached layer tar to extract (repeatable)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-layer-writer"), help="where outputs go")
    args = parser.parse_args()
    if shutil.which("umoci") is None:
        print(UMOCI_MISSING, file=sys.stderr)
        return 2
    version = subprocess.run(["umoci", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    args.work.mkdir(parents=True, exist_ok=True)

    if args.tree is not None:
        tree = args.tree
    else:
        layers = args.layer or default_layers()
        tree = args.work / "rootfs"
        started = time.monotonic()
        extract(layers, tree)
        print(f"layers: {', '.join(p.name for p in layers)} (extracted in {time.monotonic() - started:.1f} s)")
    nodes = rootfs_tree.scan_tree(tree, skip_virtual=True)  # also warms the page cache for both sides
    content = sum(n.entry.size for n in nodes.values())
    print(f"tree: {tree}: {len(nodes)} entries, {content / 1e6:.1f} MB of file content; {version}")
    print(f"{'':<34} {'median':>10}  (rounds)  {'output':>11}")

    ours_s, ours_d, ours_size = rounds(args.rounds, lambda i: ours(tree, args.work / f"ours-{i}.tar"))
    row("ours: scan + tar + sha256 (plain)", ours_s, ours_d, ours_size)
    umoci_s, umoci_d, umoci_size = rounds(args.rounds, lambda i: umoci(tree, args.work / f"umoci-{i}"))
    raw = uncompressed_size(blob(args.work / "umoci-0", umoci_d[0]))
    row("umoci: init + new + insert (gzip)", umoci_s, umoci_d, umoci_size, f" ({raw / 1e6:.1f} MB as tar)")
    manifests = {manifest_digest(args.work / f"umoci-{i}") for i in range(args.rounds)}
    # `umoci new` stamps the config with the current time, so its manifest differs unless that is pinned too.
    print(f"{'':<34} manifest the same every round: {'yes' if len(manifests) == 1 else 'NO'}")

    # A second cold mmdebstrap gives every file it makes a new mtime; the builder must still hit its cache.
    touched = restamp(tree, time.time())
    try:
        again_ours = ours(tree, args.work / "ours-restamped.tar")[0]
        again_umoci = umoci(tree, args.work / "umoci-restamped")[0]
    finally:
        for path in touched:
            os.utime(path, (reproducible.EPOCH, reproducible.EPOCH), follow_symlinks=False)
    print(f"after re-stamping {len(touched)} build-time mtimes (what a second cold build does):")
    print(f"  ours  digest unchanged: {'yes' if again_ours == ours_d[0] else 'NO'}")
    print(f"  umoci digest unchanged: {'yes' if again_umoci == umoci_d[0] else 'NO'}")

    print("lines of code of our layer writing (all / code without blanks, comments, docstrings):")
    total_all = total_code = 0
    for module in LAYER_MODULES:
        path = Path(str(module.__file__))
        everything, code = lines_of_code(path)
        total_all, total_code = total_all + everything, total_code + code
        print(f"  {path.relative_to(REPO)!s:<34} {everything:5d} / {code:4d}")
    print(f"  {'total':<34} {total_all:5d} / {total_code:4d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
