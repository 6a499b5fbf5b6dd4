"""The embedded registry on its own: a real docker-registry on 127.0.0.1, pushed to with skopeo (no cluster)."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import socket
import stat
import subprocess
import tarfile
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from localcluster import processes
from localcluster import registry as reg
from localcluster.errors import ClusterError
from localcluster.layout import StateLayout
from localcluster.paths import cache_dir
from localcluster.pki import ensure_ca
from localcluster.registry_client import parse_image

MISSING_TOOLS = [
    tool
    for tool, present in (
        (str(reg.REGISTRY_BINARY), reg.REGISTRY_BINARY.exists()),
        ("skopeo", shutil.which("skopeo") is not None),
        ("htpasswd", shutil.which("htpasswd") is not None),
    )
    if not present
]
needs_tools = pytest.mark.skipif(
    bool(MISSING_TOOLS), reason=f"not installed: {', '.join(MISSING_TOOLS)} (.ci/setup installs them)"
)


@dataclass(frozen=True)
class Server:
    """One running registry of this module: where it listens, its files, credentials and log."""

    host: str
    files: reg.RegistryFiles
    credentials: reg.Credentials
    record: processes.ProcessRecord


def blob_uploads(log_text: str, repository: str) -> int:
    """How many blob uploads the registry's access log shows for ``repository`` (each starts with a POST)."""
    return len(re.findall(rf'"POST /v2/{re.escape(repository)}/blobs/uploads/', log_text))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _small_oci_archive(path: Path) -> Path:
    """A one-layer OCI archive, for machines whose image cache is still empty."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        data = b"registry self-test\n"
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mtime = len(data), 1_700_000_000
        tar.addfile(info, io.BytesIO(data))
    layer_blob = layer.getvalue()
    layer_digest = "sha256:" + hashlib.sha256(layer_blob).hexdigest()
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [layer_digest]}}
    ).encode()
    blobs = {"config": config, "layer": layer_blob}
    digests = {key: "sha256:" + hashlib.sha256(blob).hexdigest() for key, blob in blobs.items()}
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digests["config"],
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digests["layer"],
                    "size": len(layer_blob),
                }
            ],
        }
    ).encode()
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": manifest_digest,
                    "size": len(manifest),
                }
            ],
        }
    ).encode()
    entries = {
        "oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
        "index.json": index,
        **{f"blobs/sha256/{d.removeprefix('sha256:')}": blobs[k] for k, d in digests.items()},
        f"blobs/sha256/{manifest_digest.removeprefix('sha256:')}": manifest,
    }
    with tarfile.open(path, "w") as tar:
        for name, blob in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smallest image archive of the build cache (read only), or a tiny one made here if it has none."""
    cached = sorted((cache_dir() / "images").glob("*.tar"), key=lambda p: p.stat().st_size)
    return cached[0] if cached else _small_oci_archive(tmp_path_factory.mktemp("archive") / "small.tar")


def _archive_manifest_digest(archive: Path) -> str:
    with tarfile.open(archive) as tar:
        member = tar.extractfile("index.json")
        assert member is not None
        digest: str = json.loads(member.read())["manifests"][0]["digest"]
        return digest


@contextmanager
def serving(name: str, config: Path, root: Path, host: str, ca_file: Path) -> Iterator[processes.ProcessRecord]:
    """docker-registry with ``config``, healthy (GET /v2/ answers 401) within 10 s; stopped by its pid."""
    record = processes.start(name, [str(reg.REGISTRY_BINARY), "serve", str(config)], root / "pids", root / "logs")
    try:
        deadline, answer = time.monotonic() + 10, ""
        while time.monotonic() < deadline:
            assert processes.is_alive(record), f"docker-registry exited:\n{processes.tail(record.log)}"
            healthy, answer = reg.probe(host, ca_file)
            if healthy:
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"docker-registry not healthy after 10s ({answer}):\n{processes.tail(record.log)}")
        yield record
    finally:
        processes.stop(record, root / "pids", grace=5)


@contextmanager
def basic_registry(root: Path) -> Iterator[Server]:
    """A docker-registry of our config (htpasswd, Basic auth) on 127.0.0.1 and a free port, with a test CA."""
    ensure_ca(root / "pki")
    files = reg.RegistryFiles(root / "config", root / "storage", root / "pki")
    host = f"127.0.0.1:{_free_port()}"
    credentials = reg.write_registry_files(files, host)
    with serving("registry", files.config, root, host, files.ca_file) as record:
        yield Server(host, files, credentials, record)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if MISSING_TOOLS:
        pytest.skip(f"not installed: {', '.join(MISSING_TOOLS)} (.ci/setup installs them)")
    with basic_registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture(scope="module")
def pushed(server: Server, archive: Path) -> tuple[str, str]:
    """(reference, digest) of the archive pushed once."""
    ref = f"{server.host}/geocube-acceptance/selftest:1"
    return ref, reg.push(archive, ref, server.files)


# ---- with a running registry -------------------------------------------------------------------
def test_v2_answers_401_without_credentials_and_200_with(server: Server) -> None:
    healthy, detail = reg.probe(server.host, server.files.ca_file)
    assert healthy and detail.startswith("HTTP 401") and 'Basic realm="' in detail
    assert reg.probe(server.host, server.files.ca_file, server.credentials) == (True, "HTTP 200")
    wrong = reg.Credentials(server.credentials.user, "not-the-password")
    assert reg.probe(server.host, server.files.ca_file, wrong)[0] is False


def test_a_push_returns_the_digest_the_registry_serves_and_the_archive_names(
    server: Server, archive: Path, pushed: tuple[str, str]
) -> None:
    ref, digest = pushed
    # --preserve-digests: no recompression, so the registry holds the very manifest containerd imports.
    assert digest == _archive_manifest_digest(archive)
    assert reg.manifest_digest(ref, *reg.pull_credentials(server.files), ca_file=server.files.ca_file) == digest


def test_served_digest_says_which_manifest_a_tag_names_and_none_for_a_missing_tag(
    server: Server, pushed: tuple[str, str]
) -> None:
    ref, digest = pushed
    assert reg.served_digest(ref, server.files) == digest  # the push is skipped when this equals the archive's
    assert reg.served_digest(ref.replace(":1", ":never-pushed"), server.files) is None


def test_a_second_push_uploads_no_blob(server: Server, archive: Path, pushed: tuple[str, str]) -> None:
    ref, digest = pushed
    repository = parse_image(ref).repository
    before = server.record.log.read_text()
    assert blob_uploads(before, repository) >= 2  # the first push uploaded config and layer(s)
    started = time.monotonic()
    assert reg.push(archive, ref, server.files) == digest
    seconds = time.monotonic() - started
    after = server.record.log.read_text()[len(before) :]
    assert blob_uploads(after, repository) == 0, f"the second push uploaded blobs ({seconds:.2f}s):\n{after}"
    assert f'"HEAD /v2/{repository}/blobs/sha256:' in after  # it asked, and skipped what was there


def test_a_wrong_password_is_classified_unauthorized(server: Server, pushed: tuple[str, str]) -> None:
    with pytest.raises(reg.RegistryError) as caught:
        reg.manifest_digest(pushed[0], server.credentials.user, "wrong-password", ca_file=server.files.ca_file)
    assert caught.value.failure is reg.Failure.UNAUTHORIZED
    assert "UNAUTHORIZED" in str(caught.value) and server.host in str(caught.value)
    assert "wrong-password" not in str(caught.value)


def test_a_missing_tag_or_repository_is_not_found(server: Server, pushed: tuple[str, str]) -> None:
    user, password = reg.pull_credentials(server.files)
    # distribution 2.8 on a filesystem answers MANIFEST_UNKNOWN for an unknown repository too.
    for ref in (
        f"{server.host}/geocube-acceptance/selftest:no-such-tag",
        f"{server.host}/geocube-acceptance/no-such-image:1",
    ):
        with pytest.raises(reg.RegistryError) as caught:
            reg.manifest_digest(ref, user, password, ca_file=server.files.ca_file)
        assert caught.value.failure is reg.Failure.NOT_FOUND
        assert "MANIFEST_UNKNOWN" in str(caught.value) and "push the image first" in str(caught.value)


def test_another_ca_is_classified_tls(server: Server, pushed: tuple[str, str], tmp_path: Path) -> None:
    ensure_ca(tmp_path / "other-pki")
    user, password = reg.pull_credentials(server.files)
    with pytest.raises(reg.RegistryError) as caught:
        reg.manifest_digest(pushed[0], user, password, ca_file=tmp_path / "other-pki" / "ca.crt")
    assert caught.value.failure is reg.Failure.TLS
    assert "certificate verify failed" in str(caught.value)


def test_a_closed_port_is_an_unknown_registry(server: Server) -> None:
    user, password = reg.pull_credentials(server.files)
    ref = f"127.0.0.1:{_free_port()}/geocube-acceptance/selftest:1"
    with pytest.raises(reg.RegistryError) as caught:
        reg.manifest_digest(ref, user, password, ca_file=server.files.ca_file, timeout=3)
    assert caught.value.failure is reg.Failure.UNKNOWN_REGISTRY
    assert "connection refused" in str(caught.value)
    assert reg.probe(ref.split("/")[0], server.files.ca_file)[0] is False


def test_a_refused_push_names_image_registry_cause_and_fix(server: Server, archive: Path, tmp_path: Path) -> None:
    files = reg.RegistryFiles(tmp_path / "config", server.files.storage, server.files.pki)
    files.config_dir.mkdir()
    shutil.copyfile(server.files.policy, files.policy)
    reg.write_cert_dir(files)
    reg.write_auth_file(files, server.host, reg.Credentials(server.credentials.user, "wrong-password"))
    (files.password).write_text("wrong-password")  # what push masks in skopeo's words
    with pytest.raises(reg.RegistryError) as caught:
        reg.push(archive, f"{server.host}/geocube-acceptance/refused:1", files)
    message = str(caught.value)
    assert caught.value.failure is reg.Failure.UNAUTHORIZED
    assert archive.name in message and server.host in message and "skopeo said:" in message and "Fix:" in message
    assert "wrong-password" not in message


def test_the_password_appears_in_no_log_argv_or_file_but_its_own(server: Server, pushed: tuple[str, str]) -> None:
    password = server.credentials.password
    assert password not in server.record.log.read_text()
    assert password not in " ".join(server.record.argv) and password not in repr(server.credentials)
    texts = {p.name: p.read_bytes() for p in server.files.config_dir.rglob("*") if p.is_file()}
    assert [name for name, text in texts.items() if password.encode() in text] == ["password"]


# ---- files, without a registry -----------------------------------------------------------------
@needs_tools
def test_credentials_are_made_once_kept_private_and_never_on_a_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = reg.RegistryFiles(tmp_path / "config", tmp_path / "storage", tmp_path / "pki")
    calls: list[list[str]] = []
    real_run = subprocess.run

    def spy(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(list(argv))
        return real_run(argv, **kwargs)  # type: ignore[call-overload, no-any-return]

    monkeypatch.setattr(subprocess, "run", spy)
    first = reg.ensure_credentials(files)
    assert len(first.password) >= 32 and first.user == reg.REGISTRY_USER
    assert stat.S_IMODE(files.password.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.htpasswd.stat().st_mode) == 0o600
    assert files.htpasswd.read_text().startswith(f"{reg.REGISTRY_USER}:$2y$")  # bcrypt
    assert reg.ensure_credentials(files) == first  # reused, htpasswd only verified
    assert reg.pull_credentials(files) == (first.user, first.password)
    assert calls and all(first.password not in " ".join(argv) for argv in calls)
    files.htpasswd.unlink()
    assert reg.ensure_credentials(files) == first and files.htpasswd.exists()


def test_pull_credentials_without_a_password_says_what_to_run(tmp_path: Path) -> None:
    files = reg.RegistryFiles(tmp_path / "config", tmp_path / "storage", tmp_path / "pki")
    with pytest.raises(ClusterError, match="cluster up"):
        reg.pull_credentials(files)


@needs_tools
def test_the_config_is_distributions_with_tls_htpasswd_and_no_debug_server(tmp_path: Path) -> None:
    files = reg.RegistryFiles(tmp_path / "config", tmp_path / "storage", tmp_path / "pki")
    reg.write_registry_files(files)
    config = yaml.safe_load(files.config.read_text())
    assert config["version"] == 0.1 and config["log"]["level"] == "info"
    assert config["storage"]["filesystem"]["rootdirectory"] == str(files.storage)
    assert config["storage"]["delete"] == {"enabled": True}
    assert config["http"]["addr"] == reg.REGISTRY_HOST == "10.207.0.1:5443" and "debug" not in config["http"]
    assert config["http"]["tls"]["certificate"] == str(files.pki / "registry.crt")
    assert config["auth"] == {"htpasswd": {"realm": reg.REALM, "path": str(files.htpasswd)}}
    assert reg.registry_argv(files) == ["/usr/bin/docker-registry", "serve", str(files.config)]
    auth = json.loads(files.auth_file.read_text())
    assert list(auth["auths"]) == [reg.REGISTRY_HOST]
    assert stat.S_IMODE(files.auth_file.stat().st_mode) == 0o600
    assert (files.cert_dir / "ca.crt").read_bytes() == (files.pki / "ca.crt").read_bytes()


def test_the_default_files_are_state_for_config_and_cache_for_storage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEOCUBE_ACCEPTANCE_CACHE", "/c")
    files = reg.RegistryFiles.of(StateLayout(Path("/s")))
    assert (files.config_dir, files.storage, files.ca_file) == (
        Path("/s/registry"),
        Path("/c/registry"),
        Path("/s/pki/ca.crt"),
    )
    assert reg.REPOSITORY_PREFIX == "10.207.0.1:5443/geocube-acceptance"


def test_containerd_trusts_the_cluster_ca_for_the_registry_host(tmp_path: Path) -> None:
    layout = StateLayout(tmp_path)
    hosts_dir = reg.write_containerd_registry_hosts(layout)
    hosts = tomllib.loads((hosts_dir / "10.207.0.1:5443" / "hosts.toml").read_text())
    # The server's CA too: containerd falls back from the [host] to the server (x509 for a 404 without it).
    ca = str(tmp_path / "pki/ca.crt")
    assert hosts == {
        "server": "https://10.207.0.1:5443",
        "ca": ca,
        "host": {"https://10.207.0.1:5443": {"capabilities": ["pull", "resolve"], "ca": ca}},
    }
    section = tomllib.loads(reg.containerd_registry_section(layout))
    assert section == {"plugins": {"io.containerd.grpc.v1.cri": {"registry": {"config_path": str(hosts_dir)}}}}


# ---- pure classification -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("stderr", "failure"),
    [
        ("Error: ... unauthorized: authentication required", reg.Failure.UNAUTHORIZED),
        ("x509: certificate signed by unknown authority", reg.Failure.TLS),
        ("dial tcp 127.0.0.1:1: connect: connection refused", reg.Failure.UNKNOWN_REGISTRY),
        ("lookup nowhere.invalid: no such host", reg.Failure.UNKNOWN_REGISTRY),
        ("Error: no space left on device", reg.Failure.OTHER),
    ],
)
def test_classify_skopeo_names_the_cause(stderr: str, failure: reg.Failure) -> None:
    assert reg.classify_skopeo(stderr) is failure


def test_a_push_to_a_reference_without_a_registry_is_refused(tmp_path: Path) -> None:
    # Without a host the reference is Docker Hub's: the embedded registry's password must never go there.
    files = reg.RegistryFiles(tmp_path / "config", tmp_path / "storage", tmp_path / "pki")
    with pytest.raises(ClusterError, match="names no registry"):
        reg.push(tmp_path / "image.tar", "geocube-acceptance/pause:1", files)
