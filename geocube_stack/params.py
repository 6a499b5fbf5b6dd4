"""Profiles, template directories and the parameters of the reference stack's manifests.

Templates live in ``manifests/``: ``base/`` always, plus one ``messaging/<profile>/`` and one
``storage/<profile>/`` directory. Every ``{{NAME}}`` in them is mandatory; :data:`PARAMETERS` documents
each (manifests/README.md holds the same table, checked by a unit test), and :func:`render_params`
computes a complete set for one profile pair, e.g. for the embedded cluster.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from geocube_acceptance import locations
from geocube_stack.errors import StackError
from geocube_stack.module import CREATE_SQL, PGQUEUE_SQL, geocube_module

MANIFESTS_DIR = locations.manifests_dir()
MESSAGING_PROFILES = ("pubsub", "pgqueue")
STORAGE_PROFILES = ("local", "gs")
# Where the shared volume is mounted in the API server and the consolidaters (fixed in base/*.yaml).
STORAGE_MOUNT = "/geocube-storage"

Scope = Literal["base", "pubsub", "pgqueue", "local", "gs"]


@dataclass(frozen=True)
class Parameter:
    """One ``{{NAME}}``: what it means, an example value, and the template directory that uses it."""

    name: str
    scope: Scope
    meaning: str
    example: str


def _image(ref: str) -> str:
    """An example image reference, as the image builder names them."""
    return f"localhost/geocube-acceptance/{ref}"


# name, meaning, example: one row per parameter, by the template directory that uses it.
_PARAMETER_ROWS: Mapping[Scope, tuple[tuple[str, str, str], ...]] = {
    "base": (
        (
            "IMAGE_PULL_POLICY",
            "imagePullPolicy of every container but the consolidater and autoscaler (Always, as the guide)",
            "IfNotPresent",
        ),
        (
            "IMAGE_PULL_SECRETS",
            "imagePullSecrets of every pod (the autoscaler's workers included), as a YAML flow sequence",
            "[{name: geocube-registry}]",
        ),
        ("SERVICE_TYPE", "type of the stack's Services (NodePort for --access-mode nodeport)", "ClusterIP"),
        (
            "POSTGIS_IMAGE",
            "PostgreSQL with PostGIS 3 and the official postgres entrypoint contract",
            _image("postgis:15-3-r1"),
        ),
        ("GEOCUBE_SERVER_IMAGE", "Geocube API server image (/server)", _image("geocube-server:v1.0.3-r1")),
        (
            "CONSOLIDATER_IMAGE",
            "Geocube consolidater image (/consolidater, sh, uuidgen)",
            _image("geocube-consolidater:v1.0.3-r1"),
        ),
        ("AUTOSCALER_IMAGE", "Geocube autoscaler image (/autoscaler)", _image("geocube-autoscaler:v1.0.3-r1")),
        ("POSTGRES_USER", "database superuser that owns the catalog (runs the init scripts)", "postgres"),
        ("POSTGRES_PASSWORD", "password of POSTGRES_USER", "(random)"),
        ("DB_USER", "least-privilege role Geocube connects with (created at init; no DDL)", "apiserver"),
        ("DB_PASSWORD", "password of DB_USER; URL-safe (it is part of the pgqueue connection URL)", "(random hex)"),
        ("DB_HOST", "host[:port] of the database as Geocube sees it", "postgresql"),
        ("DB_SSLMODE", "libpq sslmode for Geocube's connections (PGSSLMODE, pgqueue URL)", "disable"),
        ("DATABASE_VOLUME_SOURCE", "volume source of the data directory, as YAML flow-mapping entries", "emptyDir: {}"),
        (
            "GEOCUBE_CREATE_SQL",
            "content of Geocube's interface/database/pg/create.sql (read from the Go module cache)",
            "(file content)",
        ),
        ("INGESTION_STORAGE", "-ingestionStorage: where consolidated COGs are written", "/geocube-storage/ingestion"),
        ("CANCELLED_JOBS_STORAGE", "-cancelledJobs: where cancelled tasks are flagged", "/geocube-storage/cancelled"),
        (
            "STORAGE_VOLUME_SOURCE",
            f"volume mounted at {STORAGE_MOUNT} in the server and every consolidater, as YAML flow-mapping "
            "entries; must be one shared volume with local storage",
            "hostPath: {path: /var/lib/geocube-storage, type: DirectoryOrCreate}",
        ),
        ("CONSOLIDATER_REPLICAS", "replicas of the consolidater RC (the autoscaler adds bare pods on top)", "0"),
        (
            "CONSOLIDATER_NODE_SELECTOR",
            "nodeSelector of the consolidater template (the autoscaler's workers), as a YAML flow mapping",
            '{geocube-acceptance/fake-node: "true"}',
        ),
        (
            "CONSOLIDATER_TOLERATIONS",
            "tolerations of the consolidater template (the autoscaler's workers), as a YAML flow sequence",
            "[{key: kwok.x-k8s.io/node, operator: Equal, value: fake, effect: NoSchedule}]",
        ),
        ("AUTOSCALER_UPDATE", "autoscaler -update period", "30s"),
        ("AUTOSCALER_STEP", "autoscaler -step (max pods added or removed per update)", "16"),
        ("AUTOSCALER_MAX", "autoscaler -max (consolidater pods)", "256"),
        ("DATABASE_CPU_REQUEST", "CPU request of the database", "100m"),
        ("DATABASE_MEMORY_REQUEST", "memory request of the database", "256Mi"),
        ("APISERVER_CPU_REQUEST", "CPU request of the API server", "100m"),
        ("APISERVER_MEMORY_REQUEST", "memory request of the API server", "128Mi"),
        ("CONSOLIDATER_CPU_REQUEST", "CPU request of each consolidater pod", "1900m"),
        ("CONSOLIDATER_MEMORY_REQUEST", "memory request of each consolidater pod", "1500Mi"),
        ("CONSOLIDATER_MEMORY_LIMIT", "memory limit of each consolidater pod", "4Gi"),
        ("AUTOSCALER_CPU_REQUEST", "CPU request of the autoscaler", "1m"),
        ("AUTOSCALER_MEMORY_REQUEST", "memory request of the autoscaler", "30Mi"),
    ),
    "pubsub": (
        ("PUBSUB_PROJECT", "Pub/Sub project of the topics and subscriptions", "geocube-acceptance"),
        ("PUBSUB_EMULATOR_IMAGE", "Pub/Sub emulator image (serves 0.0.0.0:8085)", _image("pubsub-emulator:0.8.20-r1")),
        (
            "TOOLBOX_IMAGE",
            "image with sh and curl for the init Jobs (also used by gs)",
            _image("geocube-toolbox:bookworm-r1"),
        ),
        ("PUBSUB_EMULATOR_CPU_REQUEST", "CPU request of the Pub/Sub emulator", "100m"),
        ("PUBSUB_EMULATOR_MEMORY_REQUEST", "memory request of the Pub/Sub emulator", "256Mi"),
    ),
    "pgqueue": (
        (
            "PGQUEUE_CREATE_TABLE_SQL",
            "content of Geocube's interface/messaging/pgqueue/create_table.sql (Go module cache)",
            "(file content)",
        ),
    ),
    "gs": (
        ("GCS_EMULATOR_IMAGE", "fake-gcs-server image", _image("fake-gcs-server:v1.56.1-r1")),
        ("GCS_BUCKET", "bucket created in the emulator for ingestion and cancelled jobs", "geocube"),
        ("GCS_EMULATOR_CPU_REQUEST", "CPU request of the GCS emulator", "10m"),
        ("GCS_EMULATOR_MEMORY_REQUEST", "memory request of the GCS emulator", "32Mi"),
    ),
}
PARAMETERS: tuple[Parameter, ...] = tuple(
    Parameter(name, scope, meaning, example)
    for scope, rows in _PARAMETER_ROWS.items()
    for name, meaning, example in rows
)
PARAMETER_NAMES = frozenset(p.name for p in PARAMETERS)

# Requests sized for the 2-core embedded node (the stack plus a few dozen consolidater pods) and
# the install guide's realistic values for real clusters.
RESOURCE_PRESETS: Mapping[str, Mapping[str, str]] = {
    "embedded": {
        "DATABASE_CPU_REQUEST": "50m",
        "DATABASE_MEMORY_REQUEST": "128Mi",
        "APISERVER_CPU_REQUEST": "50m",
        "APISERVER_MEMORY_REQUEST": "64Mi",
        "CONSOLIDATER_CPU_REQUEST": "10m",
        "CONSOLIDATER_MEMORY_REQUEST": "32Mi",
        "CONSOLIDATER_MEMORY_LIMIT": "1Gi",
        "AUTOSCALER_CPU_REQUEST": "1m",
        "AUTOSCALER_MEMORY_REQUEST": "30Mi",
        "PUBSUB_EMULATOR_CPU_REQUEST": "50m",
        "PUBSUB_EMULATOR_MEMORY_REQUEST": "128Mi",
        "GCS_EMULATOR_CPU_REQUEST": "10m",
        "GCS_EMULATOR_MEMORY_REQUEST": "16Mi",
    },
    "guide": {
        "DATABASE_CPU_REQUEST": "500m",
        "DATABASE_MEMORY_REQUEST": "1Gi",
        "APISERVER_CPU_REQUEST": "500m",
        "APISERVER_MEMORY_REQUEST": "512Mi",
        "CONSOLIDATER_CPU_REQUEST": "1900m",
        "CONSOLIDATER_MEMORY_REQUEST": "1500Mi",
        "CONSOLIDATER_MEMORY_LIMIT": "4Gi",
        "AUTOSCALER_CPU_REQUEST": "1m",
        "AUTOSCALER_MEMORY_REQUEST": "30Mi",
        "PUBSUB_EMULATOR_CPU_REQUEST": "100m",
        "PUBSUB_EMULATOR_MEMORY_REQUEST": "512Mi",
        "GCS_EMULATOR_CPU_REQUEST": "100m",
        "GCS_EMULATOR_MEMORY_REQUEST": "128Mi",
    },
}


def check_profiles(messaging: str, storage: str) -> None:
    """Raise a StackError naming the valid choices when a profile name is unknown."""
    if messaging not in MESSAGING_PROFILES:
        raise StackError(f"messaging profile must be one of {MESSAGING_PROFILES}. Current input: {messaging!r}")
    if storage not in STORAGE_PROFILES:
        raise StackError(f"storage profile must be one of {STORAGE_PROFILES}. Current input: {storage!r}")


def template_dirs(messaging: str, storage: str, root: Path = MANIFESTS_DIR) -> tuple[Path, ...]:
    """The template directories of one profile pair, base first: render them together."""
    check_profiles(messaging, storage)
    return (root / "base", root / "messaging" / messaging, root / "storage" / storage)


def parameters_for(messaging: str, storage: str) -> tuple[Parameter, ...]:
    """The parameters the templates of this profile pair use (TOOLBOX_IMAGE serves pubsub and gs)."""
    check_profiles(messaging, storage)
    scopes = {"base", messaging, storage}
    used = [p for p in PARAMETERS if p.scope in scopes]
    if storage == "gs" and messaging != "pubsub":
        used += [p for p in PARAMETERS if p.name == "TOOLBOX_IMAGE"]
    return tuple(used)


# What the SQL parameters hold when a deployed stack is validated: only which objects exist is compared.
SQL_NOT_READ = "-- Geocube's SQL is not read to validate a deployed stack"


def sql_params(messaging: str, *, read: bool = True) -> dict[str, str]:
    """Geocube's own SQL, read from the pinned module in the Go module cache (never committed).

    ``read=False``: placeholders, so that validating a deployed stack needs neither Go nor the module proxy.
    """
    if not read:
        names = ["GEOCUBE_CREATE_SQL"] + (["PGQUEUE_CREATE_TABLE_SQL"] if messaging == "pgqueue" else [])
        return dict.fromkeys(names, _block(SQL_NOT_READ))
    module = geocube_module()
    params = {"GEOCUBE_CREATE_SQL": _block(module.read_text(CREATE_SQL))}
    if messaging == "pgqueue":
        params["PGQUEUE_CREATE_TABLE_SQL"] = _block(module.read_text(PGQUEUE_SQL))
    return params


# Component → the manifest parameter naming its image: the one table (the settings' --geocube-images-<component>
# options, the built images' keys and the manifests' parameters all follow it).
IMAGE_PARAMETERS: Mapping[str, str] = {
    "postgis": "POSTGIS_IMAGE",
    "pubsub_emulator": "PUBSUB_EMULATOR_IMAGE",
    "server": "GEOCUBE_SERVER_IMAGE",
    "consolidater": "CONSOLIDATER_IMAGE",
    "autoscaler": "AUTOSCALER_IMAGE",
    "gcs_emulator": "GCS_EMULATOR_IMAGE",
    "toolbox": "TOOLBOX_IMAGE",
}


def image_params(images: Mapping[str, str]) -> dict[str, str]:
    """Component → image becomes the manifests' image parameters (``GEOCUBE_SERVER_IMAGE`` ...)."""
    return {IMAGE_PARAMETERS[component]: ref for component, ref in images.items()}


# Where the guide's local storage lives on the shared volume (the same paths whatever backs the volume).
LOCAL_STORAGE_URIS: Mapping[str, str] = {
    "INGESTION_STORAGE": f"{STORAGE_MOUNT}/ingestion",
    "CANCELLED_JOBS_STORAGE": f"{STORAGE_MOUNT}/cancelled",
}


def storage_params(storage: str, *, local_host_path: str | None = None, bucket: str = "geocube") -> dict[str, str]:
    """Storage URIs and the shared volume for a storage profile."""
    if storage == "local":
        if not local_host_path or not local_host_path.startswith("/"):
            raise StackError(
                "the local storage profile needs one volume shared by the server and every consolidater: pass "
                f"local_host_path (an absolute directory on the node). Current input: {local_host_path!r}"
            )
        return {
            "STORAGE_VOLUME_SOURCE": f"hostPath: {{path: {local_host_path}, type: DirectoryOrCreate}}",
            **LOCAL_STORAGE_URIS,
        }
    return {
        # Nothing is stored on the volume with gs://, but the templates mount one in every profile.
        "STORAGE_VOLUME_SOURCE": "emptyDir: {}",
        "INGESTION_STORAGE": f"gs://{bucket}/ingestion",
        "CANCELLED_JOBS_STORAGE": f"gs://{bucket}/cancelled",
        "GCS_BUCKET": bucket,
    }


def default_params(
    messaging: str,
    storage: str,
    *,
    local_host_path: str | None = None,
    preset: str = "embedded",
    read_sql: bool = True,
) -> dict[str, str]:
    """Derived values of every parameter except the images, for one profile pair (passwords random per call).

    ``read_sql=False`` for a stack that is only validated: Geocube's SQL is not read (see ``sql_params``).
    """
    check_profiles(messaging, storage)
    if preset not in RESOURCE_PRESETS:
        raise StackError(f"preset must be one of {sorted(RESOURCE_PRESETS)}. Current input: {preset!r}")
    params: dict[str, str] = {
        "IMAGE_PULL_POLICY": "IfNotPresent",
        "IMAGE_PULL_SECRETS": "[]",  # public images; the run names its pull Secret (fixtures.pull_secrets)
        "SERVICE_TYPE": "ClusterIP",
        "POSTGRES_USER": "postgres",
        "POSTGRES_PASSWORD": secrets.token_hex(16),
        "DB_USER": "apiserver",
        "DB_PASSWORD": secrets.token_hex(16),
        "DB_HOST": "postgresql",
        "DB_SSLMODE": "disable",
        "DATABASE_VOLUME_SOURCE": "emptyDir: {}",
        # The autoscaler cannot read a Pub/Sub emulator's backlog: one static worker keeps jobs moving.
        "CONSOLIDATER_REPLICAS": "1" if messaging == "pubsub" else "0",
        "CONSOLIDATER_NODE_SELECTOR": "{}",  # anywhere; the scale selection places them on simulated nodes
        "CONSOLIDATER_TOLERATIONS": "[]",
        "AUTOSCALER_UPDATE": "30s",
        "AUTOSCALER_STEP": "16",
        "AUTOSCALER_MAX": "256",
        "PUBSUB_PROJECT": "geocube-acceptance",
        **RESOURCE_PRESETS[preset],
        **sql_params(messaging, read=read_sql),
    }
    if storage == "gs" or local_host_path is not None:
        params.update(storage_params(storage, local_host_path=local_host_path))
    else:  # a user's cluster brings the shared volume (STORAGE_VOLUME_SOURCE); the URIs stay the guide's
        params.update(LOCAL_STORAGE_URIS)
    wanted = {p.name for p in parameters_for(messaging, storage)}
    return {name: value for name, value in params.items() if name in wanted}


def render_params(
    messaging: str,
    storage: str,
    *,
    images: Mapping[str, str],
    local_host_path: str | None = None,
    preset: str = "embedded",
    overrides: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A complete parameter set for one profile pair: exactly the parameters its templates use.

    ``images`` maps image parameters (``GEOCUBE_SERVER_IMAGE`` ...) to references, e.g.
    ``image_params(StackImages.refs())``. Passwords are random per call. ``overrides`` win over everything.
    """
    if storage == "local" and not (local_host_path or "STORAGE_VOLUME_SOURCE" in (overrides or {})):
        storage_params(storage, local_host_path=local_host_path)  # raises with the explanation
    params = {
        **default_params(messaging, storage, local_host_path=local_host_path, preset=preset),
        **images,
        **(overrides or {}),
    }
    wanted = {p.name for p in parameters_for(messaging, storage)}
    missing = sorted(wanted - set(params))
    if missing:
        raise StackError(
            f"no value for parameter(s) {missing} of profiles {messaging}/{storage}; "
            "pass the image references (image_params(StackImages.refs())) or overrides"
        )
    return {name: value for name, value in params.items() if name in wanted}


def _block(text: str) -> str:
    # A block scalar keeps the text; trailing blank lines would only become trailing whitespace.
    return text.rstrip("\n").replace("\r\n", "\n")
