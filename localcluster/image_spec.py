"""What to build and what was built: the image builder's public types and its two exceptions.

:class:`DebianBase` and :class:`ImageSpec` describe an image (validated on construction, so a bad
name or path fails where it is written, not in the middle of a build); :class:`BuiltImage` is the
archive :func:`localcluster.images.build_image` made. All images are named below :data:`REF_PREFIX`.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from localcluster.errors import ClusterError
from localcluster.registry_client import TAG, valid_repository
from localcluster.reproducible import FORMAT, debian_arch, hash_json

__all__ = [
    "REF_PREFIX",
    "BuiltImage",
    "DebianBase",
    "ImageBuildError",
    "ImageImportError",
    "ImageSpec",
    "image_path",
]

REF_PREFIX = "localhost/geocube-acceptance/"

_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(?::[a-z0-9-]+)?(?:=[A-Za-z0-9.+~:-]+)?$")


class ImageBuildError(ClusterError):
    """An image or one of its layers could not be built; the message says why and what to do."""


class ImageImportError(ClusterError):
    """containerd could not be asked about, or could not load, an image archive."""


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
        return hash_json(
            {
                "format": FORMAT,
                "suite": self.suite,
                "variant": self.variant,
                "packages": sorted(set(self.packages)),
                "components": list(self.components),
                "mirrors": list(self.mirrors),
                "slim": self.slim,
                "arch": debian_arch(),
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
        if not valid_repository(self.name):
            raise ValueError(
                "ImageSpec.name must be lowercase path components of [a-z0-9] joined by '.', '_' or '-'. "
                f"Current input: {self.name!r}"
            )
        if not TAG.fullmatch(self.tag):
            raise ValueError(f"ImageSpec.tag must match {TAG.pattern}. Current input: {self.tag!r}")
        if self.base is None and not self.files:
            raise ValueError(f"ImageSpec {self.name!r} has neither a base nor files: a scratch image needs files")
        if self.packages and self.base is None:
            raise ValueError(
                f"ImageSpec.packages {list(self.packages)} need a Debian base; set ImageSpec.base=DebianBase()"
            )
        _check_packages(self.packages, "ImageSpec.packages")
        for path in self.files:
            image_path(path)
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
    """An image archive on disk, ready for :func:`localcluster.images.import_image`.

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


def image_path(path: str) -> str:
    """An ``ImageSpec.files`` key as a root-relative path (``/usr/bin/x`` → ``usr/bin/x``); rejects bad keys."""
    norm = posixpath.normpath(path).lstrip("/")
    if not path.startswith("/") or not norm or ".." in path.split("/"):
        raise ValueError(f"ImageSpec.files keys must be absolute paths below '/' without '..'. Current input: {path!r}")
    return norm


def _check_packages(packages: Sequence[str], what: str) -> None:
    for package in packages:
        if not _PACKAGE_RE.fullmatch(package):
            raise ValueError(f"{what} entries must be Debian package names. Current input: {package!r}")
