"""Where the embedded cluster keeps build artefacts (cache) and run state.

The cache holds heavy, reproducible artefacts keyed by version (binaries, image
archives, generated stubs) and survives ``cluster down --purge``; the state
directory holds one cluster's PKI, etcd data, containerd root and logs.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Root of version-keyed build artefacts (``GEOCUBE_ACCEPTANCE_CACHE``)."""
    return Path(os.environ.get("GEOCUBE_ACCEPTANCE_CACHE", "/var/cache/geocube-acceptance"))


def state_dir() -> Path:
    """Root of the running embedded cluster's state (``GEOCUBE_ACCEPTANCE_STATE``)."""
    return Path(os.environ.get("GEOCUBE_ACCEPTANCE_STATE", "/var/lib/geocube-acceptance/cluster"))


def stack_storage_dir() -> Path:
    """Node directories behind the stacks' local storage, one per namespace, beside the cluster state.

    The stacks' own data, not the cluster's: ``cluster down --purge`` removes it with the state; the
    janitor removes each namespace's directory with the namespace.
    """
    return state_dir().parent / "stack-storage"


def registry_storage_dir() -> Path:
    """The embedded registry's blobs and manifests, in the cache: pushes stay incremental across ``up``/``down``.

    Content-addressed copies of the image archives beside it, so it is kept like them; nothing in it
    depends on the cluster's PKI or the registry's password, which live in the state.
    """
    return cache_dir() / "registry"
