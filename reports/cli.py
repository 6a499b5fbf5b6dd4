"""``geocube-acceptance report RUN_DIR [--approver NAME --comment TEXT]``.

Regenerates every format of a run from its ``run.json`` and, with ``--approver``, records a sign-off
(approver, comment, UTC timestamp, verdict at the time) in ``run.json`` before regenerating.

Exit status: the run's verdict, as the run itself exited (0 SIGN-OFF PASS or PARTIAL, 1 FAIL,
2 INCOMPLETE, 3 ERROR); 4 when the options or the run directory are unusable.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from reports.masking import Masker, mask_text
from reports.model import RecordError, SignOff, Verdict, load_record, save_record
from reports.recorder import mask_record
from reports.writer import render_all

EXIT_USAGE = 4
"""Bad options or an unreadable run directory (pytest's usage-error code): no verdict was read."""
EXIT_RECORD = EXIT_USAGE


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="a run directory, e.g. reports/runs/<run-id>")
    parser.add_argument("--approver", metavar="NAME", help="who signs the run off")
    parser.add_argument(
        "--comment",
        metavar="TEXT",
        help="sign-off comment; required when the verdict is not SIGN-OFF PASS (say why it is acceptable)",
    )
    parser.set_defaults(handler=run_report)


def add_report_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``report`` sub-command to another argparse CLI."""
    _add_arguments(
        subparsers.add_parser(
            "report",
            help="regenerate a run's reports from run.json, optionally recording a sign-off",
            description=__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="geocube-acceptance report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _add_arguments(parser)
    return parser


def run_report(args: argparse.Namespace) -> int:
    run_dir: Path = args.run_dir
    approver: str | None = args.approver
    comment: str | None = args.comment
    try:
        record = load_record(run_dir)
    except RecordError as exc:
        print(f"geocube-acceptance report: {exc}", file=sys.stderr)
        return EXIT_RECORD
    if run_dir.is_file():
        run_dir = run_dir.parent
    if comment is not None and not approver:
        print("geocube-acceptance report: --comment needs --approver (who signs off)", file=sys.stderr)
        return EXIT_USAGE
    verdict = record.verdict
    if approver is not None:
        if not approver.strip():
            print("geocube-acceptance report: --approver must not be empty", file=sys.stderr)
            return EXIT_USAGE
        if verdict is not Verdict.PASS and not (comment and comment.strip()):
            print(
                f"geocube-acceptance report: the verdict is {verdict.label}; signing it off needs --comment "
                "explaining why it is acceptable",
                file=sys.stderr,
            )
            return EXIT_USAGE
        record.signoffs.append(
            SignOff(
                approver=approver.strip(),
                comment=mask_text(comment or ""),
                timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
                verdict=verdict,
            )
        )
        # The record is rewritten: mask it whole, in case it came from an older or hand-made writer.
        save_record(mask_record(record, Masker()), run_dir)
    written = render_all(record, run_dir)
    print(f"verdict: {verdict.label}")
    if approver is not None:
        print(f"signed off by {approver.strip()}")
    for name, path in written.items():
        print(f"{name}: {path}")
    # A nightly job that regenerates or signs off a report must not go green on a failed run.
    return verdict.exit_code


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``main(["report", RUN_DIR, ...])`` or ``main([RUN_DIR, ...])``.

    The second form is what ``geocube_acceptance.cli`` passes after its own ``report`` sub-command.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    # "report" is the sub-command, unless it is the only positional and names an existing directory.
    if args[:1] == ["report"] and (len(args) == 1 or not args[1].startswith("-") or not Path("report").is_dir()):
        args = args[1:]
    try:
        parsed = build_parser().parse_args(args)
    except SystemExit as exc:  # argparse exits 2 on bad options, which would read as INCOMPLETE
        return EXIT_USAGE if exc.code else 0
    return int(parsed.handler(parsed))


if __name__ == "__main__":
    sys.exit(main())
