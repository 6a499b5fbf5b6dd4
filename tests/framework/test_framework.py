"""The framework on the embedded cluster: disposable namespaces, interrupts, bad images, keep-on-failure.

Each case writes a tiny project (one template, one check) into ``tmp_path`` and runs it with the
suite's plugin in a separate pytest process — a user's run, start to end — then looks at the cluster
for what that run left behind, by its run-id label.

    sudo .venv/bin/pytest tests/framework -m cluster
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.labels import RUN_ID_LABEL
from tests.suite_runs import REPO, embedded_kube

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

WORKLOAD = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: sleeper
spec:
  replicas: 1
  selector: {matchLabels: {app: sleeper}}
  template:
    metadata: {labels: {app: sleeper}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
        - name: sleeper
          image: "{{SLEEPER_IMAGE}}"
          imagePullPolicy: Never
"""

CHECK = """\
import os, pathlib, time

def test_check(deployed_stack):
    pathlib.Path(os.environ["READY_FILE"]).write_text(deployed_stack.namespace)
    mode = os.environ["CHECK_MODE"]
    if mode == "sleep":
        time.sleep(300)
    assert mode == "pass", "this check fails on purpose"
"""


@pytest.fixture(scope="module")
def kube() -> Iterator[Any]:
    """An API client of the running embedded cluster (root on Linux only)."""
    with embedded_kube() as client:
        yield client


def project(tmp_path: Path, image: str) -> Path:
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "sleeper.yaml").write_text(WORKLOAD)
    (tmp_path / "test_check.py").write_text(CHECK)
    (tmp_path / "params").write_text(f"SLEEPER_IMAGE={image}\n")
    return tmp_path


def start(tmp_path: Path, run_id: str, mode: str, *options: str) -> subprocess.Popen[str]:
    """The tiny project's run with the suite's plugin, in the background."""
    from localcluster.images import PAUSE_IMAGE

    root = project(tmp_path, PAUSE_IMAGE) if not (tmp_path / "params").exists() else tmp_path
    env = dict(os.environ, PYTHONPATH=str(REPO), READY_FILE=str(tmp_path / "ready"), CHECK_MODE=mode)
    command = [
        sys.executable, "-m", "pytest", str(root / "test_check.py"), "-p", "fixtures.plugin", "-p", "no:cacheprovider",
        "-q", "--rootdir", str(root), "--manifests-dir", str(root / "manifests"), "--params-file", str(root / "params"),
        "--geocube-run-id", run_id, "--geocube-report-dir", str(tmp_path / "reports"), *options,
    ]  # fmt: skip
    return subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def namespaces_of(kube: Any, run_id: str) -> list[str]:
    listed = kube.core.list_namespace(label_selector=f"{RUN_ID_LABEL}={run_id}", _request_timeout=15)
    return [ns.metadata.name for ns in listed.items]


def wait_gone(kube: Any, run_id: str, timeout: float = 120) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := namespaces_of(kube, run_id)) and time.monotonic() < deadline:
        time.sleep(1)
    return left


def new_run_id(kind: str) -> str:
    return f"fw-{kind}-{secrets.token_hex(3)}"


def test_a_passing_run_deploys_and_deletes_its_namespace(kube: Any, tmp_path: Path) -> None:
    run_id = new_run_id("pass")
    process = start(tmp_path, run_id, "pass")
    output, _ = process.communicate(timeout=400)
    assert process.returncode == 0, output[-3000:]
    assert (tmp_path / "ready").read_text().startswith(f"geocube-e2e-{run_id}-")
    assert wait_gone(kube, run_id, timeout=5) == [], "the namespace outlived a passing run"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_leaves_no_namespace(kube: Any, tmp_path: Path, signum: signal.Signals) -> None:
    run_id = new_run_id(signum.name.lower())
    process = start(tmp_path, run_id, "sleep")
    deadline = time.monotonic() + 300
    while not (tmp_path / "ready").exists():
        assert process.poll() is None, f"the run ended before its check started:\n{process.communicate()[0][-3000:]}"
        assert time.monotonic() < deadline, "the check never started"
        time.sleep(0.5)
    assert namespaces_of(kube, run_id), "no namespace while the check runs"
    process.send_signal(signum)
    output, _ = process.communicate(timeout=180)
    left = wait_gone(kube, run_id, timeout=60)
    assert left == [], f"{signum.name} left {left} behind; the run said:\n{output[-3000:]}"


def test_a_missing_image_is_reported_as_such_within_seconds(kube: Any, tmp_path: Path) -> None:
    run_id = new_run_id("badimage")
    project(tmp_path, "localhost/geocube-acceptance/does-not-exist:0")
    started = time.monotonic()
    process = start(tmp_path, run_id, "pass")
    output, _ = process.communicate(timeout=400)
    elapsed = time.monotonic() - started
    assert process.returncode != 0
    assert "ErrImageNeverPull" in output, output[-3000:]
    assert "does-not-exist" in output, output[-3000:]
    assert elapsed < 120, f"the bad image was reported only after {elapsed:.0f} s"
    assert wait_gone(kube, run_id, timeout=60) == []


def test_keep_on_failure_keeps_the_namespace(kube: Any, tmp_path: Path) -> None:
    run_id = new_run_id("keep")
    process = start(tmp_path, run_id, "fail", "--keep-namespace", "on-failure")
    output, _ = process.communicate(timeout=400)
    kept = namespaces_of(kube, run_id)
    try:
        assert process.returncode == 1, output[-3000:]
        assert kept, f"--keep-namespace on-failure deleted the namespace of a failed run:\n{output[-3000:]}"
        assert f"kept namespace {kept[0]}" in output, output[-3000:]
    finally:
        for name in kept:
            kube.core.delete_namespace(name, _request_timeout=15)


CHOSEN_BY_CONFTEST = """\
import pytest

@pytest.fixture(scope="session")
def messaging_profile():
    return "pgqueue"  # the settings say pubsub (--messaging pubsub): the deploy must follow this fixture
"""

CHECK_THE_CHOICE = """\
def test_the_deploy_follows_the_fixture(deployed_stack):
    names = {m.name for m in deployed_stack.rendered.objects}
    listed = deployed_stack.kube.core.list_namespaced_config_map(deployed_stack.namespace)
    live = {c.metadata.name for c in listed.items}
    assert "chosen-pgqueue" in names and "chosen-pgqueue" in live, (names, live)
    assert "chosen-pubsub" not in names | live, (names, live)
"""


def test_a_conftest_overriding_a_decision_fixture_changes_what_is_deployed(kube: Any, tmp_path: Path) -> None:
    """A user's conftest.py returning pgqueue from ``messaging_profile`` deploys the pgqueue templates."""
    from localcluster.images import PAUSE_IMAGE

    project(tmp_path, PAUSE_IMAGE)
    manifests = tmp_path / "manifests"
    (manifests / "base").mkdir()
    (manifests / "sleeper.yaml").rename(manifests / "base" / "sleeper.yaml")
    for folder in ("messaging/pgqueue", "messaging/pubsub", "storage/local"):
        (manifests / folder).mkdir(parents=True)
    for choice in ("pgqueue", "pubsub"):
        config_map = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: chosen-{choice}}}\ndata: {{a: b}}\n"
        (manifests / "messaging" / choice / "chosen.yaml").write_text(config_map)
    (tmp_path / "conftest.py").write_text(CHOSEN_BY_CONFTEST)
    (tmp_path / "test_check.py").write_text(CHECK_THE_CHOICE)
    run_id = new_run_id("decide")
    process = start(tmp_path, run_id, "pass", "--messaging", "pubsub", "--storage", "local")
    output, _ = process.communicate(timeout=400)
    assert process.returncode == 0, output[-3000:]
    assert wait_gone(kube, run_id, timeout=60) == []
