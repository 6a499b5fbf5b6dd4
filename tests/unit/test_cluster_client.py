"""Bad cluster input ends in one clear ClusterError within the connect timeout — no real cluster needed."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fixtures.cluster_client import connect
from fixtures.errors import ClusterError
from reports.model import Verdict

pytest_plugins = ["pytester"]

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:{port}", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: not-a-secret}}]
contexts: [{name: only, context: {cluster: c, user: u}}]
current-context: only
"""


def kubeconfig(tmp_path: Path, port: int, scheme: str = "https") -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG.replace("{port}", str(port)).replace("https://", f"{scheme}://"))
    return path


@pytest.fixture
def web_server() -> Iterator[Callable[[int, str], int]]:
    """``web_server(status, body)``: an HTTP server that is not Kubernetes, answering every GET so; its port."""
    servers: list[http.server.HTTPServer] = []

    def start(status: int, body: str) -> int:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                payload = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return int(server.server_address[1])

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers (a hung or black-holed API server)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


def test_unknown_context_names_the_available_ones(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match=r"context 'nope' is not in kubeconfig .*contexts: only.*--context"):
        connect(kubeconfig(tmp_path, free_port()), "nope")


def test_refused_api_server_is_one_clear_error(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(ClusterError, match=r"127\.0\.0\.1.*Fix:"):
        connect(kubeconfig(tmp_path, free_port()), None, timeout=5)
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("status", "body", "said"),
    [
        (200, "<html><body>Welcome to nginx!</body></html>", r"is not a Kubernetes API server: GET /version answered"),
        (404, "<html>Not Found</html>", r"answered 404 .*is it a Kubernetes API server at all\?"),
    ],
    ids=["a-web-page", "not-found"],
)
def test_an_endpoint_that_is_not_kubernetes_is_one_clear_error(
    tmp_path: Path, web_server: Callable[[int, str], int], status: int, body: str, said: str
) -> None:
    with pytest.raises(ClusterError, match=said):
        connect(kubeconfig(tmp_path, web_server(status, body), scheme="http"), None, timeout=5)


def test_hung_api_server_is_reported_within_the_timeout(tmp_path: Path, silent_server: int) -> None:
    started = time.monotonic()
    with pytest.raises(ClusterError, match=r"did not answer within 3 s.*Fix: start the cluster"):
        connect(kubeconfig(tmp_path, silent_server), None, timeout=3)
    assert time.monotonic() - started < 6


def test_the_plugin_stops_with_one_message_and_applies_nothing(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile("def test_needs_cluster(kube_client):\n    pass\n")
    started = time.monotonic()
    result = pytester.runpytest(
        "-p", "fixtures.plugin", "-p", "no:asyncio", "--kubeconfig", str(kubeconfig(tmp_path, free_port())),
        "--context", "missing",
    )  # fmt: skip
    assert result.ret == Verdict.ERROR.exit_code  # a session error is a result: verdict ERROR
    result.stdout.fnmatch_lines(["*context 'missing' is not in kubeconfig*Fix: pass --context NAME*"])
    assert time.monotonic() - started < 10


def test_kubeconfig_env_at_a_closed_port_fails_fast_naming_that_file(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KUBECONFIG selects the cluster (no --kubeconfig): a closed port is one error naming the file, in seconds."""
    path = kubeconfig(tmp_path, free_port())
    monkeypatch.setenv("KUBECONFIG", str(path))
    pytester.makepyfile("def test_needs_cluster(kube_client):\n    pass\n")
    started = time.monotonic()
    result = pytester.runpytest_subprocess("-p", "fixtures.plugin", "-p", "no:asyncio")
    assert result.ret == Verdict.ERROR.exit_code
    result.stdout.fnmatch_lines([f"*kubeconfig  *= {path}  [[]env KUBECONFIG]*"])
    result.stdout.fnmatch_lines(
        [f"*Kubernetes API server of context 'only' (server https://127.0.0.1:*, kubeconfig {path}) is unreachable*"]
    )
    assert time.monotonic() - started < 15
