"""Secrets are masked by name and by known value: in text, in objects, in the pytest header."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from fixtures.config import resolve
from fixtures.masking import MASK, Masker, is_secret_name

pytest_plugins = ["pytester"]


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("POSTGRES_PASSWORD", True),
        ("db_password", True),
        ("CLIENT_SECRET", True),
        ("API_TOKEN", True),
        ("SERVICE_ACCOUNT_KEY", True),
        ("POSTGRES_USER", False),
        ("SERVER_IMAGE", False),
        ("NAMESPACE", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_known_values_are_masked_wherever_they_appear() -> None:
    masker = Masker(["hunter22", "s3cr3t-token"])
    text = "login hunter22 failed; header Bearer s3cr3t-token; again hunter22"
    assert masker.text(text) == f"login {MASK} failed; header Bearer {MASK}; again {MASK}"


def test_base64_of_known_values_is_masked_too() -> None:
    encoded = base64.b64encode(b"hunter22").decode()
    assert Masker(["hunter22"]).text(f"data: {{password: {encoded}}}") == f"data: {{password: {MASK}}}"


def test_short_values_are_not_treated_as_secrets() -> None:
    masker = Masker(["ab", "hunter22"])
    assert masker.secrets == frozenset({"hunter22"})
    assert masker.text("a lab table") == "a lab table"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgres://geocube:pa55word@db:5432/geocube", f"postgres://geocube:{MASK}@db:5432/geocube"),
        ("-dbPassword=pa55word -dbUser=geocube", f"-dbPassword={MASK} -dbUser=geocube"),
        ("PGPASSWORD=pa55word psql", f"PGPASSWORD={MASK} psql"),
        ('{"db_password": "pa55word", "user": "u"}', f'{{"db_password": "{MASK}", "user": "u"}}'),
        ("API_KEY=abc123 other=1", f"API_KEY={MASK} other=1"),
        ("nothing secret here: a=1", "nothing secret here: a=1"),
    ],
)
def test_unknown_secrets_are_masked_by_shape(text: str, expected: str) -> None:
    assert Masker().text(text) == expected


def test_mapping_masks_secret_names_and_known_values() -> None:
    masker = Masker.from_params({"POSTGRES_PASSWORD": "hunter22", "POSTGRES_USER": "geocube"})
    assert masker.mapping({"POSTGRES_PASSWORD": "hunter22", "DB_URL": "x hunter22 y", "POSTGRES_USER": "geocube"}) == {
        "POSTGRES_PASSWORD": MASK,
        "DB_URL": f"x {MASK} y",
        "POSTGRES_USER": "geocube",
    }


def test_objects_mask_secret_data_env_values_and_known_values_but_keep_references() -> None:
    masker = Masker(["hunter22"])
    secret = {
        "kind": "Secret",
        "metadata": {"name": "db"},
        "data": {"password": "aHVudGVyMjI="},
        "stringData": {"x": "y"},
    }
    assert masker.obj(secret)["data"] == {"password": MASK}
    assert masker.obj(secret)["stringData"] == {"x": MASK}
    assert secret["data"] == {"password": "aHVudGVyMjI="}  # a copy: the object to apply is untouched
    container = {
        "args": ["-dbPassword=hunter22", "-dbHost=db"],
        "env": [
            {"name": "POSTGRES_PASSWORD", "value": "whatever"},
            {"name": "PGHOST", "value": "db"},
            {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
        ],
        "volumes": [{"name": "tls", "secret": {"secretName": "tls-cert"}}],
    }
    masked = masker.obj(container)
    assert masked["args"] == [f"-dbPassword={MASK}", "-dbHost=db"]
    assert masked["env"][0] == {"name": "POSTGRES_PASSWORD", "value": MASK}
    assert masked["env"][1] == {"name": "PGHOST", "value": "db"}
    assert masked["env"][2]["valueFrom"] == {"secretKeyRef": {"name": "db", "key": "password"}}
    assert masked["volumes"][0]["secret"] == {"secretName": "tls-cert"}  # which secret, not what it holds


def test_settings_rows_mask_secret_parameters(tmp_path: Path) -> None:
    settings = resolve(
        {"geocube_set": ["POSTGRES_PASSWORD=hunter22", "DB_URL=postgres://u:hunter22@db/x"]},
        {},
        base_dir=tmp_path,
        cwd=tmp_path,
    )
    rows = {key: value for key, value, _ in settings.rows()}
    assert rows["params.POSTGRES_PASSWORD"] == MASK
    assert rows["params.DB_URL"] == f"postgres://u:{MASK}@db/x"


def test_header_never_shows_a_secret(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEOCUBE_PARAM_API_TOKEN", "tok-123456")
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest(
        "-p", "fixtures.plugin", "-p", "no:asyncio",
        "--set", "POSTGRES_PASSWORD=hunter22", "--set", "NOTE=the password is hunter22",
    )  # fmt: skip
    result.assert_outcomes(passed=1)
    output = result.stdout.str() + result.stderr.str()
    assert "hunter22" not in output
    assert "tok-123456" not in output
    result.stdout.fnmatch_lines(
        [
            "*params.API_TOKEN *= ****  [[]env GEOCUBE_PARAM_API_TOKEN]",
            "*params.NOTE *= the password is ****  [[]cli --set]",
            "*params.POSTGRES_PASSWORD *= ****  [[]cli --set]",
        ]
    )
