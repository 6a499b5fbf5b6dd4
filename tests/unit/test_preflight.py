"""The embedded cluster's preflight names every problem and its fix before anything starts."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from localcluster import preflight
from localcluster.errors import PreflightError


def test_not_root_is_refused_with_the_alternative(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preflight.platform, "system", lambda: "Linux")
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 1000)
    with pytest.raises(PreflightError, match=r"needs root.*--kubeconfig"):
        preflight.run_preflight(Path("/tmp"))


def test_not_linux_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preflight.platform, "system", lambda: "Darwin")
    with pytest.raises(PreflightError, match=r"Linux only \(this is Darwin\)"):
        preflight.run_preflight(Path("/tmp"))


def test_missing_commands_name_their_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    absent = {"conntrack", "runc"}
    real_which = preflight.shutil.which
    monkeypatch.setattr(preflight.shutil, "which", lambda c: None if c in absent else real_which(c) or f"/bin/{c}")
    problems = preflight.check_commands()
    assert any("conntrack" in p and "apt-get install -y conntrack" in p for p in problems), problems
    assert any("runc" in p and "apt-get install -y runc" in p for p in problems), problems


def test_port_in_use_is_named_with_its_owner_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setattr(preflight, "PORTS", (("etcd (client)", "127.0.0.1", port),))
        problems = preflight.check_ports()
    assert problems == [
        f"port 127.0.0.1:{port} needed by etcd (client) is already in use; "
        f"find the owner with `ss -ltnp 'sport = :{port}'` and stop it"
    ]


def test_all_problems_are_reported_together(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(preflight.platform, "system", lambda: "Linux")
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 0)
    monkeypatch.setattr(preflight, "check_commands", lambda: ["missing command(s) runc: apt-get install -y runc"])
    monkeypatch.setattr(preflight, "check_kernel", lambda: ["/dev/kmsg is missing; ..."])
    monkeypatch.setattr(preflight, "check_ports", lambda: [])
    with pytest.raises(PreflightError) as info:
        preflight.run_preflight(tmp_path)
    assert "apt-get install -y runc" in str(info.value) and "/dev/kmsg" in str(info.value)


def test_low_disk_is_reported_with_the_override(tmp_path: Path) -> None:
    problems = preflight.check_disk(tmp_path, min_free_gib=10**9)
    assert problems and "GEOCUBE_ACCEPTANCE_STATE" in problems[0]
