"""Deterministic OCI layer tars: the same members always give the same bytes, hence the same digest.

Layers are uncompressed (CPU is scarce, the archive never leaves the machine) and reproducible:
members in :func:`~localcluster.rootfs_tree.tar_order`, PAX format, numeric owners without names,
mtimes clamped to :data:`~localcluster.reproducible.EPOCH`, hard links kept as links, deletions as
OCI whiteouts (``.wh.<name>``).
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from localcluster.reproducible import EPOCH, file_sha256
from localcluster.rootfs_tree import Entry, Index, Node, tar_order

_TAR_TYPES = {
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "char": tarfile.CHRTYPE,
    "block": tarfile.BLKTYPE,
    "fifo": tarfile.FIFOTYPE,
}


@dataclass(frozen=True)
class Item:
    """One member of a layer being written: from a scanned node, inline bytes, or a whiteout (neither)."""

    entry: Entry
    node: Node | None = None
    content: bytes | None = None
    whiteout: bool = False


@dataclass(frozen=True)
class Layer:
    """A finished layer tar; ``index_path`` holds the full tree index of the rootfs *after* this layer."""

    path: Path
    digest: str
    size: int
    index_path: Path | None = None

    def index(self) -> Index:
        if self.index_path is None:
            return {}
        raw = json.loads(self.index_path.read_text())
        return {path: Entry.from_json(entry) for path, entry in raw["entries"].items()}


def write_layer(items: Mapping[str, Item], out: Path) -> Layer:
    """Write ``items`` to ``out`` as an uncompressed, byte-for-byte reproducible tar."""
    tmp = out.with_name(out.name + ".tmp")
    first_of_inode: dict[tuple[int, int], str] = {}
    with open(tmp, "wb") as raw, tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(items, key=tar_order):
            item = items[path]
            info = tarfile.TarInfo(_whiteout_name(path) if item.whiteout else path)
            info.mtime = item.node.mtime if item.node else EPOCH
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
                info.type = _TAR_TYPES[entry.kind]
                if entry.kind == "symlink":
                    info.linkname = entry.data
                elif entry.kind in ("char", "block"):
                    major, minor = entry.data.split(",")
                    info.devmajor, info.devminor = int(major), int(minor)
                tar.addfile(info)
    digest = "sha256:" + file_sha256(tmp)
    os.replace(tmp, out)
    return Layer(out, digest, out.stat().st_size)


def rootfs_items(nodes: Mapping[str, Node], paths: Iterable[str], whiteouts: Iterable[str]) -> dict[str, Item]:
    """The members of a layer holding ``paths`` of a scanned tree plus whiteouts for ``whiteouts``."""
    items = {path: Item(nodes[path].entry, nodes[path]) for path in paths}
    for path in whiteouts:
        items[path] = Item(Entry("file", 0), whiteout=True)
    return items


def _whiteout_name(path: str) -> str:
    parent, base = posixpath.split(path)
    return posixpath.join(parent, ".wh." + base)
