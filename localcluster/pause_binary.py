"""Our own pause binary: the static Go program in ``localcluster/pause`` that every pod sandbox runs.

Built with the local Go toolchain (no cgo, no VCS stamp, stripped) into the cache, keyed by the Go
version, flags and sources, so the pause image's digest changes only when one of them does.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from localcluster.buildtools import GO_MISSING, go_executable, locked
from localcluster.image_spec import ImageBuildError
from localcluster.reproducible import FORMAT, file_sha256, hash_json

PAUSE_SOURCE = Path(__file__).resolve().parent / "pause"


def build_pause_binary(root: Path) -> Path:
    """The cached static ``pause`` binary below ``root``, built first if missing."""
    go = go_executable()
    if go is None:
        raise ImageBuildError(f"building the pause image needs Go: {GO_MISSING}")
    env = {
        **os.environ,
        "CGO_ENABLED": "0",
        "GOTOOLCHAIN": "local",
        # No VCS stamp: it would change the binary (and the image digest) on every commit.
        "GOFLAGS": "-buildvcs=false",
    }
    if "GOCACHE" not in env and "HOME" not in env:
        env["GOCACHE"] = str(root / "go-build")
    version = subprocess.run([go, "env", "GOVERSION", "GOARCH"], capture_output=True, text=True, env=env, check=False)
    if version.returncode != 0:
        raise ImageBuildError(f"`{go} env GOVERSION GOARCH` failed: {version.stderr.strip()}")
    sources = sorted(
        p
        for p in PAUSE_SOURCE.iterdir()
        if p.name == "go.mod" or (p.suffix == ".go" and not p.name.endswith("_test.go"))
    )
    flags = ["-trimpath", "-ldflags=-s -w"]
    key = hash_json(
        {
            "format": FORMAT,
            "go": version.stdout.split(),
            "flags": flags,
            "sources": {p.name: file_sha256(p) for p in sources},
        }
    )
    out = root / "pause" / key[:16] / "pause"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with locked(out):
        if out.exists():
            return out
        tmp = out.with_name("pause.tmp")
        cmd = [go, "build", *flags, "-o", str(tmp), "."]
        result = subprocess.run(
            cmd, cwd=PAUSE_SOURCE, capture_output=True, text=True, env=env, timeout=600, check=False
        )
        if result.returncode != 0:
            raise ImageBuildError(
                f"building the pause binary failed ({result.returncode}): {subprocess.list2cmdline(cmd)} "
                f"in {PAUSE_SOURCE}\n{result.stdout}{result.stderr}"
            )
        os.replace(tmp, out)
    return out
