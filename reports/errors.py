"""The reports package's error root: a record, catalogue, register, evidence or report setting that cannot be used."""

from __future__ import annotations

from geocube_acceptance.errors import AcceptanceError


class ReportError(AcceptanceError):
    """Base of the reports package's errors; the message names the file or setting and the fix."""
