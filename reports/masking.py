"""Secret masking for everything the report writes.

Masking happens twice: when the run record is written (so ``run.json`` itself is safe to publish) and
again when a format is rendered (so a hand-edited or older record cannot leak through a renderer).
Keys are matched by name; free text (failure messages, tracebacks, evidence strings) by a few patterns
plus the literal values registered with :meth:`Masker.add_secret`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "********"

# "pass" alone would also hide keys such as "passed_checks"; better a false positive on "token_count"
# than a leaked credential, so the list errs on the side of masking.
_SECRET_WORDS = r"password|passwd|passphrase|pwd|secret|token|api[-_]?key|credential|private[-_]?key|access[-_]?key"
_SECRET_KEY_RE = re.compile(rf"({_SECRET_WORDS})", re.IGNORECASE)

_TEXT_PATTERNS: tuple[re.Pattern[str], ...] = (
    # scheme://user:password@host
    re.compile(r"(?P<pre>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:)(?P<secret>[^@\s/]+)(?P<post>@)"),
    # Authorization: Bearer xyz / Basic xyz
    re.compile(r"(?P<pre>\b(?:Bearer|Basic)\s+)(?P<secret>[A-Za-z0-9._~+/=-]{4,})"),
    # password=xyz, "db_password": "xyz", PGPASSWORD=xyz, --api-key xyz is handled by mask_argv
    re.compile(
        rf"(?P<pre>[\"']?[\w.-]*(?:{_SECRET_WORDS})[\w.-]*[\"']?\s*[=:]\s*[\"']?)"
        r"(?P<secret>[^\s\"',;&}\])]+)",
        re.IGNORECASE,
    ),
)


def is_secret_key(key: str) -> bool:
    """Whether a mapping key names a secret (``db_password``, ``API_TOKEN``, ``client-secret``...)."""
    return bool(_SECRET_KEY_RE.search(key))


class Masker:
    """Masks secrets by key name, by text pattern and by registered literal value."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        for secret in secrets:
            self.add_secret(secret)

    def add_secret(self, value: str) -> None:
        """Register a literal secret value; every occurrence in any text is masked.

        Very short values are refused because masking "ab" everywhere would shred the report
        without protecting anything.
        """
        if len(value) < 4:
            raise ValueError(
                f"refusing to register a secret of {len(value)} characters for masking: values shorter "
                "than 4 characters would mask unrelated text; mask the key holding it instead"
            )
        self._secrets.add(value)

    def text(self, text: str) -> str:
        """Return ``text`` with secret-looking fragments replaced by the mask."""
        # Longest first so that a secret containing another one is masked whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        for pattern in _TEXT_PATTERNS:
            text = pattern.sub(_replace_secret_group, text)
        return text

    def value(self, value: Any, *, key: str | None = None) -> Any:
        """Return a masked deep copy of a JSON-like value.

        A value stored under a secret-looking key is replaced whole (``None`` is kept, so "not set" stays
        visible); strings elsewhere go through :meth:`text`.
        """
        if key is not None and is_secret_key(key) and value is not None:
            return MASK
        if isinstance(value, Mapping):
            return {str(k): self.value(v, key=str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value

    def argv(self, args: Iterable[str]) -> list[str]:
        """Mask a command line: ``--db-password=x`` and ``--db-password x`` both lose their value."""
        out: list[str] = []
        mask_next = False
        for arg in args:
            if mask_next:
                out.append(MASK)
                mask_next = False
                continue
            if arg.startswith("-") and is_secret_key(arg):
                if "=" in arg:
                    name = arg.split("=", 1)[0]
                    out.append(f"{name}={MASK}")
                else:
                    out.append(arg)
                    mask_next = True
                continue
            out.append(self.text(arg))
        return out


def _replace_secret_group(match: re.Match[str]) -> str:
    post = match.groupdict().get("post") or ""
    return f"{match.group('pre')}{MASK}{post}"


DEFAULT_MASKER = Masker()


def mask_text(text: str) -> str:
    """Mask secret-looking fragments of ``text`` by pattern (no registered literals)."""
    return DEFAULT_MASKER.text(text)


def mask_value(value: Any, *, key: str | None = None) -> Any:
    """Mask a JSON-like value by key names and text patterns (no registered literals)."""
    return DEFAULT_MASKER.value(value, key=key)


def mask_argv(args: Iterable[str]) -> list[str]:
    """Mask a command line by option names and text patterns (no registered literals)."""
    return DEFAULT_MASKER.argv(args)
