"""The configuration resolver: precedence of each source pair, parsing, and one clear usage error."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fixtures.config import (
    AccessMode,
    KeepNamespace,
    Messaging,
    Settings,
    Storage,
    parse_duration,
    resolve,
)
from fixtures.errors import ConfigError
from fixtures.setting_sources import toml_key_lines
from geocube_acceptance import locations

pytest_plugins = ["pytester"]


def profile(tmp_path: Path, text: str, name: str = "profile.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """An inner pytest run with the framework plugin (pytest-asyncio's config warning silenced)."""
    return pytester.runpytest("-p", "fixtures.plugin", "-p", "no:asyncio", *args)


def settle(tmp_path: Path, cli: dict[str, object] | None = None, env: dict[str, str] | None = None) -> Settings:
    return resolve(cli or {}, env or {}, base_dir=tmp_path, cwd=tmp_path)


# --------------------------------------------------------------------------------------------------
# Defaults and precedence
# --------------------------------------------------------------------------------------------------


def test_defaults_come_from_the_base_dir_and_say_so(tmp_path: Path) -> None:
    settings = settle(tmp_path)
    assert settings.kubeconfig is None  # the embedded cluster
    assert settings.messaging == Messaging.PGQUEUE
    assert settings.storage == Storage.LOCAL
    assert settings.access_mode == AccessMode.PORT_FORWARD
    assert settings.keep_namespace == KeepNamespace.NEVER
    assert settings.manifests_dir == locations.manifests_dir()  # shipped with the suites, wherever pytest runs
    assert settings.run_dir == tmp_path / "reports" / "runs" / settings.run_id
    assert dict(settings.images) == {}  # the embedded default builds every image
    assert settings.source("messaging") == "default"
    assert settings.source("profile") == "default"


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = settle(tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.messaging = Messaging.PUBSUB  # type: ignore[misc]
    with pytest.raises(TypeError):
        settings.images["server"] = "other"  # type: ignore[index]


@pytest.mark.parametrize(
    ("sources", "expected", "expected_source"),
    [
        pytest.param({"cli": "pubsub", "env": "pgqueue"}, "pubsub", "cli --geocube-messaging", id="cli-beats-env"),
        pytest.param(
            {"cli": "pubsub", "profile": "pgqueue"}, "pubsub", "cli --geocube-messaging", id="cli-beats-profile"
        ),
        pytest.param(
            {"env": "pubsub", "profile": "pgqueue"}, "pubsub", "env GEOCUBE_MESSAGING", id="env-beats-profile"
        ),
        pytest.param({"profile": "pubsub"}, "pubsub", "profile", id="profile-beats-default"),
        pytest.param({"cli": "pubsub", "env": "pgqueue", "profile": "pgqueue"}, "pubsub", "cli", id="cli-beats-all"),
    ],
)
def test_precedence_of_a_setting(tmp_path: Path, sources: dict[str, str], expected: str, expected_source: str) -> None:
    cli: dict[str, object] = {}
    env: dict[str, str] = {}
    if "cli" in sources:
        cli["geocube_messaging"] = sources["cli"]
    if "env" in sources:
        env["GEOCUBE_MESSAGING"] = sources["env"]
    if "profile" in sources:
        cli["geocube_profile"] = str(profile(tmp_path, f'messaging = "{sources["profile"]}"\n'))
    settings = settle(tmp_path, cli, env)
    assert settings.messaging == expected
    assert settings.source("messaging").startswith(expected_source)


def test_profile_source_names_file_and_line(tmp_path: Path) -> None:
    path = profile(tmp_path, '# my cluster\n\nstorage = "gs"\n[timeouts]\ndeploy = "10m"\n')
    settings = settle(tmp_path, {"geocube_profile": str(path)})
    assert settings.source("storage") == f"profile {path}:3"
    assert settings.timeouts.deploy == 600.0
    assert settings.source("timeouts.deploy") == f"profile {path}:5"


def test_profile_named_by_env(tmp_path: Path) -> None:
    path = profile(tmp_path, 'access_mode = "nodeport"\n')
    settings = settle(tmp_path, env={"GEOCUBE_PROFILE": str(path)})
    assert settings.access_mode == AccessMode.NODEPORT
    assert settings.source("profile") == "env GEOCUBE_PROFILE"


def test_images_per_component_from_each_source(tmp_path: Path) -> None:
    path = profile(tmp_path, '[images]\nserver = "from-profile:1"\nautoscaler = "from-profile:2"\n')
    settings = settle(
        tmp_path,
        {"geocube_profile": str(path), "geocube_images_server": "from-cli:1"},
        {"GEOCUBE_IMAGES_POSTGIS": "from-env:1"},
    )
    assert settings.images["server"] == "from-cli:1"
    assert settings.images["autoscaler"] == "from-profile:2"
    assert settings.images["postgis"] == "from-env:1"
    assert "consolidater" not in settings.images  # not chosen: built (embedded) or required (own cluster)
    assert settings.source("images.postgis") == "env GEOCUBE_IMAGES_POSTGIS"


@pytest.mark.parametrize(
    ("layers", "winner", "value"),
    [
        pytest.param(("set", "env"), "cli --set", "from-set", id="set-beats-env"),
        pytest.param(("set", "file"), "cli --set", "from-set", id="set-beats-params-file"),
        pytest.param(("set", "profile"), "cli --set", "from-set", id="set-beats-profile"),
        pytest.param(("env", "file"), "env GEOCUBE_PARAM_DB_HOST", "from-env", id="env-beats-params-file"),
        pytest.param(("env", "profile"), "env GEOCUBE_PARAM_DB_HOST", "from-env", id="env-beats-profile"),
        pytest.param(("file", "profile"), "params-file", "from-file", id="params-file-beats-profile"),
    ],
)
def test_precedence_of_a_parameter(tmp_path: Path, layers: tuple[str, str], winner: str, value: str) -> None:
    cli: dict[str, object] = {}
    env: dict[str, str] = {}
    if "set" in layers:
        cli["geocube_set"] = ["DB_HOST=from-set"]
    if "env" in layers:
        env["GEOCUBE_PARAM_DB_HOST"] = "from-env"
    if "file" in layers:
        params = tmp_path / "params.env"
        params.write_text("# comment\nDB_HOST = from-file\n", encoding="utf-8")
        cli["geocube_params_file"] = str(params)
    if "profile" in layers:
        cli["geocube_profile"] = str(profile(tmp_path, '[params]\nDB_HOST = "from-profile"\n'))
    settings = settle(tmp_path, cli, env)
    assert settings.params["DB_HOST"] == value
    assert settings.source("params.DB_HOST").startswith(winner)


def test_parameters_merge_per_name(tmp_path: Path) -> None:
    path = profile(tmp_path, '[params]\nA = "profile"\nB = "profile"\nC = 3\n')
    settings = settle(
        tmp_path, {"geocube_profile": str(path), "geocube_set": ["A=cli", "D=x=y"]}, {"GEOCUBE_PARAM_B": "env"}
    )
    assert dict(settings.params) == {"A": "cli", "B": "env", "C": "3", "D": "x=y"}
    assert settings.source("params.C") == f"profile {path}:4"


def test_relative_paths_follow_their_source(tmp_path: Path) -> None:
    sub = tmp_path / "conf"
    sub.mkdir()
    path = profile(sub, 'manifests_dir = "templates"\nkubeconfig = "kube/admin.conf"\n')
    settings = resolve(
        {"geocube_profile": str(path), "geocube_kubeconfig": "cli.conf"}, {}, base_dir=tmp_path, cwd=tmp_path
    )
    assert settings.manifests_dir == sub / "templates"  # relative to the profile's folder
    assert settings.kubeconfig == tmp_path / "cli.conf"  # relative to where the command runs


# --------------------------------------------------------------------------------------------------
# Parsing and errors
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90.0), ("90s", 90.0), ("5m", 300.0), ("1h30m", 5400.0), (2.5, 2.5), (600, 600.0)]
)
def test_durations(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "0", "-5", "", "5 minutes", True])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match=r"duration|> 0"):
        parse_duration(text)


def test_bad_enum_names_key_source_allowed_values_and_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        settle(tmp_path, env={"GEOCUBE_MESSAGING": "kafka"})
    message = str(error.value)
    assert "'messaging'" in message
    assert "'kafka'" in message
    assert "env GEOCUBE_MESSAGING" in message
    assert "allowed: pubsub, pgqueue" in message
    assert "Fix: set GEOCUBE_MESSAGING" in message


def test_unknown_profile_key_names_file_line_and_allowed_keys(tmp_path: Path) -> None:
    path = profile(tmp_path, 'storage = "gs"\nmesaging = "pubsub"\n')
    with pytest.raises(ConfigError, match=rf"unknown key 'mesaging' in profile {path}:2\. Allowed keys: .*messaging"):
        settle(tmp_path, {"geocube_profile": str(path)})


def test_unknown_key_in_a_profile_table(tmp_path: Path) -> None:
    path = profile(tmp_path, "[timeouts]\ndeploy = 60\nwiat = 30\n")
    with pytest.raises(ConfigError, match=rf"unknown key 'timeouts.wiat' in profile {path}:3"):
        settle(tmp_path, {"geocube_profile": str(path)})


def test_malformed_profile(tmp_path: Path) -> None:
    path = profile(tmp_path, 'messaging = "pubsub\n')
    with pytest.raises(ConfigError, match=rf"profile {path} is not valid TOML: .*line 1.*Fix: correct the TOML"):
        settle(tmp_path, {"geocube_profile": str(path)})


def test_missing_profile(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot be read: No such file"):
        settle(tmp_path, {"geocube_profile": str(tmp_path / "absent.toml")})


def test_wrongly_typed_profile_value(tmp_path: Path) -> None:
    path = profile(tmp_path, "messaging = 3\n")
    with pytest.raises(ConfigError, match=rf"'messaging' = 3 from profile {path}:1: expected a string"):
        settle(tmp_path, {"geocube_profile": str(path)})


def test_an_unknown_geocube_env_var_is_a_warning_naming_the_likely_setting(tmp_path: Path) -> None:
    settings = settle(tmp_path, env={"GEOCUBE_MESAGING": "pubsub", "GEOCUBE_VERSION": "1.0.3"})
    assert [n.split(" is not")[0] for n in settings.notices] == [
        "environment variable GEOCUBE_MESAGING",
        "environment variable GEOCUBE_VERSION",
    ]
    assert "did you mean GEOCUBE_MESSAGING?" in settings.notices[0]
    assert "did you mean" not in settings.notices[1], "a pipeline's own variable is not a typo of ours"
    assert settings.messaging == "pgqueue", "and it is ignored"
    assert settle(tmp_path, env={"GEOCUBE_ACCEPTANCE_CACHE": "/tmp/x", "GEOCUBE_PARAM_X": "1"}).notices == ()


def test_the_header_shows_the_warning(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEOCUBE_MESAGING", "pubsub")
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("-p", "fixtures.plugin", "-p", "no:asyncio")
    result.stdout.fnmatch_lines(["geocube-warning: environment variable GEOCUBE_MESAGING is not a geocube setting*"])


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        settle(tmp_path, {"geocube_set": ["NOEQUALS"], "geocube_run_id": "Bad_Run"}, {"GEOCUBE_STORAGE": "s3"})
    lines = str(error.value).splitlines()
    assert len(lines) == 3
    assert any("--set expects NAME=VALUE; got an argument of 8 characters." in line for line in lines)
    assert any("'run_id'" in line and "DNS-safe" in line for line in lines)
    assert any("'storage'" in line and "allowed: local, gs" in line for line in lines)


def test_params_file_errors_name_file_and_line(tmp_path: Path) -> None:
    params = tmp_path / "params.env"
    params.write_text("A=1\nthis is not an assignment\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"params file {params}:2: expected NAME=VALUE"):
        settle(tmp_path, {"geocube_params_file": str(params)})


def test_secret_values_never_appear_in_errors(tmp_path: Path) -> None:
    path = profile(tmp_path, "[params]\nPOSTGRES_PASSWORD = [1, 2]\n")
    with pytest.raises(ConfigError) as error:
        settle(tmp_path, {"geocube_profile": str(path)})
    assert "[1, 2]" not in str(error.value)
    assert "****" in str(error.value)


def test_toml_key_lines_tracks_tables_and_dotted_keys() -> None:
    text = 'a = 1\n[images]\nserver = "x"\n"postgis" = "y"\n[params]\nB = 2\nimages.extra = 1\n'
    lines = toml_key_lines(text)
    assert lines["a"] == 1
    assert lines["images.server"] == 3
    assert lines["images.postgis"] == 4
    assert lines["params.B"] == 6


# --------------------------------------------------------------------------------------------------
# Through pytest: option group, header, usage error
# --------------------------------------------------------------------------------------------------


def test_options_live_in_one_geocube_group(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--help")
    text = result.stdout.str()
    assert "Geocube acceptance (precedence: CLI > GEOCUBE_* env > --geocube-profile > default)" in text
    for flag in ("--geocube-messaging", "--messaging", "--geocube-profile", "--set", "--geocube-images-server",
                 "--keep-namespace", "--existing-namespace", "--geocube-timeouts-deploy"):  # fmt: skip
        assert flag in text


def test_header_shows_each_value_with_its_source(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    path = pytester.path / "p.toml"
    path.write_text('access_mode = "nodeport"\nmessaging = "pgqueue"\n', encoding="utf-8")
    monkeypatch.setenv("GEOCUBE_STORAGE", "gs")
    monkeypatch.setenv("GEOCUBE_MESSAGING", "pgqueue")
    pytester.makepyfile("def test_nothing(): pass")
    result = run(pytester, "--geocube-profile", str(path), "--messaging", "pubsub")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "geocube settings (CLI > env > profile > default):",
            f"*profile *= {path}  [[]cli --profile]",
            "*kubeconfig *= (embedded cluster)  [[]default: no KUBECONFIG, no ~/.kube/config, not in a pod: the "
            "embedded default]",
            "*messaging *= pubsub  [[]cli --geocube-messaging]",
            "*storage *= gs  [[]env GEOCUBE_STORAGE]",
            f"*access_mode *= nodeport  [[]profile {path}:1]",
            "*keep_namespace *= never  [[]default]",
        ]
    )


def test_fixture_sees_the_resolved_settings(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEOCUBE_KEEP_NAMESPACE", "on-failure")
    pytester.makepyfile(
        """
        def test_settings(geocube_settings, messaging_profile, storage_profile, access_mode, geocube_images):
            assert geocube_settings.keep_namespace == "on-failure"
            assert messaging_profile == "pubsub" and storage_profile == "local"
            assert access_mode == "nodeport"
            assert geocube_images["server"] == "registry.example/server:9"
        """
    )
    result = run(
        pytester, "--geocube-messaging=pubsub", "--access-mode", "nodeport",
        "--geocube-images-server", "registry.example/server:9",
    )  # fmt: skip
    result.assert_outcomes(passed=1)


def run_with_profile(pytester: pytest.Pytester, name: str, text: str) -> tuple[Path, pytest.RunResult]:
    """An inner run with the profile ``text``: it must end as a usage error."""
    path = pytester.path / name
    path.write_text(text, encoding="utf-8")
    pytester.makepyfile("def test_nothing(): pass")
    result = run(pytester, "--geocube-profile", str(path))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    return path, result


def test_bad_profile_is_one_usage_error(pytester: pytest.Pytester) -> None:
    path, result = run_with_profile(pytester, "bad.toml", 'storage = "s3"\n')
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert errors == [
        f"ERROR: geocube setting 'storage' = 's3' from profile {path}:1: is not an allowed value "
        f"(allowed: local, gs). Fix: edit {path} line 1."
    ]
    assert "Traceback" not in result.stderr.str()


def test_malformed_profile_is_one_usage_error(pytester: pytest.Pytester) -> None:
    path, result = run_with_profile(pytester, "broken.toml", "[images\nserver = 1\n")
    result.stderr.fnmatch_lines([f"ERROR: geocube profile {path} is not valid TOML: *line 1*Fix: *"])


def test_help_works_even_with_a_broken_environment(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEOCUBE_MESSAGING", "kafka")
    assert run(pytester, "--help").ret == pytest.ExitCode.OK


# --------------------------------------------------------------------------------------------------
# Which cluster: like kubectl
# --------------------------------------------------------------------------------------------------


def kubeconfig_file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("apiVersion: v1\nkind: Config\n")
    return path


def test_without_any_kubeconfig_the_embedded_default_and_why(tmp_path: Path) -> None:
    settings = settle(tmp_path, env={"HOME": str(tmp_path)})
    assert settings.kubeconfig is None
    assert settings.source("kubeconfig") == (
        "default: no KUBECONFIG, no ~/.kube/config, not in a pod: the embedded default"
    )


def test_home_kube_config_like_kubectl(tmp_path: Path) -> None:
    config = kubeconfig_file(tmp_path / ".kube" / "config")
    settings = settle(tmp_path, env={"HOME": str(tmp_path)})
    assert (settings.kubeconfig, settings.source("kubeconfig")) == (config, "default ~/.kube/config (as kubectl)")


def service_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("t")
    (account / "ca.crt").write_text("c")
    monkeypatch.setattr("fixtures.cluster_client.SERVICE_ACCOUNT_DIR", account)
    return account


def test_in_a_pod_without_kubeconfig_its_service_account_like_kubectl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = service_account(tmp_path, monkeypatch)
    env = {"HOME": str(tmp_path), "KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    settings = settle(tmp_path, env=env)
    assert (settings.kubeconfig, settings.source("kubeconfig")) == (
        account,
        "default: in a pod, its service account (as kubectl)",
    )
    # A kubeconfig still wins inside a pod, as with kubectl.
    config = kubeconfig_file(tmp_path / ".kube" / "config")
    assert settle(tmp_path, env=env).kubeconfig == config


def test_a_service_account_directory_is_a_target_naming_the_in_cluster_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fixtures.cluster_client import read_target
    from fixtures.errors import ClusterError

    account = service_account(tmp_path, monkeypatch)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    target = read_target(account, None)
    assert target.describe() == f"the in-cluster service account (server https://10.0.0.1:443, {account})"
    with pytest.raises(ClusterError, match="--context other cannot apply to the in-cluster service account"):
        read_target(account, "other")
    (account / "token").unlink()
    with pytest.raises(ClusterError, match="not a service account either \\(no token\\)"):
        read_target(account, None)


def test_kubeconfig_env_wins_over_home_and_a_list_says_what_it_reads(tmp_path: Path) -> None:
    kubeconfig_file(tmp_path / ".kube" / "config")
    first, second = kubeconfig_file(tmp_path / "a.yaml"), kubeconfig_file(tmp_path / "b.yaml")
    settings = settle(tmp_path, env={"HOME": str(tmp_path), "KUBECONFIG": f"{tmp_path / 'gone.yaml'}:{first}:{second}"})
    assert (settings.kubeconfig, settings.source("kubeconfig")) == (first, "env KUBECONFIG")
    assert settings.notices == (
        f"KUBECONFIG lists 3 files; geocube-acceptance reads only the first that exists, {first} (kubectl would "
        "merge them). Fix: pass --kubeconfig FILE to be explicit",
    )


def test_explicit_settings_win_and_embedded_can_be_asked_for(tmp_path: Path) -> None:
    mine = kubeconfig_file(tmp_path / "mine.yaml")
    env = {"HOME": str(tmp_path), "KUBECONFIG": str(kubeconfig_file(tmp_path / "other.yaml"))}
    assert settle(tmp_path, {"geocube_kubeconfig": str(mine)}, env).kubeconfig == mine
    embedded = settle(tmp_path, {"geocube_kubeconfig": "embedded"}, env)
    assert embedded.kubeconfig is None
    assert embedded.source("kubeconfig") == "cli --geocube-kubeconfig (the embedded default, asked for)"
    assert settle(tmp_path, env={**env, "GEOCUBE_KUBECONFIG": "embedded"}).kubeconfig is None


def test_the_ini_report_dir_is_the_framework_s_too(pytester: pytest.Pytester) -> None:
    """One report folder for reports and diagnostics, also when it comes from the ini key."""
    pytester.makeini("[pytest]\ngeocube_report_dir = from-ini\n")
    pytester.makepyfile("def test_nothing(): pass")
    result = run(pytester, "--geocube-run-id", "ini-run")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*report_dir *= */from-ini  [[]ini geocube_report_dir]",  # the framework's (diagnostics)
            "geocube-report: */from-ini (from ini geocube_report_dir)",  # the reports plugin's
        ]
    )
