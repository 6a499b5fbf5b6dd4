"""Debian layers: root filesystems made by ``mmdebstrap``, scanned and written as cached layer tars.

* the **base layer** is the whole rootfs of a :class:`~localcluster.image_spec.DebianBase`, shared
  (same file, same digest) by every image built from the same base;
* a **packages layer** is only the difference extra packages make to the base rootfs, found by
  bootstrapping base+packages with ``mmdebstrap --include`` and diffing the two trees (deletions
  become OCI whiteouts).

Both are cached under ``<cache>/layers`` and built at most once at a time (a lock per layer).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from localcluster.buildtools import locked
from localcluster.image_cache import load_layer, save_layer_meta, work_dir
from localcluster.image_spec import DebianBase, ImageBuildError
from localcluster.layer_tar import Layer, rootfs_items, write_layer
from localcluster.reproducible import EPOCH, FORMAT, debian_arch, hash_json
from localcluster.rootfs_tree import Index, Node, diff, rootfs_index, scan_tree

_log = logging.getLogger(__name__)


def base_layer(base: DebianBase, root: Path) -> Layer:
    """The cached layer of ``base``'s whole rootfs, bootstrapped first if ``root`` has none."""
    key = base.key()

    def write(nodes: Mapping[str, Node], index: Index, layer_path: Path) -> tuple[Layer, str]:
        layer = write_layer(rootfs_items(nodes, index, ()), layer_path)
        return layer, f"base layer {layer.digest[:19]}: {len(index)} entries"

    return _debian_layer(
        base,
        base.packages,
        root / "layers" / f"debian-{base.suite}-{key[:16]}.tar",
        root,
        root / "logs" / f"mmdebstrap-{key[:16]}.log",
        write,
    )


def packages_layer(base: DebianBase, lower: Layer, wanted: Sequence[str], root: Path) -> Layer:
    """The cached layer that adds ``wanted`` packages on top of ``lower`` (the base layer of ``base``)."""
    key = hash_json({"format": FORMAT, "base": base.key(), "base_layer": lower.digest, "packages": wanted})

    def write(nodes: Mapping[str, Node], index: Index, layer_path: Path) -> tuple[Layer, str]:
        paths, whiteouts = diff(lower.index(), index)
        layer = write_layer(rootfs_items(nodes, paths, whiteouts), layer_path)
        what = f"({' '.join(wanted)}): {len(paths)} entries, {len(whiteouts)} whiteouts"
        return layer, f"packages layer {layer.digest[:19]} {what}"

    return _debian_layer(
        base,
        (*base.packages, *wanted),
        root / "layers" / f"debian-{base.suite}-{lower.digest[7:23]}-pkgs-{key[:16]}.tar",
        root,
        root / "logs" / f"mmdebstrap-{key[:16]}.log",
        write,
    )


def _debian_layer(
    base: DebianBase,
    packages: Sequence[str],
    layer_path: Path,
    root: Path,
    log: Path,
    write: Callable[[Mapping[str, Node], Index, Path], tuple[Layer, str]],
) -> Layer:
    """The cached layer at ``layer_path``, else: bootstrap ``packages``, scan the rootfs, ``write`` the layer."""
    cached = load_layer(layer_path)
    if cached is not None:
        return cached
    layer_path.parent.mkdir(parents=True, exist_ok=True)
    with locked(layer_path):
        cached = load_layer(layer_path)
        if cached is not None:
            return cached
        with work_dir(root, "debian-") as work:
            rootfs = work / "rootfs"
            _mmdebstrap(base, packages, rootfs, log)
            started = time.monotonic()
            nodes = scan_tree(rootfs, skip_virtual=True)
            index = rootfs_index(nodes)
            layer, what = write(nodes, index, layer_path)
            _log.info("%s, %.1f MB, scanned and written in %.1f s", what, layer.size / 1e6, time.monotonic() - started)
        return save_layer_meta(layer, index)


def _mmdebstrap(base: DebianBase, packages: Sequence[str], target: Path, log: Path) -> None:
    __tracebackhide__ = True
    exe = shutil.which("mmdebstrap")
    if exe is None:
        raise ImageBuildError(
            "building a Debian layer needs mmdebstrap, which is not on PATH: "
            "install Debian package mmdebstrap (apt-get install mmdebstrap)"
        )
    if os.geteuid() != 0:
        raise ImageBuildError(
            f"building a Debian layer runs `mmdebstrap --mode=root`, which needs root; running as uid "
            f"{os.geteuid()}. Run as root (sudo), or build the image once as root: it is cached in "
            f"{log.parent.parent}"
        )
    cmd = [exe, "--mode=root", "--format=directory", f"--variant={base.variant}", f"--architectures={debian_arch()}"]
    cmd.append(f"--components={','.join(base.components)}")
    if base.slim:
        for pattern in ("/usr/share/man/*", "/usr/share/doc/*", "/usr/share/info/*", "/usr/share/locale/*"):
            cmd.append(f"--dpkgopt=path-exclude={pattern}")
        for pattern in ("/usr/share/doc/*/copyright", "/usr/share/locale/locale.alias"):
            cmd.append(f"--dpkgopt=path-include={pattern}")
    # The build host's resolv.conf and hostname must not leak into (and unreproduce) the layer;
    # runtimes mount their own.
    cmd.append('--customize-hook=rm -f "$1/etc/resolv.conf"; echo localhost > "$1/etc/hostname"')
    if packages:
        cmd.append(f"--include={','.join(sorted(set(packages)))}")
    cmd += [base.suite, str(target), *base.mirrors]
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(EPOCH), "LC_ALL": "C.UTF-8"}
    started = time.monotonic()
    with open(log, "wb") as log_file:
        try:
            result = subprocess.run(
                cmd, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env=env, timeout=3600
            )
            returncode: int | str = result.returncode
        except subprocess.TimeoutExpired:
            returncode = "timeout after 3600 s"
    _log.info(
        "mmdebstrap %s took %.1f s (log: %s)", " ".join(packages) or base.variant, time.monotonic() - started, log
    )
    if returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        raise ImageBuildError(
            f"mmdebstrap failed ({returncode}) after {time.monotonic() - started:.0f} s.\n"
            f"command: {subprocess.list2cmdline(cmd)}\nlog: {log}\nlast lines of the log:\n{tail}\n"
            "Hint: a download error means the Debian mirror is unreachable; an unknown package name "
            "shows up as 'Unable to locate package'."
        )
