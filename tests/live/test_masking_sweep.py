"""No secret in any artefact: a known password, every mode, then every file and the console searched for it.

Modes: a disposable stack whose check fails (so diagnostics — pod specs, logs, Secrets, rendered manifests —
are written), a live stack whose password the run only reads from the cluster, and bad input naming a
secret. The password is searched as written and base64-encoded (how Secrets and tokens carry it).

    sudo .venv/bin/pytest tests/live -m cluster
"""

from __future__ import annotations

import base64
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.suite_runs import REPO, require_embedded_cluster

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(900)]


def leaks(password: str, output: str, report_dir: Path) -> list[str]:
    """Where ``password`` (or its base64) appears: the console output, or files under ``report_dir``."""
    forms = [password.encode(), base64.b64encode(password.encode())]
    found = [f"console output ({form.decode()})" for form in forms if form in output.encode()]
    for path in sorted(p for p in report_dir.rglob("*") if p.is_file()):
        data = path.read_bytes()
        found += [f"{path.relative_to(report_dir)} ({form.decode()})" for form in forms if form in data]
    return found


def pytest_run(args: list[str], report_dir: Path, run_id: str) -> tuple[int, str]:
    """The suites in a separate pytest process, as a user runs them; returns its exit status and console output."""
    command = [
        sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider",
        "--geocube-report-dir", str(report_dir), "--geocube-run-id", run_id,
    ]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=840, check=False)
    return result.returncode, result.stdout + result.stderr


def a_password() -> str:
    return f"Sweep-{secrets.token_hex(8)}"


def test_a_failing_disposable_run_with_diagnostics_leaks_no_password(tmp_path: Path) -> None:
    require_embedded_cluster()
    password, superuser = a_password(), a_password()
    manifests = tmp_path / "manifests"
    shutil.copytree(REPO / "manifests", manifests)
    database = manifests / "base" / "database.yaml"
    # Local connections trusted: DB-AUTH fails, and the failure writes the namespace's diagnostics.
    text = database.read_text()
    assert text.count('value: "--auth-local=trust --auth-host=scram-sha-256"') == 1
    database.write_text(text.replace('value: "--auth-local=trust --auth-host=scram-sha-256"', 'value: ""'))
    status, output = pytest_run(
        ["suites/database", "-k", "wrong_password or privileges", "--manifests-dir", str(manifests),
         "--set", f"DB_PASSWORD={password}", "--set", f"POSTGRES_PASSWORD={superuser}"],
        tmp_path / "reports", "sweep-failure",
    )  # fmt: skip
    assert status == 1, output[-3000:]
    run_dir = tmp_path / "reports" / "sweep-failure"
    assert any(run_dir.rglob("pods.yaml")), "the failure wrote diagnostics (else this sweeps too little)"
    assert leaks(password, output, tmp_path / "reports") == []
    assert leaks(superuser, output, tmp_path / "reports") == []


def test_a_live_stack_run_leaks_no_password_it_read_from_the_cluster(
    live_namespace: str, live_password: str, tmp_path: Path
) -> None:
    password = live_password
    status, output = pytest_run(["suites", "--existing-namespace", live_namespace], tmp_path / "reports", "sweep-live")
    assert status == 0, output[-3000:]
    assert leaks(password, output, tmp_path / "reports") == []


@pytest.mark.parametrize("argument", ["DB_PASSWORD:{pw}", "DB_PASSWORD {pw}", "{pw}"])
def test_a_malformed_secret_argument_is_not_echoed(argument: str, tmp_path: Path) -> None:
    password = a_password()
    status, output = pytest_run(
        ["suites/platform", "--set", argument.format(pw=password)], tmp_path / "reports", "sweep-input"
    )
    assert status == 4, output[-3000:]
    assert "--set" in output
    assert leaks(password, output, tmp_path / "reports") == []
