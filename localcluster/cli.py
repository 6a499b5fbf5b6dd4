"""``geocube-acceptance cluster up [--fake-nodes N] | down [--purge] | status | logs [COMPONENT]``."""

from __future__ import annotations

import argparse
import sys

from localcluster.cluster import ORDER, EmbeddedCluster
from localcluster.errors import ClusterError
from localcluster.kwok import FAKE_NODES_FIX, MAX_FAKE_NODES, check_fake_node_count
from localcluster.processes import tail


def _progress(message: str) -> None:
    print(f"[cluster] {message}", file=sys.stderr, flush=True)


def fake_node_count(text: str) -> int:
    """``--fake-nodes``'s type: a whole number from 0 to MAX_FAKE_NODES; argparse reports anything else."""
    try:
        return check_fake_node_count(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number. Fix: {FAKE_NODES_FIX}") from None
    except ClusterError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="geocube-acceptance cluster", description="The embedded cluster.")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="build what is missing, start the cluster, print the admin kubeconfig path")
    up.add_argument(
        "--fake-nodes",
        type=fake_node_count,
        default=0,
        metavar="N",
        help=f"also run N simulated nodes (kwok; 0 to {MAX_FAKE_NODES}, default 0: none). On a running cluster, "
        "kwok and the fake nodes are started, resized or removed to match.",
    )
    down = sub.add_parser("down", help="stop every process and remove what up created")
    down.add_argument("--purge", action="store_true", help="also wipe the cluster state (PKI, etcd data, images)")
    sub.add_parser("status", help="health of each component; the log tail of any that died")
    logs = sub.add_parser("logs", help="print a component's log")
    logs.add_argument("component", nargs="?", choices=ORDER, help="one component (default: all)")
    logs.add_argument("-n", "--lines", type=int, default=40, help="lines per component (default 40)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cluster = EmbeddedCluster(progress=_progress)
    try:
        if args.command == "up":
            print(cluster.up(fake_nodes=args.fake_nodes))
            return 0
        if args.command == "down":
            problems = cluster.down(purge=args.purge)
            for problem in problems:
                print(f"warning: {problem}", file=sys.stderr)
            return 1 if problems else 0
        if args.command == "status":
            statuses = cluster.status()
            for status in statuses:
                print(status.line())
                if status.running and not status.healthy:
                    print(f"    {status.detail}")
                elif not status.running and status.pid is not None:
                    print("    " + status.detail.replace("\n", "\n    "))
            if all(s.healthy for s in statuses):
                print(f"kubeconfig: {cluster.kubeconfig}")
                return 0
            return 1
        for name in [args.component] if args.component else cluster.components():
            print(f"==> {name} <==")
            print(tail(cluster.layout.logs / f"{name}.log", args.lines))
        return 0
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; whatever was started has been stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
