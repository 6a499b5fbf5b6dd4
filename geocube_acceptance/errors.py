"""The one base of every error this project raises on purpose.

Each package has its own root under it — ``localcluster.errors.ClusterError``, ``geocube_stack.errors.StackError``,
``reports.errors.ReportError``, ``fixtures.errors.HarnessError`` — and each message finishes the debugging (the
cause, the bound, what was seen, the fix). So a caller that only needs "it failed, and why" catches
``AcceptanceError`` and shows the message, never a traceback; anything else is a bug of the suite.
"""

from __future__ import annotations


class AcceptanceError(Exception):
    """Base of the project's deliberate errors: the message is for the user, complete without a traceback."""
