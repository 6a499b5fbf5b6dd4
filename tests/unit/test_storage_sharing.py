"""STO-SHARED's judgement of two pod specs: is a path on one durable volume in both (no cluster needed)."""

from __future__ import annotations

from typing import Any

import pytest

from suites.storage.sharing import locate, sharing_problem

HOST = {"hostPath": {"path": "/srv/geocube", "type": "DirectoryOrCreate"}}
CLAIM = {"persistentVolumeClaim": {"claimName": "geocube-shared"}}


def pod(source: dict[str, Any], mount: str = "/geocube-storage", sub_path: str | None = None) -> tuple[Any, Any]:
    volume_mount = {"name": "storage", "mountPath": mount, **({"subPath": sub_path} if sub_path else {})}
    spec = {"volumes": [{"name": "storage", **source}, {"name": "tmp", "emptyDir": {}}]}
    container = {"volumeMounts": [volume_mount, {"name": "tmp", "mountPath": "/tmp"}]}
    return spec, container


def test_the_deepest_mount_holds_the_path_relative_to_its_volume() -> None:
    spec, container = pod(HOST, "/data", sub_path="geocube")
    location = locate(spec, container, "/data/ingestion")
    assert location is not None
    assert (location.volume, location.source_kind, location.inside) == ("storage", "hostPath", "/geocube/ingestion")
    assert locate(spec, container, "/var/ingestion") is None


@pytest.mark.parametrize(
    ("server", "worker", "problem"),
    [
        pytest.param(pod(HOST), pod(HOST), None, id="same-hostpath"),
        pytest.param(pod(CLAIM), pod(CLAIM, "/mnt/shared"), "the consolidaters' own filesystem", id="other-place"),
        pytest.param(pod(CLAIM, "/geocube-storage"), pod(CLAIM), None, id="same-claim"),
        pytest.param(pod(HOST), pod({"emptyDir": {}}), "emptyDir", id="worker-emptydir"),
        pytest.param(pod({"emptyDir": {}}), pod({"emptyDir": {}}), "not shared", id="both-emptydir"),
        pytest.param(pod(HOST), pod(CLAIM), "is not shared", id="different-sources"),
    ],
)
def test_sharing(server: tuple[Any, Any], worker: tuple[Any, Any], problem: str | None) -> None:
    found = sharing_problem("ingestion storage", "/geocube-storage/ingestion", server, worker)
    assert (found is None) if problem is None else (found is not None and problem in found), found


def test_a_path_outside_any_volume_and_gs_uris() -> None:
    found = sharing_problem("cancelled-jobs storage", "/var/cancelled", pod(HOST), pod(HOST))
    assert found is not None and "on the API server's own filesystem" in found
    assert sharing_problem("ingestion storage", "gs://bucket/ingestion", pod(HOST), pod({"emptyDir": {}})) is None
