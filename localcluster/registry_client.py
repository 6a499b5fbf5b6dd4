"""A registry's HTTP API (OCI distribution v2) as a client asks it: image references and manifest digests.

One client for every registry the project asks: the embedded cluster's own (htpasswd, Basic auth) and a
user's (Docker Hub, a company registry, often Bearer tokens from a token service). References are parsed
as Docker and containerd do; :func:`manifest_digest` asks anonymously first and answers the registry's
challenge, and a failure is classified (:class:`Failure`) with the registry's own words. What to do about
it is the caller's to say: the embedded registry and a user's pull Secret have different fixes.

Passwords and tokens never appear in a message or repr: :class:`Credentials` hides its password and
every message is masked. Standard library only (no HTTP client library), so it runs wherever the suite does.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
import re
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from localcluster.errors import ClusterError

DOCKER_HUB = "docker.io"
# Docker Hub's images are named docker.io/..., but its API is served here (and its old names are aliases).
DOCKER_HUB_API = "registry-1.docker.io"
_DOCKER_HUB_ALIASES = frozenset({DOCKER_HUB, DOCKER_HUB_API, "index.docker.io", "registry.hub.docker.com"})

# What a manifest request accepts: the registry answers 404 for a manifest whose type is not listed.
MANIFEST_MEDIA_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)

# What a secret is replaced with in a message: reports.masking.MASK's text (localcluster imports no reports).
MASK = "********"

# Docker's reference grammar (distribution/reference), enough to refuse what no registry would serve.
# (Docker's \w is ASCII: spelt out, since Python's matches any letter.) Also the image builder's rules for names.
PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}")
_CHALLENGE_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]+))')


class Failure(enum.Enum):
    """Why a registry request failed, as far as the answer tells."""

    UNAUTHORIZED = "unauthorized"
    NOT_FOUND = "not found"
    UNKNOWN_REGISTRY = "unknown registry"
    TLS = "TLS"
    OTHER = "failed"


@dataclass(frozen=True)
class Diagnosis:
    """The classified cause of a failed request: the kind and the registry's own words."""

    failure: Failure
    cause: str


@dataclass(frozen=True)
class Credentials:
    """A registry user and password; the password stays out of every repr."""

    user: str
    password: str = field(repr=False)


class RegistryError(ClusterError):
    """A registry request or push failed; ``failure`` says why (unauthorized, not found, unknown registry, TLS)."""

    def __init__(self, message: str, failure: Failure) -> None:
        super().__init__(message)
        self.failure = failure


class DigestMismatchError(RegistryError):
    """A manifest's bytes do not hash to the digest the registry gives for them (its storage is damaged)."""

    def __init__(self, message: str, served: str, computed: str) -> None:
        super().__init__(message, Failure.OTHER)
        self.served, self.computed = served, computed


class ImageReferenceError(ClusterError):
    """An image reference that no registry would serve (the message says the form expected)."""


# ---- image references --------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageReference:
    """An image as the runtime resolves it: registry host, repository and tag or digest, Docker-normalised."""

    host: str
    repository: str
    reference: str

    @property
    def is_digest(self) -> bool:
        return ":" in self.reference

    def __str__(self) -> str:
        separator = "@" if self.is_digest else ":"
        return f"{self.host}/{self.repository}{separator}{self.reference}"


def _is_host(component: str) -> bool:
    # Docker's rule: a first component with a dot, a port or upper case (repositories are lower case) is a host.
    return "." in component or ":" in component or component == "localhost" or component != component.lower()


def names_registry(ref: str) -> bool:
    """Whether ``ref`` names its registry (``host[:port]/name``) rather than leaving it to Docker Hub."""
    first, slash, _ = ref.strip().partition("/")
    return bool(slash) and _is_host(first)


def valid_repository(name: str) -> bool:
    """Whether ``name`` (``a/b/c``, no host) is lower-case path components, as a registry requires."""
    return bool(name) and all(PATH_COMPONENT.fullmatch(part) for part in name.split("/"))


def parse_image(ref: str) -> ImageReference:
    """``ref`` normalised as Docker and containerd do: ``postgres:11`` is ``docker.io/library/postgres:11``.

    A digest wins over a tag (``name:tag@sha256:…`` pulls the digest), as the runtime does.
    """
    text = ref.strip()
    first, _, rest = text.partition("/")
    host, remainder = (first, rest) if names_registry(text) else (DOCKER_HUB, text)
    name, at, reference = remainder.partition("@")
    if at:
        if not _DIGEST.fullmatch(reference):
            raise _bad_image(ref, f"{reference!r} is not a digest (algorithm:hex, e.g. sha256:…)")
        tagged, colon, tag = name.rpartition(":")
        name = tagged if colon and "/" not in tag else name
    else:
        tagged, colon, tag = remainder.rpartition(":")
        name, reference = (tagged, tag) if colon and "/" not in tag else (remainder, "latest")
        if not TAG.fullmatch(reference):
            raise _bad_image(ref, f"the tag {reference!r} is not valid (letters, digits, '_', '.', '-'; 128 at most)")
    if not host or not valid_repository(name):
        raise _bad_image(ref, "the repository must be lower-case path components (letters, digits, '.', '_', '-')")
    host = normalise_host(host)
    if host == DOCKER_HUB and "/" not in name:
        name = f"library/{name}"  # Docker Hub's official images
    return ImageReference(host, name, reference)


def _bad_image(ref: str, problem: str) -> ImageReferenceError:
    return ImageReferenceError(
        f"image reference {ref!r} is malformed: {problem}. Fix: write it as [HOST[:PORT]/]NAME[:TAG|@sha256:DIGEST], "
        "e.g. postgres:11, bitnami/postgresql, registry.example.com:5000/team/app@sha256:…"
    )


def normalise_host(key: str) -> str:
    """A registry as Docker config keys name it (``https://index.docker.io/v1/``, ``host:5000``) → ``host[:port]``.

    Docker Hub's names (index.docker.io, registry-1.docker.io) are all ``docker.io``, the name images carry.
    A path after the host is dropped: credentials are matched by host only.
    """
    text = key.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    host = text.split("/", 1)[0].lower()
    return DOCKER_HUB if host in _DOCKER_HUB_ALIASES else host


def api_host(host: str) -> str:
    """Where ``host``'s registry API is served: Docker Hub's at registry-1.docker.io, any other at itself."""
    return DOCKER_HUB_API if normalise_host(host) == DOCKER_HUB else host


# ---- answers -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Challenge:
    """A ``WWW-Authenticate`` answer: the scheme (lower case) and its parameters (realm, service, scope…)."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)


def parse_challenge(header: str) -> Challenge:
    """``Bearer realm="…",service="…",scope="…"`` → Challenge("bearer", {...}); an empty header → scheme ''."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _CHALLENGE_PARAM.finditer(rest)
    }
    return Challenge(scheme.lower(), params)


def _error_codes(body: bytes) -> str:
    """The registry's error list (``{"errors": [{"code", "message"}]}``) as one line."""
    try:
        errors = json.loads(body).get("errors") or []
        return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors if isinstance(e, dict))
    except (ValueError, AttributeError):
        return body.decode(errors="replace").strip()[:200]


def classify(status: int | None = None, body: bytes = b"", error: BaseException | None = None) -> Diagnosis:
    """Name the cause of a failed request from its HTTP status and body, or from the exception it raised."""
    if error is not None:
        reason = error.reason if isinstance(error, urllib.error.URLError) else error
        if isinstance(reason, ssl.SSLCertVerificationError):
            return Diagnosis(Failure.TLS, f"certificate verify failed: {reason.verify_message}")
        if isinstance(reason, ssl.SSLError):
            return Diagnosis(Failure.TLS, f"TLS handshake failed: {reason.reason or reason}")
        if isinstance(reason, ConnectionRefusedError):
            return Diagnosis(Failure.UNKNOWN_REGISTRY, "connection refused: nothing listens on that port")
        if isinstance(reason, socket.gaierror):
            return Diagnosis(Failure.UNKNOWN_REGISTRY, f"unknown host: {reason.strerror}")
        if isinstance(reason, TimeoutError):
            return Diagnosis(Failure.UNKNOWN_REGISTRY, "no answer (timed out)")
        if isinstance(reason, OSError):
            return Diagnosis(Failure.UNKNOWN_REGISTRY, f"cannot connect: {reason.strerror or reason}")
        return Diagnosis(Failure.OTHER, str(reason))
    codes = _error_codes(body)
    if status == 401:
        return Diagnosis(Failure.UNAUTHORIZED, codes or "HTTP 401")
    if status == 404:
        return Diagnosis(Failure.NOT_FOUND, codes or "HTTP 404")
    return Diagnosis(Failure.OTHER, f"HTTP {status}" + (f": {codes}" if codes else ""))


def _details(body: bytes) -> str:
    """A token service's own words: ``{"details": …}`` (Docker Hub) or OAuth's ``error_description``."""
    try:
        answer = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(answer, dict):
        return ""
    words = [answer.get(key) for key in ("details", "message", "error", "error_description")]
    return "; ".join(str(w) for w in words if isinstance(w, str) and w)[:200]


def _diagnose(status: int, body: bytes) -> Diagnosis:
    """:func:`classify`, with 403 (GHCR's and ECR's DENIED) as unauthorized and a token service's words."""
    diagnosis = classify(status, body)
    words = _details(body) if diagnosis.cause in (f"HTTP {status}", "") else ""
    cause = f"{diagnosis.cause}: {words}" if words else diagnosis.cause
    return Diagnosis(Failure.UNAUTHORIZED if status == 403 else diagnosis.failure, cause)


def mask(text: str, *hidden: str) -> str:
    """``text`` with each of ``hidden`` (passwords, tokens) replaced by :data:`MASK`."""
    for value in hidden:
        if value:
            text = text.replace(value, MASK)
    return text


# ---- requests ----------------------------------------------------------------------------------
def auth_token(credentials: Credentials) -> str:
    """base64 of ``user:password``: Basic auth's token, and a Docker config's ``auth``."""
    return base64.b64encode(f"{credentials.user}:{credentials.password}".encode()).decode()


def basic_authorization(credentials: Credentials) -> str:
    return f"Basic {auth_token(credentials)}"


def https_opener(ca_file: Path | None) -> urllib.request.OpenerDirector:
    """HTTPS verified by the system trust store plus ``ca_file``, and never through a proxy.

    Never a proxy, whatever HTTPS_PROXY says: the answer must be the registry's own, from this machine, as
    close as we can to what the nodes see; and a registry on a private address must not be sent elsewhere.
    """
    context = ssl.create_default_context()
    if ca_file is not None:  # beside the system's, as a node that trusts a private CA still trusts public ones
        context.load_verify_locations(cafile=str(ca_file))
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))


def http_get(
    opener: urllib.request.OpenerDirector, url: str, headers: Mapping[str, str], timeout: float
) -> tuple[int, dict[str, str], bytes]:
    """(status, lower-cased headers, body): HTTP errors are answers; connection and TLS errors raise OSError."""
    request = urllib.request.Request(url, method="GET")
    for name, value in headers.items():
        # Authorization is "unredirected": a redirect (to blob storage, say) must not carry the credentials.
        if name == "Authorization":
            request.add_unredirected_header(name, value)
        else:
            request.add_header(name, value)
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as answer:
        with answer:
            return answer.code, {k.lower(): v for k, v in answer.headers.items()}, answer.read()


@dataclass
class _Query:
    """One manifest query: the image, where it is asked, and what no message may show."""

    image: ImageReference
    ref: str
    credentials: Credentials | None
    timeout: float
    opener: urllib.request.OpenerDirector
    hidden: list[str] = field(default_factory=list)

    @property
    def host(self) -> str:
        return api_host(self.image.host)

    def get(self, url: str, headers: Mapping[str, str], what: str) -> tuple[int, dict[str, str], bytes]:
        try:
            return http_get(self.opener, url, headers, self.timeout)
        except (OSError, ssl.SSLError) as exc:
            raise self.error(classify(error=exc), what) from None

    def error(self, diagnosis: Diagnosis, what: str = "") -> RegistryError:
        where = f" ({what})" if what else ""
        normalised = f" ({self.image})" if str(self.image) != self.ref else ""
        message = (
            f"cannot read the manifest of {self.ref}{normalised} from the registry {self.host}{where}: "
            f"{diagnosis.failure.value} ({diagnosis.cause})"
        )
        return RegistryError(mask(message, *self.hidden), diagnosis.failure)


def _token(query: _Query, challenge: Challenge) -> str:
    """A Bearer token from the challenge's realm: with Basic credentials if we have them, anonymous otherwise."""
    realm = challenge.params.get("realm", "")
    parts = urllib.parse.urlsplit(realm)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise query.error(Diagnosis(Failure.OTHER, f"the Bearer challenge names no usable realm ({realm!r})"))
    if query.credentials is not None and parts.scheme != "https":
        # The token service would get the password in clear text.
        raise query.error(Diagnosis(Failure.OTHER, f"the token service {realm} is plain HTTP; credentials not sent"))
    scope = challenge.params.get("scope") or f"repository:{query.image.repository}:pull"
    wanted = {key: value for key, value in (("service", challenge.params.get("service")), ("scope", scope)) if value}
    url = realm + ("&" if parts.query else "?") + urllib.parse.urlencode(wanted)
    headers = {}
    if query.credentials is not None:
        headers["Authorization"] = basic_authorization(query.credentials)
    what = f"token service {parts.netloc}"
    status, _, body = query.get(url, headers, what)
    if status != 200:
        raise query.error(_diagnose(status, body), what)
    try:
        answer = json.loads(body)
        token = answer.get("token") or answer.get("access_token")
    except (ValueError, AttributeError):
        token = None
    if not isinstance(token, str) or not token:
        raise query.error(Diagnosis(Failure.OTHER, "the token service's answer has no token"), what)
    query.hidden.append(token)
    return token


def manifest_digest(
    ref: str, credentials: Credentials | None, *, ca_file: Path | None = None, timeout: float = 10.0
) -> str:
    """The digest of ``ref``'s manifest as its registry serves it, asked with ``credentials`` (or none).

    Asks anonymously first and answers the registry's challenge: Basic credentials, or a Bearer token from
    its token service (Docker Hub, Harbor, GitLab…). Raises :class:`RegistryError` naming the image, the
    registry and its own words, but no fix (the caller knows what it is for), and no password or token;
    :class:`ImageReferenceError` for a malformed ``ref``.
    """
    __tracebackhide__ = True
    image = parse_image(ref)
    query = _Query(image, ref, credentials, timeout, https_opener(ca_file))
    if credentials is not None:
        query.hidden += [credentials.password, auth_token(credentials)]
    url = f"https://{query.host}/v2/{image.repository}/manifests/{image.reference}"
    accept = {"Accept": ", ".join(MANIFEST_MEDIA_TYPES)}
    status, headers, body = query.get(url, accept, "")
    if status == 401:
        challenge = parse_challenge(headers.get("www-authenticate", ""))
        if challenge.scheme == "bearer":
            authorization = f"Bearer {_token(query, challenge)}"
        elif challenge.scheme == "basic" and credentials is not None:
            authorization = basic_authorization(credentials)
        else:
            raise query.error(_diagnose(status, body))
        status, headers, body = query.get(url, {**accept, "Authorization": authorization}, "")
    if status != 200:
        raise query.error(_diagnose(status, body))
    computed = "sha256:" + hashlib.sha256(body).hexdigest()
    served = headers.get("docker-content-digest", computed)
    if served != computed and served.startswith("sha256:"):
        cause = f"the registry says {served}, the manifest's bytes hash to {computed}"
        said = query.error(Diagnosis(Failure.OTHER, cause))
        raise DigestMismatchError(str(said), served, computed)
    if image.is_digest and served != image.reference and served.split(":")[0] == image.reference.split(":")[0]:
        raise query.error(Diagnosis(Failure.OTHER, f"asked for {image.reference}, the registry served {served}"))
    return served
