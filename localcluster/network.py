"""Host networking of the embedded cluster: our bridge, two sysctls, the egress firewall, the fake network.

Pods get addresses on ``gca0`` from the CNI bridge plugin (no masquerade). Forwarded traffic that
enters from the bridge and is not addressed to the pod or service range is dropped by our own chain,
so nothing a pod does leaves this machine. With simulated nodes, their range (``kwok.FAKE_NETWORK``) is an
``unreachable`` route: no process exists behind those addresses, so a connection to one must fail at once
(EHOSTUNREACH), not wait for a timeout nor leave through the default route. Every object is created under an
exact name (a route: its exact prefix and type) and removed by it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from localcluster.errors import ClusterError
from localcluster.layout import BRIDGE, IPTABLES_EGRESS_CHAIN, NODE_IP, POD_CIDR, SERVICE_CIDR

SYSCTLS = {
    "net/ipv4/ip_forward": "1",  # service DNAT to pods needs routing between bridge ports
    "net/bridge/bridge-nf-call-iptables": "1",  # kube-proxy rules must see bridged pod-to-pod traffic
}


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(args), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise ClusterError(f"`{' '.join(args)}` failed (exit {result.returncode}): {result.stderr.strip()}")
    return result


def bridge_exists() -> bool:
    return Path(f"/sys/class/net/{BRIDGE}").exists()


def create_bridge() -> None:
    """Create ``gca0`` with the node address; idempotent."""
    if not bridge_exists():
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
    prefix = POD_CIDR.split("/")[1]
    addresses = _run("ip", "-o", "-4", "addr", "show", "dev", BRIDGE).stdout
    if f"{NODE_IP}/{prefix}" not in addresses:
        _run("ip", "addr", "add", f"{NODE_IP}/{prefix}", "dev", BRIDGE)
    _run("ip", "link", "set", BRIDGE, "up")


def delete_bridge() -> None:
    if bridge_exists():
        _run("ip", "link", "delete", BRIDGE, "type", "bridge")


def apply_sysctls(saved: Path) -> None:
    """Set the sysctls the node needs, remembering the values found so ``down`` can restore them."""
    previous: dict[str, str] = json.loads(saved.read_text()) if saved.exists() else {}
    for key, value in SYSCTLS.items():
        path = Path("/proc/sys") / key
        if not path.exists():
            raise ClusterError(f"kernel setting {key.replace('/', '.')} is missing (is br_netfilter built in?)")
        previous.setdefault(key, path.read_text().strip())
        path.write_text(value)
    saved.write_text(json.dumps(previous))


def restore_sysctls(saved: Path) -> None:
    if not saved.exists():
        return
    for key, value in json.loads(saved.read_text()).items():
        path = Path("/proc/sys") / key
        if path.exists():
            path.write_text(value)
    saved.unlink()


def _egress_rules() -> list[list[str]]:
    # Order matters: allow replies and in-cluster destinations, drop everything else that pods
    # try to send through this host.
    return [
        ["-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "RETURN"],
        ["-d", POD_CIDR, "-j", "RETURN"],
        ["-d", SERVICE_CIDR, "-j", "RETURN"],
        ["-m", "comment", "--comment", "geocube-acceptance: pods must not reach outside", "-j", "DROP"],
    ]


def _jump_rule() -> list[str]:
    return ["FORWARD", "-i", BRIDGE, "-j", IPTABLES_EGRESS_CHAIN]


def install_egress_firewall() -> None:
    """(Re)create our chain and put the jump first in FORWARD."""
    if _run("iptables", "-w", "-n", "-L", IPTABLES_EGRESS_CHAIN, check=False).returncode != 0:
        _run("iptables", "-w", "-N", IPTABLES_EGRESS_CHAIN)
    _run("iptables", "-w", "-F", IPTABLES_EGRESS_CHAIN)
    for rule in _egress_rules():
        _run("iptables", "-w", "-A", IPTABLES_EGRESS_CHAIN, *rule)
    while _run("iptables", "-w", "-C", *_jump_rule(), check=False).returncode == 0:
        _run("iptables", "-w", "-D", *_jump_rule())
    _run("iptables", "-w", "-I", *_jump_rule()[:1], "1", *_jump_rule()[1:])


def egress_firewall_installed() -> bool:
    return _run("iptables", "-w", "-C", *_jump_rule(), check=False).returncode == 0


def remove_egress_firewall() -> None:
    while _run("iptables", "-w", "-C", *_jump_rule(), check=False).returncode == 0:
        _run("iptables", "-w", "-D", *_jump_rule())
    if _run("iptables", "-w", "-n", "-L", IPTABLES_EGRESS_CHAIN, check=False).returncode == 0:
        _run("iptables", "-w", "-F", IPTABLES_EGRESS_CHAIN)
        _run("iptables", "-w", "-X", IPTABLES_EGRESS_CHAIN)


def remove_kube_proxy_rules(kube_proxy: Path) -> None:
    """Let kube-proxy remove its own rules (``--cleanup``), the way the project intends."""
    _run(str(kube_proxy), "--cleanup", check=False)


# Chains the kubelet creates itself (KUBE-FIREWALL guards route_localnet; the canaries detect flushes).
KUBELET_CHAINS = (("filter", "KUBE-FIREWALL"), ("filter", "KUBE-KUBELET-CANARY"), ("nat", "KUBE-KUBELET-CANARY"),
                  ("mangle", "KUBE-KUBELET-CANARY"))  # fmt: skip


def remove_kubelet_rules() -> None:
    """Remove the kubelet's chains and the jumps to them, by exact chain name."""
    for table, chain in KUBELET_CHAINS:
        listing = _run("iptables", "-w", "-t", table, "-S", check=False).stdout.splitlines()
        for rule in listing:
            parts = rule.split()
            if parts[:1] == ["-A"] and parts[1] != chain and "-j" in parts and parts[parts.index("-j") + 1] == chain:
                _run("iptables", "-w", "-t", table, "-D", *parts[1:], check=False)
        if f"-N {chain}" in listing:
            _run("iptables", "-w", "-t", table, "-F", chain, check=False)
            _run("iptables", "-w", "-t", table, "-X", chain, check=False)


def bridge_netns_names() -> list[str]:
    """Names of the network namespaces whose veth peers hang on our bridge (the pods' sandboxes)."""
    if not bridge_exists():
        return []
    listing = _run("ip", "-o", "link", "show", "master", BRIDGE, check=False).stdout
    names = {line.split("link-netns ")[1].split()[0] for line in listing.splitlines() if "link-netns " in line}
    return sorted(names)


def unreachable_route_argv(action: str, cidr: str) -> list[str]:
    """``ip route add|del unreachable CIDR``: the kernel rejects what is sent there, nothing goes out."""
    return ["ip", "route", action, "unreachable", cidr]


def route_query_argv(cidr: str, route_type: str | None = None) -> list[str]:
    """The main table's routes for exactly ``cidr`` (of ``route_type`` only, when given), one per line."""
    return ["ip", "-o", "route", "show", "exact", cidr, *(["type", route_type] if route_type else [])]


def unreachable_route_exists(cidr: str) -> bool:
    return bool(_run(*route_query_argv(cidr, "unreachable"), check=False).stdout.strip())


def add_unreachable_route(cidr: str) -> None:
    """Route ``cidr`` as unreachable; idempotent. Another route of exactly ``cidr`` is the user's: it stays."""
    if unreachable_route_exists(cidr):
        return
    result = _run(*unreachable_route_argv("add", cidr), check=False)
    if result.returncode != 0:
        other = _run(*route_query_argv(cidr), check=False).stdout.strip()
        raise ClusterError(
            f"`{' '.join(unreachable_route_argv('add', cidr))}` failed (exit {result.returncode}): "
            f"{result.stderr.strip()}"
            + (f"; this machine already routes {cidr}: `{other}`" if other else "")
            + f". The simulated nodes' addresses need {cidr} to themselves. Fix: remove that route, or start "
            "the cluster without --fake-nodes."
        )


def remove_unreachable_route(cidr: str) -> None:
    """Remove our ``unreachable`` route of ``cidr``; any other route of that prefix is not ours and stays."""
    if unreachable_route_exists(cidr):
        _run(*unreachable_route_argv("del", cidr))
