"""Container images for the embedded cluster, built without Docker, a registry or image pulls.

An image is an OCI image-layout tar archive that ``ctr images import`` loads into containerd:

* a **base layer**: a Debian root filesystem made by ``mmdebstrap`` from a :class:`DebianBase`, cached
  under ``cache_dir()/"layers"`` and shared (same digest) by every image built from the same base;
* a **packages layer**: only the difference that ``ImageSpec.packages`` make to the base rootfs, found
  by building base+packages with ``mmdebstrap --include`` and diffing the two trees (deletions become
  OCI whiteouts);
* a **files layer**: the host files and inline contents of ``ImageSpec.files``.

Layers are uncompressed (CPU is scarce, the archive never leaves the machine) and deterministic:
sorted entries, numeric root-relative owners, mtimes clamped to a fixed epoch. The same inputs
give the same digests, so a rebuild after ``rm -rf`` of the cache imports as "already present".

Public surface: :class:`DebianBase`, :class:`ImageSpec`, :class:`BuiltImage`, :func:`build_image`,
:func:`build_pause_image`, :func:`import_image`, :func:`image_present`, :func:`image_digest`,
:data:`PAUSE_IMAGE`, :class:`ImageBuildError`, :class:`ImageImportError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import platform
import posixpath
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from localcluster.buildtools import GO_MISSING, go_executable, locked
from localcluster.paths import cache_dir

_log = logging.getLogger(__name__)

__all__ = [
    "PAUSE_IMAGE",
    "REF_PREFIX",
    "BuiltImage",
    "DebianBase",
    "ImageBuildError",
    "ImageImportError",
    "ImageSpec",
    "build_image",
    "build_pause_image",
    "image_digest",
    "image_present",
    "import_image",
]

REF_PREFIX = "localhost/geocube-acceptance/"
PAUSE_TAG = "3.10-1"
PAUSE_IMAGE = f"{REF_PREFIX}pause:{PAUSE_TAG}"

# Bump when the bytes a given input produces change (tar layout, config fields, mmdebstrap options),
# so stale cache entries are never mistaken for current ones.
_FORMAT = 1
# Every mtime is clamped to this instant (2023-11-14): files that Debian packages ship keep their older
# mtimes (Python's .pyc checks depend on them) while files made at build time become reproducible.
_EPOCH = 1_700_000_000
_DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PAUSE_SOURCE = Path(__file__).resolve().parent / "pause"

_MT_INDEX = "application/vnd.oci.image.index.v1+json"
_MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_MT_CONFIG = "application/vnd.oci.image.config.v1+json"
_MT_LAYER = "application/vnd.oci.image.layer.v1.tar"
_ANNOTATION_REF = "org.opencontainers.image.ref.name"
_ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"

# Only the file capability xattr matters in an image (ping & co.); others (SELinux labels, ACLs from the
# build host) would make layers host-dependent.
_XATTRS = ("security.capability",)
# mmdebstrap fills /dev with device nodes; runtimes mount their own /dev, /proc and /sys, and device
# nodes in a layer break rootless or user-namespaced unpacking. Keep the directories, drop their content.
_VIRTUAL_DIRS = ("dev", "proc", "sys")

_NAME_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(?::[a-z0-9-]+)?(?:=[A-Za-z0-9.+~:-]+)?$")


class ImageBuildError(RuntimeError):
    """An image or one of its layers could not be built; the message says why and what to do."""


class ImageImportError(RuntimeError):
    """containerd could not be asked about, or could not load, an image archive."""


# --------------------------------------------------------------------------------------------------
# Public specification types
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DebianBase:
    """A Debian root filesystem made by ``mmdebstrap``, cached as one shared base layer.

    ``variant`` is an mmdebstrap variant (``essential`` has no apt, ``minbase`` has). ``mirrors`` are
    mmdebstrap MIRROR arguments (empty: deb.debian.org plus -updates and -security for a stable suite).
    ``slim`` leaves out man pages, docs (but not copyright files), info pages and translations.
    """

    suite: str = "bookworm"
    variant: Literal["essential", "minbase", "required", "important", "standard"] = "essential"
    packages: tuple[str, ...] = ()
    components: tuple[str, ...] = ("main",)
    mirrors: tuple[str, ...] = ()
    slim: bool = True

    def __post_init__(self) -> None:
        _check_packages(self.packages, "DebianBase.packages")
        if not re.fullmatch(r"[a-z][a-z0-9-]*", self.suite):
            raise ValueError(f"DebianBase.suite must be a suite name like 'bookworm'. Current input: {self.suite!r}")

    def key(self) -> str:
        """Hash of every input that shapes the base rootfs (the base layer's cache key)."""
        return _hash_json(
            {
                "format": _FORMAT,
                "suite": self.suite,
                "variant": self.variant,
                "packages": sorted(set(self.packages)),
                "components": list(self.components),
                "mirrors": list(self.mirrors),
                "slim": self.slim,
                "arch": _debian_arch(),
            }
        )


@dataclass(frozen=True)
class ImageSpec:
    """What to build: ``localhost/geocube-acceptance/<name>:<tag>``.

    ``base`` None means scratch (then ``packages`` must be empty). ``files`` maps an absolute path in
    the image to a host file or directory (copied recursively, permission bits such as the exec bit
    kept, owner root) or to inline content; inline content starting with ``#!`` is made executable
    (0755), other inline content is 0644. ``exposed_ports`` are like ``"8080/tcp"``.
    """

    name: str
    tag: str
    base: DebianBase | None = None
    packages: tuple[str, ...] = ()
    files: Mapping[str, Path | bytes] = field(default_factory=dict)
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    workdir: str = ""
    user: str = ""
    exposed_ports: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _NAME_RE.fullmatch(self.name):
            raise ValueError(
                "ImageSpec.name must be lowercase path components of [a-z0-9] joined by '.', '_' or '-'. "
                f"Current input: {self.name!r}"
            )
        if not _TAG_RE.fullmatch(self.tag):
            raise ValueError(f"ImageSpec.tag must match {_TAG_RE.pattern}. Current input: {self.tag!r}")
        if self.base is None and not self.files:
            raise ValueError(f"ImageSpec {self.name!r} has neither a base nor files: a scratch image needs files")
        if self.packages and self.base is None:
            raise ValueError(
                f"ImageSpec.packages {list(self.packages)} need a Debian base; set ImageSpec.base=DebianBase()"
            )
        _check_packages(self.packages, "ImageSpec.packages")
        for path in self.files:
            _image_path(path)
        for name in self.env:
            if not name or "=" in name:
                raise ValueError(f"ImageSpec.env names must be non-empty and without '='. Current input: {name!r}")
        for port in self.exposed_ports:
            if not re.fullmatch(r"\d{1,5}(/(tcp|udp|sctp))?", port):
                raise ValueError(f"ImageSpec.exposed_ports entries look like '8080/tcp'. Current input: {port!r}")

    @property
    def ref(self) -> str:
        """The fully normalized reference containerd and the kubelet know the image by."""
        return f"{REF_PREFIX}{self.name}:{self.tag}"


@dataclass(frozen=True)
class BuiltImage:
    """An image archive on disk, ready for :func:`import_image`.

    ``layer_digests`` are the layer blob digests, which for uncompressed layers are also the diff ids.
    """

    ref: str
    archive: Path
    manifest_digest: str
    config_digest: str
    layer_digests: tuple[str, ...]
    layer_sizes: tuple[int, ...]
    size: int

    @property
    def chain_id(self) -> str:
        """containerd's snapshot key for the top layer: present iff the image is unpacked."""
        chain = self.layer_digests[0]
        for diff_id in self.layer_digests[1:]:
            chain = "sha256:" + hashlib.sha256(f"{chain} {diff_id}".encode()).hexdigest()
        return chain


# --------------------------------------------------------------------------------------------------
# Public build / import functions
# --------------------------------------------------------------------------------------------------


def build_image(spec: ImageSpec, *, cache: Path | None = None) -> BuiltImage:
    """Build (or find in the cache) the OCI archive for ``spec``; safe to call from several processes."""
    root = cache or cache_dir()
    file_items = _file_items(spec.files)
    lowers: list[_Layer] = []
    history: list[str] = []  # one "created_by" per layer
    if spec.base is not None:
        base = spec.base
        base_layer = _base_layer(base, root)
        lowers.append(base_layer)
        history.append(f"mmdebstrap --variant={base.variant} {base.suite} (+{','.join(base.packages) or 'nothing'})")
        # Packages the base already has add nothing: no (empty) diff layer for them.
        extra = sorted(set(spec.packages) - set(base.packages))
        if extra:
            lowers.append(_packages_layer(base, base_layer, extra, root))
            history.append(f"mmdebstrap --include={','.join(extra)} (difference to the base)")
    key = _hash_json(
        {
            "format": _FORMAT,
            "ref": spec.ref,
            "lowers": [layer.digest for layer in lowers],
            "files": [[path, item.signature()] for path, item in sorted(file_items.items())],
            "config": _image_config_fields(spec),
        }
    )
    out_dir = root / "images"
    archive = out_dir / f"{spec.name.replace('/', '_')}_{spec.tag}-{key[:16]}.tar"
    meta_path = archive.with_suffix(".json")
    cached = _load_built(meta_path, archive)
    if cached is not None:
        return cached
    out_dir.mkdir(parents=True, exist_ok=True)
    with locked(archive):
        cached = _load_built(meta_path, archive)
        if cached is not None:
            return cached
        with _work_dir(root, "image-") as work:
            layers = list(lowers)
            if file_items:
                lower_index = lowers[-1].index() if lowers else {}
                layers.append(_write_files_layer(file_items, lower_index, work / "files.tar"))
                history.append(f"files: {', '.join('/' + path for path in sorted(file_items))}")
            built = _write_archive(spec, layers, history, archive)
        _atomic_write(meta_path, json.dumps(_built_to_json(built), indent=1, sort_keys=True).encode())
        return built


def build_pause_image(*, cache: Path | None = None) -> BuiltImage:
    """Build :data:`PAUSE_IMAGE`: a scratch image holding only our static ``/pause`` (see pause/main.go)."""
    binary = _build_pause_binary(cache or cache_dir())
    spec = ImageSpec(
        name="pause",
        tag=PAUSE_TAG,
        files={"/pause": binary},
        entrypoint=("/pause",),
        # Upstream's pause runs as nobody-ish 65535 too: it needs no privilege to sleep and reap.
        user="65535:65535",
        labels={"org.opencontainers.image.source": "geocube-acceptance/localcluster/pause"},
    )
    return build_image(spec, cache=cache)


def image_digest(ref: str, containerd_address: str, namespace: str = "k8s.io") -> str | None:
    """Manifest digest of ``ref`` in containerd, or None if no such image. Raises if containerd can't answer."""
    result = _ctr(containerd_address, namespace, ["images", "ls", f"name=={ref}"], timeout=60)
    for line in result.stdout.splitlines()[1:]:
        columns = line.split()
        if len(columns) >= 3 and columns[0] == ref:
            return columns[2]
    return None


def image_present(ref: str, containerd_address: str, namespace: str = "k8s.io", *, digest: str | None = None) -> bool:
    """Whether containerd has ``ref`` (with manifest ``digest``, if given)."""
    found = image_digest(ref, containerd_address, namespace)
    return found is not None and (digest is None or found == digest)


def import_image(
    image: BuiltImage,
    containerd_address: str,
    namespace: str = "k8s.io",
    *,
    snapshotter: str | None = None,
    timeout: float = 900,
) -> None:
    """Load ``image`` into containerd and unpack it, unless it is there and unpacked already.

    Unpacking at import (ctr's default) into the snapshotter the CRI plugin uses (overlayfs unless
    told otherwise) is what lets the kubelet start containers from it without a pull.
    """
    if image_present(image.ref, containerd_address, namespace, digest=image.manifest_digest) and _unpacked(
        image, containerd_address, namespace, snapshotter
    ):
        return
    args = ["images", "import"]
    if snapshotter:
        args.append(f"--snapshotter={snapshotter}")
    _ctr(containerd_address, namespace, [*args, str(image.archive)], timeout=timeout)
    found = image_digest(image.ref, containerd_address, namespace)
    if found != image.manifest_digest:
        raise ImageImportError(
            f"after importing {image.archive} into containerd at {containerd_address} (namespace {namespace}), "
            f"expected {image.ref} with manifest {image.manifest_digest}, observed "
            f"{found or 'no such image'}. Hint: `ctr -a {containerd_address} -n {namespace} images ls` "
            "shows what the import created."
        )


# --------------------------------------------------------------------------------------------------
# Tree indexes and their diff (pure; unit-tested on small temp trees)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    """What a layer records about one path; two trees differ at a path iff their entries differ.

    ``data`` is the sha256 of a regular file's content, a symlink's target, or "major,minor" of a
    device. mtimes are deliberately not compared: they are clamped when written anyway.
    """

    kind: Literal["dir", "file", "symlink", "char", "block", "fifo"]
    mode: int
    uid: int = 0
    gid: int = 0
    size: int = 0
    data: str = ""
    xattrs: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> list[Any]:
        return [self.kind, self.mode, self.uid, self.gid, self.size, self.data, [list(x) for x in self.xattrs]]

    @classmethod
    def from_json(cls, raw: list[Any]) -> _Entry:
        kind, mode, uid, gid, size, data, xattrs = raw
        return cls(kind, mode, uid, gid, size, data, tuple((k, v) for k, v in xattrs))


@dataclass(frozen=True)
class _Node:
    """One scanned path of a host tree: its entry plus what writing it to a tar needs."""

    entry: _Entry
    source: Path
    mtime: int
    inode: tuple[int, int] | None = None  # set for regular files with more than one link


_Index = dict[str, _Entry]


def _scan_tree(root: Path, *, skip_virtual: bool = False) -> dict[str, _Node]:
    """Every path below ``root`` (relative, '/'-separated, root itself excluded), without following links."""
    nodes: dict[str, _Node] = {}
    pending = [("", root)]
    while pending:
        rel_dir, dir_path = pending.pop()
        with os.scandir(dir_path) as it:
            children = sorted(it, key=lambda e: e.name)
        for child in children:
            rel = f"{rel_dir}/{child.name}" if rel_dir else child.name
            node = _node(Path(child.path), os.lstat(child.path))
            if node is None:
                continue  # sockets: not representable in a layer
            nodes[rel] = node
            if node.entry.kind == "dir" and not (skip_virtual and rel in _VIRTUAL_DIRS):
                pending.append((rel, Path(child.path)))
    return nodes


def _node(path: Path, st: os.stat_result) -> _Node | None:
    mode = st.st_mode
    inode: tuple[int, int] | None = None
    if stat.S_ISDIR(mode):
        kind: Literal["dir", "file", "symlink", "char", "block", "fifo"] = "dir"
        size, data = 0, ""
    elif stat.S_ISREG(mode):
        kind, size, data = "file", st.st_size, _file_sha256(path)
        if st.st_nlink > 1:
            inode = (st.st_dev, st.st_ino)
    elif stat.S_ISLNK(mode):
        kind, size, data = "symlink", 0, os.readlink(path)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind = "char" if stat.S_ISCHR(mode) else "block"
        size, data = 0, f"{os.major(st.st_rdev)},{os.minor(st.st_rdev)}"
    elif stat.S_ISFIFO(mode):
        kind, size, data = "fifo", 0, ""
    else:
        return None
    entry = _Entry(kind, stat.S_IMODE(mode), st.st_uid, st.st_gid, size, data, _read_xattrs(path, kind))
    return _Node(entry, path, min(int(st.st_mtime), _EPOCH), inode)


def _read_xattrs(path: Path, kind: str) -> tuple[tuple[str, str], ...]:
    if kind != "file":
        return ()
    found = []
    for name in _XATTRS:
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
        found.append((name, value.hex()))
    return tuple(found)


def _diff(lower: Mapping[str, _Entry], upper: Mapping[str, _Entry]) -> tuple[list[str], list[str]]:
    """What a layer on top of ``lower`` must hold to turn it into ``upper``.

    Returns (paths to write from ``upper``, paths to white out). Written paths include the ancestor
    directories of every change, so the layer is self-describing. A whiteout is only emitted where the
    parent directory survives as a directory: below a removed or replaced directory, removing the
    directory (or writing its replacement) already takes its whole subtree away.
    """
    changed = {path for path, entry in upper.items() if lower.get(path) != entry}
    removed = []
    for path in lower:
        if path in upper:
            continue
        parent = posixpath.dirname(path)
        if parent and not (_is_dir(lower.get(parent)) and _is_dir(upper.get(parent))):
            continue
        removed.append(path)
    write = set(changed)
    for path in [*changed, *removed]:
        parent = posixpath.dirname(path)
        while parent and parent not in write:
            write.add(parent)
            parent = posixpath.dirname(parent)
    return sorted(write, key=_tar_order), sorted(removed, key=_tar_order)


def _is_dir(entry: _Entry | None) -> bool:
    return entry is not None and entry.kind == "dir"


def _whiteout_name(path: str) -> str:
    parent, base = posixpath.split(path)
    return posixpath.join(parent, ".wh." + base)


def _tar_order(path: str) -> tuple[str, ...]:
    # Component-wise order: a directory's entry, then its whole subtree, then its next sibling.
    return tuple(path.split("/"))


# --------------------------------------------------------------------------------------------------
# Deterministic layer tars
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Item:
    """One member of a layer being written: from a scanned node, inline bytes, or a whiteout (neither)."""

    entry: _Entry
    node: _Node | None = None
    content: bytes | None = None
    whiteout: bool = False


@dataclass(frozen=True)
class _Layer:
    """A finished layer tar; ``index_path`` holds the full tree index of the rootfs *after* this layer."""

    path: Path
    digest: str
    size: int
    index_path: Path | None = None

    def index(self) -> _Index:
        if self.index_path is None:
            return {}
        raw = json.loads(self.index_path.read_text())
        return {path: _Entry.from_json(entry) for path, entry in raw["entries"].items()}


def _write_layer(items: Mapping[str, _Item], out: Path) -> _Layer:
    """Write ``items`` to ``out`` as an uncompressed, byte-for-byte reproducible tar."""
    tmp = out.with_name(out.name + ".tmp")
    first_of_inode: dict[tuple[int, int], str] = {}
    with open(tmp, "wb") as raw, tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(items, key=_tar_order):
            item = items[path]
            info = tarfile.TarInfo(_whiteout_name(path) if item.whiteout else path)
            info.mtime = item.node.mtime if item.node else _EPOCH
            info.uname = info.gname = ""
            if item.whiteout:
                info.mode = 0o600
                tar.addfile(info)
                continue
            entry = item.entry
            info.mode, info.uid, info.gid = entry.mode, entry.uid, entry.gid
            if entry.xattrs:
                info.pax_headers = {
                    f"SCHILY.xattr.{name}": bytes.fromhex(value).decode("utf-8", "surrogateescape")
                    for name, value in entry.xattrs
                }
            if entry.kind == "file":
                inode = item.node.inode if item.node else None
                if inode is not None and inode in first_of_inode:
                    info.type, info.linkname = tarfile.LNKTYPE, first_of_inode[inode]
                    tar.addfile(info)
                    continue
                if inode is not None:
                    first_of_inode[inode] = path
                info.size = entry.size
                if item.content is not None:
                    tar.addfile(info, io.BytesIO(item.content))
                else:
                    assert item.node is not None
                    with open(item.node.source, "rb") as src:
                        tar.addfile(info, src)
            else:
                info.type = {
                    "dir": tarfile.DIRTYPE,
                    "symlink": tarfile.SYMTYPE,
                    "char": tarfile.CHRTYPE,
                    "block": tarfile.BLKTYPE,
                    "fifo": tarfile.FIFOTYPE,
                }[entry.kind]
                if entry.kind == "symlink":
                    info.linkname = entry.data
                elif entry.kind in ("char", "block"):
                    major, minor = entry.data.split(",")
                    info.devmajor, info.devminor = int(major), int(minor)
                tar.addfile(info)
    digest = "sha256:" + _file_sha256(tmp)
    os.replace(tmp, out)
    return _Layer(out, digest, out.stat().st_size)


def _rootfs_items(nodes: Mapping[str, _Node], paths: Iterable[str], whiteouts: Iterable[str]) -> dict[str, _Item]:
    items = {path: _Item(nodes[path].entry, nodes[path]) for path in paths}
    for path in whiteouts:
        items[path] = _Item(_Entry("file", 0), whiteout=True)
    return items


def _rootfs_index(nodes: Mapping[str, _Node]) -> _Index:
    return {path: node.entry for path, node in nodes.items() if not _below_virtual(path)}


def _below_virtual(path: str) -> bool:
    return any(path.startswith(d + "/") for d in _VIRTUAL_DIRS)


# --------------------------------------------------------------------------------------------------
# Debian layers (mmdebstrap)
# --------------------------------------------------------------------------------------------------


def _base_layer(base: DebianBase, root: Path) -> _Layer:
    key = base.key()
    layer_path = root / "layers" / f"debian-{base.suite}-{key[:16]}.tar"
    cached = _load_layer(layer_path)
    if cached is not None:
        return cached
    layer_path.parent.mkdir(parents=True, exist_ok=True)
    with locked(layer_path):
        cached = _load_layer(layer_path)
        if cached is not None:
            return cached
        with _work_dir(root, "base-") as work:
            rootfs = work / "rootfs"
            _mmdebstrap(base, base.packages, rootfs, root / "logs" / f"mmdebstrap-{key[:16]}.log")
            started = time.monotonic()
            nodes = _scan_tree(rootfs, skip_virtual=True)
            index = _rootfs_index(nodes)
            layer = _write_layer(_rootfs_items(nodes, index, ()), layer_path)
            _log.info(
                "base layer %s: %d entries, %.1f MB, scanned and written in %.1f s",
                layer.digest[:19],
                len(index),
                layer.size / 1e6,
                time.monotonic() - started,
            )
        return _save_layer_meta(layer, index)


def _packages_layer(base: DebianBase, base_layer: _Layer, wanted: Sequence[str], root: Path) -> _Layer:
    key = _hash_json({"format": _FORMAT, "base": base.key(), "base_layer": base_layer.digest, "packages": wanted})
    layer_path = root / "layers" / f"debian-{base.suite}-{base_layer.digest[7:23]}-pkgs-{key[:16]}.tar"
    cached = _load_layer(layer_path)
    if cached is not None:
        return cached
    with locked(layer_path):
        cached = _load_layer(layer_path)
        if cached is not None:
            return cached
        with _work_dir(root, "pkgs-") as work:
            rootfs = work / "rootfs"
            log = root / "logs" / f"mmdebstrap-{key[:16]}.log"
            _mmdebstrap(base, (*base.packages, *wanted), rootfs, log)
            started = time.monotonic()
            nodes = _scan_tree(rootfs, skip_virtual=True)
            index = _rootfs_index(nodes)
            write, whiteouts = _diff(base_layer.index(), index)
            layer = _write_layer(_rootfs_items(nodes, write, whiteouts), layer_path)
            _log.info(
                "packages layer %s (%s): %d entries, %d whiteouts, %.1f MB, diffed and written in %.1f s",
                layer.digest[:19],
                " ".join(wanted),
                len(write),
                len(whiteouts),
                layer.size / 1e6,
                time.monotonic() - started,
            )
        return _save_layer_meta(layer, index)


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
    cmd = [exe, "--mode=root", "--format=directory", f"--variant={base.variant}", f"--architectures={_debian_arch()}"]
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
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(_EPOCH), "LC_ALL": "C.UTF-8"}
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


def _check_packages(packages: Sequence[str], what: str) -> None:
    for package in packages:
        if not _PACKAGE_RE.fullmatch(package):
            raise ValueError(f"{what} entries must be Debian package names. Current input: {package!r}")


def _debian_arch() -> str:
    machine = platform.machine()
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armhf", "ppc64le": "ppc64el", "s390x": "s390x"}
    return arch.get(machine, machine)


def _save_layer_meta(layer: _Layer, index: _Index) -> _Layer:
    index_path = layer.path.with_suffix(".index.json")
    entries = {path: entry.to_json() for path, entry in sorted(index.items())}
    _atomic_write(index_path, json.dumps({"format": _FORMAT, "entries": entries}).encode())
    meta = {"format": _FORMAT, "digest": layer.digest, "size": layer.size}
    # The .json sidecar is written last: its presence means the layer and its index are complete.
    _atomic_write(layer.path.with_suffix(".json"), json.dumps(meta).encode())
    return _Layer(layer.path, layer.digest, layer.size, index_path)


def _load_layer(layer_path: Path) -> _Layer | None:
    meta_path = layer_path.with_suffix(".json")
    index_path = layer_path.with_suffix(".index.json")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    if meta.get("format") != _FORMAT or not layer_path.exists() or not index_path.exists():
        return None
    return _Layer(layer_path, meta["digest"], meta["size"], index_path)


# --------------------------------------------------------------------------------------------------
# Files layer
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FileSource:
    """One ``ImageSpec.files`` value, scanned: the nodes to write below (and at) its image path."""

    content: bytes | None
    nodes: Mapping[str, _Node]  # relative to the image path; "" is the path itself

    def signature(self) -> list[Any]:
        if self.content is not None:
            return ["bytes", hashlib.sha256(self.content).hexdigest(), _inline_mode(self.content)]
        # Host owners are not part of the image (everything is written as root), so not of the key.
        return [[rel, n.entry.kind, n.entry.mode, n.entry.data] for rel, n in sorted(self.nodes.items())]


def _file_items(files: Mapping[str, Path | bytes]) -> dict[str, _FileSource]:
    sources: dict[str, _FileSource] = {}
    for image_path, value in files.items():
        path = _image_path(image_path)
        if isinstance(value, bytes):
            sources[path] = _FileSource(value, {})
            continue
        host = Path(value)
        try:
            st = os.stat(host)  # a named path is followed if it is a symlink; links inside a directory are kept
        except OSError as exc:
            raise ImageBuildError(f"ImageSpec.files[{image_path!r}] = {host}: cannot read it ({exc})") from exc
        top = _node(host, st)
        if top is None:
            raise ImageBuildError(f"ImageSpec.files[{image_path!r}] = {host} is a socket or other special file")
        nodes = {"": top}
        if top.entry.kind == "dir":
            nodes.update(_scan_tree(host))
        sources[path] = _FileSource(None, nodes)
    return sources


def _inline_mode(content: bytes) -> int:
    # A script without its exec bit is never what an inline file means.
    return 0o755 if content.startswith(b"#!") else 0o644


def _image_path(path: str) -> str:
    norm = posixpath.normpath(path).lstrip("/")
    if not path.startswith("/") or not norm or ".." in path.split("/"):
        raise ValueError(f"ImageSpec.files keys must be absolute paths below '/' without '..'. Current input: {path!r}")
    return norm


def _write_files_layer(sources: Mapping[str, _FileSource], lower: _Index, out: Path) -> _Layer:
    items: dict[str, _Item] = {}
    for image_path, source in sorted(sources.items()):
        target = _resolve_parents(image_path, lower)
        if source.content is not None:
            entry = _Entry(
                "file",
                _inline_mode(source.content),
                0,
                0,
                len(source.content),
                hashlib.sha256(source.content).hexdigest(),
            )
            items[target] = _Item(entry, content=source.content)
        else:
            for rel, node in source.nodes.items():
                entry = _Entry(
                    node.entry.kind, node.entry.mode, 0, 0, node.entry.size, node.entry.data, node.entry.xattrs
                )
                # Fixed mtime: host checkouts change mtimes without changing content.
                fixed = _Node(entry, node.source, _EPOCH, node.inode)
                items[posixpath.join(target, rel) if rel else target] = _Item(entry, fixed)
        parent = posixpath.dirname(target)
        while parent and parent not in items and not _is_dir(lower.get(parent)):
            items[parent] = _Item(_Entry("dir", 0o755))
            parent = posixpath.dirname(parent)
    return _write_layer(items, out)


def _resolve_parents(path: str, lower: Mapping[str, _Entry]) -> str:
    """Rewrite ``path`` so no parent component is a symlink in ``lower`` (``bin/x`` → ``usr/bin/x``).

    Writing ``bin/x`` as-is would make the layer's implied ``bin`` directory replace the usrmerge
    symlink, hiding all of /usr/bin.
    """
    parts = path.split("/")
    for _ in range(64):
        for i in range(len(parts) - 1):
            prefix = "/".join(parts[: i + 1])
            entry = lower.get(prefix)
            if entry is None or entry.kind != "symlink":
                continue
            base = "" if entry.data.startswith("/") else posixpath.dirname(prefix)
            resolved = posixpath.normpath(posixpath.join("/", base, entry.data)).lstrip("/")
            parts = [p for p in resolved.split("/") if p] + parts[i + 1 :]
            break
        else:
            return "/".join(parts)
    raise ImageBuildError(f"too many symlink levels resolving /{path} in the base image")


# --------------------------------------------------------------------------------------------------
# Image config, manifest and the OCI archive
# --------------------------------------------------------------------------------------------------


def _image_config_fields(spec: ImageSpec) -> dict[str, Any]:
    env = dict(sorted(spec.env.items()))
    lines = [f"{k}={v}" for k, v in env.items()]
    if "PATH" not in env:
        lines.insert(0, _DEFAULT_PATH)
    config: dict[str, Any] = {"Env": lines}
    if spec.entrypoint:
        config["Entrypoint"] = list(spec.entrypoint)
    if spec.cmd:
        config["Cmd"] = list(spec.cmd)
    if spec.workdir:
        config["WorkingDir"] = spec.workdir
    if spec.user:
        config["User"] = spec.user
    if spec.exposed_ports:
        config["ExposedPorts"] = {(p if "/" in p else f"{p}/tcp"): {} for p in sorted(spec.exposed_ports)}
    if spec.labels:
        config["Labels"] = dict(sorted(spec.labels.items()))
    return config


def _write_archive(spec: ImageSpec, layers: Sequence[_Layer], history: Sequence[str], archive: Path) -> BuiltImage:
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(_EPOCH))
    config = _canonical(
        {
            "created": created,
            "architecture": _debian_arch(),
            "os": "linux",
            "config": _image_config_fields(spec),
            "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
            "history": [{"created": created, "created_by": line} for line in history],
        }
    )
    config_desc = _descriptor(_MT_CONFIG, config)
    manifest = _canonical(
        {
            "schemaVersion": 2,
            "mediaType": _MT_MANIFEST,
            "config": config_desc,
            "layers": [{"mediaType": _MT_LAYER, "digest": layer.digest, "size": layer.size} for layer in layers],
        }
    )
    manifest_desc = _descriptor(_MT_MANIFEST, manifest)
    index = _canonical(
        {
            "schemaVersion": 2,
            "mediaType": _MT_INDEX,
            "manifests": [
                {
                    **manifest_desc,
                    "platform": {"architecture": _debian_arch(), "os": "linux"},
                    # containerd names the import after io.containerd.image.name; other OCI tools read
                    # ref.name. Both carry the full reference so no --base-name is needed.
                    "annotations": {_ANNOTATION_CONTAINERD_NAME: spec.ref, _ANNOTATION_REF: spec.ref},
                }
            ],
        }
    )
    tmp = archive.with_name(archive.name + ".tmp")
    with open(tmp, "wb") as raw, tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_dir(tar, "blobs")
        _add_dir(tar, "blobs/sha256")
        blobs: dict[str, Path | bytes] = {config_desc["digest"]: config, manifest_desc["digest"]: manifest}
        for layer in layers:
            blobs[layer.digest] = layer.path
        for digest in sorted(blobs):
            _add_blob(tar, f"blobs/sha256/{digest.removeprefix('sha256:')}", blobs[digest])
        _add_blob(tar, "index.json", index)
        _add_blob(tar, "oci-layout", _canonical({"imageLayoutVersion": "1.0.0"}))
    os.replace(tmp, archive)
    return BuiltImage(
        ref=spec.ref,
        archive=archive,
        manifest_digest=manifest_desc["digest"],
        config_digest=config_desc["digest"],
        layer_digests=tuple(layer.digest for layer in layers),
        layer_sizes=tuple(layer.size for layer in layers),
        size=len(config) + len(manifest) + sum(layer.size for layer in layers),
    )


def _canonical(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _descriptor(media_type: str, blob: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(blob).hexdigest(), "size": len(blob)}


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, _EPOCH
    tar.addfile(info)


def _add_blob(tar: tarfile.TarFile, name: str, blob: Path | bytes) -> None:
    info = tarfile.TarInfo(name)
    info.mode, info.mtime = 0o644, _EPOCH
    if isinstance(blob, bytes):
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
        return
    info.size = blob.stat().st_size
    with open(blob, "rb") as src:
        tar.addfile(info, src)


def _built_to_json(image: BuiltImage) -> dict[str, Any]:
    return {
        "format": _FORMAT,
        "ref": image.ref,
        "manifest_digest": image.manifest_digest,
        "config_digest": image.config_digest,
        "layer_digests": list(image.layer_digests),
        "layer_sizes": list(image.layer_sizes),
        "size": image.size,
    }


def _load_built(meta_path: Path, archive: Path) -> BuiltImage | None:
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    if meta.get("format") != _FORMAT or not archive.exists():
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


# --------------------------------------------------------------------------------------------------
# Pause binary
# --------------------------------------------------------------------------------------------------


def _build_pause_binary(root: Path) -> Path:
    go = go_executable()
    if go is None:
        raise ImageBuildError(f"building the pause image needs Go: {GO_MISSING}")
    env = {
        **os.environ,
        "CGO_ENABLED": "0",
        "GOTOOLCHAIN": "local",
        # No VCS stamp: it would change the binary (and the image digest) on every commit.
        "GOFLAGS": "-buildvcs=false",
    }
    if "GOCACHE" not in env and "HOME" not in env:
        env["GOCACHE"] = str(root / "go-build")
    version = subprocess.run([go, "env", "GOVERSION", "GOARCH"], capture_output=True, text=True, env=env, check=False)
    if version.returncode != 0:
        raise ImageBuildError(f"`{go} env GOVERSION GOARCH` failed: {version.stderr.strip()}")
    sources = sorted(
        p
        for p in _PAUSE_SOURCE.iterdir()
        if p.name == "go.mod" or (p.suffix == ".go" and not p.name.endswith("_test.go"))
    )
    flags = ["-trimpath", "-ldflags=-s -w"]
    key = _hash_json(
        {
            "format": _FORMAT,
            "go": version.stdout.split(),
            "flags": flags,
            "sources": {p.name: _file_sha256(p) for p in sources},
        }
    )
    out = root / "pause" / key[:16] / "pause"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with locked(out):
        if out.exists():
            return out
        tmp = out.with_name("pause.tmp")
        cmd = [go, "build", *flags, "-o", str(tmp), "."]
        result = subprocess.run(
            cmd, cwd=_PAUSE_SOURCE, capture_output=True, text=True, env=env, timeout=600, check=False
        )
        if result.returncode != 0:
            raise ImageBuildError(
                f"building the pause binary failed ({result.returncode}): {subprocess.list2cmdline(cmd)} "
                f"in {_PAUSE_SOURCE}\n{result.stdout}{result.stderr}"
            )
        os.replace(tmp, out)
    return out


# --------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------


def _ctr(address: str, namespace: str, args: Sequence[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
    __tracebackhide__ = True
    exe = shutil.which("ctr")
    if exe is None:
        raise ImageImportError("`ctr` is not on PATH: install Debian package containerd (apt-get install containerd)")
    cmd = [exe, "--address", address, "--namespace", namespace, *args]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ImageImportError(f"`{subprocess.list2cmdline(cmd)}` did not finish within {timeout:.0f} s") from exc
    if result.returncode != 0:
        raise ImageImportError(
            f"`{subprocess.list2cmdline(cmd)}` failed ({result.returncode}): {result.stderr.strip()}\n"
            f"Hint: is containerd running with its socket at {address}?"
        )
    return result


def _unpacked(image: BuiltImage, address: str, namespace: str, snapshotter: str | None) -> bool:
    args = ["snapshots"]
    if snapshotter:
        args.append(f"--snapshotter={snapshotter}")
    try:
        _ctr(address, namespace, [*args, "info", image.chain_id], timeout=60)
    except ImageImportError:
        return False
    return True


def _hash_json(doc: Any) -> str:
    return hashlib.sha256(_canonical(doc)).hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@contextlib.contextmanager
def _work_dir(root: Path, prefix: str) -> Iterator[Path]:
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
