"""Build the stack's Go binaries with ``go install <pkg>@<version>`` into the version-keyed cache.

* Geocube ``cmd/server`` and ``cmd/consolidater`` at :data:`GEOCUBE_VERSION`, with cgo against the host's
  Debian ``libgdal-dev`` (found through pkg-config);
* Geocube ``cmd/autoscaler`` with ``CGO_ENABLED=0`` (pure Go, static);
* ``fake-gcs-server`` at :data:`FAKE_GCS_VERSION` (the GCS emulator for ``gs://`` storage), static.

Binaries land in ``cache_dir()/"geocube"/"v1.0.3"/<toolchain key>/bin`` (and ``.../fake-gcs-server/...``);
the key holds the Go version and, for cgo builds, the GDAL version, so a toolchain upgrade rebuilds.
A failure raises :class:`GoBuildError` with the exact ``go`` output: a real binary is never replaced.

Module proxies that refuse ``@v/list`` for a module break ``go install m/cmd@v`` even though every
needed version is fetchable, because the go command reads the *latest* go.mod of the root module to
print a deprecation notice. When (and only when) that exact failure happens, the build is retried with
a ``file://`` proxy placed first in GOPROXY that lists the pinned version only (built from the
verified files ``go mod download`` put in the module cache); everything else still comes from the
configured proxy and is checked against GOSUMDB. The build record says when that fallback was used.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from geocube_stack.errors import GoBuildError
from geocube_stack.module import (
    GEOCUBE_MODULE,
    GEOCUBE_VERSION,
    DownloadedModule,
    download_module,
    go_executable,
)
from localcluster.buildtools import locked
from localcluster.paths import cache_dir

FAKE_GCS_MODULE = "github.com/fsouza/fake-gcs-server"
# Latest release at the time of writing; its go.mod asks for go >= 1.24, so it builds with Go 1.26.
FAKE_GCS_VERSION = "v1.56.1"
# Same linker flags as upstream's Dockerfiles (strip symbol and DWARF tables).
LDFLAGS = "-s -w"
_DEPRECATION_FAILURE = "loading deprecation for"
# Bump when the build command changes in a way the key does not capture.
_RECIPE = 1


@dataclass(frozen=True)
class GoBinary:
    """One built executable. ``seconds`` is this call's build time (0.0 on a cache hit)."""

    name: str
    path: Path
    module: str
    version: str
    cgo: bool
    seconds: float
    cold_seconds: float  # the build time recorded when the cached binary was made
    note: str = ""


@dataclass(frozen=True)
class StackBinaries:
    """All binaries the stack's images need."""

    server: GoBinary
    consolidater: GoBinary
    autoscaler: GoBinary
    fake_gcs_server: GoBinary

    def all(self) -> tuple[GoBinary, ...]:
        return (self.server, self.consolidater, self.autoscaler, self.fake_gcs_server)


def build_stack_binaries(*, cache: Path | None = None, log_dir: Path | None = None) -> StackBinaries:
    """Build (or reuse) every binary; the cgo pair first since it is by far the slowest.

    ``cache`` replaces ``cache_dir()`` as the root of the binaries (the benchmark's cold builds).
    """
    server, consolidater = build_geocube(("server", "consolidater"), cgo=True, cache=cache, log_dir=log_dir)
    (autoscaler,) = build_geocube(("autoscaler",), cgo=False, cache=cache, log_dir=log_dir)
    return StackBinaries(server, consolidater, autoscaler, build_fake_gcs_server(cache=cache, log_dir=log_dir))


def build_geocube(
    commands: Sequence[str], *, cgo: bool, cache: Path | None = None, log_dir: Path | None = None
) -> tuple[GoBinary, ...]:
    """``go install github.com/airbusgeo/geocube/cmd/<c>@v1.0.3`` for each of ``commands`` in one go run."""
    module = download_module(GEOCUBE_MODULE, GEOCUBE_VERSION)
    root = (cache or cache_dir()) / "geocube" / GEOCUBE_VERSION
    return _install(module, [f"{GEOCUBE_MODULE}/cmd/{c}" for c in commands], root, cgo=cgo, log_dir=log_dir)


def build_fake_gcs_server(*, cache: Path | None = None, log_dir: Path | None = None) -> GoBinary:
    """``go install github.com/fsouza/fake-gcs-server@v1.56.1`` (static)."""
    module = download_module(FAKE_GCS_MODULE, FAKE_GCS_VERSION)
    root = (cache or cache_dir()) / "fake-gcs-server" / FAKE_GCS_VERSION
    (binary,) = _install(module, [FAKE_GCS_MODULE], root, cgo=False, log_dir=log_dir)
    return binary


def toolchain_key(cgo: bool) -> str:
    """``go1.26.8-cgo-gdal3.6.2`` or ``go1.26.8-static``: what, besides the module version, shapes a binary."""
    go_version = _go_env("GOVERSION")
    if not cgo:
        return f"{go_version}-static-r{_RECIPE}"
    return f"{go_version}-cgo-gdal{gdal_version()}-r{_RECIPE}"


def gdal_version() -> str:
    """The GDAL version pkg-config reports (what cgo links against)."""
    result = subprocess.run(["pkg-config", "--modversion", "gdal"], capture_output=True, text=True, check=False)
    if result.returncode != 0 or not result.stdout.strip():
        raise GoBuildError(
            "cgo builds of the Geocube server and consolidater need GDAL >= 3.0 development files, but "
            f"`pkg-config --modversion gdal` failed: {result.stderr.strip() or 'no output'}.\n"
            "Fix: apt-get install libgdal-dev pkg-config"
        )
    return result.stdout.strip()


def _install(
    module: DownloadedModule, packages: Sequence[str], root: Path, *, cgo: bool, log_dir: Path | None
) -> tuple[GoBinary, ...]:
    bin_dir = root / toolchain_key(cgo) / "bin"
    names = [p.rsplit("/", 1)[-1] for p in packages]
    record_path = bin_dir.parent / f"build-{'-'.join(names)}.json"
    cached = _load_record(record_path, bin_dir, names)
    if cached is not None:
        return _binaries(module, names, bin_dir, cgo, 0.0, cached)
    bin_dir.mkdir(parents=True, exist_ok=True)
    with locked(record_path):
        cached = _load_record(record_path, bin_dir, names)
        if cached is not None:
            return _binaries(module, names, bin_dir, cgo, 0.0, cached)
        log = (log_dir or bin_dir.parent) / f"go-install-{'-'.join(names)}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        args = [f"{p}@{module.version}" for p in packages]
        env = _build_env(bin_dir, cgo)
        started = time.monotonic()
        result = _run_go(["install", f"-ldflags={LDFLAGS}", *args], env, log)
        note = ""
        if result.returncode != 0 and _DEPRECATION_FAILURE in result.output:
            note = (
                f"{module.path}: the module proxy refused to list versions, so the deprecation check "
                f"read {module.version}'s own go.mod (served from a local file:// proxy)"
            )
            env["GOPROXY"] = f"file://{_list_overlay(module, root)},{env.get('GOPROXY') or _go_env('GOPROXY')}"
            result = _run_go(["install", f"-ldflags={LDFLAGS}", *args], env, log, append=True)
        seconds = time.monotonic() - started
        if result.returncode != 0:
            tail = "\n  ".join(result.output.strip().splitlines()[-40:])
            raise GoBuildError(
                f"`go install -ldflags='{LDFLAGS}' {' '.join(args)}` failed (exit {result.returncode}) after "
                f"{seconds:.0f} s with CGO_ENABLED={int(cgo)}.\nlast lines of {log}:\n  {tail}\n"
                + (
                    "Hint: cgo needs libgdal-dev, pkg-config and a C compiler (apt-get install libgdal-dev "
                    "build-essential)."
                    if cgo
                    else "Hint: check that the Go module proxy is reachable."
                )
            )
        missing = [n for n in names if not (bin_dir / n).is_file()]
        if missing:
            raise GoBuildError(f"go install succeeded but {missing} are not in GOBIN={bin_dir}; see {log}")
        record = {
            "seconds": round(seconds, 1),
            "note": note,
            "args": args,
            "cgo": cgo,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        tmp = record_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1))
        os.replace(tmp, record_path)
        return _binaries(module, names, bin_dir, cgo, seconds, record)


@dataclass(frozen=True)
class _GoResult:
    returncode: int
    output: str


def _run_go(args: Sequence[str], env: Mapping[str, str], log: Path, append: bool = False) -> _GoResult:
    cmd = [go_executable(), *args]
    with open(log, "ab" if append else "wb") as out:
        out.write(f"$ {' '.join(cmd)}\n".encode())
        out.flush()
        start = out.tell()
        # cwd=/ : outside any module, so a go.mod nearby cannot change what is built.
        result = subprocess.run(
            cmd, cwd="/", env=dict(env), stdout=out, stderr=subprocess.STDOUT, timeout=7200, check=False
        )
    with open(log, "rb") as written:
        written.seek(start)
        return _GoResult(result.returncode, written.read().decode(errors="replace"))


def _build_env(bin_dir: Path, cgo: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "GOBIN": str(bin_dir),
            "CGO_ENABLED": "1" if cgo else "0",
            "GO111MODULE": "on",
            # Never let go.mod's toolchain line download another Go: the host's toolchain is part of the key.
            "GOTOOLCHAIN": "local",
            "GOFLAGS": "-buildvcs=false",
        }
    )
    return env


def _list_overlay(module: DownloadedModule, root: Path) -> Path:
    """A file:// GOPROXY tree whose ``@v/list`` names only the pinned version of ``module``."""
    proxy = root / "goproxy"
    version_dir = proxy / module.path.lower() / "@v"
    version_dir.mkdir(parents=True, exist_ok=True)
    for source, suffix in ((module.info, ".info"), (module.go_mod, ".mod"), (module.zip, ".zip")):
        target = version_dir / f"{module.version}{suffix}"
        if not target.exists():
            shutil.copyfile(source, target)
    (version_dir / "list").write_text(module.version + "\n")
    return proxy


def _go_env(name: str) -> str:
    result = subprocess.run([go_executable(), "env", name], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise GoBuildError(f"`go env {name}` failed: {result.stderr.strip()}")
    return result.stdout.strip()


def _load_record(record_path: Path, bin_dir: Path, names: Sequence[str]) -> dict[str, object] | None:
    try:
        record: dict[str, object] = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return None
    if all((bin_dir / n).is_file() for n in names):
        return record
    return None


def _binaries(
    module: DownloadedModule,
    names: Sequence[str],
    bin_dir: Path,
    cgo: bool,
    seconds: float,
    record: Mapping[str, object],
) -> tuple[GoBinary, ...]:
    cold = record.get("seconds")
    return tuple(
        GoBinary(
            n,
            bin_dir / n,
            module.path,
            module.version,
            cgo,
            seconds,
            float(cold) if isinstance(cold, int | float) else 0.0,
            str(record.get("note") or ""),
        )
        for n in names
    )


def main() -> int:
    """``python -m geocube_stack.gobuild``: build everything and print the times."""
    binaries = build_stack_binaries()
    for b in binaries.all():
        state = f"built in {b.seconds:.0f} s" if b.seconds else f"cached (cold build took {b.cold_seconds:.0f} s)"
        note = f"  [{b.note}]" if b.note else ""
        print(f"{b.name:<16} {b.module}@{b.version} cgo={b.cgo} {state}: {b.path}{note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
