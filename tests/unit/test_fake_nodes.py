"""Simulated nodes wired into the embedded cluster, the parts that need no cluster.

``cluster up --fake-nodes N``'s validation, which components ``status`` expects, the unreachable route's
command lines (and the route itself, in a private network namespace), and the fixtures that pick "the"
node or list nodes leaving kwok's fake ones aside.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes.client import V1Node, V1NodeAddress, V1NodeCondition, V1NodeStatus, V1NodeSystemInfo, V1ObjectMeta

from fixtures.errors import DeployError
from fixtures.inventory import node_rows
from fixtures.portforward import reachable_node_address
from localcluster import cli, kwok, network
from localcluster.cluster import HEALTH, OPTIONAL, ORDER, STARTUP_TIMEOUTS, EmbeddedCluster, components
from localcluster.layout import NODE_IP, NODE_NAME, StateLayout

# ---- cluster up --fake-nodes N -------------------------------------------------------------------


def test_fake_nodes_default_to_none() -> None:
    assert cli.build_parser().parse_args(["up"]).fake_nodes == 0


@pytest.mark.parametrize(("text", "count"), [("0", 0), ("4", 4), ("64", 64)])
def test_fake_nodes_take_a_count_within_the_bound(text: str, count: int) -> None:
    assert cli.build_parser().parse_args(["up", "--fake-nodes", text]).fake_nodes == count


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("-1", "the number of fake nodes must be from 0 to 64, got -1"),
        ("65", "the number of fake nodes must be from 0 to 64, got 65"),
        ("x", "'x' is not a whole number"),
        ("2.5", "'2.5' is not a whole number"),
    ],
)
def test_bad_fake_nodes_is_one_error_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], text: str, problem: str
) -> None:
    monkeypatch.setattr(cli, "EmbeddedCluster", lambda **_: pytest.fail("nothing may start on bad input"))
    with pytest.raises(SystemExit) as caught:
        cli.main(["up", "--fake-nodes", text])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --fake-nodes: {problem}" in err
    assert "Fix: pass --fake-nodes N with 0 <= N <= 64" in err
    assert err.count("error:") == 1


# ---- which components a cluster runs ---------------------------------------------------------------


def test_kwok_starts_last_and_only_when_asked_for() -> None:
    assert ORDER[-1] == "kwok"
    assert sorted(OPTIONAL) == ["kwok"]
    assert components(0) == ORDER[:-1]
    assert components(3) == ORDER
    # A kwok process that exists is listed whatever the state says: if it runs, it is ours to see and stop.
    assert components(0, recorded={"kwok", "etcd"}) == ORDER


def test_kwok_has_a_health_check_and_a_startup_timeout_like_the_others() -> None:
    assert set(HEALTH) == set(ORDER) == set(STARTUP_TIMEOUTS)
    check = HEALTH["kwok"]
    assert (check.scheme, check.host, check.port, check.path) == ("http", "127.0.0.1", 10260, "/healthz")
    assert STARTUP_TIMEOUTS["kwok"] == 30.0


def test_status_does_not_expect_kwok_without_fake_nodes(tmp_path: Path) -> None:
    cluster = EmbeddedCluster(StateLayout(tmp_path / "state"))
    statuses = cluster.status()
    assert [s.name for s in statuses] == list(ORDER[:-1]) == list(cluster.components())
    assert not any(s.running for s in statuses)  # nothing started: nothing probed


def test_status_reports_kwok_down_when_fake_nodes_were_asked_for(tmp_path: Path) -> None:
    layout = StateLayout(tmp_path / "state")
    kwok.save_fake_nodes(layout, 2)
    (status,) = [s for s in EmbeddedCluster(layout).status() if s.name == "kwok"]
    assert not status.running and not status.healthy and status.pid is None
    assert "NOT RUNNING" in status.line()


# ---- the fake network's route ---------------------------------------------------------------------


def test_route_command_lines_name_the_exact_prefix_and_type() -> None:
    assert network.unreachable_route_argv("add", kwok.FAKE_NETWORK) == [
        "ip", "route", "add", "unreachable", "10.209.0.0/16"
    ]  # fmt: skip
    assert network.unreachable_route_argv("del", kwok.FAKE_NETWORK) == [
        "ip", "route", "del", "unreachable", "10.209.0.0/16"
    ]  # fmt: skip
    assert network.route_query_argv(kwok.FAKE_NETWORK, "unreachable") == [
        "ip", "-o", "route", "show", "exact", "10.209.0.0/16", "type", "unreachable"
    ]  # fmt: skip
    assert network.route_query_argv(kwok.FAKE_NETWORK) == ["ip", "-o", "route", "show", "exact", "10.209.0.0/16"]


# Run in a network namespace of its own (unshare -n): the machine's routes are never touched.
_IN_PRIVATE_NETNS = """
import errno, json, socket, sys, time
from localcluster import network
from localcluster.errors import ClusterError
cidr = sys.argv[1]
seen = {"before": network.unreachable_route_exists(cidr)}
network.add_unreachable_route(cidr)
network.add_unreachable_route(cidr)  # idempotent
seen["after_add"] = network.unreachable_route_exists(cidr)
probe = socket.socket()
probe.settimeout(5)
started = time.monotonic()
try:
    probe.connect(("10.209.3.4", 80))
except OSError as err:
    seen["connect_errno"], seen["connect_seconds"] = err.errno, time.monotonic() - started
network.remove_unreachable_route(cidr)
network.remove_unreachable_route(cidr)  # nothing left to remove is fine
seen["after_remove"] = network.unreachable_route_exists(cidr)
network._run("ip", "route", "add", "blackhole", cidr)  # someone else's route of the same prefix
try:
    network.add_unreachable_route(cidr)
except ClusterError as err:
    seen["conflict"] = str(err)
network.remove_unreachable_route(cidr)
seen["theirs_kept"] = network._run("ip", "-o", "route", "show", "exact", cidr).stdout.strip()
print(json.dumps(seen))
"""


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare(1)")
def test_route_is_added_once_fails_fast_and_only_ours_is_removed() -> None:
    result = subprocess.run(
        ["unshare", "-n", sys.executable, "-c", _IN_PRIVATE_NETNS, kwok.FAKE_NETWORK],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    if result.returncode != 0 and "unshare failed" in result.stderr:
        pytest.skip(f"no private network namespace here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["before"] is False and seen["after_add"] is True and seen["after_remove"] is False
    # A fake pod's address fails at once (EHOSTUNREACH), nothing waits for a timeout nor leaves the machine.
    assert seen["connect_errno"] == errno.EHOSTUNREACH and seen["connect_seconds"] < 1
    assert "already routes 10.209.0.0/16: `blackhole 10.209.0.0/16" in seen["conflict"] and "Fix:" in seen["conflict"]
    assert seen["theirs_kept"].startswith("blackhole 10.209.0.0/16")


# ---- fixtures: the real node, apart from kwok's -----------------------------------------------------


def _node(name: str, address: str, *, fake: bool, ready: bool = True) -> V1Node:
    """A Node as the API's list returns it (``kubernetes.client`` models): fake ones as kwok.fake_node has them."""
    annotations = kwok.fake_node(name)["metadata"]["annotations"] if fake else {"node.alpha.kubernetes.io/ttl": "0"}
    return V1Node(
        metadata=V1ObjectMeta(name=name, annotations=annotations),
        status=V1NodeStatus(
            conditions=[V1NodeCondition(type="Ready", status="True" if ready else "False")],
            addresses=[V1NodeAddress(type="InternalIP", address=address)],
            node_info=V1NodeSystemInfo(
                architecture="amd64",
                boot_id="",
                container_runtime_version="" if fake else "containerd://1.6.20",
                kernel_version="",
                kube_proxy_version="fake" if fake else "v1.34.4",
                kubelet_version="fake" if fake else "v1.34.4",
                machine_id="",
                operating_system="linux",
                os_image="" if fake else "Debian GNU/Linux 12 (bookworm)",
                system_uuid="",
            ),
        ),
    )


def _cluster_nodes(fake: int) -> list[V1Node]:
    """The embedded cluster's nodes in the API's order (by name): the fake ones sort before the real node."""
    nodes = [_node(name, kwok.FAKE_NODE_IP, fake=True) for name in kwok.fake_node_names(fake)]
    nodes.append(_node(NODE_NAME, NODE_IP, fake=False))
    assert [n.metadata.name for n in nodes] == sorted(n.metadata.name for n in nodes)
    return nodes


def test_node_address_skips_fake_nodes() -> None:
    assert reachable_node_address(_cluster_nodes(fake=4)) == NODE_IP
    assert reachable_node_address(_cluster_nodes(fake=0)) == NODE_IP


def test_node_address_with_only_fake_nodes_ready_says_they_were_skipped() -> None:
    nodes = _cluster_nodes(fake=2)
    nodes[-1] = _node(NODE_NAME, NODE_IP, fake=False, ready=False)
    with pytest.raises(DeployError) as caught:
        reachable_node_address(nodes)
    assert "2 simulated kwok node(s) skipped" in str(caught.value)


def test_inventory_lists_the_real_node_and_counts_fake_ones_apart() -> None:
    rows, fake = node_rows(_cluster_nodes(fake=3))
    assert fake == 3
    assert rows == [
        {
            "name": NODE_NAME,
            "kubelet": "v1.34.4",
            "os": "Debian GNU/Linux 12 (bookworm)",
            "runtime": "containerd://1.6.20",
        }
    ]
    assert node_rows(_cluster_nodes(fake=0))[1] == 0
