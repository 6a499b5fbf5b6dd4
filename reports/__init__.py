"""The release sign-off report of an acceptance run (pytest plugin: ``reports.plugin``).

Public surface:

- ``incapable(reason)``: end a check as INCOMPLETE because the environment cannot perform it.
- ``ENVIRONMENT_LIMITATION``: the equivalent ``pytest.skip`` reason prefix.
- ``get_recorder(config)`` / ``RECORDER_KEY``: the session recorder (inventory, run id, secrets).
- ``RUN_ID_KEY`` / ``REPORT_DIR_KEY``: impose (before the session starts) or read the run id and the
  report base directory through ``config.stash``; imposed values win over ``--geocube-run-id``/``--geocube-report-dir``.
- ``get_evidence(item)`` and the ``evidence`` fixture: per-check evidence and diagnostics.
- ``waiting(what, timeout)``: console progress for long waits.

PYTEST_DONT_REWRITE: the pytest11 entry point makes pytest mark every top-level package of this
distribution for assertion rewriting; one imported before (a self-test, the command) would warn
"Module already imported", an error under filterwarnings=error. Checks are rewritten as test modules.
"""

from reports.console import waiting
from reports.evidence import Evidence, EvidenceError
from reports.model import ENVIRONMENT_LIMITATION, RecordError, RunRecord, Status, Verdict, load_record
from reports.plugin import RECORDER_KEY, REPORT_DIR_KEY, RUN_ID_KEY, get_evidence, get_recorder, incapable
from reports.recorder import ReportConfigError, RunRecorder

__all__ = [
    "ENVIRONMENT_LIMITATION",
    "RECORDER_KEY",
    "REPORT_DIR_KEY",
    "RUN_ID_KEY",
    "Evidence",
    "EvidenceError",
    "RecordError",
    "ReportConfigError",
    "RunRecord",
    "RunRecorder",
    "Status",
    "Verdict",
    "get_evidence",
    "get_recorder",
    "incapable",
    "load_record",
    "waiting",
]
