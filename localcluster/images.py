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

This module builds and imports; the parts live below it, each importing only those under it:

* :mod:`localcluster.image_spec` — what to build (:class:`DebianBase`, :class:`ImageSpec`), what was
  built (:class:`BuiltImage`), :class:`ImageBuildError` and :class:`ImageImportError`;
* :mod:`localcluster.debian_rootfs` (mmdebstrap), :mod:`localcluster.files_layer`,
  :mod:`localcluster.pause_binary` — the sources of layers;
* :mod:`localcluster.oci_archive` — config, manifest and the archive;
* :mod:`localcluster.image_cache` — cache sidecars and scratch directories;
* :mod:`localcluster.layer_tar` and :mod:`localcluster.rootfs_tree` — deterministic layer tars,
  tree indexes and their diff;
* :mod:`localcluster.reproducible` — format version, fixed epoch, hashes.

Public surface here: :func:`build_image`, :func:`build_pause_image`, :func:`import_image`,
:func:`image_present`, :func:`image_digest`, :data:`PAUSE_IMAGE`.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from localcluster.buildtools import locked
from localcluster.debian_rootfs import base_layer, packages_layer
from localcluster.files_layer import file_items, write_files_layer
from localcluster.image_cache import load_built, save_built, work_dir
from localcluster.image_spec import REF_PREFIX, BuiltImage, ImageImportError, ImageSpec
from localcluster.layer_tar import Layer
from localcluster.oci_archive import image_config_fields, write_archive
from localcluster.paths import cache_dir
from localcluster.pause_binary import build_pause_binary
from localcluster.reproducible import FORMAT, hash_json

__all__ = [
    "PAUSE_IMAGE",
    "build_image",
    "build_pause_image",
    "image_digest",
    "image_present",
    "import_image",
]

PAUSE_TAG = "3.10-1"
PAUSE_IMAGE = f"{REF_PREFIX}pause:{PAUSE_TAG}"


def build_image(spec: ImageSpec, *, cache: Path | None = None) -> BuiltImage:
    """Build (or find in the cache) the OCI archive for ``spec``; safe to call from several processes."""
    root = cache or cache_dir()
    files = file_items(spec.files)
    lowers: list[Layer] = []
    history: list[str] = []  # one "created_by" per layer
    if spec.base is not None:
        base = spec.base
        base_lower = base_layer(base, root)
        lowers.append(base_lower)
        history.append(f"mmdebstrap --variant={base.variant} {base.suite} (+{','.join(base.packages) or 'nothing'})")
        # Packages the base already has add nothing: no (empty) diff layer for them.
        extra = sorted(set(spec.packages) - set(base.packages))
        if extra:
            lowers.append(packages_layer(base, base_lower, extra, root))
            history.append(f"mmdebstrap --include={','.join(extra)} (difference to the base)")
    key = hash_json(
        {
            "format": FORMAT,
            "ref": spec.ref,
            "lowers": [layer.digest for layer in lowers],
            "files": [[path, item.signature()] for path, item in sorted(files.items())],
            "config": image_config_fields(spec),
        }
    )
    out_dir = root / "images"
    archive = out_dir / f"{spec.name.replace('/', '_')}_{spec.tag}-{key[:16]}.tar"
    meta_path = archive.with_suffix(".json")
    cached = load_built(meta_path, archive)
    if cached is not None:
        return cached
    out_dir.mkdir(parents=True, exist_ok=True)
    with locked(archive):
        cached = load_built(meta_path, archive)
        if cached is not None:
            return cached
        with work_dir(root, "image-") as work:
            layers = list(lowers)
            if files:
                lower_index = lowers[-1].index() if lowers else {}
                layers.append(write_files_layer(files, lower_index, work / "files.tar"))
                history.append(f"files: {', '.join('/' + path for path in sorted(files))}")
            built = write_archive(spec, layers, history, archive)
        save_built(meta_path, built)
        return built


def build_pause_image(*, cache: Path | None = None) -> BuiltImage:
    """Build :data:`PAUSE_IMAGE`: a scratch image holding only our static ``/pause`` (see pause/main.go)."""
    binary = build_pause_binary(cache or cache_dir())
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
