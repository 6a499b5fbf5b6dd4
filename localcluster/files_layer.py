"""The files layer: host files and inline contents of ``ImageSpec.files`` as one deterministic layer tar.

Everything is written as root with the fixed epoch as mtime (host checkouts change mtimes and owners
without changing content), so equal files give equal layer digests on every machine.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcluster.image_spec import ImageBuildError, image_path
from localcluster.layer_tar import Item, Layer, write_layer
from localcluster.reproducible import EPOCH
from localcluster.rootfs_tree import Entry, Index, Node, is_dir, scan_node, scan_tree


@dataclass(frozen=True)
class FileSource:
    """One ``ImageSpec.files`` value, scanned: the nodes to write below (and at) its image path."""

    content: bytes | None
    nodes: Mapping[str, Node]  # relative to the image path; "" is the path itself

    def signature(self) -> list[Any]:
        """What of this source shapes the layer: part of the image's cache key."""
        if self.content is not None:
            return ["bytes", hashlib.sha256(self.content).hexdigest(), _inline_mode(self.content)]
        # Host owners are not part of the image (everything is written as root), so not of the key.
        return [[rel, n.entry.kind, n.entry.mode, n.entry.data] for rel, n in sorted(self.nodes.items())]


def file_items(files: Mapping[str, Path | bytes]) -> dict[str, FileSource]:
    """Scan ``ImageSpec.files``: root-relative image path → its source."""
    sources: dict[str, FileSource] = {}
    for key, value in files.items():
        path = image_path(key)
        if isinstance(value, bytes):
            sources[path] = FileSource(value, {})
            continue
        host = Path(value)
        try:
            st = os.stat(host)  # a named path is followed if it is a symlink; links inside a directory are kept
        except OSError as exc:
            raise ImageBuildError(f"ImageSpec.files[{key!r}] = {host}: cannot read it ({exc})") from exc
        top = scan_node(host, st)
        if top is None:
            raise ImageBuildError(f"ImageSpec.files[{key!r}] = {host} is a socket or other special file")
        nodes = {"": top}
        if top.entry.kind == "dir":
            nodes.update(scan_tree(host))
        sources[path] = FileSource(None, nodes)
    return sources


def write_files_layer(sources: Mapping[str, FileSource], lower: Index, out: Path) -> Layer:
    """Write ``sources`` as a layer on top of the rootfs ``lower`` (with the parent directories it lacks)."""
    items: dict[str, Item] = {}
    for path, source in sorted(sources.items()):
        target = resolve_parents(path, lower)
        if source.content is not None:
            entry = Entry(
                "file",
                _inline_mode(source.content),
                0,
                0,
                len(source.content),
                hashlib.sha256(source.content).hexdigest(),
            )
            items[target] = Item(entry, content=source.content)
        else:
            for rel, node in source.nodes.items():
                entry = Entry(
                    node.entry.kind, node.entry.mode, 0, 0, node.entry.size, node.entry.data, node.entry.xattrs
                )
                # Fixed mtime: host checkouts change mtimes without changing content.
                fixed = Node(entry, node.source, EPOCH, node.inode)
                items[posixpath.join(target, rel) if rel else target] = Item(entry, fixed)
        parent = posixpath.dirname(target)
        while parent and parent not in items and not is_dir(lower.get(parent)):
            items[parent] = Item(Entry("dir", 0o755))
            parent = posixpath.dirname(parent)
    return write_layer(items, out)


def resolve_parents(path: str, lower: Mapping[str, Entry]) -> str:
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


def _inline_mode(content: bytes) -> int:
    # A script without its exec bit is never what an inline file means.
    return 0o755 if content.startswith(b"#!") else 0o644
