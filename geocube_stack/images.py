"""Recipes of the reference stack's images, built with the embedded cluster's image builder.

Every image starts from one shared Debian base layer (:data:`BASE`); images that need the same
Debian packages share one packages layer too (the Geocube server and consolidater use the same
runtime set, so GDAL's ~200 MB are built and stored once). Tags carry the versions of what is
inside plus a recipe revision (``-rN``) bumped when a recipe changes.

================  ==========================================================================
image             content
================  ==========================================================================
postgis           postgresql-15 + postgresql-15-postgis-3, our official-postgres-like entrypoint
pubsub-emulator   Debian JRE + Google's emulator from this machine's google-cloud-cli, 0.0.0.0:8085
geocube-server    ``/server`` (cgo, GDAL) + libgdal, proj-data, ca-certificates
geocube-consolidater  ``/consolidater`` + the same runtime, plus ``sh`` and ``uuidgen``
geocube-autoscaler    ``/autoscaler`` (static)
fake-gcs-server   ``/usr/local/bin/fake-gcs-server`` (static), the GCS emulator
geocube-toolbox   curl, for the init Jobs
================  ==========================================================================
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from geocube_stack.errors import StackError
from geocube_stack.gobuild import FAKE_GCS_VERSION, GoBinary, StackBinaries, build_stack_binaries
from geocube_stack.module import GEOCUBE_VERSION
from localcluster.image_spec import BuiltImage, DebianBase, ImageSpec
from localcluster.images import build_image

Progress = Callable[[str], None]

# The same DebianBase value as the rest of the project's images: one base layer on disk and in containerd.
BASE = DebianBase(suite="bookworm", variant="essential")
# openjdk-17-jre-headless's postinst registers its man page with update-alternatives, which fails when
# the slim base left /usr/share/man/man1 out ("error creating symbolic link
# '/usr/share/man/man1/java.1.gz.dpkg-tmp'"). Until the image builder creates that directory in slim
# roots, the emulator image alone uses a non-slim base (a second base layer).
JRE_BASE = DebianBase(suite=BASE.suite, variant=BASE.variant, slim=False)
REVISION = "r1"
FILES = Path(__file__).resolve().parent / "files"
PUBSUB_EMULATOR_HOME = Path("/usr/lib/google-cloud-sdk/platform/pubsub-emulator")
GEOCUBE_RUNTIME_PACKAGES = ("libgdal32", "proj-data", "ca-certificates", "uuid-runtime")
POSTGRES_MAJOR = "15"
POSTGIS_MAJOR = "3"
_SOURCE_LABEL = "org.opencontainers.image.source"
_VERSION_LABEL = "org.opencontainers.image.version"


@dataclass(frozen=True)
class StackImage:
    """One built image; ``seconds`` is this call's build time (near 0 on a cache hit)."""

    key: str  # the parameter-facing short name, e.g. "server"
    image: BuiltImage
    seconds: float

    @property
    def ref(self) -> str:
        return self.image.ref


@dataclass(frozen=True)
class StackImages:
    """All images of the stack, by short name, plus the Go build times that fed them."""

    images: dict[str, StackImage]
    binaries: StackBinaries | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def ref(self, key: str) -> str:
        return self.images[key].ref

    def refs(self) -> dict[str, str]:
        """Component → reference (``params.image_params`` makes the manifests' parameters of it)."""
        return {key: image.ref for key, image in self.images.items()}


def pubsub_emulator_version(home: Path = PUBSUB_EMULATOR_HOME) -> str:
    """The emulator's version, read from its jar's name (``cloud-pubsub-emulator-0.8.20-all.jar``)."""
    jars = sorted((home / "lib").glob("cloud-pubsub-emulator-*-all.jar"))
    match = re.fullmatch(r"cloud-pubsub-emulator-(.+)-all\.jar", jars[-1].name) if jars else None
    if match is None:
        raise StackError(
            f"the Pub/Sub emulator is not installed at {home} (expected lib/cloud-pubsub-emulator-<v>-all.jar). "
            "Fix: apt-get install google-cloud-cli-pubsub-emulator"
        )
    return match.group(1)


def postgis_spec() -> ImageSpec:
    """PostGIS on Debian's PostgreSQL, with an entrypoint that behaves like the official postgres image's."""
    bin_dir = f"/usr/lib/postgresql/{POSTGRES_MAJOR}/bin"
    return ImageSpec(
        name="postgis",
        tag=f"{POSTGRES_MAJOR}-{POSTGIS_MAJOR}-{REVISION}",
        base=BASE,
        packages=(f"postgresql-{POSTGRES_MAJOR}", f"postgresql-{POSTGRES_MAJOR}-postgis-{POSTGIS_MAJOR}"),
        files={
            "/usr/local/bin/docker-entrypoint.sh": FILES / "postgres-entrypoint.sh",
            # Present (and empty) like in the official image, so a ConfigMap can be mounted over it.
            "/docker-entrypoint-initdb.d/.keep": b"",
        },
        entrypoint=("/usr/local/bin/docker-entrypoint.sh",),
        cmd=("postgres",),
        env={
            "PATH": f"{bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "PGDATA": "/var/lib/postgresql/data",
            "LANG": "C.UTF-8",
        },
        exposed_ports=("5432/tcp",),
        labels={_VERSION_LABEL: f"postgresql-{POSTGRES_MAJOR}+postgis-{POSTGIS_MAJOR}", _SOURCE_LABEL: "geocube_stack"},
    )


def pubsub_emulator_spec(home: Path = PUBSUB_EMULATOR_HOME) -> ImageSpec:
    """Google's Pub/Sub emulator (from this machine's google-cloud-cli) on a Debian JRE, serving 0.0.0.0:8085."""
    version = pubsub_emulator_version(home)
    return ImageSpec(
        name="pubsub-emulator",
        tag=f"{version}-{REVISION}",
        base=JRE_BASE,
        packages=("openjdk-17-jre-headless",),
        files={"/opt/pubsub-emulator": home, "/usr/local/bin/pubsub-emulator": FILES / "pubsub-emulator-entrypoint.sh"},
        # The raw emulator takes --host/--port; the wrapper also accepts the guide's --host-port.
        entrypoint=("/usr/local/bin/pubsub-emulator",),
        cmd=("--host-port=0.0.0.0:8085",),
        exposed_ports=("8085/tcp",),
        labels={_VERSION_LABEL: version, _SOURCE_LABEL: "google-cloud-cli-pubsub-emulator"},
    )


def geocube_specs(binaries: StackBinaries) -> dict[str, ImageSpec]:
    """server, consolidater and autoscaler images, binaries at ``/`` like upstream's Dockerfiles."""
    return {
        "server": _geocube_spec("server", binaries.server, ports=("8080/tcp",)),
        # No entrypoint, like upstream: the install guide runs it through a `/bin/sh -c` wrapper.
        "consolidater": _geocube_spec("consolidater", binaries.consolidater, ports=("9000/tcp",), entrypoint=False),
        "autoscaler": _geocube_spec("autoscaler", binaries.autoscaler, packages=()),
    }


def _geocube_spec(
    component: str,
    binary: GoBinary,
    *,
    packages: tuple[str, ...] = GEOCUBE_RUNTIME_PACKAGES,
    ports: tuple[str, ...] = (),
    entrypoint: bool = True,
) -> ImageSpec:
    """``binary`` at ``/<component>``, run as the entrypoint or (``entrypoint=False``) as the default command."""
    path = f"/{component}"
    return ImageSpec(
        name=f"geocube-{component}",
        tag=f"{GEOCUBE_VERSION}-{REVISION}",
        base=BASE,
        packages=packages,
        files={path: binary.path},
        entrypoint=(path,) if entrypoint else (),
        cmd=() if entrypoint else (path,),
        exposed_ports=ports,
        labels={_VERSION_LABEL: GEOCUBE_VERSION, _SOURCE_LABEL: "github.com/airbusgeo/geocube"},
    )


def gcs_emulator_spec(binaries: StackBinaries) -> ImageSpec:
    """fake-gcs-server (static) on the shared base."""
    return ImageSpec(
        name="fake-gcs-server",
        tag=f"{FAKE_GCS_VERSION}-{REVISION}",
        base=BASE,
        files={"/usr/local/bin/fake-gcs-server": binaries.fake_gcs_server.path},
        entrypoint=("/usr/local/bin/fake-gcs-server",),
        exposed_ports=("4443/tcp",),
        labels={_VERSION_LABEL: FAKE_GCS_VERSION, _SOURCE_LABEL: "github.com/fsouza/fake-gcs-server"},
    )


def toolbox_spec() -> ImageSpec:
    """curl on the shared base, for the stack's init Jobs (Pub/Sub topics, GCS bucket)."""
    return ImageSpec(
        name="geocube-toolbox",
        tag=f"{BASE.suite}-{REVISION}",
        base=BASE,
        packages=("curl",),
        cmd=("/bin/sh",),
        labels={_SOURCE_LABEL: "geocube_stack"},
    )


def stack_specs(binaries: StackBinaries) -> dict[str, ImageSpec]:
    """Every image of the stack by component (the keys of :data:`geocube_stack.params.IMAGE_PARAMETERS`)."""
    return {
        "postgis": postgis_spec(),
        "pubsub_emulator": pubsub_emulator_spec(),
        **geocube_specs(binaries),
        "gcs_emulator": gcs_emulator_spec(binaries),
        "toolbox": toolbox_spec(),
    }


def stack_image_refs() -> dict[str, str]:
    """Component → the reference pods pull it by (the embedded registry's), known without building anything."""
    from localcluster.registry import registry_ref

    unbuilt = GoBinary("unbuilt", Path("/unbuilt"), "", "", cgo=False, seconds=0.0, cold_seconds=0.0)
    specs = stack_specs(StackBinaries(unbuilt, unbuilt, unbuilt, unbuilt))
    return {key: registry_ref(spec.ref) for key, spec in specs.items()}


def build_stack_images(
    keys: Iterable[str] | None = None,
    progress: Progress | None = None,
    *,
    cache: Path | None = None,
    binaries: StackBinaries | None = None,
) -> StackImages:
    """Build (or reuse) the Go binaries, then the images; returns refs, archives and timings.

    ``cache`` replaces ``cache_dir()`` for the image layers and archives (not the Go binaries unless
    ``binaries`` is None, in which case they are built there too).
    """
    say = progress or (lambda message: None)
    timings: dict[str, float] = {}
    started = time.monotonic()
    if binaries is None:
        say("building or reusing the Go binaries (a cold cgo build of the Geocube server takes minutes)")
        binaries = build_stack_binaries(cache=cache)
    timings["go"] = time.monotonic() - started
    specs = stack_specs(binaries)
    wanted = list(keys) if keys is not None else list(specs)
    unknown = sorted(set(wanted) - set(specs))
    if unknown:
        raise StackError(f"unknown image key(s) {unknown}; known: {sorted(specs)}")
    built: dict[str, StackImage] = {}
    for key in wanted:
        say(f"building or reusing image {specs[key].ref}")
        t0 = time.monotonic()
        image = build_image(specs[key], cache=cache)
        built[key] = StackImage(key, image, time.monotonic() - t0)
        timings[f"image:{key}"] = built[key].seconds
    return StackImages(built, binaries, timings)


def push_stack_images(images: StackImages, progress: Progress | None = None) -> dict[str, str]:
    """Push every image the registry does not serve yet (only the blobs it lacks); component → the ref pods pull.

    A tag that already names the archive's manifest is left alone: one manifest request (~10 ms) instead of a
    skopeo run (~0.3 s), since the builder's archives are reproducible.
    """
    from localcluster.registry import push, registry_ref, served_digest

    say = progress or (lambda message: None)
    pushed: dict[str, str] = {}
    for key, image in images.images.items():
        pushed[key] = registry_ref(image.ref)
        if served_digest(pushed[key]) != image.image.manifest_digest:
            say(f"pushing {pushed[key]}")
            push(image.image.archive, pushed[key])
    return pushed
