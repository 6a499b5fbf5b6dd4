"""Host directory trees as the image builder sees them: scanned into indexes, and diffed into layers.

An index maps every root-relative path of a tree to an :class:`Entry` (kind, mode, owner, content
hash or link target, file capabilities); two trees differ at a path iff their entries differ, which
is all :func:`diff` needs to say what a layer on top of one tree must hold to turn it into the other.
Pure functions of the file system, unit-tested on small temp trees.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from localcluster.reproducible import EPOCH, file_sha256

# Only the file capability xattr matters in an image (ping & co.); others (SELinux labels, ACLs from the
# build host) would make layers host-dependent.
_XATTRS = ("security.capability",)
# mmdebstrap fills /dev with device nodes; runtimes mount their own /dev, /proc and /sys, and device
# nodes in a layer break rootless or user-namespaced unpacking. Keep the directories, drop their content.
_VIRTUAL_DIRS = ("dev", "proc", "sys")


@dataclass(frozen=True)
class Entry:
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
    def from_json(cls, raw: list[Any]) -> Entry:
        kind, mode, uid, gid, size, data, xattrs = raw
        return cls(kind, mode, uid, gid, size, data, tuple((k, v) for k, v in xattrs))


@dataclass(frozen=True)
class Node:
    """One scanned path of a host tree: its entry plus what writing it to a tar needs."""

    entry: Entry
    source: Path
    mtime: int
    inode: tuple[int, int] | None = None  # set for regular files with more than one link


Index = dict[str, Entry]


def scan_tree(root: Path, *, skip_virtual: bool = False) -> dict[str, Node]:
    """Every path below ``root`` (relative, '/'-separated, root itself excluded), without following links."""
    nodes: dict[str, Node] = {}
    pending = [("", root)]
    while pending:
        rel_dir, dir_path = pending.pop()
        with os.scandir(dir_path) as it:
            children = sorted(it, key=lambda e: e.name)
        for child in children:
            rel = f"{rel_dir}/{child.name}" if rel_dir else child.name
            node = scan_node(Path(child.path), os.lstat(child.path))
            if node is None:
                continue  # sockets: not representable in a layer
            nodes[rel] = node
            if node.entry.kind == "dir" and not (skip_virtual and rel in _VIRTUAL_DIRS):
                pending.append((rel, Path(child.path)))
    return nodes


def scan_node(path: Path, st: os.stat_result) -> Node | None:
    """The node of one path given its stat result; None for what a layer cannot hold (sockets)."""
    mode = st.st_mode
    inode: tuple[int, int] | None = None
    if stat.S_ISDIR(mode):
        kind: Literal["dir", "file", "symlink", "char", "block", "fifo"] = "dir"
        size, data = 0, ""
    elif stat.S_ISREG(mode):
        kind, size, data = "file", st.st_size, file_sha256(path)
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
    entry = Entry(kind, stat.S_IMODE(mode), st.st_uid, st.st_gid, size, data, _read_xattrs(path, kind))
    return Node(entry, path, min(int(st.st_mtime), EPOCH), inode)


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


def rootfs_index(nodes: Mapping[str, Node]) -> Index:
    """The index of a scanned root filesystem, without the content of /dev, /proc and /sys."""
    return {path: node.entry for path, node in nodes.items() if not _below_virtual(path)}


def _below_virtual(path: str) -> bool:
    return any(path.startswith(d + "/") for d in _VIRTUAL_DIRS)


def diff(lower: Mapping[str, Entry], upper: Mapping[str, Entry]) -> tuple[list[str], list[str]]:
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
        if parent and not (is_dir(lower.get(parent)) and is_dir(upper.get(parent))):
            continue
        removed.append(path)
    write = set(changed)
    for path in [*changed, *removed]:
        parent = posixpath.dirname(path)
        while parent and parent not in write:
            write.add(parent)
            parent = posixpath.dirname(parent)
    return sorted(write, key=tar_order), sorted(removed, key=tar_order)


def is_dir(entry: Entry | None) -> bool:
    """Whether ``entry`` exists and is a directory."""
    return entry is not None and entry.kind == "dir"


def tar_order(path: str) -> tuple[str, ...]:
    """Sort key of layer members: a directory's entry, then its whole subtree, then its next sibling."""
    return tuple(path.split("/"))
