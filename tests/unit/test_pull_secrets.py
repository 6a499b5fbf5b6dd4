"""Pull credentials as a user gives them, and manifest queries against real docker-registry processes.

The registry tests run Debian's docker-registry on 127.0.0.1 twice over one storage: once with htpasswd
(Basic auth, as the embedded cluster's) and once with ``auth: token`` behind a token service of this
module (Bearer auth, as Docker Hub, Harbor or GitLab), whose JWTs the registry verifies against a
certificate bundle made here. No cluster is involved.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from fixtures import pull_secrets as ps
from fixtures.errors import HarnessError
from geocube_acceptance.errors import AcceptanceError
from localcluster import registry as reg
from localcluster.pki import Identity, ensure_ca, issue
from reports.masking import Masker
from tests.unit.test_registry import MISSING_TOOLS, Server, _free_port, _small_oci_archive, basic_registry, serving
from tests.unit.test_registry_client import https_server

PASSWORD = "s3cr3t-Pa55word"
USER = "robot"
CREDENTIALS = reg.Credentials(USER, PASSWORD)
AUTH = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _no_secret(message: str, *secrets: str) -> None:
    for secret in (PASSWORD, AUTH, *secrets):
        assert secret not in message, f"a secret leaked into: {message}"


# ---- image references (parsed by localcluster.registry_client) ---------------------------------
@pytest.mark.parametrize(
    ("ref", "problem"),
    [
        ("", "repository"),
        ("app:bad tag", "tag"),
        ("app@sha256:xyz", "not a digest"),
        ("UPPER/Case:1", "lower-case"),
        ("registry.example.com/", "repository"),
    ],
)
def test_a_malformed_image_reference_is_named_with_the_form_expected(ref: str, problem: str) -> None:
    with pytest.raises(ps.PullSecretError) as caught:
        ps.parse_image(ref)
    assert repr(ref) in str(caught.value) and problem in str(caught.value) and "Fix:" in str(caught.value)


# ---- Docker config files -----------------------------------------------------------------------
def _config(obj: Any) -> bytes:
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    ("config", "host"),
    [
        ({"auths": {"registry.example.com": {"auth": AUTH}}}, "registry.example.com"),
        ({"auths": {"registry.example.com": {"username": USER, "password": PASSWORD}}}, "registry.example.com"),
        ({"auths": {"https://index.docker.io/v1/": {"auth": AUTH, "email": "a@b.c"}}}, "docker.io"),
        ({"auths": {"https://host:5000/v2/": {"auth": AUTH}}}, "host:5000"),
        ({"registry.example.com": {"auth": AUTH, "email": "a@b.c"}}, "registry.example.com"),  # legacy .dockercfg
        # auth wins over username/password, as in the kubelet
        ({"auths": {"h.io": {"auth": AUTH, "username": "other", "password": "other"}}}, "h.io"),
        # an entry left beside a credential helper is the helper's; the usable one is kept
        ({"auths": {"h.io": {"auth": AUTH}, "gcr.io": {}}, "credHelpers": {"gcr.io": "gcloud"}}, "h.io"),
    ],
)
def test_a_docker_config_gives_credentials_by_host(config: Any, host: str) -> None:
    assert ps.parse_docker_config(_config(config), "config.json") == {host: CREDENTIALS}


def test_a_password_may_hold_colons_and_the_user_is_what_comes_before_the_first() -> None:
    auth = _b64("u:pa:ss:word")
    auths = ps.parse_docker_config(_config({"auths": {"h.io": {"auth": auth}}}), "f")
    assert auths["h.io"] == reg.Credentials("u", "pa:ss:word")


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b'{"auths": {"h.io": {"password": "s3cr3t-Pa55word"', "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (_config({"HttpHeaders": {"User-Agent": "x"}}), "no 'auths'"),
        (_config({"auths": {}}), "holds no credentials"),
        (_config({"auths": {"h.io": "robot"}}), "not an object"),
        (_config({"auths": {"h.io": {"email": "a@b.c", "identitytoken": PASSWORD}}}), "neither 'auth' nor"),
        (_config({"auths": {"h.io": {"username": USER}}}), "neither 'auth' nor"),
        (_config({"auths": {"h.io": {"auth": PASSWORD + "!"}}}), "not base64"),
        (_config({"auths": {"h.io": {"auth": _b64(PASSWORD)}}}), "does not decode to user:password"),
        (_config({"credsStore": "desktop"}), "credential helper (credsStore desktop)"),
        (_config({"credHelpers": {"gcr.io": "gcloud"}}), "credHelpers for gcr.io"),
        (_config({"auths": {"h.io": {}}, "credsStore": "osxkeychain"}), "cannot call a helper"),
        (
            _config({"auths": {"docker.io": {"auth": AUTH}, "https://index.docker.io/v1/": {"auth": _b64("x:y")}}}),
            "both name the registry docker.io",
        ),
    ],
)
def test_a_bad_docker_config_is_named_with_source_problem_and_fix(data: bytes, problem: str) -> None:
    with pytest.raises(ps.PullSecretError) as caught:
        ps.parse_docker_config(data, "/home/u/.docker/config.json")
    message = str(caught.value)
    assert message.startswith("/home/u/.docker/config.json: ") and problem in message and "Fix:" in message
    _no_secret(message, _b64(PASSWORD))


def test_a_helper_only_file_says_how_to_make_a_usable_one() -> None:
    with pytest.raises(ps.PullSecretError) as caught:
        ps.parse_docker_config(_config({"credsStore": "desktop"}), "config.json")
    message = str(caught.value)
    assert "nodes cannot call" in message and "--password-stdin" in message
    assert "kubectl create secret docker-registry NAME --from-file=.dockerconfigjson=" in message


def test_pull_secret_errors_are_harness_and_acceptance_errors() -> None:
    assert issubclass(ps.PullSecretError, HarnessError) and issubclass(ps.PullSecretError, AcceptanceError)
    assert issubclass(ps.RegistryAnswerError, HarnessError)
    assert ps.RegistryAnswerError("m", reg.Failure.TLS).failure is reg.Failure.TLS


def test_load_docker_config_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(_config({"auths": {"h.io": {"auth": AUTH}}}))
    assert ps.load_docker_config(path) == {"h.io": CREDENTIALS}


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda path: None, "no such file"),
        (lambda path: path.mkdir(), "cannot read it"),
        (lambda path: path.write_text(" \n"), "the file is empty"),
    ],
)
def test_load_docker_config_names_a_missing_unreadable_or_empty_file(tmp_path: Path, make: Any, problem: str) -> None:
    path = tmp_path / "config.json"
    make(path)
    with pytest.raises(ps.PullSecretError) as caught:
        ps.load_docker_config(path)
    assert str(path) in str(caught.value) and problem in str(caught.value) and "Fix:" in str(caught.value)


def test_credentials_are_found_by_the_images_registry_host() -> None:
    auths = ps.parse_docker_config(
        _config({"auths": {"https://index.docker.io/v1/": {"auth": AUTH}, "h.io:5000": {"auth": _b64("x:y")}}}), "f"
    )
    assert ps.credentials_for(ps.parse_image("postgres:11"), auths) == CREDENTIALS
    assert ps.credentials_for(ps.parse_image("h.io:5000/a:1"), auths) == reg.Credentials("x", "y")
    assert ps.credentials_for(ps.parse_image("h.io/a:1"), auths) is None  # another port, another registry
    assert ps.credentials_for(ps.parse_image("h.io:5000/a"), {"https://H.io:5000/v2/": CREDENTIALS}) == CREDENTIALS


# ---- pull Secrets ------------------------------------------------------------------------------
def _decoded(secret: dict[str, Any]) -> Any:
    return json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))


def test_a_pull_secret_is_a_dockerconfigjson_secret_the_kubelet_reads() -> None:
    secret = ps.pull_secret_manifest("registry-pull", {"h.io:5000": CREDENTIALS, "docker.io": CREDENTIALS})
    assert secret["apiVersion"] == "v1" and secret["kind"] == "Secret"
    assert secret["type"] == "kubernetes.io/dockerconfigjson" and list(secret["data"]) == [".dockerconfigjson"]
    assert secret["metadata"] == {
        "name": "registry-pull",
        "labels": {"app.kubernetes.io/managed-by": "geocube-acceptance"},
    }
    entry = {"username": USER, "password": PASSWORD, "auth": AUTH}
    # Docker Hub under index.docker.io/v1/: the kubelet uses that key for `postgres:11`, `docker.io` it would not.
    assert _decoded(secret) == {"auths": {"h.io:5000": entry, "https://index.docker.io/v1/": entry}}
    assert ps.auths_of_secret(secret) == {"h.io:5000": CREDENTIALS, "docker.io": CREDENTIALS}


@pytest.mark.parametrize(("name", "auths"), [("Registry_Pull", {"h.io": CREDENTIALS}), ("registry-pull", {})])
def test_a_pull_secret_needs_a_valid_name_and_a_registry(name: str, auths: dict[str, reg.Credentials]) -> None:
    with pytest.raises(ps.PullSecretError, match="Fix:"):
        ps.pull_secret_manifest(name, auths)


def test_a_legacy_dockercfg_secret_is_read() -> None:
    secret = {
        "metadata": {"name": "old", "namespace": "ns"},
        "type": "kubernetes.io/dockercfg",
        "data": {".dockercfg": _b64(json.dumps({"h.io": {"auth": AUTH, "email": "a@b.c"}}))},
    }
    assert ps.auths_of_secret(secret) == {"h.io": CREDENTIALS}


def _secret(secret_type: str, data: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": "pull", "namespace": "geocube"}, "type": secret_type, "data": data}


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        (_secret("Opaque", {".dockerconfigjson": _b64(json.dumps({"auths": {"h.io": {"auth": AUTH}}}))}), "'Opaque'"),
        (_secret("kubernetes.io/dockerconfigjson", {".dockercfg": _b64("{}")}), "no data key .dockerconfigjson"),
        (_secret("kubernetes.io/dockerconfigjson", {".dockerconfigjson": "not base64!"}), "not base64"),
        (_secret("kubernetes.io/dockerconfigjson", {".dockerconfigjson": _b64("{oops")}), "not JSON"),
        (
            _secret(
                "kubernetes.io/dockerconfigjson", {".dockerconfigjson": _b64(json.dumps({"h.io": {"auth": AUTH}}))}
            ),
            "no 'auths'",
        ),
        (
            _secret("kubernetes.io/dockercfg", {".dockercfg": _b64(json.dumps({"auths": {"h.io": {"auth": AUTH}}}))}),
            "has 'auths'",
        ),
        (
            _secret(
                "kubernetes.io/dockerconfigjson",
                {".dockerconfigjson": _b64(json.dumps({"auths": {"h.io": {"auth": _b64(PASSWORD)}}}))},
            ),
            "does not decode to user:password",
        ),
        (
            _secret("kubernetes.io/dockerconfigjson", {".dockerconfigjson": _b64(json.dumps({"credsStore": "pass"}))}),
            "credential helper",
        ),
    ],
)
def test_a_bad_secret_is_named_with_the_problem_and_a_correct_example(secret: dict[str, Any], problem: str) -> None:
    with pytest.raises(ps.PullSecretError) as caught:
        ps.auths_of_secret(secret)
    message = str(caught.value)
    assert "Secret geocube/pull" in message and problem in message
    assert "kubectl create secret docker-registry NAME --from-file=.dockerconfigjson=" in message
    _no_secret(message, _b64(PASSWORD), *secret["data"].values())


def test_secret_values_let_the_masker_hide_a_dumped_secret() -> None:
    auths = {"h.io": CREDENTIALS, "docker.io": reg.Credentials("other", "another-password")}
    values = ps.secret_values(auths)
    assert {PASSWORD, AUTH, "another-password"} <= set(values) and len(values) == len(set(values))
    masker = Masker(values)
    dumped = masker.text(json.dumps(ps.pull_secret_manifest("pull", auths)))
    decoded = masker.text(json.dumps(_decoded(ps.pull_secret_manifest("pull", auths))))
    for text in (dumped, decoded):
        _no_secret(text, "another-password", *values)
    assert ps.secret_values({}) == []


# ---- kubelet messages --------------------------------------------------------------------------
_RESOLVE = 'failed to pull and unpack image "docker.io/acme/app:1": failed to resolve reference "docker.io/acme/app:1"'


@pytest.mark.parametrize(
    ("message", "failure"),
    [
        (f"{_RESOLVE}: failed to authorize: failed to fetch oauth token: unexpected status: 401 Unauthorized",
         reg.Failure.UNAUTHORIZED),
        (f"{_RESOLVE}: unexpected status from HEAD request to https://h.io/v2/a/manifests/1: 401 Unauthorized",
         reg.Failure.UNAUTHORIZED),
        (f"{_RESOLVE}: pull access denied, repository does not exist or may require authorization: server message: "
         "insufficient_scope: authorization failed", reg.Failure.UNAUTHORIZED),
        (f"{_RESOLVE}: pull access denied, repository does not exist or may require authorization: "
         "authorization failed: no basic auth credentials", reg.Failure.UNAUTHORIZED),
        (f"{_RESOLVE}: unexpected status from HEAD request: 403 Forbidden", reg.Failure.UNAUTHORIZED),
        (f"{_RESOLVE}: docker.io/acme/app:1: not found", reg.Failure.NOT_FOUND),
        ("failed to copy: httpReadSeeker: failed open: content at https://h.io/v2/a/manifests/sha256:ab not found: "
         "manifest unknown", reg.Failure.NOT_FOUND),
        (f'{_RESOLVE}: failed to do request: Head "https://h.io/v2/a/manifests/1": '
         "tls: failed to verify certificate: x509: certificate signed by unknown authority", reg.Failure.TLS),
        (f'{_RESOLVE}: failed to do request: Head "https://h.io/v2/a/manifests/1": '
         "x509: certificate signed by unknown authority", reg.Failure.TLS),
        (f'{_RESOLVE}: failed to do request: Head "https://h.io/v2/a/manifests/1": '
         "http: server gave HTTP response to HTTPS client", reg.Failure.TLS),
        (f'{_RESOLVE}: failed to do request: Head "https://h.io:5000/v2/a/manifests/1": '
         "dial tcp 10.0.0.9:5000: connect: connection refused", reg.Failure.UNKNOWN_REGISTRY),
        (f'{_RESOLVE}: failed to do request: Head "https://nowhere.invalid/v2/a/manifests/1": '
         "dial tcp: lookup nowhere.invalid on 10.96.0.10:53: no such host", reg.Failure.UNKNOWN_REGISTRY),
        # the token fetch timed out: a network failure, though the words say "authorize"
        (f'{_RESOLVE}: failed to authorize: failed to fetch anonymous token: Get "https://auth.docker.io/token": '
         "dial tcp 199.59.148.222:443: i/o timeout", reg.Failure.UNKNOWN_REGISTRY),
        ('Back-off pulling image "docker.io/acme/app:1"', reg.Failure.OTHER),
        ("failed to extract layer sha256:404404: no space left on device", reg.Failure.OTHER),
    ],
)  # fmt: skip
def test_pull_failure_cause_reads_containerds_words(message: str, failure: reg.Failure) -> None:
    assert ps.pull_failure_cause(message) is failure


# ---- real registries ---------------------------------------------------------------------------
ISSUER = "geocube-acceptance-test-token-issuer"
SERVICE = "geocube-acceptance-test-registry"


@pytest.fixture(scope="module")
def basic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The embedded cluster's kind of registry (htpasswd, Basic auth) with a test CA, on 127.0.0.1."""
    if MISSING_TOOLS:
        pytest.skip(f"not installed: {', '.join(MISSING_TOOLS)} (.ci/setup installs them)")
    with basic_registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture(scope="module")
def pushed(basic: Server, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(repository path, digest) of a tiny image pushed once; the token registry serves the same storage."""
    archive = _small_oci_archive(tmp_path_factory.mktemp("archive") / "small.tar")
    return "geocube-acceptance/selftest", reg.push(archive, f"{basic.host}/geocube-acceptance/selftest:1", basic.files)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenService:
    """A token service as distribution's token auth expects (docs/spec/auth/token.md), over HTTPS."""

    credentials: reg.Credentials
    key: ec.EllipticCurvePrivateKey
    certificate: bytes  # DER, sent as the JWT's x5c
    bundle: Path  # the signing certificate's CA: the registry's rootcertbundle
    url: str = ""  # known once it serves
    token_field: str = "token"
    requests: list[dict[str, str]] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)

    def sign(self, subject: str, access: list[dict[str, Any]]) -> str:
        """An ES256 JWT granting ``access``: JOSE wants the raw r‖s signature, not the DER one."""
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(self.certificate).decode()]}
        claims = {
            "iss": ISSUER, "sub": subject, "aud": SERVICE, "exp": now + 300, "nbf": now - 10, "iat": now,
            "jti": str(time.monotonic_ns()), "access": access,
        }  # fmt: skip
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        token = f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
        self.issued.append(token)
        return token

    def answer(self, path: str, authorization: str | None) -> tuple[int, dict[str, Any]]:
        """Docker Hub's behaviour: wrong credentials → 401; anonymous → a token granting nothing."""
        query = {key: values[0] for key, values in urllib.parse.parse_qs(urllib.parse.urlsplit(path).query).items()}
        self.requests.append({**query, "authorization": (authorization or "").partition(" ")[0]})
        subject, access = "", []
        if authorization is not None:
            expected = base64.b64encode(f"{self.credentials.user}:{self.credentials.password}".encode()).decode()
            if authorization != f"Basic {expected}":
                return 401, {"details": "incorrect username or password"}
            subject = self.credentials.user
            kind, _, rest = query.get("scope", "").partition(":")
            name, _, actions = rest.rpartition(":")
            access = [{"type": kind, "name": name, "actions": actions.split(",")}]
        return 200, {self.token_field: self.sign(subject, access), "expires_in": 300}

    def http(self, path: str, authorization: str | None) -> tuple[int, dict[str, str], bytes]:
        status, body = self.answer(path, authorization)
        return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


@pytest.fixture(scope="module")
def token_service(basic: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenService]:
    """The token service on 127.0.0.1 (TLS from the registry's test CA), in a thread of this process."""
    root = tmp_path_factory.mktemp("token-service")
    signer_cert, signer_key = issue(root / "signing", Identity(stem="signer", common_name="token-signer"))
    key = serialization.load_pem_private_key(signer_key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    der = x509.load_pem_x509_certificate(signer_cert.read_bytes()).public_bytes(serialization.Encoding.DER)
    service = TokenService(CREDENTIALS, key, der, root / "signing" / "ca.crt")
    with https_server(basic.files.pki, "token-service", service.http) as host:
        service.url = f"https://{host}/token"
        yield service


@pytest.fixture(scope="module")
def bearer(basic: Server, token_service: TokenService, pushed: tuple[str, str]) -> Iterator[str]:
    """A docker-registry with ``auth: token`` over the Basic one's storage; yields its host."""
    root = basic.files.config_dir.parent / "token-registry"
    host = f"127.0.0.1:{_free_port()}"
    config = reg.registry_config(basic.files, host)
    config["auth"] = {
        "token": {
            "realm": token_service.url,
            "service": SERVICE,
            "issuer": ISSUER,
            "rootcertbundle": str(token_service.bundle),
        }
    }
    root.mkdir()
    (root / "config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    with serving("registry-token", root / "config.yml", root, host, basic.files.ca_file):
        yield host


# ---- manifest digests: Basic ---------------------------------------------------------------------
def _error_of(ref: str, credentials: reg.Credentials | None, **kwargs: Any) -> ps.RegistryAnswerError:
    with pytest.raises(ps.RegistryAnswerError) as caught:
        ps.manifest_digest(ref, credentials, **kwargs)
    return caught.value


def test_basic_the_right_credentials_give_the_pushed_digest(
    basic: Server, pushed: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repository, digest = pushed
    # No proxy whatever the environment says: this one would refuse every connection.
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:1")
    ca_file = basic.files.ca_file
    assert ps.manifest_digest(f"{basic.host}/{repository}:1", basic.credentials, ca_file=ca_file) == digest
    assert ps.manifest_digest(f"{basic.host}/{repository}@{digest}", basic.credentials, ca_file=ca_file) == digest


def test_basic_a_wrong_password_is_unauthorized_and_masked(basic: Server, pushed: tuple[str, str]) -> None:
    wrong = reg.Credentials(basic.credentials.user, PASSWORD)
    error = _error_of(f"{basic.host}/{pushed[0]}:1", wrong, ca_file=basic.files.ca_file)
    message = str(error)
    assert error.failure is reg.Failure.UNAUTHORIZED
    assert basic.host in message and f"{pushed[0]}:1" in message and "UNAUTHORIZED" in message
    assert f"credentials for {basic.host} (user {basic.credentials.user}) are refused" in message
    _no_secret(message, base64.b64encode(f"{wrong.user}:{PASSWORD}".encode()).decode())


def test_basic_no_credentials_is_unauthorized_and_says_the_secret_lacks_them(
    basic: Server, pushed: tuple[str, str]
) -> None:
    error = _error_of(f"{basic.host}/{pushed[0]}:1", None, ca_file=basic.files.ca_file)
    assert error.failure is reg.Failure.UNAUTHORIZED
    assert f"the pull secret has no credentials for {basic.host}" in str(error)


def test_basic_a_missing_tag_is_not_found(basic: Server, pushed: tuple[str, str]) -> None:
    error = _error_of(f"{basic.host}/{pushed[0]}:no-such-tag", basic.credentials, ca_file=basic.files.ca_file)
    message = str(error)
    assert error.failure is reg.Failure.NOT_FOUND
    assert "MANIFEST_UNKNOWN" in message and f"no-such-tag does not exist in {pushed[0]} on {basic.host}" in message
    _no_secret(message, basic.credentials.password)


def test_another_ca_or_the_system_trust_store_is_tls(basic: Server, pushed: tuple[str, str], tmp_path: Path) -> None:
    ensure_ca(tmp_path / "other-pki")
    ref = f"{basic.host}/{pushed[0]}:1"
    error = _error_of(ref, basic.credentials, ca_file=tmp_path / "other-pki" / "ca.crt")
    assert error.failure is reg.Failure.TLS
    assert "certificate verify failed" in str(error) and str(tmp_path / "other-pki" / "ca.crt") in str(error)
    error = _error_of(ref, basic.credentials)  # the system's CAs do not know the test CA
    assert error.failure is reg.Failure.TLS and "this machine's trust store" in str(error)
    _no_secret(str(error), basic.credentials.password)


def test_a_closed_port_is_an_unknown_registry(basic: Server) -> None:
    host = f"127.0.0.1:{_free_port()}"
    error = _error_of(f"{host}/a/b:1", basic.credentials, ca_file=basic.files.ca_file, timeout=3)
    assert error.failure is reg.Failure.UNKNOWN_REGISTRY
    assert "connection refused" in str(error) and f"{host} is unreachable from where the suite runs" in str(error)


# ---- manifest digests: Bearer tokens ------------------------------------------------------------
def test_bearer_credentials_get_a_token_and_the_pushed_digest(
    bearer: str, token_service: TokenService, pushed: tuple[str, str], basic: Server
) -> None:
    repository, digest = pushed
    token_service.requests.clear()
    assert ps.manifest_digest(f"{bearer}/{repository}:1", CREDENTIALS, ca_file=basic.files.ca_file) == digest
    assert token_service.requests == [
        {"service": SERVICE, "scope": f"repository:{repository}:pull", "authorization": "Basic"}
    ]


def test_bearer_an_access_token_field_is_taken_too(
    bearer: str, token_service: TokenService, pushed: tuple[str, str], basic: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(token_service, "token_field", "access_token")
    assert ps.manifest_digest(f"{bearer}/{pushed[0]}:1", CREDENTIALS, ca_file=basic.files.ca_file) == pushed[1]


def test_bearer_a_wrong_password_is_refused_by_the_token_service(
    bearer: str, token_service: TokenService, pushed: tuple[str, str], basic: Server
) -> None:
    wrong = reg.Credentials(USER, "wrong-Pa55word")
    error = _error_of(f"{bearer}/{pushed[0]}:1", wrong, ca_file=basic.files.ca_file)
    message = str(error)
    assert error.failure is reg.Failure.UNAUTHORIZED
    assert "token service 127.0.0.1:" in message and "incorrect username or password" in message
    assert f"credentials for {bearer} (user {USER}) are refused" in message
    _no_secret(message, "wrong-Pa55word", base64.b64encode(b"robot:wrong-Pa55word").decode())


def test_bearer_an_anonymous_token_grants_nothing_and_is_never_shown(
    bearer: str, token_service: TokenService, pushed: tuple[str, str], basic: Server
) -> None:
    token_service.requests.clear()
    error = _error_of(f"{bearer}/{pushed[0]}:1", None, ca_file=basic.files.ca_file)
    assert error.failure is reg.Failure.UNAUTHORIZED
    assert token_service.requests[-1]["authorization"] == ""  # asked anonymously
    assert f"the pull secret has no credentials for {bearer}" in str(error)
    _no_secret(str(error), token_service.issued[-1])


def test_bearer_a_missing_tag_is_not_found(bearer: str, pushed: tuple[str, str], basic: Server) -> None:
    error = _error_of(f"{bearer}/{pushed[0]}:no-such-tag", CREDENTIALS, ca_file=basic.files.ca_file)
    assert error.failure is reg.Failure.NOT_FOUND and "MANIFEST_UNKNOWN" in str(error)


def test_bearer_a_token_service_answer_without_token_is_named(
    bearer: str, token_service: TokenService, pushed: tuple[str, str], basic: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(token_service, "token_field", "nothing")
    error = _error_of(f"{bearer}/{pushed[0]}:1", CREDENTIALS, ca_file=basic.files.ca_file)
    assert error.failure is reg.Failure.OTHER and "answer has no token" in str(error)
