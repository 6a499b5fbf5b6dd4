"""Secrets are masked by name, by shape and by known value: in text, data, objects, argv, errors and the header."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from fixtures.config import resolve
from fixtures.errors import ConfigError
from reports.masking import MASK, Masker, is_secret_name, mask_argv, mask_text, mask_value

pytest_plugins = ["pytester"]


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("POSTGRES_PASSWORD", True),
        ("PGPASSWORD", True),
        ("db_password", True),
        ("dbPassword", True),
        ("db-pwd", True),
        ("passphrase", True),
        ("CLIENT_SECRET", True),
        ("API_TOKEN", True),
        ("api-token", True),
        ("GOOGLE_CREDENTIALS", True),
        ("SERVICE_ACCOUNT_KEY", True),
        ("API_KEY", True),
        ("apiKey", True),
        ("APIKEY", True),
        ("private_key", True),
        ("x-access-key", True),
        ("keyName", False),  # names a key, does not hold one
        ("GeoKeyDirectory", False),  # a GeoTIFF tag (the georeferencing keys), no key
        ("monkey", False),
        ("passed_checks", False),  # "pass" alone is no secret word
        ("POSTGRES_USER", False),
        ("SERVER_IMAGE", False),
        ("NAMESPACE", False),
        ("max_connections", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # assignments, also when the key starts the text
        ("password=abc123", f"password={MASK}"),
        ("token=abc", f"token={MASK}"),
        ("--password=abc", f"--password={MASK}"),
        ('{"password": "abc"}', f'{{"password": "{MASK}"}}'),
        ('{"db_password": "two words", "user": "u"}', f'{{"db_password": "{MASK}", "user": "u"}}'),
        ("PGPASSWORD=x psql", f"PGPASSWORD={MASK} psql"),
        ("-dbPassword=pa55word -dbUser=geocube", f"-dbPassword={MASK} -dbUser=geocube"),
        ("API_KEY=abc123 other=1", f"API_KEY={MASK} other=1"),
        ("password: xyz", f"password: {MASK}"),  # YAML
        ("token: abc123, next", f"token: {MASK}, next"),
        ("options: password=x host=db", f"options: password={MASK} host=db"),  # inside a harmless value
        ("http://x/?user=u&password=abc&db=g", f"http://x/?user=u&password={MASK}&db=g"),
        # URLs and headers
        ("postgres://u:p@h", f"postgres://u:{MASK}@h"),
        ("postgresql://geocube:s3cret@db:5432/x", f"postgresql://geocube:{MASK}@db:5432/x"),
        ("Authorization: Bearer abcdef123456", f"Authorization: Bearer {MASK}"),
        ("Authorization: Basic dXNlcjpwYXNz", f"Authorization: Basic {MASK}"),
        ("Bearer xyz1", f"Bearer {MASK}"),
        # a key: value line in prose has the shape of a log/YAML line: its value is masked (a false
        # positive costs one word; telling prose from YAML would cost leaks)
        ("X_PASSWORD_SUFFIX: used", f"X_PASSWORD_SUFFIX: {MASK}"),
        # untouched: no secret name, empty values, nested structures, references, prose
        ("passed_checks: 3", "passed_checks: 3"),
        ("nothing secret here: a=1", "nothing secret here: a=1"),
        ("53300 appeared at connection 87", "53300 appeared at connection 87"),
        ('FATAL: password authentication failed for "geocube"', 'FATAL: password authentication failed for "geocube"'),
        ("RBAC authorization: denied", "RBAC authorization: denied"),
        ('password: ""', 'password: ""'),
        ("password:\n  nested: 1", "password:\n  nested: 1"),
        ("secretKeyRef: {name: db, key: password}", "secretKeyRef: {name: db, key: password}"),
        ("secretName: tls-cert", "secretName: tls-cert"),
        ("keyName=monkey monkey=1", "keyName=monkey monkey=1"),
    ],
)
def test_text_masks_secrets_by_shape(text: str, expected: str) -> None:
    assert mask_text(text) == expected
    assert Masker().text(text) == expected


def test_known_values_are_masked_wherever_they_appear_longest_first() -> None:
    masker = Masker(["hunter22", "hunter22-and-more"])
    text = "login hunter22 failed; header hunter22-and-more; again hunter22"
    assert masker.text(text) == f"login {MASK} failed; header {MASK}; again {MASK}"


def test_base64_of_known_values_is_masked_too() -> None:
    masker = Masker()
    assert masker.add_secret("hunter22") is True
    encoded = base64.b64encode(b"hunter22").decode()
    assert masker.text(f"data: {{x: {encoded}}}") == f"data: {{x: {MASK}}}"


def test_short_values_are_not_registered_and_never_raise() -> None:
    masker = Masker(["ab", "hunter22"])
    assert masker.add_secret("xyz") is False
    assert masker.add_secret("   ") is False
    assert masker.secrets == frozenset({"hunter22"})
    assert masker.text("a lab table, xyz") == "a lab table, xyz"
    assert masker.text("DB_PASSWORD=ab") == f"DB_PASSWORD={MASK}"  # still masked by name


def test_added_secrets_apply_to_later_text() -> None:
    masker = Masker.from_params({"POSTGRES_PASSWORD": "hunter22", "POSTGRES_USER": "geocube"})
    assert masker.secrets == frozenset({"hunter22"})
    assert masker.text("geocube hunter22 generated-Pa55") == f"geocube {MASK} generated-Pa55"
    masker.add_secret("generated-Pa55")
    assert masker.text("geocube hunter22 generated-Pa55") == f"geocube {MASK} {MASK}"


def test_mapping_masks_secret_names_and_known_values() -> None:
    masker = Masker.from_params({"POSTGRES_PASSWORD": "hunter22", "POSTGRES_USER": "geocube"})
    assert masker.mapping({"POSTGRES_PASSWORD": "hunter22", "DB_URL": "x hunter22 y", "POSTGRES_USER": "geocube"}) == {
        "POSTGRES_PASSWORD": MASK,
        "DB_URL": f"x {MASK} y",
        "POSTGRES_USER": "geocube",
    }


def test_value_masks_json_like_data_by_key() -> None:
    value = {
        "parameters": {"db_password": "x", "token": None, "hosts": ["a", "postgres://u:pw12@h/db"]},
        "tokens": ["a", "b"],
        "credentials": {"user": "geocube", "password": 7},
        "automountServiceAccountToken": False,
    }
    assert mask_value(value) == {
        "parameters": {"db_password": MASK, "token": None, "hosts": ["a", f"postgres://u:{MASK}@h/db"]},
        "tokens": [MASK, MASK],
        "credentials": {"user": "geocube", "password": MASK},
        "automountServiceAccountToken": False,  # a boolean is a fact, not a credential
    }
    assert mask_value("s3cret", key="API_TOKEN") == MASK


def test_kubernetes_secret_object_is_masked_in_a_copy() -> None:
    masker = Masker(["hunter22"])
    secret = {
        "kind": "Secret",
        "metadata": {"name": "db", "annotations": {"note": "rotated hunter22"}},
        "data": {"password": "aHVudGVyMjI=", "user": "Z2VvY3ViZQ=="},
        "stringData": {"x": "y"},
    }
    masked = masker.obj(secret)
    assert masked["data"] == {"password": MASK, "user": MASK}
    assert masked["stringData"] == {"x": MASK}
    assert masked["metadata"] == {"name": "db", "annotations": {"note": f"rotated {MASK}"}}
    assert secret["data"] == {"password": "aHVudGVyMjI=", "user": "Z2VvY3ViZQ=="}  # the object to apply is untouched


def test_env_entries_and_args_are_masked_but_references_stay_readable() -> None:
    container = {
        "args": ["-dbPassword=hunter22", "-dbHost=db"],
        "env": [
            {"name": "POSTGRES_PASSWORD", "value": "whatever"},
            {"name": "PGHOST", "value": "db"},
            {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
        ],
        "envFrom": [{"secretRef": {"name": "db-env"}}],
        "volumes": [{"name": "tls", "secret": {"secretName": "tls-cert", "items": [{"key": "tls.key", "path": "k"}]}}],
        "imagePullSecrets": [{"name": "registry"}],
    }
    masked = Masker().obj(container)
    assert masked["args"] == [f"-dbPassword={MASK}", "-dbHost=db"]
    assert masked["env"][0] == {"name": "POSTGRES_PASSWORD", "value": MASK}
    assert masked["env"][1] == {"name": "PGHOST", "value": "db"}
    assert masked["env"][2]["valueFrom"] == {"secretKeyRef": {"name": "db", "key": "password"}}
    assert masked["envFrom"] == container["envFrom"]  # which secret, not what it holds
    assert masked["volumes"] == container["volumes"]
    assert masked["imagePullSecrets"] == [{"name": "registry"}]


def test_configmap_values_under_secret_keys_are_masked() -> None:
    config_map = {"kind": "ConfigMap", "data": {"API_KEY": "abc123", "LOG_LEVEL": "debug"}}
    assert Masker().obj(config_map)["data"] == {"API_KEY": MASK, "LOG_LEVEL": "debug"}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--db-password", "x", "--api-token=y"], ["--db-password", MASK, f"--api-token={MASK}"]),
        (["-k", "token", "--user=token123"], ["-k", "token", "--user=token123"]),  # the option's name decides
        (["--set", "POSTGRES_PASSWORD=hunter22"], ["--set", f"POSTGRES_PASSWORD={MASK}"]),
        (["psql", "postgres://u:pw12@h/db"], ["psql", f"postgres://u:{MASK}@h/db"]),
    ],
)
def test_argv(argv: list[str], expected: list[str]) -> None:
    assert mask_argv(argv) == expected


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


@pytest.mark.parametrize(
    ("cli", "env", "params_file", "expected"),
    [
        pytest.param(
            ["DB_PASSWORD:hunter22"], {}, None,
            "--set expects NAME=VALUE; got an argument of 20 characters starting with 'DB_PASSWORD'",
            id="set-colon",
        ),
        pytest.param(
            ["DB_PASSWORD hunter22"], {}, None, "starting with 'DB_PASSWORD'", id="set-space",
        ),
        pytest.param(["hunter22"], {}, None, "got an argument of 8 characters.", id="set-lone-value"),
        pytest.param(
            ["DB_PASSWORD:hunter22=x"], {}, None,
            "template parameter name of 20 characters starting with 'DB_PASSWORD' from cli --set is invalid",
            id="set-name-with-value",
        ),
        pytest.param(
            [], {"GEOCUBE_PARAM_DB PASSWORD hunter22": "x"}, None,
            "template parameter name of 20 characters starting with 'DB' from env",
            id="env-name",
        ),
        pytest.param(
            [], {}, "A=1\nDB_PASSWORD: hunter22\n",
            ":2: expected NAME=VALUE; got a line of 21 characters starting with 'DB_PASSWORD'",
            id="params-file-line",
        ),
        pytest.param(
            [], {"GEOCUBE_MESSAGING": "postgres://u:hunter22@db"}, None, f"'postgres://u:{MASK}@db'",
            id="setting-value",
        ),
    ],
)  # fmt: skip
def test_malformed_input_errors_never_echo_a_secret(
    tmp_path: Path, cli: list[str], env: dict[str, str], params_file: str | None, expected: str
) -> None:
    options: dict[str, object] = {"geocube_set": cli}
    if params_file is not None:
        path = tmp_path / "params.env"
        path.write_text(params_file, encoding="utf-8")
        options["geocube_params_file"] = str(path)
    with pytest.raises(ConfigError) as error:
        resolve(options, env, base_dir=tmp_path, cwd=tmp_path)
    assert expected in str(error.value)
    assert "hunter22" not in str(error.value)


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
            f"*params.API_TOKEN *= {MASK}  [[]env GEOCUBE_PARAM_API_TOKEN]",
            f"*params.NOTE *= the password is {MASK}  [[]cli --set]",
            f"*params.POSTGRES_PASSWORD *= {MASK}  [[]cli --set]",
        ]
    )


def test_malformed_set_on_the_command_line_is_a_usage_error_without_the_secret(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("-p", "fixtures.plugin", "-p", "no:asyncio", "--set", "DB_PASSWORD:hunter22")
    output = result.stdout.str() + result.stderr.str()
    assert "--set expects NAME=VALUE" in output
    assert "hunter22" not in output
