"""The image builder's on-disk cache: sidecar files that vouch for entries, and scratch directories.

A cached layer ``<name>.tar`` is trusted only with its ``<name>.json`` sidecar (digest, size,
format) and its ``<name>.index.json`` tree index; an image archive only with its ``.json`` sidecar
(the :class:`~localcluster.image_spec.BuiltImage` fields). Sidecars are written last, atomically, and
carry :data:`~localcluster.reproducible.FORMAT`, so an interrupted or outdated build is rebuilt.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from localcluster.image_spec import BuiltImage, ImageBuildError
from localcluster.layer_tar import Layer
from localcluster.reproducible import FORMAT, atomic_write
from localcluster.rootfs_tree import Index


def save_layer_meta(layer: Layer, index: Index) -> Layer:
    """Write ``layer``'s tree index and then its sidecar; returns the layer with its index attached."""
    index_path = layer.path.with_suffix(".index.json")
    entries = {path: entry.to_json() for path, entry in sorted(index.items())}
    atomic_write(index_path, json.dumps({"format": FORMAT, "entries": entries}).encode())
    meta = {"format": FORMAT, "digest": layer.digest, "size": layer.size}
    # The .json sidecar is written last: its presence means the layer and its index are complete.
    atomic_write(layer.path.with_suffix(".json"), json.dumps(meta).encode())
    return Layer(layer.path, layer.digest, layer.size, index_path)


def load_layer(layer_path: Path) -> Layer | None:
    """The cached layer at ``layer_path``, or None if it is missing, incomplete or of another format."""
    meta_path = layer_path.with_suffix(".json")
    index_path = layer_path.with_suffix(".index.json")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    if meta.get("format") != FORMAT or not layer_path.exists() or not index_path.exists():
        return None
    return Layer(layer_path, meta["digest"], meta["size"], index_path)


def save_built(meta_path: Path, image: BuiltImage) -> None:
    """Write the sidecar of an image archive (after the archive itself)."""
    meta = {
        "format": FORMAT,
        "ref": image.ref,
        "manifest_digest": image.manifest_digest,
        "config_digest": image.config_digest,
        "layer_digests": list(image.layer_digests),
        "layer_sizes": list(image.layer_sizes),
        "size": image.size,
    }
    atomic_write(meta_path, json.dumps(meta, indent=1, sort_keys=True).encode())


def load_built(meta_path: Path, archive: Path) -> BuiltImage | None:
    """The cached image archive, or None if it or its sidecar is missing or of another format."""
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    if meta.get("format") != FORMAT or not archive.exists():
        return None
    return BuiltImage(
        ref=meta["ref"],
        archive=archive,
        manifest_digest=meta["manifest_digest"],
        config_digest=meta["config_digest"],
        layer_digests=tuple(meta["layer_digests"]),
        layer_sizes=tuple(meta["layer_sizes"]),
        size=meta["size"],
    )


@contextlib.contextmanager
def work_dir(root: Path, prefix: str) -> Iterator[Path]:
    """A scratch directory on the cache's filesystem (so results are moved, not copied), always removed."""
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=root / "tmp"))
    try:
        yield work
    finally:
        _remove_tree(work)


def _remove_tree(path: Path) -> None:
    # An mmdebstrap killed mid-build can leave /dev, /proc or /sys bind-mounted inside the chroot;
    # rmtree would then delete the host's device nodes. Refuse instead.
    mounts = _mounts_below(path)
    if mounts:
        raise ImageBuildError(
            f"not deleting {path}: {len(mounts)} mount(s) still inside it ({', '.join(mounts[:3])}). "
            f"Unmount them (umount -R {path}) and delete it by hand."
        )
    shutil.rmtree(path, ignore_errors=True)


def _mounts_below(path: Path) -> list[str]:
    prefix = str(path.resolve())
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    points = [line.split()[4].replace("\\040", " ") for line in lines if len(line.split()) > 4]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]
