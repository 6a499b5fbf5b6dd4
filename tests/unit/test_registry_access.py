"""How the run's pods reach their images: the pull-secret options, the Secret the run makes, PLAT-IMAGES' verdicts.

Our own decision logic only, with no cluster and no registry: the options as ``resolve`` parses and
refuses them, the Secret name every template gets (``IMAGE_PULL_SECRETS``), the Secret ``run_pull_secret``
makes of each source, and what ``Finding`` and ``ask_registry`` conclude from a registry's (faked) answer.
Every password here is distinctive, and no message, row or source ever shows one.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

import fixtures.registry_access as registry_access
import geocube_stack.params
import suites.platform.images as images
from fixtures.config import AccessMode, Messaging, Settings, Storage, resolve
from fixtures.errors import ConfigError, DeployError, RenderError
from fixtures.labels import run_labels
from fixtures.pull_secrets import (
    DOCKERCFG,
    DOCKERCONFIGJSON,
    PullSecretError,
    RegistryAnswerError,
    auths_of_secret,
    pull_secret_manifest,
)
from fixtures.registry_access import (
    RUN_PULL_SECRET,
    check_registry_config,
    image_pull_secrets_param,
    pull_secret_name,
    run_pull_secret,
)
from fixtures.stack import StackChoice, stack_parameters
from localcluster.registry import REGISTRY_HOST, Credentials, Failure
from suites.platform.images import Finding, Use, ask_registry

# Distinctive fake passwords: none may ever appear in a message, a row or a source.
FILE_PASSWORD = "Zq8-file-pw-ORCHID-4417"
SECRET_PASSWORD = "Xv3-secret-pw-MARLIN-9052"
EMBEDDED_PASSWORD = "Kt6-embedded-pw-WALRUS-2286"
OTHER_PASSWORD = "Jm2-other-pw-PELICAN-7730"
PASSWORDS = (FILE_PASSWORD, SECRET_PASSWORD, EMBEDDED_PASSWORD, OTHER_PASSWORD)

HOST = "registry.example.com"
OTHER_HOST = "other.example.org"
RUN_NAMESPACE = "geocube-run-1"
CONTEXT_NAMESPACE = "team-ctx"
DIGEST = "sha256:" + "b" * 64


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _auth(user: str, password: str) -> str:
    return _b64(f"{user}:{password}")


def assert_no_password(*texts: object) -> None:
    for text in texts:
        shown = str(text)
        for password in PASSWORDS:
            assert password not in shown, f"a password leaked into: {shown}"
            assert _auth("robot", password) not in shown, f"an auth token leaked into: {shown}"


def settle(tmp_path: Path, cli: Mapping[str, object] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    return resolve(cli or {}, env or {}, base_dir=tmp_path, cwd=tmp_path)


def on_user_cluster(tmp_path: Path, **cli: object) -> Settings:
    """Settings of a run on a user's cluster (a kubeconfig is named; it is never read here)."""
    return settle(tmp_path, {"geocube_kubeconfig": str(tmp_path / "kubeconfig"), **cli})


def user_choice() -> StackChoice:
    return StackChoice(Messaging.PGQUEUE, Storage.GS, AccessMode.PORT_FORWARD, embedded=False)


def embedded_choice() -> StackChoice:
    return StackChoice(Messaging.PGQUEUE, Storage.LOCAL, AccessMode.PORT_FORWARD, embedded=True)


def docker_config(tmp_path: Path, auths: Mapping[str, Mapping[str, str]], name: str = "config.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"auths": auths}), encoding="utf-8")
    return path


def good_config(tmp_path: Path) -> Path:
    return docker_config(tmp_path, {HOST: {"auth": _auth("robot", FILE_PASSWORD)}})


def decoded_config(manifest_body: Mapping[str, Any]) -> dict[str, Any]:
    data = manifest_body["data"][".dockerconfigjson"]
    config: dict[str, Any] = json.loads(base64.b64decode(data))
    return config


# --------------------------------------------------------------------------------------------------
# A stand-in for the three things run_pull_secret uses of a KubeClient. This is a unit test of our own
# decision logic; the real API server path (reading, copying and applying the Secret) is covered by the
# cluster self-tests.
# --------------------------------------------------------------------------------------------------


class _Core:
    def __init__(self, secrets: Mapping[tuple[str, str], k8s.V1Secret], fail: int | None) -> None:
        self.secrets = dict(secrets)
        self.fail = fail
        self.reads: list[tuple[str, str, float]] = []

    def read_namespaced_secret(self, name: str, namespace: str, _request_timeout: float) -> k8s.V1Secret:
        self.reads.append((name, namespace, _request_timeout))
        if self.fail is not None:
            raise ApiException(status=self.fail, reason="Forbidden")
        if (namespace, name) not in self.secrets:
            raise ApiException(status=404, reason="Not Found")
        return self.secrets[(namespace, name)]


class StandInKube:
    """``core.read_namespaced_secret``, ``api.sanitize_for_serialization`` (the real client's) and ``target``."""

    def __init__(
        self,
        secrets: Mapping[tuple[str, str], k8s.V1Secret] | None = None,
        *,
        fail: int | None = None,
        context_namespace: str = CONTEXT_NAMESPACE,
    ) -> None:
        self.core = _Core(secrets or {}, fail)
        self.api = k8s.ApiClient()
        self.target = SimpleNamespace(namespace=context_namespace)


def v1_secret(namespace: str, name: str, secret_type: str, data: Mapping[str, str]) -> k8s.V1Secret:
    return k8s.V1Secret(
        api_version="v1",
        kind="Secret",
        metadata=k8s.V1ObjectMeta(name=name, namespace=namespace),
        type=secret_type,
        data=dict(data),
    )


def pull_secret(namespace: str, name: str, host: str = HOST, password: str = SECRET_PASSWORD) -> k8s.V1Secret:
    """A working kubernetes.io/dockerconfigjson Secret, as pull_secret_manifest makes one."""
    body = pull_secret_manifest(name, {host: Credentials("robot", password)})
    return v1_secret(namespace, name, DOCKERCONFIGJSON, body["data"])


def make(settings: Settings, choice: StackChoice, kube: StandInKube) -> registry_access.PullSecret | None:
    return run_pull_secret(settings, choice, kube, RUN_NAMESPACE)  # type: ignore[arg-type]


@pytest.fixture
def no_embedded_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The embedded registry's password is never read from this machine's state."""

    def refuse() -> dict[str, Credentials]:
        raise AssertionError("the embedded registry's credentials were read")

    monkeypatch.setattr(registry_access, "embedded_auths", refuse)
    yield


# --------------------------------------------------------------------------------------------------
# The options: --image-pull-secret [NAMESPACE/]NAME and --registry-config FILE
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ref", ["regcred", "team-a/regcred", "team-a/reg.cred", "ns1/a"])
def test_image_pull_secret_is_a_name_or_namespace_slash_name(tmp_path: Path, ref: str) -> None:
    settings = settle(tmp_path, {"geocube_image_pull_secret": ref})
    assert settings.image_pull_secret == ref
    assert settings.source("image_pull_secret") == "cli --geocube-image-pull-secret"
    assert settings.registry_config is None


def test_pull_secret_options_default_to_none(tmp_path: Path) -> None:
    settings = settle(tmp_path)
    assert settings.image_pull_secret is None
    assert settings.registry_config is None


def test_pull_secret_options_come_from_the_environment(tmp_path: Path) -> None:
    settings = settle(tmp_path, env={"GEOCUBE_IMAGE_PULL_SECRET": "team-a/regcred"})
    assert settings.image_pull_secret == "team-a/regcred"
    assert settings.source("image_pull_secret") == "env GEOCUBE_IMAGE_PULL_SECRET"
    settings = settle(tmp_path, env={"GEOCUBE_REGISTRY_CONFIG": "conf/config.json"})
    assert settings.registry_config == (tmp_path / "conf" / "config.json").resolve()
    assert settings.source("registry_config") == "env GEOCUBE_REGISTRY_CONFIG"


def test_registry_config_is_resolved_against_the_working_directory(tmp_path: Path) -> None:
    settings = settle(tmp_path, {"geocube_registry_config": "docker/config.json"})
    assert settings.registry_config == (tmp_path / "docker" / "config.json").resolve()
    assert settings.source("registry_config") == "cli --geocube-registry-config"


@pytest.mark.parametrize(
    "ref", ["RegCred", "team_a/regcred", "a/b/c", "team-a/", "team-a/Reg", "-ns/regcred", "regcred-", "a b"]
)
def test_a_bad_image_pull_secret_names_the_setting_the_value_and_the_form(tmp_path: Path, ref: str) -> None:
    with pytest.raises(ConfigError) as error:
        settle(tmp_path, {"geocube_image_pull_secret": ref})
    message = str(error.value)
    assert "'image_pull_secret'" in message
    assert "cli --geocube-image-pull-secret" in message
    assert "NAMESPACE/NAME" in message
    assert "Fix: pass a valid value to --geocube-image-pull-secret" in message


def test_the_secrets_name_is_shown_not_masked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        settle(tmp_path, {"geocube_image_pull_secret": "Team-A/RegCred"})
    assert "'Team-A/RegCred'" in str(error.value)
    rows = {key: value for key, value, _ in settle(tmp_path, {"geocube_image_pull_secret": "team-a/rc"}).rows()}
    assert rows["image_pull_secret"] == "team-a/rc"


def test_an_empty_namespace_before_the_slash_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="NAMESPACE/NAME"):
        settle(tmp_path, {"geocube_image_pull_secret": "/regcred"})


def test_both_credentials_options_are_one_error_that_says_keep_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        settle(tmp_path, {"geocube_image_pull_secret": "regcred", "geocube_registry_config": "config.json"})
    message = str(error.value)
    assert "--image-pull-secret and --registry-config" in message
    assert "keep one" in message


def test_registry_config_with_an_existing_namespace_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        settle(tmp_path, {"geocube_registry_config": "config.json", "geocube_existing_namespace": "prod"})
    message = str(error.value)
    assert "--registry-config" in message
    assert "--existing-namespace" in message
    assert "drop --registry-config, or name it with --image-pull-secret NAME" in message


def test_a_secret_of_another_namespace_than_the_existing_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        settle(tmp_path, {"geocube_image_pull_secret": "staging/regcred", "geocube_existing_namespace": "prod"})
    message = str(error.value)
    assert "--image-pull-secret staging/regcred" in message
    assert "--existing-namespace prod" in message
    assert "own namespace" in message
    assert "give its NAME in that namespace" in message


@pytest.mark.parametrize("ref", ["regcred", "prod/regcred"])
def test_a_secret_in_the_existing_namespace_is_accepted(tmp_path: Path, ref: str) -> None:
    settings = settle(tmp_path, {"geocube_image_pull_secret": ref, "geocube_existing_namespace": "prod"})
    assert settings.image_pull_secret == ref
    assert settings.existing_namespace == "prod"


def test_every_pull_secret_conflict_is_named_at_once(tmp_path: Path) -> None:
    cli = {
        "geocube_image_pull_secret": "staging/regcred",
        "geocube_registry_config": "config.json",
        "geocube_existing_namespace": "prod",
    }
    with pytest.raises(ConfigError) as error:
        settle(tmp_path, cli)
    lines = str(error.value).splitlines()
    assert len(lines) == 3
    assert any("both give the pods' registry credentials" in line for line in lines)
    assert any("never changed" in line for line in lines)
    assert any("names another namespace" in line for line in lines)


def test_a_pull_secret_conflict_is_named_beside_other_problems(tmp_path: Path) -> None:
    cli = {"geocube_image_pull_secret": "regcred", "geocube_registry_config": "c.json", "geocube_messaging": "kafka"}
    with pytest.raises(ConfigError) as error:
        settle(tmp_path, cli)
    message = str(error.value)
    assert "'kafka'" in message
    assert "--image-pull-secret and --registry-config" in message


# --------------------------------------------------------------------------------------------------
# The Secret every pod names
# --------------------------------------------------------------------------------------------------


def test_the_embedded_default_names_the_runs_secret(tmp_path: Path) -> None:
    settings = settle(tmp_path)
    assert pull_secret_name(settings, StackChoice.of(settings)) == RUN_PULL_SECRET == "geocube-registry"


def test_a_users_cluster_without_options_names_no_secret(tmp_path: Path) -> None:
    assert pull_secret_name(on_user_cluster(tmp_path), user_choice()) is None


@pytest.mark.parametrize("ref", ["regcred", "team-a/regcred"])
@pytest.mark.parametrize("embedded", [False, True])
def test_image_pull_secret_names_its_name_without_the_namespace(tmp_path: Path, ref: str, embedded: bool) -> None:
    settings = settle(tmp_path, {"geocube_image_pull_secret": ref})
    choice = embedded_choice() if embedded else user_choice()
    assert pull_secret_name(settings, choice) == "regcred"


def test_registry_config_names_the_runs_secret(tmp_path: Path) -> None:
    settings = on_user_cluster(tmp_path, geocube_registry_config="config.json")
    assert pull_secret_name(settings, user_choice()) == RUN_PULL_SECRET


@pytest.mark.parametrize(
    ("name", "param", "parsed"),
    [
        ("geocube-registry", "[{name: geocube-registry}]", [{"name": "geocube-registry"}]),
        ("reg.cred", "[{name: reg.cred}]", [{"name": "reg.cred"}]),
        (None, "[]", []),
    ],
)
def test_image_pull_secrets_param_is_a_yaml_flow_sequence(name: str | None, param: str, parsed: object) -> None:
    assert image_pull_secrets_param(name) == param
    assert yaml.safe_load(image_pull_secrets_param(name)) == parsed


# --------------------------------------------------------------------------------------------------
# --registry-config read before anything is built
# --------------------------------------------------------------------------------------------------


def test_no_registry_config_is_nothing_to_check(tmp_path: Path) -> None:
    check_registry_config(settle(tmp_path))


def test_a_good_registry_config_passes(tmp_path: Path) -> None:
    check_registry_config(on_user_cluster(tmp_path, geocube_registry_config=str(good_config(tmp_path))))


def test_a_missing_registry_config_is_a_render_error_naming_the_file_and_a_fix(tmp_path: Path) -> None:
    settings = on_user_cluster(tmp_path, geocube_registry_config="nowhere/config.json")
    with pytest.raises(RenderError) as error:
        check_registry_config(settings)
    message = str(error.value)
    assert message.startswith("--registry-config: ")
    assert str(tmp_path / "nowhere" / "config.json") in message
    assert "no such file" in message
    assert "Fix:" in message


@pytest.mark.parametrize(
    ("content", "words"),
    [
        pytest.param('{"auths": {"h": {"auth": "' + FILE_PASSWORD + '"', "it is not JSON", id="truncated-json"),
        pytest.param(
            json.dumps({"auths": {HOST: {"auth": _b64(FILE_PASSWORD)}}}),
            "does not decode to user:password",
            id="nocolon",
        ),
        pytest.param(json.dumps({"auths": {HOST: {"auth": FILE_PASSWORD + "!"}}}), "is not base64", id="not-base64"),
        pytest.param(json.dumps({"auths": {HOST: {}}, "credsStore": "desktop"}), "credential helper", id="creds-store"),
        pytest.param(json.dumps({"auths": {}}), "holds no credentials", id="no-auths"),
        pytest.param("", "the file is empty", id="empty"),
    ],
)
def test_a_bad_registry_config_is_a_render_error_without_its_password(tmp_path: Path, content: str, words: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(RenderError) as error:
        check_registry_config(on_user_cluster(tmp_path, geocube_registry_config=str(path)))
    message = str(error.value)
    assert words in message
    assert str(path) in message
    assert "Fix:" in message
    assert_no_password(message)


# --------------------------------------------------------------------------------------------------
# The Secret the run makes
# --------------------------------------------------------------------------------------------------


def test_an_existing_namespace_gets_no_secret_and_the_cluster_is_not_asked(
    tmp_path: Path, no_embedded_registry: None
) -> None:
    kube = StandInKube()
    settings = settle(tmp_path, {"geocube_existing_namespace": "prod", "geocube_image_pull_secret": "regcred"})
    assert make(settings, embedded_choice(), kube) is None
    assert make(settings, user_choice(), kube) is None
    assert kube.core.reads == []


def test_a_users_cluster_without_options_gets_no_secret(tmp_path: Path, no_embedded_registry: None) -> None:
    kube = StandInKube()
    assert make(on_user_cluster(tmp_path), user_choice(), kube) is None
    assert kube.core.reads == []


def test_registry_config_makes_the_runs_secret_in_the_run_namespace(tmp_path: Path, no_embedded_registry: None) -> None:
    path = good_config(tmp_path)
    settings = on_user_cluster(tmp_path, geocube_registry_config=str(path), geocube_run_id="20240101-000000")
    made = make(settings, user_choice(), StandInKube())
    assert made is not None
    manifest = made.manifest
    assert (manifest.kind, manifest.name, manifest.namespace) == ("Secret", RUN_PULL_SECRET, RUN_NAMESPACE)
    assert manifest.body["metadata"]["namespace"] == RUN_NAMESPACE
    assert run_labels(settings.run_id).items() <= manifest.body["metadata"]["labels"].items()
    assert manifest.body["type"] == DOCKERCONFIGJSON
    assert made.source == f"--registry-config {path}"
    assert str(path) in manifest.origin
    assert auths_of_secret(manifest.body) == {HOST: Credentials("robot", FILE_PASSWORD)}
    assert FILE_PASSWORD in made.secrets
    assert _auth("robot", FILE_PASSWORD) in made.secrets
    assert manifest.body["data"][".dockerconfigjson"] in made.secrets  # the body itself is masked too
    assert_no_password(made.source, manifest.origin, repr(made.manifest.name))


def test_a_bad_registry_config_at_deploy_time_is_a_deploy_error(tmp_path: Path, no_embedded_registry: None) -> None:
    path = docker_config(tmp_path, {HOST: {"auth": _b64(FILE_PASSWORD)}})
    with pytest.raises(DeployError) as error:
        make(on_user_cluster(tmp_path, geocube_registry_config=str(path)), user_choice(), StandInKube())
    message = str(error.value)
    assert message.startswith("the pods' pull Secret cannot be made: ")
    assert "user:password" in message
    assert_no_password(message)


def test_the_embedded_default_makes_the_runs_secret_of_the_registrys_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        registry_access, "embedded_auths", lambda: {REGISTRY_HOST: Credentials("geocube", EMBEDDED_PASSWORD)}
    )
    settings = settle(tmp_path)
    made = make(settings, StackChoice.of(settings), StandInKube())
    assert made is not None
    assert (made.manifest.name, made.manifest.namespace) == (RUN_PULL_SECRET, RUN_NAMESPACE)
    assert made.source == "the embedded registry's credentials"
    assert auths_of_secret(made.manifest.body) == {REGISTRY_HOST: Credentials("geocube", EMBEDDED_PASSWORD)}
    assert EMBEDDED_PASSWORD in made.secrets
    assert_no_password(made.source, made.manifest.origin)


def test_embedded_auths_are_the_registrys_one_user_for_its_host(monkeypatch: pytest.MonkeyPatch) -> None:
    import localcluster.registry

    monkeypatch.setattr(localcluster.registry, "pull_credentials", lambda: ("geocube", EMBEDDED_PASSWORD))
    assert registry_access.embedded_auths() == {REGISTRY_HOST: Credentials("geocube", EMBEDDED_PASSWORD)}
    assert_no_password(repr(registry_access.embedded_auths()))


def test_a_named_namespaces_secret_is_copied_into_the_run_namespace(tmp_path: Path, no_embedded_registry: None) -> None:
    kube = StandInKube({("team-a", "regcred"): pull_secret("team-a", "regcred")})
    settings = on_user_cluster(tmp_path, geocube_image_pull_secret="team-a/regcred")
    made = make(settings, user_choice(), kube)
    assert made is not None
    assert kube.core.reads == [("regcred", "team-a", registry_access.REQUEST_TIMEOUT)]
    assert (made.manifest.name, made.manifest.namespace) == ("regcred", RUN_NAMESPACE)
    assert made.manifest.body["metadata"]["namespace"] == RUN_NAMESPACE
    assert made.source == "copied from team-a/regcred"
    assert auths_of_secret(made.manifest.body) == {HOST: Credentials("robot", SECRET_PASSWORD)}
    assert SECRET_PASSWORD in made.secrets
    assert_no_password(made.source, made.manifest.origin)


def test_a_bare_secret_name_is_read_from_the_contexts_namespace(tmp_path: Path, no_embedded_registry: None) -> None:
    kube = StandInKube({(CONTEXT_NAMESPACE, "regcred"): pull_secret(CONTEXT_NAMESPACE, "regcred")})
    made = make(on_user_cluster(tmp_path, geocube_image_pull_secret="regcred"), user_choice(), kube)
    assert made is not None
    assert kube.core.reads == [("regcred", CONTEXT_NAMESPACE, registry_access.REQUEST_TIMEOUT)]
    assert made.source == f"copied from {CONTEXT_NAMESPACE}/regcred"
    assert made.manifest.name == "regcred"


def test_image_pull_secret_wins_over_the_embedded_default(tmp_path: Path, no_embedded_registry: None) -> None:
    kube = StandInKube({("team-a", "regcred"): pull_secret("team-a", "regcred")})
    made = make(settle(tmp_path, {"geocube_image_pull_secret": "team-a/regcred"}), embedded_choice(), kube)
    assert made is not None
    assert made.manifest.name == "regcred"
    assert made.source == "copied from team-a/regcred"


def test_a_legacy_dockercfg_secret_is_copied_as_dockerconfigjson(tmp_path: Path, no_embedded_registry: None) -> None:
    legacy = json.dumps({HOST: {"auth": _auth("robot", SECRET_PASSWORD)}})
    kube = StandInKube({("team-a", "old"): v1_secret("team-a", "old", DOCKERCFG, {".dockercfg": _b64(legacy)})})
    made = make(on_user_cluster(tmp_path, geocube_image_pull_secret="team-a/old"), user_choice(), kube)
    assert made is not None
    assert made.manifest.body["type"] == DOCKERCONFIGJSON
    assert decoded_config(made.manifest.body)["auths"][HOST]["username"] == "robot"


@pytest.mark.parametrize(("ref", "namespace"), [("team-a/regcred", "team-a"), ("regcred", CONTEXT_NAMESPACE)])
def test_a_missing_secret_names_itself_its_namespace_and_a_fix(
    tmp_path: Path, no_embedded_registry: None, ref: str, namespace: str
) -> None:
    kube = StandInKube({("elsewhere", "regcred"): pull_secret("elsewhere", "regcred")})
    with pytest.raises(DeployError) as error:
        make(on_user_cluster(tmp_path, geocube_image_pull_secret=ref), user_choice(), kube)
    message = str(error.value)
    assert message.startswith("the pods' pull Secret cannot be made: --image-pull-secret: ")
    assert f"Secret regcred does not exist in namespace {namespace}" in message
    assert f"Fix: create it there (kubectl -n {namespace} create secret docker-registry regcred" in message
    assert "--image-pull-secret NAMESPACE/NAME" in message
    assert_no_password(message)


def test_a_secret_that_cannot_be_read_says_what_rights_are_missing(tmp_path: Path, no_embedded_registry: None) -> None:
    kube = StandInKube(fail=403)
    with pytest.raises(DeployError) as error:
        make(on_user_cluster(tmp_path, geocube_image_pull_secret="team-a/regcred"), user_choice(), kube)
    message = str(error.value)
    assert "Secret team-a/regcred cannot be read (403 Forbidden)" in message
    assert "get on secrets" in message


@pytest.mark.parametrize(
    ("secret", "words"),
    [
        pytest.param(
            v1_secret("team-a", "regcred", "Opaque", {"password": _b64(SECRET_PASSWORD)}),
            "is of type 'Opaque'",
            id="opaque",
        ),
        pytest.param(
            v1_secret("team-a", "regcred", DOCKERCONFIGJSON, {"other": _b64(SECRET_PASSWORD)}),
            "has no data key .dockerconfigjson",
            id="no-key",
        ),
        pytest.param(
            v1_secret(
                "team-a",
                "regcred",
                DOCKERCONFIGJSON,
                {".dockerconfigjson": _b64(json.dumps({"auths": {HOST: {"auth": _b64(SECRET_PASSWORD)}}}))},
            ),
            "does not decode to user:password",
            id="auth-without-colon",
        ),
        pytest.param(
            v1_secret(
                "team-a",
                "regcred",
                DOCKERCONFIGJSON,
                {".dockerconfigjson": _b64('{"auths": {"' + HOST + '": {"password": "' + SECRET_PASSWORD + '"')},
            ),
            "it is not JSON",
            id="truncated-json",
        ),
    ],
)
def test_an_unusable_secret_is_a_deploy_error_without_its_password(
    tmp_path: Path, no_embedded_registry: None, secret: k8s.V1Secret, words: str
) -> None:
    kube = StandInKube({("team-a", "regcred"): secret})
    with pytest.raises(DeployError) as error:
        make(on_user_cluster(tmp_path, geocube_image_pull_secret="team-a/regcred"), user_choice(), kube)
    message = str(error.value)
    assert words in message
    assert "team-a/regcred" in message
    assert "Fix:" in message
    assert_no_password(message)


# --------------------------------------------------------------------------------------------------
# IMAGE_PULL_SECRETS in the stack's parameters
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def no_go_module(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Geocube's SQL is not read from the Go module cache: placeholders stand for it."""

    def placeholders(messaging: str, *, read: bool = True) -> dict[str, str]:
        return {"GEOCUBE_CREATE_SQL": "-- sql", "PGQUEUE_CREATE_TABLE_SQL": "-- sql"}

    monkeypatch.setattr(geocube_stack.params, "sql_params", placeholders)
    yield


def pull_secrets_param(settings: Settings, choice: StackChoice) -> str:
    return stack_parameters(settings, {}, choice, namespace=RUN_NAMESPACE)["IMAGE_PULL_SECRETS"]


def test_the_embedded_default_stack_names_geocube_registry(tmp_path: Path, no_go_module: None) -> None:
    settings = settle(tmp_path)
    choice = StackChoice.of(settings)
    assert choice.embedded
    assert pull_secrets_param(settings, choice) == "[{name: geocube-registry}]"


def test_a_users_stack_without_options_names_no_secret(tmp_path: Path, no_go_module: None) -> None:
    assert pull_secrets_param(on_user_cluster(tmp_path), user_choice()) == "[]"


def test_a_users_stack_names_the_given_secret(tmp_path: Path, no_go_module: None) -> None:
    settings = on_user_cluster(tmp_path, geocube_image_pull_secret="team-a/regcred")
    assert pull_secrets_param(settings, user_choice()) == "[{name: regcred}]"


def test_a_users_stack_with_a_registry_config_names_the_runs_secret(tmp_path: Path, no_go_module: None) -> None:
    settings = on_user_cluster(tmp_path, geocube_registry_config=str(good_config(tmp_path)))
    assert pull_secrets_param(settings, user_choice()) == "[{name: geocube-registry}]"


@pytest.mark.parametrize("embedded", [True, False])
def test_the_users_own_image_pull_secrets_parameter_wins(tmp_path: Path, no_go_module: None, embedded: bool) -> None:
    cli: dict[str, object] = {
        "geocube_set": ["IMAGE_PULL_SECRETS=[{name: mine}, {name: theirs}]"],
        "geocube_image_pull_secret": "team-a/regcred",
    }
    settings = settle(tmp_path, cli) if embedded else on_user_cluster(tmp_path, **cli)
    choice = embedded_choice() if embedded else user_choice()
    assert pull_secrets_param(settings, choice) == "[{name: mine}, {name: theirs}]"
    assert settings.source("params.IMAGE_PULL_SECRETS") == "cli --set"


def test_a_bad_registry_config_stops_the_parameters(tmp_path: Path, no_go_module: None) -> None:
    settings = on_user_cluster(tmp_path, geocube_registry_config="missing.json")
    with pytest.raises(RenderError, match=r"^--registry-config: .*missing\.json: no such file"):
        stack_parameters(settings, {}, user_choice(), namespace=RUN_NAMESPACE)


# --------------------------------------------------------------------------------------------------
# PLAT-IMAGES: what one image's evidence concludes
# --------------------------------------------------------------------------------------------------

IMAGE = f"{HOST}/team/app:1.0"
USERS = ["Deployment/apiserver container server", "ReplicationController/consolidater container worker"]


def finding(**fields: Any) -> Finding:
    use = Use(IMAGE, containers=list(USERS), policies={"IfNotPresent"}, secrets={"regcred"})
    return Finding(use, **fields)


def registry_said(failure: Failure) -> str:
    return f"cannot read the manifest of {IMAGE} from the registry {HOST}: {failure.value} (refused). Fix: …"


@pytest.mark.parametrize("failure", [Failure.UNKNOWN_REGISTRY, Failure.TLS])
def test_an_unreachable_registry_is_no_problem_when_a_pod_runs_the_image(failure: Failure) -> None:
    found = finding(
        registry_failure=failure, registry_said=registry_said(failure), pod_digests={"apiserver-1/server": DIGEST}
    )
    assert found.problem() is None
    row = found.row()
    assert row["pullable, proved by"] == "node (registry not reachable from the runner)"
    assert row["registry digest"] == failure.value
    assert row["pods run"] == {"apiserver-1/server": DIGEST}


@pytest.mark.parametrize("failure", [Failure.UNKNOWN_REGISTRY, Failure.TLS])
def test_an_unreachable_registry_without_pods_is_a_problem_naming_image_users_and_fix(failure: Failure) -> None:
    found = finding(registry_failure=failure, registry_said=registry_said(failure))
    problem = found.problem()
    assert problem is not None
    assert IMAGE in problem
    assert all(user in problem for user in USERS)
    assert "Fix: " in problem
    assert HOST in problem.rpartition("Fix: ")[2]
    row = found.row()
    assert row["pullable, proved by"] == "not proved"
    assert row["pods run"] == "no pod running"


@pytest.mark.parametrize("failure", [Failure.UNAUTHORIZED, Failure.NOT_FOUND, Failure.OTHER])
def test_a_registry_refusal_is_a_problem_even_when_a_pod_runs_the_image(failure: Failure) -> None:
    found = finding(
        registry_failure=failure, registry_said=registry_said(failure), pod_digests={"apiserver-1/server": DIGEST}
    )
    problem = found.problem()
    assert problem is not None
    assert IMAGE in problem
    assert "Fix: " in problem


@pytest.mark.parametrize("digest", ["", DIGEST])
def test_a_pull_error_is_always_a_problem(digest: str) -> None:
    error = f"pod apiserver-1/server cannot pull {IMAGE}: unauthorized (401). Fix: give the pods …"
    found = finding(registry_digest=digest, pod_digests={"apiserver-0/server": DIGEST}, pull_errors=[error])
    assert found.problem() == error
    found = finding(
        registry_failure=Failure.UNKNOWN_REGISTRY,
        registry_said=registry_said(Failure.UNKNOWN_REGISTRY),
        pod_digests={"apiserver-0/server": DIGEST},
        pull_errors=[error, error + " again"],
    )
    assert found.problem() == f"{error}; {error} again"


def test_the_registrys_digest_proves_the_image() -> None:
    found = finding(registry_digest=DIGEST)
    assert found.problem() is None
    row = found.row()
    assert row["pullable, proved by"] == "registry"
    assert row["registry digest"] == DIGEST
    assert row["used by"] == sorted(USERS)
    assert row["imagePullSecrets"] == ["regcred"]
    assert row["pull policy"] == ["IfNotPresent"]


def test_a_workload_without_pull_secrets_shows_none() -> None:
    assert Finding(Use(IMAGE, containers=["Job/x container y"])).row()["imagePullSecrets"] == "none"


class Registry:
    """``manifest_digest`` as ask_registry calls it: records the credentials, answers or refuses."""

    def __init__(self, failure: Failure | None = None) -> None:
        self.failure = failure
        self.asked: list[tuple[str, Credentials | None]] = []

    def __call__(self, ref: str, credentials: Credentials | None, *, ca_file: Path | None = None) -> str:
        self.asked.append((ref, credentials))
        if self.failure is not None:
            raise RegistryAnswerError(registry_said(self.failure), self.failure)
        return DIGEST


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Registry:
    fake = Registry()
    monkeypatch.setattr(images, "manifest_digest", fake)
    return fake


AUTHS: dict[str, dict[str, Credentials]] = {
    "regcred": {HOST: Credentials("robot", SECRET_PASSWORD)},
    "other": {OTHER_HOST: Credentials("robot", OTHER_PASSWORD)},
}


def test_ask_registry_records_the_digest_asked_with_the_secrets_credentials(registry: Registry) -> None:
    found = finding()
    ask_registry(found, AUTHS, None)
    assert registry.asked == [(IMAGE, Credentials("robot", SECRET_PASSWORD))]
    assert found.registry_digest == DIGEST
    assert found.registry_failure is None
    assert found.problem() is None


def test_unauthorized_without_credentials_says_no_pull_secret_holds_any(registry: Registry) -> None:
    registry.failure = Failure.UNAUTHORIZED
    found = Finding(Use(IMAGE, containers=list(USERS), secrets={"other"}))
    ask_registry(found, AUTHS, None)
    assert registry.asked == [(IMAGE, None)]
    assert found.registry_failure is Failure.UNAUTHORIZED
    assert f"no pull Secret of the workload holds credentials for {HOST} (Secrets: other)" in found.registry_said
    problem = found.problem()
    assert problem is not None
    assert IMAGE in problem
    assert all(user in problem for user in USERS)
    assert f"working credentials for {HOST}" in problem
    assert "--image-pull-secret or --registry-config" in problem
    assert_no_password(found.registry_said, problem, found.row())


def test_unauthorized_without_any_pull_secret_says_none(registry: Registry) -> None:
    registry.failure = Failure.UNAUTHORIZED
    found = Finding(Use(IMAGE, containers=list(USERS)))
    ask_registry(found, AUTHS, None)
    assert f"holds credentials for {HOST} (Secrets: none)" in found.registry_said


def test_unauthorized_with_credentials_blames_them_not_their_absence(registry: Registry) -> None:
    registry.failure = Failure.UNAUTHORIZED
    found = finding()
    ask_registry(found, AUTHS, None)
    assert registry.asked == [(IMAGE, Credentials("robot", SECRET_PASSWORD))]
    assert "no pull Secret" not in found.registry_said
    problem = found.problem()
    assert problem is not None
    assert_no_password(found.registry_said, problem, found.row(), registry.asked)


def test_an_unreachable_registry_is_recorded_and_the_pods_decide(registry: Registry) -> None:
    registry.failure = Failure.UNKNOWN_REGISTRY
    found = finding()
    ask_registry(found, AUTHS, None)
    assert found.registry_failure is Failure.UNKNOWN_REGISTRY
    assert found.problem() is not None
    found.pod_digests["apiserver-1/server"] = DIGEST
    assert found.problem() is None
    assert found.row()["pullable, proved by"] == "node (registry not reachable from the runner)"


def test_a_registry_answer_never_shows_a_password_in_a_row_or_a_problem(registry: Registry) -> None:
    for failure in Failure:
        registry.failure = failure
        for secrets in ({"regcred"}, {"other"}, set()):
            found = Finding(Use(IMAGE, containers=list(USERS), secrets=set(secrets)))
            ask_registry(found, AUTHS, None)
            assert_no_password(found.registry_said, found.problem(), found.row())


def test_a_malformed_image_in_a_workload_is_recorded_not_raised(registry: Registry) -> None:
    found = Finding(Use("registry.example.com/Team/App:1.0", containers=list(USERS)))
    try:
        ask_registry(found, AUTHS, None)
    except PullSecretError as err:  # pragma: no cover - the bug
        pytest.fail(f"ask_registry raised instead of recording: {err}")
    assert found.registry_failure is Failure.OTHER
    assert "malformed" in found.registry_said
