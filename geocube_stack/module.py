"""Where the pinned Geocube module lives in the Go module cache, and what the stack reads from it.

Nothing from the module (Go code, SQL, protos) is committed to this repository: it is read at run
time from the directory ``go mod download -json`` reports.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from geocube_stack.errors import ModuleError
from localcluster import buildtools

GEOCUBE_MODULE = "github.com/airbusgeo/geocube"
GEOCUBE_VERSION = "v1.0.3"

# Files of the module the deployment needs (paths relative to the module root).
CREATE_SQL = "interface/database/pg/create.sql"
PGQUEUE_SQL = "interface/messaging/pgqueue/create_table.sql"
PROTO_ROOT = "api/v1"
PROTO_DIR = "api/v1/pb"


@dataclass(frozen=True)
class DownloadedModule:
    """One module version in the Go module cache, as ``go mod download -json`` describes it."""

    path: str
    version: str
    dir: Path
    info: Path
    go_mod: Path
    zip: Path

    def file(self, relative: str) -> Path:
        """A file of the module; raises if the module at this version has no such file."""
        found = self.dir / relative
        if not found.is_file():
            raise ModuleError(
                f"{self.path}@{self.version} has no file {relative} (looked at {found}). "
                "Hint: the stack is written for this version; a different version may have moved it."
            )
        return found

    def read_text(self, relative: str) -> str:
        return self.file(relative).read_text(encoding="utf-8")


def go_executable() -> str:
    """The ``go`` command (localcluster.buildtools finds it, for every build of the project)."""
    go = buildtools.go_executable()
    if go is None:
        raise ModuleError(buildtools.GO_MISSING)
    return go


@functools.cache
def download_module(path: str = GEOCUBE_MODULE, version: str = GEOCUBE_VERSION) -> DownloadedModule:
    """Download ``path@version`` into the Go module cache (a no-op when present) and describe it.

    Without Go (the in-cluster runner image, a validation-only machine), a module already extracted under
    ``$GOMODCACHE`` (Go's own layout) is used as it is.
    """
    try:
        go = go_executable()
    except ModuleError:
        extracted = _extracted_module(path, version)
        if extracted is None:
            raise
        return extracted
    cmd = [go, "mod", "download", "-json", f"{path}@{version}"]
    # Outside any module: a go.mod in the working directory must not change what is resolved.
    result = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd="/",
        timeout=600,
        check=False,
        env={**os.environ, "GO111MODULE": "on", "GOFLAGS": ""},
    )
    try:
        doc = json.loads(result.stdout)
    except ValueError:
        doc = {}
    if result.returncode != 0 or doc.get("Error") or not doc.get("Dir"):
        raise ModuleError(
            f"`{' '.join(cmd)}` failed (exit {result.returncode}): {doc.get('Error') or result.stderr.strip()}\n"
            "Hint: check that the Go module proxy (GOPROXY) is reachable."
        )
    return DownloadedModule(path, version, Path(doc["Dir"]), Path(doc["Info"]), Path(doc["GoMod"]), Path(doc["Zip"]))


def _extracted_module(path: str, version: str) -> DownloadedModule | None:
    """``$GOMODCACHE/<path>@<version>`` when it exists (module paths here have no upper case to escape)."""
    cache = os.environ.get("GOMODCACHE", "")
    if not cache or path != path.lower():
        return None
    root = Path(cache)
    found = root / f"{path}@{version}"
    if not found.is_dir():
        return None
    download = root / "cache" / "download" / path / "@v"
    return DownloadedModule(
        path, version, found, download / f"{version}.info", download / f"{version}.mod", download / f"{version}.zip"
    )


def geocube_module() -> DownloadedModule:
    """The pinned Geocube module (``github.com/airbusgeo/geocube@v1.0.3``)."""
    return download_module(GEOCUBE_MODULE, GEOCUBE_VERSION)
