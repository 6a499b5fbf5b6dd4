"""kwok: its cache path, command line, configuration and fake Node manifests (no cluster)."""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

import pytest
import yaml
from kubernetes.client import V1Node, V1NodeCondition, V1NodeStatus, V1ObjectMeta

from localcluster import gobuild, kwok
from localcluster.errors import BuildError, ClusterError
from localcluster.layout import POD_CIDR, PORTS, SERVICE_CIDR, StateLayout


@pytest.fixture
def layout(tmp_path: Path) -> StateLayout:
    return StateLayout(tmp_path / "state")


def _flags(argv: list[str]) -> dict[str, str]:
    flags = {}
    for arg in argv[1:]:
        assert arg.startswith("--") and "=" in arg, arg
        name, value = arg[2:].split("=", 1)
        assert name not in flags, f"--{name} given twice"
        flags[name] = value
    return flags


def test_cache_path_is_keyed_by_version(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GEOCUBE_ACCEPTANCE_CACHE", str(tmp_path))
    assert kwok.kwok_dir() == tmp_path / f"kwok-{kwok.KWOK_VERSION}"
    assert kwok.KWOK_VERSION == "v0.7.0"


def test_cache_hit_builds_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GEOCUBE_ACCEPTANCE_CACHE", str(tmp_path))
    monkeypatch.setattr(kwok, "_build", lambda target: pytest.fail("a cache hit must not build"))
    kwok.kwok_dir().mkdir(parents=True)
    (kwok.kwok_dir() / "kwok").write_bytes(b"")
    assert kwok.ensure_kwok() == kwok.KwokBinary(kwok.kwok_dir() / "kwok", 0.0)


def test_build_failure_names_the_log_and_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GEOCUBE_ACCEPTANCE_CACHE", str(tmp_path))
    fake_go = tmp_path / "go"
    fake_go.write_text("#!/bin/sh\necho 'go: module lookup disabled' >&2\nexit 1\n")
    fake_go.chmod(0o755)
    monkeypatch.setattr(gobuild, "go_executable", lambda: str(fake_go))
    with pytest.raises(BuildError) as caught:
        kwok.ensure_kwok()
    message = str(caught.value)
    assert "build.log" in message and "module lookup disabled" in message and "GOPROXY" in message
    assert f"sigs.k8s.io/kwok/cmd/kwok@{kwok.KWOK_VERSION}" in message and "GOWORK=off" in message
    assert not (kwok.kwok_dir() / "kwok").exists()


def _go_script(tmp_path: Path, body: str) -> Path:
    """A stand-in for ``go``: a shell script that logs its arguments and does ``body``."""
    script = tmp_path / "go"
    script.write_text(f'#!/bin/sh\necho "go $*"\n{body}\n')
    script.chmod(0o755)
    return script


def test_kwok_is_built_by_the_shared_staged_build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GEOCUBE_ACCEPTANCE_CACHE", str(tmp_path / "cache"))
    go = _go_script(tmp_path, 'test "$GOWORK" = off && test -z "$GOFLAGS" && printf bin > "$GOBIN/kwok"')
    monkeypatch.setattr(gobuild, "go_executable", lambda: str(go))
    binary = kwok.ensure_kwok()
    assert binary.path == kwok.kwok_dir() / "kwok" and binary.path.read_text() == "bin" and binary.seconds > 0
    log = (kwok.kwok_dir() / "build.log").read_text()
    assert f"go install -trimpath -ldflags -s -w {kwok.KWOK_PACKAGE}@{kwok.KWOK_VERSION}" in log
    assert not gobuild.staging_dir(kwok.kwok_dir()).exists()


def test_staged_build_without_its_output_fails_and_leaves_no_target(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(gobuild, "go_executable", lambda: str(_go_script(tmp_path, "exit 0")))
    target = tmp_path / "cache" / "thing"
    finished: list[Path] = []
    with pytest.raises(BuildError) as caught:
        gobuild.staged_go_build(
            target,
            ["build", "."],
            what="the thing",
            output="thing",
            env={"X": "1"},
            hint="try again",
            finish=finished.append,
        )
    message = str(caught.value)
    assert (
        message.startswith("building the thing failed (exit 0)") and "X=1" in message and "hint: try again" in message
    )
    assert not target.exists() and finished == []


def test_staged_build_finishes_the_staging_directory_before_the_rename(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(gobuild, "go_executable", lambda: str(_go_script(tmp_path, 'printf x > "$OUT"')))
    target = tmp_path / "cache" / "thing"
    staging = gobuild.staging_dir(target)
    seconds = gobuild.staged_go_build(
        target,
        ["build"],
        what="the thing",
        output="thing",
        env={"OUT": str(staging / "thing")},
        hint="",
        finish=lambda directory: (directory / "alias").symlink_to("thing"),
    )
    assert seconds >= 0 and (target / "alias").read_text() == "x" and not staging.exists()


def test_missing_go_names_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(gobuild, "go_executable", lambda: None)
    with pytest.raises(BuildError, match=r"go\.dev/dl"):
        gobuild.staged_go_build(tmp_path / "t", ["build"], what="t", output="t", env={}, hint="")


def test_argv_uses_the_admin_kubeconfig_and_manages_only_annotated_nodes(layout: StateLayout) -> None:
    binary = kwok.KwokBinary(Path("/cache/kwok-v0.7.0/kwok"), 0.0)
    argv = kwok.kwok_argv(layout, binary)
    assert argv[0] == "/cache/kwok-v0.7.0/kwok"
    flags = _flags(argv)
    assert flags["kubeconfig"] == str(layout.admin_kubeconfig)
    assert flags["manage-nodes-with-annotation-selector"] == "kwok.x-k8s.io/node=fake"
    assert flags["config"] == str(layout.config / "kwok.yaml")
    assert "manage-all-nodes" not in flags and "enable-crds" not in flags
    # Without Leases the node lifecycle controller would mark the fake nodes NotReady and evict their pods.
    assert int(flags["node-lease-duration-seconds"]) == 40


def test_argv_serves_on_loopback_only(layout: StateLayout) -> None:
    flags = _flags(kwok.kwok_argv(layout, kwok.KwokBinary(Path("kwok"), 0.0)))
    host, port = flags["server-address"].rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) == kwok.KWOK_PORT
    # --node-port alone would make kwok listen on 0.0.0.0.
    assert "node-port" not in flags
    assert kwok.KWOK_PORT not in {port for _, _, port in PORTS}


def test_fake_addresses_are_ours_and_apart_from_the_cluster(layout: StateLayout) -> None:
    network = ipaddress.ip_network(kwok.FAKE_NETWORK)
    assert network == ipaddress.ip_network("10.209.0.0/16")
    for other in (POD_CIDR, SERVICE_CIDR):
        assert not network.overlaps(ipaddress.ip_network(other))
    flags = _flags(kwok.kwok_argv(layout, kwok.KwokBinary(Path("kwok"), 0.0)))
    pods = ipaddress.ip_interface(flags["cidr"])
    assert pods.network.subnet_of(network)  # type: ignore[arg-type]
    assert pods.ip != pods.network.network_address  # kwok hands out addresses from the given host on
    node_ip = ipaddress.ip_address(flags["node-ip"])
    assert node_ip in network and node_ip not in pods.network
    assert _flags(kwok.kwok_argv(layout, kwok.KwokBinary(Path("kwok"), 0.0), cidr="10.209.1.1/24"))["cidr"] == (
        "10.209.1.1/24"
    )


def test_config_disables_debugging_handlers_and_holds_no_stage(layout: StateLayout) -> None:
    path = kwok.write_kwok_config(layout)
    assert path == kwok.kwok_config_path(layout)
    documents = list(yaml.safe_load_all(path.read_text()))
    assert [d["kind"] for d in documents] == ["KwokConfiguration"]
    assert documents[0]["options"] == {"enableDebuggingHandlers": False, "enableProfilingHandler": False}


def test_env_keeps_kwok_away_from_the_home_directory(layout: StateLayout) -> None:
    assert kwok.kwok_env(layout) == {"KWOK_WORKDIR": str(layout.root / "kwok")}


def test_fake_node_is_managed_by_kwok_and_tainted() -> None:
    node = kwok.fake_node("geocube-acceptance-fake-3", cpu="8", memory="16Gi", pods=20)
    assert node["kind"] == "Node" and node["metadata"]["name"] == "geocube-acceptance-fake-3"
    assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
    labels = node["metadata"]["labels"]
    assert labels["type"] == "kwok" and labels["geocube-acceptance/fake-node"] == "true"
    assert labels["kubernetes.io/hostname"] == "geocube-acceptance-fake-3"
    assert node["spec"]["taints"] == [{"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}]
    expected = {"cpu": "8", "memory": "16Gi", "pods": "20"}
    assert node["status"]["capacity"] == expected and node["status"]["allocatable"] == expected
    assert node["status"]["phase"] == "Running"
    # Every value a string where the API expects strings: the manifest round-trips through YAML unchanged.
    assert yaml.safe_load(yaml.safe_dump(node)) == node


def test_fake_node_defaults_follow_kwoks_docs() -> None:
    status = kwok.fake_node("n")["status"]
    assert status["capacity"] == {"cpu": "32", "memory": "256Gi", "pods": str(kwok.FAKE_NODE_PODS)}
    assert status["nodeInfo"]["operatingSystem"] == "linux"


def test_fake_node_manifests_share_no_mutable_parts() -> None:
    first, second = kwok.fake_node("a"), kwok.fake_node("b")
    first["spec"]["taints"][0]["effect"] = "NoExecute"
    first["status"]["capacity"]["cpu"] = "1"
    assert second["spec"]["taints"][0]["effect"] == "NoSchedule"
    assert second["status"]["allocatable"]["cpu"] == "32"
    assert kwok.FAKE_NODE_TAINT["effect"] == "NoSchedule"


def test_fake_node_names_are_unique_and_prefixed() -> None:
    names = kwok.fake_node_names(12)
    assert names[0] == "geocube-acceptance-fake-0" and len(set(names)) == 12
    assert all(name.startswith(kwok.FAKE_NODE_PREFIX) for name in names)
    assert kwok.fake_node_names(0) == []


def test_selector_and_toleration_match_the_fake_nodes() -> None:
    node = kwok.fake_node(kwok.fake_node_names(1)[0])
    labels = node["metadata"]["labels"]
    assert all(labels.get(key) == value for key, value in kwok.FAKE_NODE_SELECTOR.items())
    toleration = kwok.FAKE_NODE_TOLERATION
    (taint,) = node["spec"]["taints"]
    assert toleration["operator"] == "Equal"
    assert (toleration["key"], toleration["value"], toleration["effect"]) == (
        taint["key"],
        taint["value"],
        taint["effect"],
    )


def test_only_nodes_annotated_fake_are_fake() -> None:
    assert kwok.is_fake_node(kwok.fake_node("n")["metadata"]["annotations"])
    assert not kwok.is_fake_node(None) and not kwok.is_fake_node({})
    assert not kwok.is_fake_node({"kwok.x-k8s.io/node": "real"})


@pytest.mark.parametrize("count", [0, 1, 16, 64])
def test_fake_node_counts_within_the_bound_pass(count: int) -> None:
    assert kwok.check_fake_node_count(count) == count


@pytest.mark.parametrize("count", [-1, 65, 1000])
def test_fake_node_counts_out_of_bound_name_the_bound_and_the_fix(count: int) -> None:
    with pytest.raises(ClusterError) as caught:
        kwok.check_fake_node_count(count)
    assert f"got {count}" in str(caught.value) and "from 0 to 64" in str(caught.value)
    assert "Fix: pass --fake-nodes N with 0 <= N <= 64" in str(caught.value)


def test_state_remembers_the_count_and_forgets_it_at_zero(layout: StateLayout) -> None:
    assert kwok.load_fake_nodes(layout) == 0  # no up asked for fake nodes
    kwok.save_fake_nodes(layout, 4)
    path = kwok.fake_nodes_state_path(layout)
    assert path.parent == layout.root and kwok.load_fake_nodes(layout) == 4
    assert yaml.safe_load(path.read_text()) == {"fake_nodes": 4, "kwok": kwok.KWOK_VERSION}
    kwok.save_fake_nodes(layout, 0)
    assert not path.exists() and kwok.load_fake_nodes(layout) == 0
    kwok.save_fake_nodes(layout, 0)  # forgetting twice is fine
    with pytest.raises(ClusterError):
        kwok.save_fake_nodes(layout, 65)
    assert not path.exists()


@pytest.mark.parametrize("text", ["{", "{}", '{"fake_nodes": "4"}', '{"fake_nodes": true}', '{"fake_nodes": -2}'])
def test_unreadable_state_names_the_file_and_the_fix(layout: StateLayout, text: str) -> None:
    layout.root.mkdir(parents=True)
    kwok.fake_nodes_state_path(layout).write_text(text)
    with pytest.raises(ClusterError) as caught:
        kwok.load_fake_nodes(layout)
    message = str(caught.value)
    assert str(kwok.fake_nodes_state_path(layout)) in message and "cluster down" in message


def test_readiness_reads_the_ready_condition() -> None:
    ready = V1Node(
        metadata=V1ObjectMeta(name="n"),
        status=V1NodeStatus(conditions=[V1NodeCondition(type="Ready", status="True", reason="KubeletReady")]),
    )
    assert kwok.readiness(ready) == (True, "Ready=True (KubeletReady: None)")
    not_ready = V1Node(
        metadata=V1ObjectMeta(name="n"),
        status=V1NodeStatus(conditions=[V1NodeCondition(type="Ready", status="Unknown", reason="NodeStatusUnknown")]),
    )
    assert kwok.readiness(not_ready)[0] is False and "Unknown" in kwok.readiness(not_ready)[1]
    assert kwok.readiness(V1Node(metadata=V1ObjectMeta(name="n"))) == (False, "no Ready condition yet")


@pytest.fixture
def built_kwok() -> Path:
    path = kwok.kwok_dir() / "kwok"
    if not path.is_file():
        pytest.skip(
            f"kwok is not built at {path}; build it with `python -c 'import localcluster.kwok as k; k.ensure_kwok()'`"
        )
    return path


def _run_kwok(path: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KWOK_WORKDIR": str(tmp_path / "kwok")}
    return subprocess.run([str(path), *args], capture_output=True, text=True, timeout=30, env=env)


def test_built_binary_is_v0_7_0(built_kwok: Path, tmp_path: Path) -> None:
    result = _run_kwok(built_kwok, tmp_path, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("kwok version v0.7.0 "), result.stdout


def test_built_binary_knows_every_flag_and_reads_our_config(built_kwok: Path, tmp_path: Path) -> None:
    layout = StateLayout(tmp_path / "state")
    kwok.write_kwok_config(layout)
    argv = kwok.kwok_argv(layout, kwok.KwokBinary(built_kwok, 0.0))
    help_text = _run_kwok(built_kwok, tmp_path, "--help").stdout
    for name in _flags(argv):
        assert f"--{name} " in help_text, f"kwok {kwok.KWOK_VERSION} has no --{name}"
    # kwok loads --config before parsing the command: a configuration it cannot read fails --version.
    result = _run_kwok(built_kwok, tmp_path, f"--config={kwok.kwok_config_path(layout)}", "--version")
    assert result.returncode == 0, result.stderr
