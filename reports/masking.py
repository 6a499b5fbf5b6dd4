"""The one masker: secrets are hidden in everything the harness prints or writes.

Three complementary rules:

* **by name**: a value is secret when its key/parameter/option name says so (:func:`is_secret_name`);
* **by shape**: free text is searched for credentials in URLs (``scheme://user:pass@``), ``Authorization``
  and ``Bearer`` headers, and assignments ``NAME=value``, ``NAME: value``, ``"name": "value"`` and
  ``--name=value`` whose NAME is secret;
* **by value**: literal values registered with :meth:`Masker.add_secret` (a generated password, the
  secret template parameters) are masked wherever they appear, their base64 form (as stored in Secret
  objects) too.

The fixtures mask diagnostics, error messages and the pytest header with it; the report masks the run
record when it is written and again when a format is rendered (so a hand-edited or older record cannot
leak through a renderer).

A few deliberate trade-offs, all erring on the side of masking: ``X_PASSWORD: used`` in prose loses the
word "used" (it has the shape of a YAML or log line that carries a password); ``token_count=3`` is
masked. Words that merely *contain* "pass" or "key" (``passed_checks``, ``monkey``, ``keyName``) stay
readable, and so do the Kubernetes fields that only *reference* a secret by name (``secretName``,
``secretKeyRef``'s ``key``): diagnosis needs to know which secret, never what it holds.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "********"

# Shorter literals would mask unrelated text everywhere ("1", "ok", "abc"); such "secrets" are only
# masked by name and shape.
MIN_SECRET_LENGTH = 4

# A name is secret when one of its words contains one of these...
_SECRET_PARTS = ("password", "passwd", "passphrase", "secret", "token", "credential")
# ...or when one of its words *is* one of these, unless the next word says it only names one (keyName).
_SECRET_WORDS = frozenset({"pwd", "key", "keys", "apikey", "apikeys", "privatekey", "accesskey"})
_NAMING_WORDS = frozenset({"name", "names", "ref", "refs", "directory"})  # GeoTIFF's GeoKeyDirectory
# Words of a name: split at anything but letters and digits, and at camelCase humps (dbPassword, apiKey).
_WORD_BOUNDARY = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")

# Kubernetes fields that name a secret (or a key in it) rather than hold one: readable for diagnosis.
REFERENCE_FIELDS = frozenset({"key", "secretName", "keyName", "secretKeyRef", "secretRef", "imagePullSecrets"})

_URL_PASSWORD = re.compile(r"(?P<pre>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:)[^@\s/]+(?=@)")
_AUTHORIZATION = re.compile(
    r"(?P<pre>\b(?i:authorization)[\"']?[ \t]*[:=][ \t]*(?i:bearer|basic|token|digest|negotiate)[ \t]+)"
    r"[^\s\"',;]+"
)
_BEARER = re.compile(r"(?P<pre>\b(?i:bearer)[ \t]+)[A-Za-z0-9._~+/=-]{4,}")
# The left-hand side of an assignment; whether its value is masked depends on the name (see _assignments).
_ASSIGNMENT_HEAD = re.compile(r"(?<![\w.-])(?P<quote>[\"']?)(?P<name>-{0,2}[A-Za-z_][\w.-]*)(?P=quote)[ \t]*[=:][ \t]*")
# The value: a quoted string (masked whole, quotes kept) or one bare word. A nested structure
# ("password:" then a new line, "{", "[") is not a value: its own keys decide.
_ASSIGNMENT_VALUE = re.compile(r"\"(?P<dq>[^\"\n]+)\"|'(?P<sq>[^'\n]+)'|(?P<bare>[^\s\"',;&}\])\[{][^\s\"',;&}\])]*)")


def is_secret_name(name: str) -> bool:
    """Whether a key, parameter, env var or option names a secret value.

    ``POSTGRES_PASSWORD``, ``PGPASSWORD``, ``db-pwd``, ``API_KEY``, ``apiKey``, ``SERVICE_ACCOUNT_KEY``,
    ``client_secret``, ``--api-token`` are; ``keyName``, ``GeoKeyDirectory``, ``monkey``, ``passed_checks``,
    ``POSTGRES_USER``, ``SERVER_IMAGE``, ``NAMESPACE`` are not.
    """
    words = [w.lower() for w in _WORD_BOUNDARY.split(name) if w]
    for index, word in enumerate(words):
        if any(part in word for part in _SECRET_PARTS):
            return True
        following = words[index + 1] if index + 1 < len(words) else ""
        if word in _SECRET_WORDS and following not in _NAMING_WORDS:
            return True
    return False


def _masks_field(key: str) -> bool:
    return key not in REFERENCE_FIELDS and is_secret_name(key)


class Masker:
    """Masks secrets by name, by text shape and by registered literal value (see the module docstring)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._literal: re.Pattern[str] | None = None
        for secret in secrets:
            self.add_secret(secret)

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> Masker:
        """A masker that knows every value whose parameter name is secret."""
        return cls(value for name, value in params.items() if is_secret_name(name))

    @property
    def secrets(self) -> frozenset[str]:
        """The registered literal values (for handing them to another masker)."""
        return frozenset(self._secrets)

    def add_secret(self, value: str) -> bool:
        """Mask every occurrence of ``value`` (and of its base64 form) from now on; True if registered.

        A value shorter than :data:`MIN_SECRET_LENGTH` is not registered (False): masking "ab" everywhere
        would shred the output without protecting anything, and a secret read from a live stack must never
        crash a run. It is still masked wherever its name or shape gives it away.
        """
        if len(value.strip()) < MIN_SECRET_LENGTH:
            return False
        if value not in self._secrets:
            self._secrets.add(value)
            self._literal = None
        return True

    def text(self, text: str) -> str:
        """``text`` with registered values, URL passwords, auth headers and secret assignments masked."""
        literal = self._literal_pattern()
        if literal is not None:
            text = literal.sub(MASK, text)
        text = _URL_PASSWORD.sub(_keep_pre, text)
        text = _AUTHORIZATION.sub(_keep_pre, text)
        text = _BEARER.sub(_keep_pre, text)
        return _assignments(text)

    def value(self, value: Any, *, key: str | None = None) -> Any:
        """A masked deep copy of JSON-like data (``key``: the name it is stored under, if any).

        Under a secret key, scalars are replaced whole (``None`` and booleans are kept: "not set" and
        ``automountServiceAccountToken: false`` are facts, not credentials), lists item by item, and
        mappings are walked, their own keys deciding. A ``kind: Secret`` has all its ``data``/``stringData``
        masked; an env entry ``{name: SECRET_NAME, value: ...}`` its value. Other strings go through
        :meth:`text`.
        """
        if isinstance(value, Mapping):
            return self._mapping_node(value)
        if isinstance(value, list | tuple):
            return [self.value(item, key=key) for item in value]
        if value is None or isinstance(value, bool):
            return value
        if key is not None and _masks_field(key):
            return MASK
        return self.text(value) if isinstance(value, str) else value

    def obj(self, body: Any) -> Any:
        """A masked deep copy of a Kubernetes object (dict); the object to apply is left untouched."""
        return self.value(body)

    def named(self, name: str, value: str) -> str:
        """The value of a parameter or setting: masked whole if ``name`` is secret, else as :meth:`text`."""
        return MASK if is_secret_name(name) else self.text(value)

    def mapping(self, values: Mapping[str, str]) -> dict[str, str]:
        """A copy of a name→value mapping (parameters, settings) with secret-named values masked whole."""
        return {name: self.named(name, value) for name, value in values.items()}

    def argv(self, args: Iterable[str]) -> list[str]:
        """Mask a command line: ``--db-password=x`` and ``--db-password x`` both lose their value."""
        out: list[str] = []
        mask_next = False
        for arg in args:
            if mask_next:
                out.append(MASK)
                mask_next = False
                continue
            name, sep, _ = arg.partition("=")
            if arg.startswith("-") and is_secret_name(name):
                out.append(f"{name}={MASK}" if sep else arg)
                mask_next = not sep
                continue
            out.append(self.text(arg))
        return out

    def _mapping_node(self, node: Mapping[Any, Any]) -> dict[str, Any]:
        masked = {str(k): self.value(v, key=str(k)) for k, v in node.items()}
        if node.get("kind") == "Secret":
            for field in ("data", "stringData"):
                if isinstance(masked.get(field), dict):
                    masked[field] = dict.fromkeys(masked[field], MASK)
        name = node.get("name")
        if isinstance(name, str) and isinstance(node.get("value"), str) and is_secret_name(name):
            masked["value"] = MASK
        return masked

    def _literal_pattern(self) -> re.Pattern[str] | None:
        if self._literal is None and self._secrets:
            variants = set(self._secrets)
            variants.update(base64.b64encode(s.encode()).decode() for s in self._secrets)
            # Longest first, so that a secret containing another one is masked whole.
            ordered = sorted(variants, key=len, reverse=True)
            self._literal = re.compile("|".join(re.escape(v) for v in ordered))
        return self._literal


def _keep_pre(match: re.Match[str]) -> str:
    return match.group("pre") + MASK


def _assignments(text: str) -> str:
    """Mask the value of every assignment whose name is secret, wherever it stands in ``text``.

    A scan rather than one ``re.sub``: the value of a harmless assignment must not swallow a secret one
    (``options: password=x``), so only secret values are skipped over.
    """
    out: list[str] = []
    pos = 0
    while (head := _ASSIGNMENT_HEAD.search(text, pos)) is not None:
        name = head.group("name").lstrip("-")
        value = _ASSIGNMENT_VALUE.match(text, head.end())
        if value is None or not _masks_field(name):
            out.append(text[pos : head.end()])
            pos = head.end()
            continue
        quote = '"' if value.group("dq") is not None else "'" if value.group("sq") is not None else ""
        out.append(text[pos : head.end()] + quote + MASK + quote)
        pos = value.end()
    out.append(text[pos:])
    return "".join(out)


DEFAULT_MASKER = Masker()


def mask_text(text: str) -> str:
    """Mask secret-looking fragments of ``text`` by shape (no registered literals)."""
    return DEFAULT_MASKER.text(text)


def mask_value(value: Any, *, key: str | None = None) -> Any:
    """Mask JSON-like data by key names and text shapes (no registered literals)."""
    return DEFAULT_MASKER.value(value, key=key)


def mask_argv(args: Iterable[str]) -> list[str]:
    """Mask a command line by option names and text shapes (no registered literals)."""
    return DEFAULT_MASKER.argv(args)
