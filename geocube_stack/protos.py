"""Python gRPC stubs of Geocube's API, generated with grpcio-tools at set-up time into the cache.

The protos live in the Geocube module (``api/v1/pb/*.proto``, include root ``api/v1``) and import
each other as ``pb/<name>.proto``, so the generated modules form a top-level package ``pb``
(``from pb import records_pb2``). :func:`ensure_stubs` generates them once per proto content into
``cache_dir()/"geocube"/<version>/python-stubs/<hash>`` and puts that directory on ``sys.path``; a
user's own checkout can be used instead (``protos_dir``: the directory holding ``pb/``, or ``pb/``
itself). ``google/api/annotations.proto`` comes from googleapis-common-protos, which also provides
its Python module at run time.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from geocube_stack.errors import StackError
from geocube_stack.module import GEOCUBE_VERSION, PROTO_ROOT, geocube_module
from localcluster.paths import cache_dir

PACKAGE = "pb"
_RECIPE = "1"


@dataclass(frozen=True)
class Stubs:
    """Generated stubs: ``path`` is on ``sys.path``; :meth:`module` imports ``pb.<name>``."""

    path: Path
    proto_root: Path
    generated: bool  # False on a cache hit

    def module(self, name: str) -> ModuleType:
        """``stubs.module("geocube_pb2_grpc")`` → the imported ``pb.geocube_pb2_grpc``."""
        return importlib.import_module(f"{PACKAGE}.{name}")


def resolve_proto_root(protos_dir: Path | None) -> Path:
    """The include root holding ``pb/*.proto``: the user's directory, or the module's ``api/v1``."""
    if protos_dir is None:
        root = geocube_module().dir / PROTO_ROOT
    else:
        given = protos_dir.expanduser().resolve()
        root = given.parent if given.name == PACKAGE and not (given / PACKAGE).is_dir() else given
    if not sorted((root / PACKAGE).glob("*.proto")):
        raise StackError(
            f"no {PACKAGE}/*.proto under {root}. Expected Geocube's api/v1 directory (holding pb/geocube.proto); "
            "with --geocube-protos, pass <checkout>/api/v1 or <checkout>/api/v1/pb."
        )
    return root


def ensure_stubs(protos_dir: Path | None = None, *, out_root: Path | None = None) -> Stubs:
    """Generate (or reuse) the stubs and make ``pb`` importable; safe to call repeatedly."""
    root = resolve_proto_root(protos_dir)
    protos = sorted((root / PACKAGE).glob("*.proto"))
    digest = hashlib.sha256(_RECIPE.encode())
    for proto in protos:
        digest.update(proto.name.encode() + b"\0" + proto.read_bytes())
    base = out_root or cache_dir() / "geocube" / GEOCUBE_VERSION / "python-stubs"
    target = base / digest.hexdigest()[:16]
    generated = False
    if not (target / PACKAGE / "geocube_pb2_grpc.py").is_file():
        _generate(root, protos, target)
        generated = True
    _activate(target)
    return Stubs(target, root, generated)


def _generate(root: Path, protos: list[Path], target: Path) -> None:
    try:
        from grpc_tools import protoc
    except ImportError as exc:
        raise StackError("generating Geocube's stubs needs grpcio-tools: pip install grpcio-tools") from exc
    include = Path(protoc.__file__).resolve().parent / "_proto"  # google/protobuf/*.proto
    googleapis = _googleapis_include()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        args = [
            "grpc_tools.protoc",
            f"-I{root}",
            f"-I{googleapis}",
            f"-I{include}",
            f"--python_out={staging}",
            f"--pyi_out={staging}",
            f"--grpc_python_out={staging}",
            *[f"{PACKAGE}/{p.name}" for p in protos],
        ]
        code = protoc.main(args)
        if code != 0:
            raise StackError(f"grpc_tools.protoc failed (exit {code}) on {root}/{PACKAGE}; command: {' '.join(args)}")
        (staging / PACKAGE / "__init__.py").write_text("")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _googleapis_include() -> Path:
    """The site-packages directory whose ``google/api/annotations.proto`` googleapis-common-protos installed."""
    for entry in sys.path:
        if entry and (Path(entry) / "google" / "api" / "annotations.proto").is_file():
            return Path(entry)
    raise StackError("google/api/annotations.proto was not found on sys.path: pip install googleapis-common-protos")


def _activate(target: Path) -> None:
    loaded = sys.modules.get(PACKAGE)
    if loaded is not None and Path(getattr(loaded, "__file__", "") or "").parent.parent != target:
        raise StackError(
            f"a different module named {PACKAGE!r} is already imported ({getattr(loaded, '__file__', '?')}); "
            f"Geocube's stubs in {target} cannot be imported next to it"
        )
    if str(target) not in sys.path:
        sys.path.insert(0, str(target))
