"""The one registry client (localcluster.registry_client): references, challenges, classification, answers.

References and answers are checked without a network; the answers no real docker-registry gives (a
manifest whose bytes do not match its digest, 403, a password echoed back) come from a small HTTPS
server of this module on 127.0.0.1. Real registries, Basic and Bearer, are asked in test_registry.py
(the embedded registry's messages) and test_pull_secrets.py (a pull Secret's).
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import ssl
import threading
import urllib.error
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from fixtures import pull_secrets as ps
from localcluster import registry as reg
from localcluster import registry_client as rc
from localcluster.errors import ClusterError
from localcluster.pki import Identity, issue

DIGEST = "sha256:" + "a" * 64
PASSWORD = "Qw7-client-pw-HERON-5521"
CREDENTIALS = rc.Credentials("robot", PASSWORD)
AUTH = base64.b64encode(f"robot:{PASSWORD}".encode()).decode()


# ---- image references --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ref", "host", "repository", "reference"),
    [
        ("postgres:11", "docker.io", "library/postgres", "11"),
        ("postgres", "docker.io", "library/postgres", "latest"),
        ("bitnami/postgresql", "docker.io", "bitnami/postgresql", "latest"),
        ("docker.io/bitnami/postgresql:16.2.0", "docker.io", "bitnami/postgresql", "16.2.0"),
        ("index.docker.io/library/redis:7", "docker.io", "library/redis", "7"),
        ("registry.example.com:5000/team/app:1.2", "registry.example.com:5000", "team/app", "1.2"),
        (f"registry.example.com/app@{DIGEST}", "registry.example.com", "app", DIGEST),
        (f"ghcr.io/org/img:v1@{DIGEST}", "ghcr.io", "org/img", DIGEST),  # the digest wins, as in containerd
        ("localhost/x:1", "localhost", "x", "1"),
        ("localhost:5000/a/b", "localhost:5000", "a/b", "latest"),
        ("Registry.Example.com/app", "registry.example.com", "app", "latest"),  # upper case: a host
        ("10.207.0.1:5443/geocube-acceptance/pause:3.10-1", "10.207.0.1:5443", "geocube-acceptance/pause", "3.10-1"),
    ],
)
def test_parse_image_normalises_as_docker(ref: str, host: str, repository: str, reference: str) -> None:
    assert rc.parse_image(ref) == rc.ImageReference(host, repository, reference)


def test_an_image_reference_prints_in_full() -> None:
    assert str(rc.parse_image("postgres:11")) == "docker.io/library/postgres:11"
    assert str(rc.parse_image(f"h.io/a@{DIGEST}")) == f"h.io/a@{DIGEST}"


@pytest.mark.parametrize(
    ("host", "api"),
    [("docker.io", "registry-1.docker.io"), ("index.docker.io", "registry-1.docker.io"), ("ghcr.io", "ghcr.io")],
)
def test_docker_hub_is_served_elsewhere(host: str, api: str) -> None:
    assert rc.api_host(host) == api


@pytest.mark.parametrize(
    ("key", "host"),
    [
        ("https://index.docker.io/v1/", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("https://host:5000/v2/", "host:5000"),
        ("http://localhost:5000", "localhost:5000"),
        ("Registry.Example.COM", "registry.example.com"),
        ("quay.io/org", "quay.io"),
    ],
)
def test_config_keys_are_normalised_to_a_host(key: str, host: str) -> None:
    assert rc.normalise_host(key) == host


def test_a_malformed_reference_is_a_cluster_error_the_suite_repeats_as_a_pull_secret_error() -> None:
    with pytest.raises(rc.ImageReferenceError) as caught:
        rc.parse_image("app@sha256:xyz")
    assert isinstance(caught.value, ClusterError) and "Fix: write it as [HOST[:PORT]/]NAME" in str(caught.value)
    with pytest.raises(ps.PullSecretError) as repeated:
        ps.parse_image("app@sha256:xyz")
    assert str(repeated.value) == str(caught.value)


@pytest.mark.parametrize(
    ("ref", "named"),
    [("h.io/a:1", True), ("localhost/a", True), ("h:5000/a", True), ("team/app:1", False), ("app", False)],
)
def test_names_registry_says_whether_a_reference_names_its_host(ref: str, named: bool) -> None:
    assert rc.names_registry(ref) is named


# ---- answers -----------------------------------------------------------------------------------
def test_challenges_are_parsed() -> None:
    bearer = rc.parse_challenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/postgres:pull",error="insufficient_scope"'
    )
    assert bearer.scheme == "bearer" and bearer.params == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:library/postgres:pull",
        "error": "insufficient_scope",
    }
    assert rc.parse_challenge('Basic realm="geocube-acceptance registry"') == rc.Challenge(
        "basic", {"realm": "geocube-acceptance registry"}
    )
    assert rc.parse_challenge("").scheme == ""


def _verify_error() -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_message = "unable to get local issuer certificate"
    return error


@pytest.mark.parametrize(
    ("status", "body", "error", "failure", "cause"),
    [
        (401, b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}', None,
         rc.Failure.UNAUTHORIZED, "UNAUTHORIZED: authentication required"),
        (404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}', None,
         rc.Failure.NOT_FOUND, "MANIFEST_UNKNOWN: manifest unknown"),
        (404, b'{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}', None,
         rc.Failure.NOT_FOUND, "NAME_UNKNOWN"),
        (404, b"", None, rc.Failure.NOT_FOUND, "HTTP 404"),
        (500, b"<html>oops</html>", None, rc.Failure.OTHER, "HTTP 500: <html>oops</html>"),
        (None, b"", urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")),
         rc.Failure.UNKNOWN_REGISTRY, "connection refused"),
        (None, b"", urllib.error.URLError(socket.gaierror(-2, "Name or service not known")),
         rc.Failure.UNKNOWN_REGISTRY, "unknown host: Name or service not known"),
        (None, b"", TimeoutError("timed out"), rc.Failure.UNKNOWN_REGISTRY, "timed out"),
        (None, b"", urllib.error.URLError(_verify_error()), rc.Failure.TLS,
         "certificate verify failed: unable to get local issuer certificate"),
    ],
)  # fmt: skip
def test_classify_names_the_cause(
    status: int | None, body: bytes, error: BaseException | None, failure: rc.Failure, cause: str
) -> None:
    diagnosis = rc.classify(status, body, error)
    assert diagnosis.failure is failure and cause in diagnosis.cause


def test_the_embedded_registry_names_the_clients_types() -> None:
    assert (reg.Credentials, reg.Failure, reg.RegistryError) == (rc.Credentials, rc.Failure, rc.RegistryError)


# ---- answers no docker-registry gives ------------------------------------------------------------
# (path, Authorization header) → (status, headers, body)
Answer = Callable[[str, str | None], tuple[int, dict[str, str], bytes]]


@contextmanager
def https_server(pki: Path, stem: str, answer: Answer) -> Iterator[str]:
    """An HTTPS server on 127.0.0.1 (certificate of ``pki``'s CA) in a thread of this process; yields host:port.

    Each GET is answered by ``answer``; the server stops on exit.
    """

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, headers, body = answer(self.path, self.headers.get("Authorization"))
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows what matters
            pass

    cert, key = issue(pki, Identity(stem=stem, common_name=stem, ip_addresses=("127.0.0.1",), server=True))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@dataclass
class FakeRegistry:
    """Answers by path: (status, headers, body); records each request's Authorization scheme."""

    ca_file: Path
    host: str = ""
    routes: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    schemes: list[str] = field(default_factory=list)

    def answer(self, path: str, authorization: str | None) -> tuple[int, dict[str, str], bytes]:
        self.schemes.append((authorization or "").partition(" ")[0])
        return self.routes.get(path, (404, {}, b""))


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeRegistry]:
    """The fake registry on 127.0.0.1, with a certificate of a CA made here."""
    pki = tmp_path_factory.mktemp("fake-registry")
    registry = FakeRegistry(pki / "ca.crt")
    with https_server(pki, "fake-registry", registry.answer) as host:
        registry.host = host
        yield registry


MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"}).encode()
MANIFEST_DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()


def test_a_manifest_whose_bytes_do_not_match_its_digest_is_named_by_each_caller(fake: FakeRegistry) -> None:
    fake.routes["/v2/team/app/manifests/1"] = (200, {"Docker-Content-Digest": DIGEST}, MANIFEST)
    ref = f"{fake.host}/team/app:1"
    with pytest.raises(rc.DigestMismatchError) as caught:
        rc.manifest_digest(ref, None, ca_file=fake.ca_file)
    assert (caught.value.served, caught.value.computed, caught.value.failure) == (
        DIGEST,
        MANIFEST_DIGEST,
        rc.Failure.OTHER,
    )
    assert str(caught.value) == (
        f"cannot read the manifest of {ref} from the registry {fake.host}: failed "
        f"(the registry says {DIGEST}, the manifest's bytes hash to {MANIFEST_DIGEST})"
    )  # no fix: that is each caller's
    with pytest.raises(ps.RegistryAnswerError) as answered:
        ps.manifest_digest(ref, None, ca_file=fake.ca_file)
    assert str(answered.value) == (
        f"{caught.value}. Fix: the registry {fake.host} answered unexpectedly; retry, and check the registry's status"
    )
    with pytest.raises(reg.RegistryError) as embedded:
        reg.manifest_digest(ref, "robot", PASSWORD, ca_file=fake.ca_file)
    assert str(embedded.value) == (
        f"the manifest of {ref} does not match its digest: the registry says {DIGEST}, its bytes hash to "
        f"{MANIFEST_DIGEST}. Fix: the registry's storage ({fake.host}) is damaged; delete the repository and push again"
    )


def test_a_digest_is_checked_against_the_one_asked_for(fake: FakeRegistry) -> None:
    fake.routes[f"/v2/team/app/manifests/{MANIFEST_DIGEST}"] = (200, {}, MANIFEST)
    assert rc.manifest_digest(f"{fake.host}/team/app@{MANIFEST_DIGEST}", None, ca_file=fake.ca_file) == MANIFEST_DIGEST
    fake.routes[f"/v2/team/app/manifests/{DIGEST}"] = (200, {}, MANIFEST)
    with pytest.raises(rc.RegistryError, match=f"asked for {DIGEST}, the registry served {MANIFEST_DIGEST}"):
        rc.manifest_digest(f"{fake.host}/team/app@{DIGEST}", None, ca_file=fake.ca_file)


def test_basic_credentials_are_sent_only_when_asked_and_never_shown(fake: FakeRegistry) -> None:
    echoed = json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": f"{PASSWORD} / {AUTH} refused"}]})
    fake.routes["/v2/team/private/manifests/1"] = (401, {"WWW-Authenticate": 'Basic realm="fake"'}, echoed.encode())
    fake.schemes.clear()
    with pytest.raises(rc.RegistryError) as caught:
        rc.manifest_digest(f"{fake.host}/team/private:1", CREDENTIALS, ca_file=fake.ca_file)
    assert fake.schemes == ["", "Basic"]  # anonymous first, then the challenge's scheme
    assert caught.value.failure is rc.Failure.UNAUTHORIZED
    message = str(caught.value)
    assert f"UNAUTHORIZED: {rc.MASK} / {rc.MASK} refused" in message
    assert PASSWORD not in message and AUTH not in message


def test_403_is_unauthorized_with_the_registrys_words(fake: FakeRegistry) -> None:
    denied = json.dumps({"errors": [{"code": "DENIED", "message": "requested access to the resource is denied"}]})
    fake.routes["/v2/team/denied/manifests/1"] = (403, {}, denied.encode())
    with pytest.raises(rc.RegistryError) as caught:
        rc.manifest_digest(f"{fake.host}/team/denied:1", CREDENTIALS, ca_file=fake.ca_file)
    assert caught.value.failure is rc.Failure.UNAUTHORIZED
    assert "(HTTP 403: DENIED: requested access to the resource is denied)" in str(caught.value)
