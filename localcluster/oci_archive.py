"""The OCI side of an image: its config, manifest and index, packed with the layers into one archive.

The archive is an OCI image-layout tar (``oci-layout``, ``index.json``, ``blobs/sha256/*``) that
``ctr images import`` loads into containerd. JSON documents are canonical (sorted keys, no spaces)
and every timestamp is the fixed epoch, so equal specs and layers give equal digests.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from localcluster.image_spec import BuiltImage, ImageSpec
from localcluster.layer_tar import Layer
from localcluster.reproducible import EPOCH, canonical_json, debian_arch

_MT_INDEX = "application/vnd.oci.image.index.v1+json"
_MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_MT_CONFIG = "application/vnd.oci.image.config.v1+json"
_MT_LAYER = "application/vnd.oci.image.layer.v1.tar"
# containerd names an import after io.containerd.image.name, other OCI tools after ref.name: the index
# carries the full reference in both, so no --base-name is needed.
_REF_ANNOTATIONS = ("io.containerd.image.name", "org.opencontainers.image.ref.name")

# The Env of an image whose spec sets no PATH: Debian's default for root.
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def image_config_fields(spec: ImageSpec) -> dict[str, Any]:
    """The ``config`` object of the OCI image config for ``spec`` (Env always has a PATH)."""
    env = dict(sorted(spec.env.items()))
    lines = [f"{k}={v}" for k, v in env.items()]
    if "PATH" not in env:
        lines.insert(0, DEFAULT_PATH)
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


def write_archive(spec: ImageSpec, layers: Sequence[Layer], history: Sequence[str], archive: Path) -> BuiltImage:
    """Write the OCI archive of ``spec`` with ``layers`` (bottom first; one ``history`` line each)."""
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(EPOCH))
    config = canonical_json(
        {
            "created": created,
            "architecture": debian_arch(),
            "os": "linux",
            "config": image_config_fields(spec),
            "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
            "history": [{"created": created, "created_by": line} for line in history],
        }
    )
    config_desc = _descriptor(_MT_CONFIG, config)
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": _MT_MANIFEST,
            "config": config_desc,
            "layers": [{"mediaType": _MT_LAYER, "digest": layer.digest, "size": layer.size} for layer in layers],
        }
    )
    manifest_desc = _descriptor(_MT_MANIFEST, manifest)
    index = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": _MT_INDEX,
            "manifests": [
                {
                    **manifest_desc,
                    "platform": {"architecture": debian_arch(), "os": "linux"},
                    "annotations": dict.fromkeys(_REF_ANNOTATIONS, spec.ref),
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
        _add_blob(tar, "oci-layout", canonical_json({"imageLayoutVersion": "1.0.0"}))
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


def _descriptor(media_type: str, blob: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(blob).hexdigest(), "size": len(blob)}


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, EPOCH
    tar.addfile(info)


def _add_blob(tar: tarfile.TarFile, name: str, blob: Path | bytes) -> None:
    info = tarfile.TarInfo(name)
    info.mode, info.mtime = 0o644, EPOCH
    if isinstance(blob, bytes):
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
        return
    info.size = blob.stat().st_size
    with open(blob, "rb") as src:
        tar.addfile(info, src)
