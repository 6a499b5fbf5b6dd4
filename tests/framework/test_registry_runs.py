"""Images pulled from the embedded registry: the pull Secret on every pod, the guide's pull policy, bad input.

Runs of ``suites/platform -k images`` (PLAT-IMAGES alone) on the embedded cluster, read back from their
``run.json``; and runs whose pull-secret input is wrong, which must end before any namespace exists.

    sudo .venv/bin/pytest tests/framework/test_registry_runs.py
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.labels import RUN_ID_LABEL
from tests.suite_runs import REPO, embedded_kube, outcomes, run_suites

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def kube() -> Iterator[Any]:
    with embedded_kube() as client:
        yield client


def _images_evidence(record: dict[str, Any]) -> list[dict[str, Any]]:
    check = outcomes(record)["PLAT-IMAGES"]
    assert check["status"] == "passed", check.get("message")
    return list(check["evidence"]["images"])


def test_every_pod_names_the_runs_pull_secret_and_workers_are_pulled_always(tmp_path: Path) -> None:
    """The embedded default: every image comes from its registry, with the run's Secret; the guide's Always."""
    from localcluster.registry import REGISTRY_HOST

    rows = _images_evidence(run_suites(["suites/platform", "-k", "images"], [], tmp_path, "registry-default"))
    assert rows and all(row["image"].startswith(f"{REGISTRY_HOST}/") for row in rows), rows
    assert all(row["imagePullSecrets"] == ["geocube-registry"] for row in rows), rows
    policies = {row["image"].rsplit("/", 1)[1].split(":")[0]: row["pull policy"] for row in rows}
    assert policies["geocube-consolidater"] == ["Always"] and policies["geocube-autoscaler"] == ["Always"], policies
    for row in rows:  # what the pods run is what the registry serves for the tag
        running = row["pods run"]
        assert row["pullable, proved by"] == "registry", row
        assert running == "no pod running" or set(running.values()) == {row["registry digest"]}, row


def test_the_registry_refuses_a_request_without_credentials() -> None:
    from localcluster.layout import default_layout
    from localcluster.registry import REGISTRY_HOST, probe

    up, detail = probe(REGISTRY_HOST, default_layout().pki / "ca.crt")
    assert up, detail  # up means: it answered 401 to an anonymous /v2/
    assert "401" in detail and "Basic" in detail, detail


@pytest.fixture
def copied_secret(kube: Any) -> Iterator[str]:
    """A pull Secret with the embedded registry's credentials in namespace default, deleted afterwards."""
    from fixtures.pull_secrets import pull_secret_manifest
    from fixtures.registry_access import embedded_auths

    name = f"fw-pull-{secrets.token_hex(3)}"
    kube.core.create_namespaced_secret("default", pull_secret_manifest(name, embedded_auths()), _request_timeout=15)
    try:
        yield name
    finally:
        kube.core.delete_namespaced_secret(name, "default", _request_timeout=15)


def test_an_existing_pull_secret_is_copied_into_the_disposable_namespace(tmp_path: Path, copied_secret: str) -> None:
    record = run_suites(
        ["suites/platform", "-k", "images"],
        ["--image-pull-secret", f"default/{copied_secret}"],
        tmp_path,
        "registry-copied",
    )
    rows = _images_evidence(record)
    assert all(row["imagePullSecrets"] == [copied_secret] for row in rows), rows
    assert copied_secret in str(record["inventory"].get("imagePullSecrets")), record["inventory"]


def _failed_run(tmp_path: Path, run_id: str, *options: str) -> str:
    """The output of a platform run expected to end on bad input; asserts it failed."""
    command = [
        sys.executable, "-m", "pytest", "suites/platform", "-p", "no:cacheprovider", "-q",
        "--geocube-report-dir", str(tmp_path / "reports"), "--geocube-run-id", run_id, *options,
    ]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode != 0, result.stdout[-3000:]
    return result.stdout + result.stderr


def test_a_pull_secret_that_does_not_exist_ends_the_run_before_any_namespace(kube: Any, tmp_path: Path) -> None:
    run_id = f"fw-nosecret-{secrets.token_hex(3)}"
    output = _failed_run(tmp_path, run_id, "--image-pull-secret", "default/no-such-pull-secret")
    assert "Secret no-such-pull-secret does not exist in namespace default" in output, output[-3000:]
    assert "kubectl -n default create secret docker-registry" in output, output[-3000:]
    listed = kube.core.list_namespace(label_selector=f"{RUN_ID_LABEL}={run_id}", _request_timeout=15).items
    assert listed == [], [ns.metadata.name for ns in listed]


def test_a_registry_config_without_credentials_ends_the_run_before_anything(kube: Any, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {"registry.example:5000": {}}, "credsStore": "desktop"}))
    run_id = f"fw-badconfig-{secrets.token_hex(3)}"
    output = _failed_run(tmp_path, run_id, "--registry-config", str(config))
    assert "--registry-config" in output and str(config) in output, output[-3000:]
    assert "credsStore" in output or "credential" in output, output[-3000:]
    assert "[geocube] build" not in output, "the images were built before the bad input was named"
    listed = kube.core.list_namespace(label_selector=f"{RUN_ID_LABEL}={run_id}", _request_timeout=15).items
    assert listed == [], [ns.metadata.name for ns in listed]


def test_a_wrong_password_in_the_registry_config_is_refused_by_the_registry(tmp_path: Path) -> None:
    """The whole stack pulls with it: the deploy ends, naming the refusal, before any check runs."""
    from localcluster.registry import REGISTRY_HOST

    token = base64.b64encode(b"geocube-acceptance:not-the-password").decode()
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {REGISTRY_HOST: {"auth": token}}}))
    output = _failed_run(tmp_path, f"fw-wrongpw-{secrets.token_hex(3)}", "--registry-config", str(config))
    assert "401 Unauthorized" in output, output[-3000:]
    assert "not-the-password" not in output and token not in output, "the password reached the output"
