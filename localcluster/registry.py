"""The embedded cluster's private registry: the CNCF distribution server, behind TLS and htpasswd.

Images reach the node by a push into this registry and an ordinary pull (issue #14) instead of
``ctr images import``, so a run exercises what a real cluster does: the pull path, a pull Secret,
and digests that a check can compare. The server listens on the bridge address, which containerd
(host network) and pods reach alike, and only there. Its storage is in the build cache, so pushes stay
incremental across ``down``; its config, password and certificate are in the cluster state.

Nothing here starts a process: the cluster starts :func:`registry_argv` like its other components.
The password is never put on a command line (``ps`` shows those) nor in a message: ``htpasswd`` reads it
on stdin, skopeo from an auth file, and our own requests send it in a header.
Requests go through :mod:`localcluster.registry_client`, whose ``Credentials``, ``Failure`` and
``RegistryError`` are named here too, for who asks the embedded registry.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from localcluster.errors import ClusterError
from localcluster.image_spec import REF_PREFIX
from localcluster.layout import NODE_IP, Below, StateLayout, default_layout
from localcluster.paths import registry_storage_dir
from localcluster.pki import Identity, issue
from localcluster.registry_client import Credentials as Credentials
from localcluster.registry_client import (
    DigestMismatchError,
    auth_token,
    basic_authorization,
    classify,
    http_get,
    https_opener,
    mask,
    names_registry,
    parse_image,
)
from localcluster.registry_client import Failure as Failure
from localcluster.registry_client import RegistryError as RegistryError
from localcluster.registry_client import manifest_digest as ask_manifest_digest

REGISTRY_BINARY = Path("/usr/bin/docker-registry")  # Debian's docker-registry: distribution 2.8
REGISTRY_PORT = 5443
REGISTRY_HOST = f"{NODE_IP}:{REGISTRY_PORT}"
REGISTRY_USER = "geocube-acceptance"
# Images are named ``<REPOSITORY_PREFIX>/<name>:<tag>``.
REPOSITORY_PREFIX = f"{REGISTRY_HOST}/geocube-acceptance"
REALM = "geocube-acceptance registry"

IDENTITY = Identity(
    stem="registry",
    common_name="geocube-acceptance-registry",
    dns_names=("localhost",),
    ip_addresses=(NODE_IP, "127.0.0.1"),
    server=True,
    client=False,
)

_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


_FIXES = {
    Failure.UNAUTHORIZED: (
        "the registry loads its htpasswd once, at start: the password given must be the one in "
        "<state>/registry/password when it started (restart the registry after changing it)"
    ),
    Failure.NOT_FOUND: "push the image first (localcluster.registry.push), or correct the repository name or tag",
    Failure.UNKNOWN_REGISTRY: (
        "is the registry running and is the host:port right? `geocube-acceptance cluster status` shows it"
    ),
    Failure.TLS: (
        "the registry's certificate must be issued by the CA used to verify it (<state>/pki/ca.crt); "
        "after a new CA, delete <state>/pki/registry.crt and .key so that they are issued again"
    ),
    Failure.OTHER: "read the registry's log (<state>/logs/registry.log) for the request",
}


@dataclass(frozen=True)
class RegistryFiles:
    """Where one registry keeps its files: config and secrets, blob storage, and the PKI it is issued from."""

    config_dir: Path
    storage: Path
    pki: Path

    @classmethod
    def of(cls, layout: StateLayout) -> RegistryFiles:
        """The embedded cluster's registry: config under ``<state>/registry``, storage ``<cache>/registry``."""
        return cls(layout.registry, registry_storage_dir(), layout.pki)

    config = Below("config_dir", "config.yml")
    password = Below("config_dir", "password")
    htpasswd = Below("config_dir", "htpasswd")
    # containers-auth.json(5) for skopeo: {"auths": {host: {"auth": base64(user:password)}}}.
    auth_file = Below("config_dir", "auth.json")
    # A Docker certs.d-style directory (ca.crt) for skopeo's --dest-cert-dir.
    cert_dir = Below("config_dir", "certs")
    # skopeo's trust policy: the archives are our own builds, so any is accepted (no system file needed).
    policy = Below("config_dir", "policy.json")
    ca_file = Below("pki", "ca.crt")


# ---- files -------------------------------------------------------------------------------------
def _write_private(path: Path, data: bytes) -> None:
    """Write a secret readable by its owner only, from the first byte on, and atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


def _run_htpasswd(args: list[str], password: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("htpasswd") is None:
        raise ClusterError(
            "htpasswd is not installed: the registry's password file needs it (apt-get install apache2-utils)"
        )
    # -i: the password comes on stdin, never on the command line.
    return subprocess.run(["htpasswd", "-i", *args], input=password, capture_output=True, text=True, timeout=30)


def _htpasswd_accepts(htpasswd: Path, user: str, password: str) -> bool:
    if not htpasswd.exists():
        return False
    return _run_htpasswd(["-v", str(htpasswd), user], password).returncode == 0


def _write_htpasswd(htpasswd: Path, user: str, password: str) -> None:
    """bcrypt (-B), the only hash distribution accepts; written beside and renamed, so never half a file."""
    tmp = htpasswd.with_name(htpasswd.name + ".tmp")
    tmp.unlink(missing_ok=True)
    result = _run_htpasswd(["-B", "-c", str(tmp), user], password)
    if result.returncode != 0:
        raise ClusterError(
            f"htpasswd could not write {tmp}: {result.stderr.strip()}; check that the directory is writable"
        )
    tmp.chmod(0o600)
    os.replace(tmp, htpasswd)


def ensure_credentials(files: RegistryFiles, user: str = REGISTRY_USER) -> Credentials:
    """The registry's password, made on first use and reused after; the htpasswd is rewritten if it disagrees.

    Reused, because the registry loads its htpasswd only at start and pull Secrets already in the
    cluster carry the password: a new one would lock both out.
    """
    files.config_dir.mkdir(parents=True, exist_ok=True)
    files.config_dir.chmod(0o700)
    password = files.password.read_text().strip() if files.password.exists() else ""
    if not password:
        password = secrets.token_urlsafe(24)
        _write_private(files.password, password.encode())
    if not _htpasswd_accepts(files.htpasswd, user, password):
        _write_htpasswd(files.htpasswd, user, password)
    return Credentials(user, password)


def pull_credentials(files: RegistryFiles | None = None) -> tuple[str, str]:
    """(user, password) for a pull Secret; never makes a new password (the running registry would refuse it)."""
    files = files or RegistryFiles.of(default_layout())
    if not files.password.exists():
        raise ClusterError(
            f"the registry has no password yet ({files.password} is missing): it is made when the registry's "
            "files are written; run `geocube-acceptance cluster up` first"
        )
    return REGISTRY_USER, files.password.read_text().strip()


def write_auth_file(files: RegistryFiles, host: str, credentials: Credentials) -> Path:
    """skopeo's auth file for ``host`` (mode 0600): the password reaches skopeo without a command line."""
    auths = {"auths": {host: {"auth": auth_token(credentials)}}}
    _write_private(files.auth_file, json.dumps(auths, indent=1).encode())
    return files.auth_file


def write_cert_dir(files: RegistryFiles) -> Path:
    """The cluster CA as ``certs/ca.crt``, the layout skopeo's ``--dest-cert-dir`` reads."""
    files.cert_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(files.ca_file, files.cert_dir / "ca.crt")
    return files.cert_dir


def registry_config(files: RegistryFiles, addr: str) -> dict[str, object]:
    """distribution 2.8's configuration (its docs/configuration.md); ``addr`` is ``host:port`` to listen on."""
    cert, key = issue(files.pki, IDENTITY)
    return {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text", "fields": {"service": "geocube-acceptance-registry"}},
        "storage": {
            "filesystem": {"rootdirectory": str(files.storage)},
            # Lets a test or a janitor delete manifests by digest.
            "delete": {"enabled": True},
            "cache": {"blobdescriptor": "inmemory"},
        },
        # No ``debug`` key: the debug server (metrics, pprof) stays off.
        "http": {
            "addr": addr,
            "tls": {"certificate": str(cert), "key": str(key), "minimumtls": "tls1.2"},
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        },
        # The htpasswd must exist before start: if missing, distribution makes a user and prints its password.
        "auth": {"htpasswd": {"realm": REALM, "path": str(files.htpasswd)}},
    }


def write_registry_config(files: RegistryFiles, addr: str = REGISTRY_HOST) -> Path:
    """Write ``config.yml`` (after the htpasswd it names, see :func:`ensure_credentials`)."""
    if not files.htpasswd.exists():
        raise ClusterError(f"{files.htpasswd} is missing: call ensure_credentials before writing the registry config")
    files.storage.mkdir(parents=True, exist_ok=True)
    files.config.write_text(yaml.safe_dump(registry_config(files, addr), sort_keys=False))
    return files.config


def write_registry_files(files: RegistryFiles, addr: str = REGISTRY_HOST) -> Credentials:
    """Everything the registry and its clients need, in order: password, htpasswd, certificate, auth, config."""
    issue(files.pki, IDENTITY)  # the CA too, on first use: the cert dir copies it
    credentials = ensure_credentials(files)
    write_cert_dir(files)
    write_auth_file(files, addr, credentials)
    files.policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    write_registry_config(files, addr)
    return credentials


def registry_argv(files: RegistryFiles) -> list[str]:
    return [str(REGISTRY_BINARY), "serve", str(files.config)]


def write_containerd_registry_hosts(layout: StateLayout, host: str = REGISTRY_HOST) -> Path:
    """containerd's hosts directory with ``<host>/hosts.toml`` trusting the cluster CA; returns the directory.

    containerd's CRI reads it through ``[plugins."io.containerd.grpc.v1.cri".registry] config_path``
    (see :func:`containerd_registry_section`); credentials come from the pod's pull Secret.
    """
    path = layout.containerd_registry_hosts / host / "hosts.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    # The CA twice: containerd 1.6 tries the [host] first and then falls back to the server, which needs
    # its own top-level ca, else a 404 (a missing tag) is reported as x509; a top-level ca alone is
    # ignored for pulls (both seen with ctr --hosts-dir).
    ca = layout.pki / "ca.crt"
    path.write_text(
        f'server = "https://{host}"\nca = "{ca}"\n\n'
        f'[host."https://{host}"]\n  capabilities = ["pull", "resolve"]\n  ca = "{ca}"\n'
    )
    return layout.containerd_registry_hosts


def containerd_registry_section(layout: StateLayout) -> str:
    """The lines of containerd's config that point its CRI at :func:`write_containerd_registry_hosts`."""
    return f'  [plugins."io.containerd.grpc.v1.cri".registry]\n    config_path = "{layout.containerd_registry_hosts}"\n'


# ---- requests ----------------------------------------------------------------------------------
def classify_skopeo(stderr: str) -> Failure:
    """The cause of a failed ``skopeo copy`` from its message (it exits 1 whatever happened)."""
    text = stderr.lower()
    if "unauthorized" in text or "authentication required" in text:
        return Failure.UNAUTHORIZED
    if "x509:" in text or "certificate" in text or "tls:" in text:
        return Failure.TLS
    if "connection refused" in text or "no such host" in text or "i/o timeout" in text:
        return Failure.UNKNOWN_REGISTRY
    if "manifest unknown" in text or "name unknown" in text:
        return Failure.NOT_FOUND
    return Failure.OTHER


def probe(host: str, ca_file: Path, credentials: Credentials | None = None, timeout: float = 3.0) -> tuple[bool, str]:
    """Health as the cluster's HEALTH poll wants it: ``GET /v2/`` answers 401 (up, guarded), or 200 with credentials."""
    expected = 200 if credentials else 401
    # distribution's htpasswd auth takes Basic credentials directly, without a token service.
    headers = {"Authorization": basic_authorization(credentials)} if credentials else {}
    try:
        status, answer_headers, _ = http_get(https_opener(ca_file), f"https://{host}/v2/", headers, timeout)
    except OSError as exc:
        diagnosis = classify(error=exc)
        return False, f"https://{host}/v2/: {diagnosis.failure.value}: {diagnosis.cause}"
    challenge = answer_headers.get("www-authenticate", "")
    detail = f"HTTP {status}" + (f" ({challenge})" if challenge else "")
    return status == expected, detail


def manifest_digest(ref: str, user: str, password: str, *, ca_file: Path | None = None, timeout: float = 10.0) -> str:
    """The digest of ``ref``'s manifest as this registry serves it (asked with :mod:`localcluster.registry_client`).

    Raises :class:`RegistryError` naming the cause (unauthorized, not found, unknown registry or TLS) and
    what to do about it here.
    """
    __tracebackhide__ = True
    ca_file = ca_file or default_layout().pki / "ca.crt"
    try:
        return ask_manifest_digest(ref, Credentials(user, password), ca_file=ca_file, timeout=timeout)
    except DigestMismatchError as err:
        raise RegistryError(
            f"the manifest of {ref} does not match its digest: the registry says {err.served}, its bytes hash to "
            f"{err.computed}. Fix: the registry's storage ({parse_image(ref).host}) is damaged; delete the "
            "repository and push again",
            Failure.OTHER,
        ) from None
    except RegistryError as err:
        raise RegistryError(f"{err}. Fix: {_FIXES[err.failure]}", err.failure) from None


# ---- push --------------------------------------------------------------------------------------
def registry_ref(built_ref: str) -> str:
    """The registry's name of an image the builder names ``localhost/geocube-acceptance/<name>:<tag>``."""
    if not built_ref.startswith(REF_PREFIX):
        raise ClusterError(f"{built_ref!r} is not an image of the builder (expected {REF_PREFIX}<name>:<tag>)")
    return f"{REPOSITORY_PREFIX}/{built_ref.removeprefix(REF_PREFIX)}"


def _environment() -> dict[str, str]:
    """skopeo's environment without proxies: a push to the bridge address must never leave the machine."""
    return {key: value for key, value in os.environ.items() if key not in _PROXY_VARIABLES}


def push_argv(files: RegistryFiles, archive: Path, ref: str, digestfile: Path, scratch: Path) -> list[str]:
    """skopeo's command line: credentials from the auth file, the CA from the cert dir, nothing secret."""
    return [
        "skopeo",
        f"--policy={files.policy}",
        f"--tmpdir={scratch}",
        "copy",
        "--retry-times=2",
        "--preserve-digests",
        "--dest-tls-verify=true",
        f"--dest-authfile={files.auth_file}",
        f"--dest-cert-dir={files.cert_dir}",
        f"--digestfile={digestfile}",
        f"oci-archive:{archive}",
        f"docker://{ref}",
    ]


def served_digest(ref: str, files: RegistryFiles | None = None) -> str | None:
    """The manifest digest the registry serves for ``ref``; None when it has no such tag (other failures raise)."""
    files = files or RegistryFiles.of(default_layout())
    user, password = pull_credentials(files)
    try:
        return manifest_digest(ref, user, password, ca_file=files.ca_file)
    except RegistryError as err:
        if err.failure == Failure.NOT_FOUND:
            return None
        raise


def push(archive: Path, ref: str, files: RegistryFiles | None = None, *, timeout: float = 900.0) -> str:
    """Copy an OCI archive to ``ref`` and return the manifest digest the registry stored.

    Incremental: skopeo asks for each blob with HEAD first and uploads only what the registry lacks.
    """
    __tracebackhide__ = True
    files = files or RegistryFiles.of(default_layout())
    if not names_registry(ref):
        raise ClusterError(f"image reference {ref!r} names no registry: expected host:port/name:tag")
    host = parse_image(ref).host
    if not archive.is_file():
        raise ClusterError(f"cannot push {archive} to {ref}: no such archive; build the image first")
    if shutil.which("skopeo") is None:
        raise ClusterError("skopeo is not installed: pushing images needs it (apt-get install skopeo)")
    password = files.password.read_text().strip() if files.password.exists() else ""
    files.config_dir.mkdir(parents=True, exist_ok=True)
    # Scratch beside the config: skopeo unpacks the archive there, and it goes even if skopeo is killed.
    with tempfile.TemporaryDirectory(dir=files.config_dir, prefix="push-") as scratch:
        digestfile = Path(scratch) / "digest"
        argv = push_argv(files, archive, ref, digestfile, Path(scratch))
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=_environment())
        except subprocess.TimeoutExpired:
            raise RegistryError(
                f"pushing {archive.name} to {ref} took more than {timeout:.0f}s; is the registry {host} "
                "answering? `geocube-acceptance cluster status`",
                Failure.UNKNOWN_REGISTRY,
            ) from None
        if result.returncode != 0 or not digestfile.exists():
            stderr = mask(result.stderr.strip(), password)
            failure = classify_skopeo(stderr)
            raise RegistryError(
                f"cannot push {archive.name} to {ref} (registry {host}): {failure.value}.\n"
                f"skopeo said: {stderr[-2000:]}\nFix: {_FIXES[failure]}",
                failure,
            )
        return digestfile.read_text().strip()
