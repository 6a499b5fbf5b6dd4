"""Whether the server and the consolidaters share their storage, judged from their specs (read-only).

With local paths both must see the same files: the server writes cancellation flags the consolidaters
read, the consolidaters write the files the server indexes and deletes. A path is shared when, in both
pod specs, the volume mounted over it is the same durable source (the same hostPath, the same claim,
the same NFS export...) at the same place relative to the mount. ``gs://`` URIs are shared by nature.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Volume sources that are private to one pod: a path on them is never seen by another pod.
PRIVATE_SOURCES = frozenset({"emptyDir", "ephemeral", "configMap", "secret", "downwardAPI", "projected"})


@dataclass(frozen=True)
class Location:
    """Where a path of a container lives: the volume's source and the path inside that volume."""

    volume: str
    source_kind: str
    source: Mapping[str, Any]
    inside: str

    def describe(self) -> str:
        return f"volume {self.volume!r} ({self.source_kind}: {dict(self.source)}) at {self.inside!r}"

    def same_storage(self, other: Location) -> bool:
        shared = self.source_kind not in PRIVATE_SOURCES
        return shared and (self.source_kind, dict(self.source), self.inside) == (
            other.source_kind,
            dict(other.source),
            other.inside,
        )


def locate(pod_spec: Mapping[str, Any], container: Mapping[str, Any], path: str) -> Location | None:
    """The volume that holds ``path`` in ``container`` (the deepest mount over it); None: the image's filesystem."""
    mounts = [
        m for m in container.get("volumeMounts") or []
        if path == m["mountPath"] or path.startswith(m["mountPath"].rstrip("/") + "/")
    ]  # fmt: skip
    if not mounts:
        return None
    mount = max(mounts, key=lambda m: len(m["mountPath"]))
    volume: Mapping[str, Any] = next((v for v in pod_spec.get("volumes") or [] if v.get("name") == mount["name"]), {})
    kind = next((k for k in volume if k != "name"), "unknown")
    inside = posixpath.normpath(
        posixpath.join("/", mount.get("subPath") or "", posixpath.relpath(path, mount["mountPath"]))
    )
    return Location(mount["name"], kind, volume.get(kind) or {}, inside)


def sharing_problem(
    what: str,
    path: str,
    server: tuple[Mapping[str, Any], Mapping[str, Any]],
    worker: tuple[Mapping[str, Any], Mapping[str, Any]],
) -> str | None:
    """Why ``path`` (``what``: e.g. "ingestion storage") is not shared by the server and the consolidaters."""
    if path.startswith("gs://"):
        return None
    mine, theirs = locate(*server, path), locate(*worker, path)
    if mine is None or theirs is None:
        side = "the API server's" if mine is None else "the consolidaters'"
        return (
            f"{what} {path} is on {side} own filesystem (no volume is mounted over it): nothing written there is "
            "seen by the other side. Fix: mount one shared volume (hostPath, ReadWriteMany claim, NFS) over it in "
            "both"
        )
    if not mine.same_storage(theirs):
        return (
            f"{what} {path} is not shared: the API server has it on {mine.describe()}, the consolidaters on "
            f"{theirs.describe()}. Fix: mount the same durable volume (not emptyDir) in both"
        )
    return None
