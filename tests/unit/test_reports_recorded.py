"""Reports built from recorded runs (tests/fixtures_data/recorded_runs), their history, and the CLI.

The records are real runs of the current suites (see that folder's README.md); the values below were read
from them. Each has ``hunter2-do-not-leak`` planted where a framework bug could leak it.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import xml.etree.ElementTree as ET
from html import escape
from pathlib import Path

import pytest

from reports import cli, history, junit, render_html, render_markdown
from reports.model import HistoryDiff, RecordError, RunRecord, Status, Verdict, load_record

RECORDED = Path(__file__).resolve().parents[1] / "fixtures_data" / "recorded_runs"
RUNS = ["01-pass", "02-fail", "03-flaky", "04-incomplete", "05-partial", "06-error"]
LEAKED = "hunter2-do-not-leak"

VERDICTS = {
    "01-pass": Verdict.PASS,
    "02-fail": Verdict.FAIL,
    "03-flaky": Verdict.FAIL,
    "04-incomplete": Verdict.INCOMPLETE,
    "05-partial": Verdict.PARTIAL,
    "06-error": Verdict.ERROR,
}
EXIT_CODES = {"01-pass": 0, "02-fail": 1, "03-flaky": 1, "04-incomplete": 2, "05-partial": 0, "06-error": 3}
"""What the run exited with, and what ``geocube-acceptance report`` returns for it."""

PASS_RUN_ID = "rec-pass"
FLAKY_RERUN_ID = "rec-flaky"
"""03-flaky is 01-pass with a failed first attempt added, under an id of its own (record.py --run-id)."""

# The requirement catalogue (suites/requirements.toml); everything applies to both profiles.
DATABASE = ["DB-PRIVILEGES", "DB-LEAST-PRIVILEGE", "DB-AUTH", "DB-CONN-LIMIT"]
MESSAGING = ["MSG-QUEUES", "MSG-TRANSPORT", "MSG-MALFORMED", "MSG-APP-PATH"]
AUTOSCALING = ["AS-SCALE-UP-DOWN", "AS-SHRINK-KEEPS-BUSY"]
STORAGE = ["STO-INGESTION", "STO-CANCELLED-JOBS"]
PLATFORM = ["PLAT-VERSION", "PLAT-WORKLOADS-READY", "PLAT-AUTOSCALER-RBAC", "PLAT-SERVICE-ACCOUNTS"]
CATALOGUE = [*DATABASE, *MESSAGING, *AUTOSCALING, *STORAGE, *PLATFORM]
COLLECTED = [*AUTOSCALING, *DATABASE, *MESSAGING, *PLATFORM, *STORAGE]  # the checks' order: by file, then line
SELECTED = {
    "01-pass": CATALOGUE,
    "02-fail": DATABASE,
    "03-flaky": CATALOGUE,
    "04-incomplete": CATALOGUE,
    "05-partial": STORAGE,
    "06-error": CATALOGUE,
}
JUNIT_TESTS = {name: len(ids) for name, ids in SELECTED.items()} | {"06-error": 17}  # + the render error's case

# Inventory.
KUBERNETES_VERSION = "v1.34.4"
NODE = "geocube-acceptance-node"
SUITE_COMMIT = "00e354ffcd492b9e58c606df0c20908122c23562"
SUITE_COMMIT_BEFORE = "442e54759da8afc6491c7966699bdff1bfc1fe54"  # 05-partial ran at the parent commit
PGQUEUE_LOCAL = "messaging=pgqueue, storage=local, access=port-forward"
PUBSUB_GS = "messaging=pubsub, storage=gs, access=port-forward"
POSTGIS = "sha256:8ebe9ff6327374e4d28f94e7e75ba554a2d9259821c65680c5fe0a8bda54c000"
SERVER = "sha256:13efc81985e00faef159f381b93c3d927d6375115ffb6efe5b8cecceae2c6913"
AUTOSCALER = "sha256:710246035adaccb56d0097159a8c73169137d31e52d0adcf3cc34fd6cd3ed598"
CONSOLIDATER = "sha256:e585b542c55a6be799c5bbe3f55f0e75b32d615387933360ff68a8de54556f65"
GCS_EMULATOR = "sha256:10685c565c666bc5dd69db85e50af464d8d8bdcc6eaa3d8b3d68b1ac1d84e5dd"
TOOLBOX = "sha256:e3aae6d16bcbe3b71bfc82d3c59fb78c99a708722dca277404884c752ecaf272"
PUBSUB_EMULATOR = "sha256:fccd6a01ce77b3c48f9e02dd8d082f557a32a5efd3a734cc16122eb7a95c7794"
NO_CONSOLIDATER_POD = "no pod running (configured image)"  # pgqueue runs scale the consolidaters back to 0
PGQUEUE_DIGESTS = [SERVER, AUTOSCALER, POSTGIS]
PUBSUB_DIGESTS = [SERVER, AUTOSCALER, CONSOLIDATER, GCS_EMULATOR, TOOLBOX, POSTGIS, PUBSUB_EMULATOR]
INVENTORY = {  # profile, suite commit, image digests; None: not reported (the render error came first)
    "01-pass": (PGQUEUE_LOCAL, SUITE_COMMIT, PGQUEUE_DIGESTS),
    "02-fail": (PGQUEUE_LOCAL, SUITE_COMMIT, PGQUEUE_DIGESTS),
    "03-flaky": (PGQUEUE_LOCAL, SUITE_COMMIT, PGQUEUE_DIGESTS),
    "04-incomplete": (PUBSUB_GS, SUITE_COMMIT, PUBSUB_DIGESTS),
    "05-partial": (PGQUEUE_LOCAL, SUITE_COMMIT_BEFORE, PGQUEUE_DIGESTS),
    "06-error": (PGQUEUE_LOCAL, SUITE_COMMIT, None),
}
PHASES = {name: ["build", "deploy"] for name in RUNS} | {"06-error": ["build"]}

# The failure, the flaky check, the limitation, the known defect and the render error.
CONN_LIMIT = "suites/database/test_database.py::test_connection_limit_is_1024_and_enforced"
CONN_LIMIT_MESSAGE = "AssertionError: max_connections is 100; the install guide requires 1024"
CONN_LIMIT_DIAGNOSTICS = (
    "diagnostics/suites_database_test_database.py_test_connection_limit_is_1024_and_enforced/cluster"
)
MASKED_DSN = "postgresql://geocube:********@postgis.geocube-e2e.svc:5432/geocube"
TRANSPORT = "suites/messaging/test_messaging.py::test_messages_are_delivered"
TRANSPORT_NAME = TRANSPORT.split("::")[1]
FLAKY_FAILURE = "the consolidations message was not delivered within 30 s (simulated first attempt)"
LIMITATION = (
    "ENVIRONMENT-LIMITATION: with Pub/Sub messaging the autoscaler reads the backlog from Cloud Monitoring "
    "(num_undelivered_messages), which the Pub/Sub emulator does not provide: scaling cannot be observed."
)
INCOMPLETE_BADGE = '<span class="badge s-incomplete">INCOMPLETE</span>'
KNOWN_DEFECT = "GEOCUBE-ROLLBACK-UNWRITTEN-CONTAINER"
DEFECT_NOTE = f"known defect(s) of the system under test observed (see Known defects): {KNOWN_DEFECT}"
RENDER_ERROR = "API_SERVER_REPLICAS: used at base/apiserver.yaml:35"

# History keys (reports.history.comparison_key).
CLUSTER = "https://10.207.0.1:6443 (context geocube-acceptance)"
ALL = "all applicable requirements"


def recorded(name: str) -> RunRecord:
    return load_record(RECORDED / f"{name}.json")


def md_section(markdown: str, title: str) -> str:
    """The body of the Markdown section ``## title`` (up to the next ``## ``)."""
    start = markdown.index(f"\n## {title}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end != -1 else None]


def md_first_cells(table: str) -> list[str]:
    return re.findall(r"^\| ([^|]+?) \|", table, flags=re.MULTILINE)


def copy_run(name: str, base: Path) -> Path:
    """A run directory (``base/NAME``) holding a copy of the recorded run ``NAME``."""
    target = base / name
    target.mkdir()
    shutil.copy(RECORDED / f"{name}.json", target / "run.json")
    return target


@pytest.fixture
def run_dir(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """A run directory holding a copy of the recorded run named by the test's ``run_dir`` parameter."""
    return copy_run(getattr(request, "param", "02-fail"), tmp_path)


@pytest.mark.parametrize("name", RUNS)
def test_recorded_run_verdict_and_content(name: str) -> None:
    record = recorded(name)
    verdict = VERDICTS[name]
    assert record.verdict is verdict
    assert record.exit_status == verdict.exit_code == EXIT_CODES[name]  # the run exited with its verdict
    markdown = render_markdown.render(record)
    html = render_html.render(record)
    xml = junit.render(record)
    assert "## Verdict: " in markdown and verdict.label in markdown
    assert f'<section class="verdict {verdict.value}" id="verdict"><h2>{verdict.label}</h2>' in html

    # Every requirement the run selected has its row, as each renderer prints it; no other row.
    assert sorted(t.requirement_id or "" for t in record.tests) == sorted(SELECTED[name])
    requirements = md_section(markdown, "Requirements")
    assert sorted(md_first_cells(requirements)[1:]) == sorted(SELECTED[name])  # [0] is the header
    for requirement in SELECTED[name]:
        assert f"| {requirement} |" in requirements
        assert f"<b>{requirement}</b>" in html
    assert sorted(re.findall(r'<tr class="req \w+"><td><b>([^<]+)</b>', html)) == sorted(SELECTED[name])

    # Inventory: Kubernetes version, node, every image digest, profile, suite commit.
    profile, commit, digests = INVENTORY[name]
    assert record.inventory["profile"] == profile
    for text in (markdown, html):
        assert profile in text and commit in text
    if digests is None:
        assert "kubernetes" not in record.inventory and "images" not in record.inventory
        assert "- Kubernetes version: not reported" in markdown
        assert "<tr><th>Kubernetes version</th><td>not reported</td></tr>" in html
    else:
        recorded_digests = [i["digest"] for i in record.inventory["images"] if i["digest"].startswith("sha256:")]
        assert sorted(recorded_digests) == sorted(digests)
        assert f"- Kubernetes version: {KUBERNETES_VERSION}" in markdown
        assert f"<tr><th>Kubernetes version</th><td>{KUBERNETES_VERSION}</td></tr>" in html
        for text in (markdown, html):
            assert NODE in text
            for digest in digests:
                assert digest in text
        if profile == PGQUEUE_LOCAL:
            assert NO_CONSOLIDATER_POD in markdown and NO_CONSOLIDATER_POD in html

    # Phases outside the checks.
    assert [p.name for p in record.phases] == PHASES[name]
    for phase in PHASES[name]:
        assert f"| {phase} | passed |" in markdown
        assert f"<tr><td>{phase}</td><td>passed</td>" in html

    # The planted secret: masked in the parameters and the command line, and nowhere in clear.
    for text in (markdown, html, xml):
        assert LEAKED not in text, "an unmasked secret of the recorded run reached a rendered report"
    assert "| POSTGRES_PASSWORD | ******** |" in markdown
    assert "--set POSTGRES_PASSWORD=********" in markdown and "--set POSTGRES_PASSWORD=********" in html

    root = ET.fromstring(xml)
    assert root.attrib["tests"] == str(JUNIT_TESTS[name])
    properties = {p.attrib["name"]: p.attrib["value"] for p in root.iter("property")}
    assert properties["verdict"] == verdict.label
    assert properties["profile"] == profile and properties["suite_commit"] == commit


@pytest.mark.parametrize("name", RUNS)
def test_coverage_names_every_catalogue_requirement(name: str) -> None:
    record = recorded(name)
    assert [r.id for r in record.catalogue or []] == CATALOGUE
    markdown = render_markdown.render(record)
    html = render_html.render(record)
    coverage = md_section(markdown, "Coverage")
    assert md_first_cells(coverage) == ["Requirement", *CATALOGUE]
    assert '<h2 id="coverage">Coverage</h2>' in html
    for requirement in CATALOGUE:
        assert f"<tr><td><code>{requirement}</code></td>" in html
    left_out = [r for r in CATALOGUE if r not in SELECTED[name]]
    assert coverage.count("| NOT SELECTED (outside the paths given) |") == len(left_out)
    assert html.count("<td>NOT SELECTED (outside the paths given)</td>") == len(left_out)
    if name == "06-error":
        assert coverage.count("| NOT RUN |") == len(CATALOGUE)


def test_pass_report_shows_the_known_defect_with_its_evidence() -> None:
    record = recorded("01-pass")
    assert record.verdict_reasons == ["all 16 applicable requirements ran and passed", DEFECT_NOTE]
    [defect] = record.known_defects
    assert defect.id == KNOWN_DEFECT and defect.observed and defect.requirement_id == "STO-CANCELLED-JOBS"
    assert defect.evidence is not None and "failed to remove file" in defect.evidence
    markdown = render_markdown.render(record)
    html = render_html.render(record)
    section = md_section(markdown, "Known defects observed")
    assert f"### {KNOWN_DEFECT} — observed" in section
    assert defect.evidence in section  # the log line that shows it
    assert '<h2 id="known-defects">Known defects observed</h2>' in html
    assert f"<h3>{KNOWN_DEFECT} — observed</h3>" in html
    assert f"<pre>{escape(defect.evidence)}</pre>" in html
    properties = {p.attrib["name"]: p.attrib["value"] for p in ET.fromstring(junit.render(record)).iter("property")}
    assert properties[f"known_defect.{KNOWN_DEFECT}"] == "observed"


def test_fail_report_shows_message_evidence_and_diagnostics_links() -> None:
    record = recorded("02-fail")
    assert record.verdict_reasons == [
        "1 failed: DB-CONN-LIMIT",
        "12 requirement(s) not collected (outside the paths given): "
        + ", ".join(r for r in CATALOGUE if r not in DATABASE),
    ]
    markdown = render_markdown.render(record)
    html = render_html.render(record)
    assert f"**{CONN_LIMIT_MESSAGE}" in markdown and f"<p><b>{CONN_LIMIT_MESSAGE}" in html
    assert "max_connections=100; superuser_reserved_connections=3" in markdown
    assert "<li><b>max_connections</b>: 100</li>" in html
    assert f"- [diagnostics]({CONN_LIMIT_DIAGNOSTICS})" in md_section(markdown, "Failures")
    assert f'<a href="{CONN_LIMIT_DIAGNOSTICS}">diagnostics</a>' in html
    # The DSN in the traceback keeps its shape, without the password.
    assert MASKED_DSN in markdown and MASKED_DSN in html
    [case] = [c for c in ET.fromstring(junit.render(record)).iter("testcase") if c.find("failure") is not None]
    assert case.attrib["classname"] == "suites.database.test_database"
    assert case.attrib["name"] == "test_connection_limit_is_1024_and_enforced"
    failure = case.find("failure")
    assert failure is not None and failure.attrib["message"].startswith(CONN_LIMIT_MESSAGE)
    assert MASKED_DSN in (failure.text or "")


def test_flaky_report_lists_attempts_and_is_never_passed() -> None:
    record = recorded("03-flaky")
    flaky = next(t for t in record.tests if t.requirement_id == "MSG-TRANSPORT")
    assert flaky.status is Status.FLAKY and flaky.nodeid == TRANSPORT
    assert [a.status for a in flaky.attempts] == [Status.FAILED, Status.PASSED]
    assert record.verdict_reasons == ["1 flaky: MSG-TRANSPORT", DEFECT_NOTE]
    markdown = render_markdown.render(record)
    html = render_html.render(record)
    assert "Attempts: #1 FAIL, #2 PASS" in markdown and "<p>Attempts: #1 FAIL, #2 PASS</p>" in html
    assert re.search(r"^\| MSG-TRANSPORT \|.*\| FLAKY \|", markdown, flags=re.MULTILINE)
    assert "### MSG-TRANSPORT — FLAKY" in md_section(markdown, "Failures")
    assert FLAKY_FAILURE in markdown and FLAKY_FAILURE in html
    case = next(c for c in ET.fromstring(junit.render(record)).iter("testcase") if c.attrib["name"] == TRANSPORT_NAME)
    failure = case.find("failure")
    assert failure is not None and failure.attrib["type"] == "flaky"
    properties = {p.attrib["name"]: p.attrib["value"] for p in case.iter("property")}
    assert properties["attempts"] == "failed,passed"


def test_incomplete_report_explains_the_limitation_and_draws_no_chart() -> None:
    record = recorded("04-incomplete")
    assert record.verdict_reasons == [f"2 environment not capable: {', '.join(AUTOSCALING)}"]
    assert record.known_defects == []  # the cancelled job's rollback is clean on gs://
    incomplete = [t for t in record.tests if t.status is Status.INCOMPLETE]
    assert [t.requirement_id for t in incomplete] == AUTOSCALING
    # Both stopped in setup, before observing anything: there is no timeline to chart.
    assert all(t.timelines == {} and t.phases["setup"] == "incomplete" for t in incomplete)
    markdown = render_markdown.render(record)
    html = render_html.render(record)
    not_verified = md_section(markdown, "Not verified")
    for requirement in AUTOSCALING:
        assert f"| {requirement} | INCOMPLETE | {LIMITATION}" in not_verified
        assert f"<tr><td>{requirement}</td><td>{INCOMPLETE_BADGE}</td><td>{LIMITATION}" in html
    assert "## Known defects observed" not in markdown and 'id="known-defects"' not in html
    # No observation is no chart, never a line at zero.
    assert "No timeline was recorded in this run." in html
    assert 'class="timeline-chart"' not in html and "series-pods" not in html and "series-backlog" not in html
    skipped = [c.find("skipped") for c in ET.fromstring(junit.render(record)).iter("testcase")]
    limitations = [s for s in skipped if s is not None and s.attrib["type"] == "environment-limitation"]
    assert len(limitations) == 2 and all(s.attrib["message"].startswith(LIMITATION) for s in limitations)


def test_pass_report_charts_both_scaling_timelines() -> None:
    record = recorded("01-pass")
    html = render_html.render(record)
    timelines = {t.requirement_id: list(t.timelines) for t in record.tests if t.timelines}
    assert timelines == {
        "AS-SCALE-UP-DOWN": ["consolidater pods"],
        "AS-SHRINK-KEEPS-BUSY": ["consolidater pods (shrink with busy pods)"],
    }
    for [name] in timelines.values():
        assert f'<svg class="timeline-chart" data-timeline="{escape(name)}"' in html
    assert html.count('<svg class="timeline-chart"') == 2
    assert html.count('class="series-pods"') >= 2 and html.count('class="series-backlog"') >= 2
    # The first sample read the backlog but no pod count yet: a gap, not a zero.
    assert all(t.timelines[n][0]["pods"] is None for t in record.tests for n in t.timelines)
    assert html.count("gaps: no observation") == 2


def test_partial_report_names_the_requirements_left_out() -> None:
    record = recorded("05-partial")
    left_out = [r for r in CATALOGUE if r not in STORAGE]
    assert len(left_out) == 14
    assert record.verdict_reasons == [
        "all 2 selected checks passed, but this is not a sign-off:",
        f"14 requirement(s) not collected (outside the paths given): {', '.join(left_out)}",
        DEFECT_NOTE,
    ]
    markdown = render_markdown.render(record)
    assert "## Verdict: ◐ PARTIAL" in markdown
    assert f"- 14 requirement(s) not collected (outside the paths given): {', '.join(left_out)}" in markdown
    assert f"### {KNOWN_DEFECT} — observed" in markdown


def test_error_report_shows_the_render_error_in_every_format() -> None:
    record = recorded("06-error")
    [error] = record.session_errors
    assert error.phase == "render" and RENDER_ERROR in error.message
    assert {t.status for t in record.tests} == {Status.UNRUN}
    # One line per reason (the report shows the message whole in its own section), the fix included.
    assert record.verdict_reasons[0].startswith("render failed: manifest templates under /tmp/error-manifests")
    assert RENDER_ERROR in record.verdict_reasons[0]
    assert "Fix: pass each with --set NAME=VALUE" in record.verdict_reasons[0]
    assert record.verdict_reasons[1] == f"16 check(s) could not run because of it: {', '.join(COLLECTED)}"
    markdown = render_markdown.render(record)
    html = render_html.render(record)
    assert "### The run stopped: render failed" in markdown and RENDER_ERROR in markdown
    assert '<section class="session-error" id="session-error-render">' in html and RENDER_ERROR in html
    root = ET.fromstring(junit.render(record))
    assert root.attrib["errors"] == "1" and root.attrib["skipped"] == "16"
    session = [c for c in root.iter("testcase") if c.attrib["classname"] == "geocube-acceptance.session"]
    assert [c.attrib["name"] for c in session] == ["render"]
    failure = session[0].find("error")
    assert failure is not None and failure.attrib["type"] == "session"
    assert RENDER_ERROR in (failure.text or "")


@pytest.mark.parametrize("name", RUNS)
def test_html_is_self_contained(name: str) -> None:
    html = render_html.render(recorded(name))
    assert "<script" not in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "Content-Security-Policy" in html and "<style>" in html
    assert html.count('<svg class="timeline-chart"') == (2 if name in ("01-pass", "03-flaky") else 0)


def test_history_replay_of_recorded_runs(tmp_path: Path) -> None:
    diffs: dict[str, HistoryDiff] = {}
    markdown: dict[str, str] = {}
    for name in RUNS:
        record = recorded(name)
        record.history = diffs[name] = history.update(tmp_path, record)
        markdown[name] = render_markdown.render(record)

    # Each run is compared with the last earlier one of the same key (cluster, profile, selection), if any.
    full = {"cluster": CLUSTER, "profile": PGQUEUE_LOCAL, "selection": ALL}
    compared = {
        name: (diff.key, diff.previous_run_id, diff.previous_verdict, diff.incomparable_runs)
        for name, diff in diffs.items()
    }
    assert compared == {
        # The first run of the history.
        "01-pass": (full, None, None, 0),
        # The database suite alone is another selection, so it is not compared with 01-pass.
        "02-fail": ({**full, "selection": ",".join(sorted(DATABASE))}, None, None, 1),
        # The same key as 01-pass, so compared with it.
        "03-flaky": (full, PASS_RUN_ID, "PASS", 1),
        # Another profile; another selection. Neither is compared with anything.
        "04-incomplete": ({**full, "profile": PUBSUB_GS}, None, None, 3),
        "05-partial": ({**full, "selection": ",".join(sorted(STORAGE))}, None, None, 4),
        # Every check was selected (none could run), so it is compared with the last full run, 03-flaky.
        "06-error": (full, FLAKY_RERUN_ID, "FAIL", 3),
    }

    # 02-fail: nothing to compare with.
    fail = diffs["02-fail"]
    assert fail.newly_failing == [CONN_LIMIT]  # failing in its first comparable run
    assert fail.fixed == fail.still_failing == fail.slower == []
    assert all(len(series) == 1 for series in fail.durations.values())  # no trend without a comparable run

    # 03-flaky, compared with 01-pass: a flaky check is flaky, not newly failing.
    flaky = diffs["03-flaky"]
    assert flaky.flaky == [TRANSPORT]
    assert flaky.newly_failing == flaky.fixed == flaky.still_failing == []
    assert flaky.new_tests == flaky.removed_tests == flaky.slower == []
    assert len(flaky.durations) == 16 and flaky.durations[TRANSPORT] == [0.044, 0.044]  # same durations: a copy

    # 05-partial: nothing to compare with.
    assert diffs["05-partial"].newly_failing == []

    # 06-error, compared with 03-flaky: nothing ran, so nothing is newly failing or fixed and there is no
    # duration to follow.
    error = diffs["06-error"]
    assert error.newly_failing == error.fixed == error.still_failing == error.flaky == []
    assert error.durations == {}

    # The reports say what was and was not compared.
    assert "1 earlier run(s) of another cluster, profile or selection not compared." in markdown["02-fail"]
    assert "First comparable run in this history." in markdown["02-fail"]
    assert f"Previous comparable run: {PASS_RUN_ID} (verdict PASS)" in markdown["03-flaky"]
    assert f"**Flaky in this run** (1):\n- `{TRANSPORT}`" in markdown["03-flaky"]
    assert "### Duration trend (oldest → this run)" in markdown["03-flaky"]
    assert "4 earlier run(s) of another cluster, profile or selection not compared." in markdown["05-partial"]

    entries, corrupt = history.read(tmp_path / history.HISTORY_FILE)
    assert [e["verdict"] for e in entries] == ["PASS", "FAIL", "FAIL", "INCOMPLETE", "PARTIAL", "ERROR"]
    assert corrupt == 0
    assert LEAKED not in (tmp_path / history.HISTORY_FILE).read_text()


def test_history_never_compares_a_run_with_itself(tmp_path: Path) -> None:
    """A record written again under the same run id is the same run, not a rerun to compare with."""
    history.update(tmp_path, recorded("01-pass"))
    diff = history.update(tmp_path, dataclasses.replace(recorded("03-flaky"), run_id=PASS_RUN_ID))
    assert (diff.previous_run_id, diff.incomparable_runs) == (None, 0)
    assert diff.flaky == [TRANSPORT] and diff.newly_failing == []


def test_history_skips_corrupt_lines(tmp_path: Path) -> None:
    path = tmp_path / history.HISTORY_FILE
    path.write_text('{"truncated": \nnot json\n')
    diff = history.update(tmp_path, recorded("01-pass"))
    assert diff.previous_run_id is None and diff.incomparable_runs == 0
    entries, corrupt = history.read(path)
    assert len(entries) == 1 and corrupt == 2


@pytest.mark.parametrize("name", RUNS)
def test_cli_report_exits_with_the_runs_verdict(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = copy_run(name, tmp_path)
    assert cli.main(["report", str(run_dir)]) == EXIT_CODES[name] == VERDICTS[name].exit_code
    assert f"verdict: {VERDICTS[name].label}" in capsys.readouterr().out
    for report in ("report.md", "report.html", "junit.xml"):
        assert LEAKED not in (run_dir / report).read_text()


@pytest.mark.parametrize("run_dir", ["01-pass"], indirect=True)
def test_cli_regenerates_every_format_from_run_json(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["report", str(run_dir)]) == 0
    for name in ("report.md", "report.html", "junit.xml"):
        assert (run_dir / name).is_file()
    assert "SIGN-OFF PASS" in (run_dir / "report.md").read_text()
    assert "verdict: SIGN-OFF PASS" in capsys.readouterr().out
    assert load_record(run_dir) == recorded("01-pass")  # regenerating does not rewrite the record


@pytest.mark.parametrize("run_dir", ["01-pass"], indirect=True)
def test_cli_records_sign_off_in_run_json_and_reports(run_dir: Path) -> None:
    assert cli.main(["report", str(run_dir), "--approver", "Ada Lovelace", "--comment", "release 1.4.0"]) == 0
    data = json.loads((run_dir / "run.json").read_text())
    [signoff] = data["signoffs"]
    assert signoff["approver"] == "Ada Lovelace" and signoff["comment"] == "release 1.4.0"
    assert signoff["verdict"] == "PASS"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", signoff["timestamp"])
    assert "Ada Lovelace" in (run_dir / "report.html").read_text()
    assert "| Ada Lovelace |" in (run_dir / "report.md").read_text()
    # The record is rewritten masked: the secret planted in the recorded run is gone from run.json too.
    assert LEAKED not in (run_dir / "run.json").read_text()
    # A second sign-off is appended: the record keeps the audit trail.
    assert cli.main(["report", str(run_dir), "--approver", "Grace Hopper"]) == 0
    assert [s.approver for s in load_record(run_dir).signoffs] == ["Ada Lovelace", "Grace Hopper"]


@pytest.mark.parametrize("run_dir", ["02-fail", "04-incomplete", "05-partial", "06-error"], indirect=True)
def test_cli_refuses_to_sign_off_without_comment_unless_passed(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    verdict = load_record(run_dir).verdict
    assert verdict is not Verdict.PASS
    assert cli.main(["report", str(run_dir), "--approver", "Ada"]) == cli.EXIT_USAGE
    assert f"the verdict is {verdict.label}; signing it off needs --comment" in capsys.readouterr().err
    assert load_record(run_dir).signoffs == []
    comment = "known issue GEO-123 accepted; db password=hunter2-do-not-leak rotated"
    # Signed off, but the exit status stays the run's: a nightly job must not go green on it.
    assert cli.main(["report", str(run_dir), "--approver", "Ada", "--comment", comment]) == verdict.exit_code
    [signoff] = load_record(run_dir).signoffs
    assert signoff.verdict is verdict
    assert signoff.comment == "known issue GEO-123 accepted; db password=******** rotated"
    assert LEAKED not in (run_dir / "run.json").read_text()
    assert "| Ada |" in (run_dir / "report.md").read_text()


def test_cli_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # "report --help": the sub-command, since no ./report directory exists
    assert cli.EXIT_USAGE == cli.EXIT_RECORD == 4
    assert cli.EXIT_USAGE not in {v.exit_code for v in Verdict}  # never mistaken for a verdict
    assert cli.main(["report", str(tmp_path / "missing")]) == cli.EXIT_RECORD
    assert "no run record at" in capsys.readouterr().err
    shutil.copy(RECORDED / "01-pass.json", tmp_path / "run.json")
    assert cli.main(["report", str(tmp_path), "--comment", "x"]) == cli.EXIT_USAGE
    assert "--comment needs --approver" in capsys.readouterr().err
    assert cli.main(["report", str(tmp_path), "--approver", " "]) == cli.EXIT_USAGE
    assert cli.main(["report", str(tmp_path), "--no-such-option"]) == cli.EXIT_USAGE
    assert not (tmp_path / "report.md").exists()  # nothing rendered on a usage error
    (tmp_path / "run.json").write_text('{"schema": 99}')
    assert cli.main(["report", str(tmp_path)]) == cli.EXIT_RECORD
    assert "schema 99 is not supported" in capsys.readouterr().err
    assert cli.main([]) == cli.EXIT_USAGE  # argparse's own exit 2 would read as INCOMPLETE
    assert cli.main(["report", "--help"]) == 0


@pytest.mark.parametrize("name", RUNS)
def test_record_round_trips_through_json(name: str) -> None:
    record = recorded(name)
    data = json.loads(json.dumps(record.to_dict()))
    assert data["verdict"] == VERDICTS[name].value and data["verdict_label"] == VERDICTS[name].label
    assert RunRecord.from_dict(data) == record


def test_malformed_record_is_refused() -> None:
    with pytest.raises(RecordError, match="malformed"):
        RunRecord.from_dict({"schema": 2, "run_id": "x"})


@pytest.mark.parametrize("run_dir", ["01-pass"], indirect=True)
def test_cli_through_the_geocube_acceptance_entry_point(run_dir: Path, tmp_path: Path) -> None:
    """``geocube-acceptance report RUN_DIR`` hands ``[RUN_DIR, ...]`` to ``reports.cli.main``."""
    entry = pytest.importorskip("geocube_acceptance.cli")
    assert entry.main(["report", str(run_dir), "--approver", "Ada"]) == 0
    assert cli.main([str(run_dir)]) == 0
    assert [s.approver for s in load_record(run_dir).signoffs] == ["Ada"]
    assert (run_dir / "report.html").is_file()
    # The entry point exits with the verdict too.
    assert entry.main(["report", str(copy_run("06-error", tmp_path))]) == Verdict.ERROR.exit_code == 3
