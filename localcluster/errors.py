"""The embedded cluster's exception types: few, flat, and each message finishes the debugging."""

from __future__ import annotations

from geocube_acceptance.errors import AcceptanceError


class ClusterError(AcceptanceError):
    """Base class: something about the embedded cluster is wrong; the message says what and how to fix it."""


class PreflightError(ClusterError):
    """The machine cannot run the embedded cluster (raised before anything is started)."""


class BuildError(ClusterError):
    """A component could not be built from the Go module proxy."""


class StartupError(ClusterError):
    """A component was started but did not become healthy in time."""
