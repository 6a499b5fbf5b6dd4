"""What makes the image builder's output reproducible and its cache keys stable.

Every module of the builder shares these: the cache format version, the fixed epoch all mtimes are
clamped to, canonical JSON and content hashes (cache keys, digests), atomic writes of cache files,
and the Debian name of the machine's architecture (part of every key and image config).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Any

# Bump when the bytes a given input produces change (tar layout, config fields, mmdebstrap options),
# so stale cache entries are never mistaken for current ones.
FORMAT = 1
# Every mtime is clamped to this instant (2023-11-14): files that Debian packages ship keep their older
# mtimes (Python's .pyc checks depend on them) while files made at build time become reproducible.
EPOCH = 1_700_000_000


def canonical_json(doc: Any) -> bytes:
    """``doc`` as compact JSON with sorted keys: equal documents give equal bytes (and digests)."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def hash_json(doc: Any) -> str:
    """Hex sha256 of :func:`canonical_json` of ``doc``: the cache key of everything ``doc`` names."""
    return hashlib.sha256(canonical_json(doc)).hexdigest()


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's content, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def debian_arch() -> str:
    """This machine's architecture as Debian and OCI name it (``amd64``, ``arm64``, ...)."""
    machine = platform.machine()
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armhf", "ppc64le": "ppc64el", "s390x": "s390x"}
    return arch.get(machine, machine)
