"""The stack package's exception types: few and flat; each message says what, the bound, what was seen, a fix."""

from __future__ import annotations

from geocube_acceptance.errors import AcceptanceError


class StackError(AcceptanceError):
    """Base class: the reference stack could not be built, rendered or deployed."""


class GoBuildError(StackError):
    """A Go binary could not be built; the message holds the exact ``go`` error. Never replaced by a stand-in."""


class ModuleError(StackError):
    """The Geocube Go module (sources, SQL, protos) could not be located in the Go module cache."""
