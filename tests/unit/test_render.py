"""Rendering of {{NAME}} templates: every error at once with file:line, injection, order, warnings."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

from fixtures.errors import RenderError
from fixtures.labels import NAMESPACE_LABEL
from fixtures.render import Template, check_object, load_templates, only_if_holds, render, render_dir
from reports.masking import MASK, Masker

pytest_plugins = ["pytester"]

NS = "geocube-e2e-run1-abcde"
LABELS = {"geocube-acceptance/run-id": "run1"}

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: apiserver
spec:
  selector:
    matchLabels: {app: apiserver}
  template:
    metadata:
      labels: {app: apiserver}
    spec:
      containers:
      - name: apiserver
        image: {{SERVER_IMAGE}}
        args: ["-dbPassword={{POSTGRES_PASSWORD}}"]
"""


def tpl(name: str, text: str) -> Template:
    return Template(Path(name), name, textwrap.dedent(text))


def go(*templates: Template, **params: str) -> list[dict[str, object]]:
    result = render(list(templates), params, namespace=NS, labels=LABELS)
    return [dict(m.body) for m in result.objects]


def errors_of(*templates: Template, **params: str) -> str:
    with pytest.raises(RenderError) as error:
        render(list(templates), params, namespace=NS, labels=LABELS)
    return str(error.value)


# --------------------------------------------------------------------------------------------------
# Missing, unused and malformed parameters
# --------------------------------------------------------------------------------------------------


def test_every_missing_parameter_is_reported_at_once_with_file_and_line() -> None:
    database = tpl(
        "database/db.yaml",
        """\
        apiVersion: v1
        kind: Secret
        metadata: {name: db}
        stringData:
          user: "{{POSTGRES_USER}}"
          password: "{{POSTGRES_PASSWORD}}"
        """,
    )
    message = errors_of(database, tpl("apiserver/apiserver.yaml", DEPLOYMENT))
    assert "3 missing parameter(s)" in message
    assert "  POSTGRES_PASSWORD: used at database/db.yaml:6, apiserver/apiserver.yaml:15" in message
    assert "  POSTGRES_USER: used at database/db.yaml:5" in message
    assert "  SERVER_IMAGE: used at apiserver/apiserver.yaml:14" in message
    assert "nothing was applied" in message
    assert "--set NAME=VALUE" in message


def test_unused_user_parameters_are_listed_but_derived_ones_are_not() -> None:
    result = render(
        [tpl("a.yaml", DEPLOYMENT)],
        {"SERVER_IMAGE": "s", "POSTGRES_PASSWORD": "p", "GCS_EMULATOR_IMAGE": "g", "SERVR_IMAGE": "typo"},
        namespace=NS,
        labels=LABELS,
        check_unused=["SERVR_IMAGE", "POSTGRES_PASSWORD"],
    )
    assert result.unused == ("SERVR_IMAGE",)
    assert result.used == {"SERVER_IMAGE", "POSTGRES_PASSWORD"}


def test_malformed_placeholder_is_an_error() -> None:
    bad = tpl("api.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  host: '{{BD-HOST}}'\n")
    assert "api.yaml:5: malformed placeholder '{{BD-HOST}}'" in errors_of(bad)


def test_placeholders_in_comments_need_no_value() -> None:
    commented = tpl("c.yaml", "# set {{SOMETHING}} to tune\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
    assert go(commented)[0]["kind"] == "ConfigMap"


def test_multi_line_value_continues_at_the_placeholder_indent() -> None:
    config_map = tpl(
        "init.yaml",
        """\
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: init-sql}
        data:
          create.sql: |
            {{CREATE_SQL}}
          other: x
        """,
    )
    [body] = go(config_map, CREATE_SQL="CREATE SCHEMA geocube;\nCREATE TABLE t (id int);")
    assert body["data"] == {"create.sql": "CREATE SCHEMA geocube;\nCREATE TABLE t (id int);\n", "other": "x"}


# --------------------------------------------------------------------------------------------------
# YAML and schema errors, per file and object
# --------------------------------------------------------------------------------------------------


UPSTREAM_DATABASE = """\
apiVersion: networking.k8s.io/v1
kind: Deployment
metadata:
  name: postgres
spec:
  template:
    metadata:
      labels: {app: postgres}
    spec:
      containers: [{name: db, image: postgres:11}]
---
ind: PersistentVolume
apiVersion: v1
metadata:
  name: geocube-pv
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: autoscaler}
rules:
- resources: [pods]
  verbs: [get, list, delete, create]
- apiGroups: [""]
  resources: [replicationcontrollers]
  verbs: [get]
"""


def test_schema_errors_of_the_upstream_example_are_reported_per_object() -> None:
    message = errors_of(tpl("database.yaml", UPSTREAM_DATABASE))
    lines = message.splitlines()
    assert (
        "database.yaml:1 (Deployment/postgres): apiVersion networking.k8s.io/v1 does not serve kind Deployment; "
        "use apiVersion: apps/v1" in lines
    )
    assert any(
        line.startswith("database.yaml:1 (Deployment/postgres): Deployment without spec.selector") for line in lines
    )
    assert "database.yaml:12 (?/geocube-pv): unknown top-level field 'ind' (did you mean 'kind'?)" in lines
    assert "database.yaml:12 (?/geocube-pv): missing kind" in lines
    assert 'database.yaml:17 (Role/autoscaler): rules[0] has no apiGroups (use [""] for the core group)' in lines
    assert not any("rules[1]" in line for line in lines)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("- a list\n", "a document must be a mapping"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", "missing metadata.name"),
        (
            "apiVersion: v1\nkind: Confgmap\nmetadata: {name: x}\n",
            "kind Confgmap is unknown to the harness (did you mean ConfigMap?)",
        ),
        ("apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n", "the harness creates the namespace itself"),
        ("apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: pv}\n", "put {{NAMESPACE}} in its name"),
        (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  selector: {matchLabels: {app: a}}\n"
            "  template: {metadata: {labels: {app: b}}}\n",
            "do not match spec.template.metadata.labels",
        ),
        (
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: b}\n",
            "RoleBinding without roleRef",
        ),
    ],
)
def test_basic_schema_errors(document: str, expected: str) -> None:
    assert expected in errors_of(tpl("x.yaml", document))


def test_cluster_scoped_object_named_after_the_namespace_is_fine() -> None:
    assert check_object({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"{NS}-data"}}, NS) == []


def test_yaml_syntax_errors_name_file_and_line_and_other_files_are_still_checked() -> None:
    broken = tpl("broken.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [oops\n")
    other = tpl("other.yaml", "apiVersion: v1\nkind: Sevice\nmetadata: {name: s}\n")
    message = errors_of(broken, other)
    assert "broken.yaml:4: YAML syntax error: while parsing a flow sequence" in message
    assert "other.yaml:1 (Sevice/s): kind Sevice is unknown" in message


def test_missing_parameters_and_schema_errors_come_in_one_report() -> None:
    message = errors_of(tpl("a.yaml", DEPLOYMENT), tpl("b.yaml", "kind: Service\nmetadata: {name: s}\n"))
    assert "SERVER_IMAGE: used at a.yaml:14" in message
    assert "b.yaml:1 (Service/s): missing apiVersion" in message


def test_duplicate_objects_are_an_error() -> None:
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: same}\n"
    assert "b.yaml:1 (ConfigMap/same): defined twice, also at a.yaml:1" in errors_of(
        tpl("a.yaml", cm), tpl("b.yaml", cm)
    )


# --------------------------------------------------------------------------------------------------
# Injection, selection and order
# --------------------------------------------------------------------------------------------------


def test_namespace_and_labels_are_injected() -> None:
    objects = go(
        tpl(
            "rbac.yaml",
            """\
            apiVersion: rbac.authorization.k8s.io/v1
            kind: RoleBinding
            metadata: {name: autoscaler, namespace: default, labels: {app: autoscaler}}
            roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: autoscaler}
            subjects:
            - {kind: ServiceAccount, name: autoscaler, namespace: "{{NAMESPACE}}"}
            - {kind: ServiceAccount, name: apiserver}
            - {kind: ServiceAccount, name: elsewhere, namespace: other}
            - {kind: User, name: jane}
            ---
            apiVersion: storage.k8s.io/v1
            kind: StorageClass
            metadata: {name: "{{NAMESPACE}}-local"}
            provisioner: kubernetes.io/no-provisioner
            """,
        ),
    )  # {{NAMESPACE}} is the renderer's own parameter
    storage_class, binding = objects  # cluster-scoped storage comes before RBAC
    assert binding["metadata"] == {
        "name": "autoscaler",
        "namespace": NS,  # a hard-wired "default" would make two runs collide
        "labels": {"app": "autoscaler", **LABELS},
    }
    subjects = binding["subjects"]
    assert isinstance(subjects, list)
    assert [s.get("namespace") for s in subjects] == [NS, NS, "other", None]
    assert "namespace" not in storage_class["metadata"]  # type: ignore[operator]
    # It outlives the namespace: labelled with it, so that a janitor finds it.
    assert storage_class["metadata"]["labels"] == {**LABELS, NAMESPACE_LABEL: NS}  # type: ignore[index]


def test_objects_come_in_dependency_order_stable_within_a_kind() -> None:
    def obj(kind: str, name: str, api: str = "v1") -> str:
        extra = "spec: {selector: {matchLabels: {a: b}}, template: {metadata: {labels: {a: b}}}}\n"
        return f"apiVersion: {api}\nkind: {kind}\nmetadata: {{name: {name}}}\n" + (extra if api == "apps/v1" else "")

    text = "---\n".join(
        [
            obj("Deployment", "server", "apps/v1"),
            obj("Service", "server"),
            obj("RoleBinding", "rb", "rbac.authorization.k8s.io/v1") + "roleRef: {kind: Role, name: r, apiGroup: x}\n",
            obj("ConfigMap", "b"),
            obj("ReplicationController", "consolidater"),
            obj("Role", "r", "rbac.authorization.k8s.io/v1"),
            obj("ServiceAccount", "apiserver"),
            obj("ConfigMap", "a"),
            obj("Secret", "db"),
            obj("PersistentVolumeClaim", "data"),
        ]
    )
    result = render([tpl("all.yaml", text)], {}, namespace=NS, labels={})
    assert [m.ref for m in result.objects] == [
        "ServiceAccount/apiserver",
        "Secret/db",
        "ConfigMap/b",
        "ConfigMap/a",
        "PersistentVolumeClaim/data",
        "Role/r",
        "RoleBinding/rb",
        "Service/server",
        "ReplicationController/consolidater",
        "Deployment/server",
    ]
    assert result.objects[0].origin == "all.yaml:27"  # where its document starts


def test_only_if_annotation_selects_objects_per_profile() -> None:
    text = """\
    apiVersion: v1
    kind: ConfigMap
    metadata:
      name: pubsub-init
      annotations: {geocube-acceptance/only-if: "MESSAGING=pubsub"}
    ---
    apiVersion: v1
    kind: ConfigMap
    metadata:
      name: pgqueue-local
      annotations: {geocube-acceptance/only-if: "MESSAGING=pgqueue, STORAGE!=gs"}
    """
    result = render([tpl("p.yaml", text)], {"MESSAGING": "pgqueue", "STORAGE": "local"}, namespace=NS, labels={})
    assert [m.name for m in result.objects] == ["pgqueue-local"]
    assert result.skipped == ("p.yaml:1 ConfigMap/pubsub-init: only-if MESSAGING=pubsub",)


def test_only_if_conditions() -> None:
    params = {"MESSAGING": "pubsub", "STORAGE": "gs"}
    assert only_if_holds("MESSAGING=pubsub", params)
    assert only_if_holds("MESSAGING=pubsub,STORAGE=gs", params)
    assert not only_if_holds("MESSAGING=pubsub,STORAGE!=gs", params)
    with pytest.raises(ValueError, match="has no value"):
        only_if_holds("UNKNOWN=1", params)
    with pytest.raises(ValueError, match="expected NAME=value"):
        only_if_holds("MESSAGING", params)


def test_masked_yaml_of_rendered_objects() -> None:
    secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: '{{POSTGRES_PASSWORD}}'}\n"
    result = render(
        [tpl("s.yaml", secret), tpl("d.yaml", DEPLOYMENT)],
        {"POSTGRES_PASSWORD": "hunter22", "SERVER_IMAGE": "img"},
        namespace=NS,
        labels={},
    )
    text = result.to_yaml(Masker.from_params({"POSTGRES_PASSWORD": "hunter22"}))
    assert "hunter22" not in text
    docs = list(yaml.safe_load_all(text))
    assert docs[0]["stringData"] == {"password": MASK}
    assert docs[1]["spec"]["template"]["spec"]["containers"][0]["args"] == [f"-dbPassword={MASK}"]


# --------------------------------------------------------------------------------------------------
# Template files and the rendered_stack fixture
# --------------------------------------------------------------------------------------------------


def test_load_templates_walks_the_tree_in_order(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "a").mkdir()
    (tmp_path / "b" / "x.yml").write_text("a: 1\n")
    (tmp_path / "a" / "y.yaml").write_text("a: 1\n")
    (tmp_path / "README.md").write_text("not a template")
    assert [t.name for t in load_templates(tmp_path)] == ["a/y.yaml", "b/x.yml"]


def test_missing_or_empty_manifests_dir(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match=r"does not exist.*--manifests-dir"):
        load_templates(tmp_path / "absent")
    with pytest.raises(RenderError, match=r"holds no \*\.yaml"):
        load_templates(tmp_path)


def test_render_dir_reads_files(tmp_path: Path) -> None:
    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '{{N}}'}\n")
    result = render_dir(tmp_path, {"N": "named"}, namespace=NS, labels={})
    assert result.objects[0].name == "named"


def write_manifests(pytester: pytest.Pytester) -> Path:
    root = pytester.path / "manifests"
    (root / "apiserver").mkdir(parents=True)
    (root / "apiserver" / "deployment.yaml").write_text(DEPLOYMENT.replace("{{SERVER_IMAGE}}", "{{SERVER_IMG}}"))
    (root / "apiserver" / "config.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {host: '{{DB_HOSTNAME}}'}\n"
    )
    return root


def test_rendered_stack_reports_all_missing_parameters_and_stops_before_any_cluster(pytester: pytest.Pytester) -> None:
    root = write_manifests(pytester)
    pytester.makepyfile(
        """
        def test_uses_the_stack(rendered_stack):
            pass

        def test_other(rendered_stack):
            pass
        """
    )
    result = pytester.runpytest("-p", "fixtures.plugin", "-p", "no:asyncio", "--manifests-dir", str(root))
    # ERROR: the run could not perform its checks. One message, nothing applied, no cluster contacted.
    assert result.ret == 3
    result.stdout.fnmatch_lines(
        [
            "verdict: ERROR (exit status 3)",
            "render failed:",
            "*2 missing parameter(s); every {{NAME}} needs a value:",
            "*DB_HOSTNAME: used at apiserver/config.yaml:4",
            "*SERVER_IMG: used at apiserver/deployment.yaml:14",
            "*Fix: pass each with --set NAME=VALUE*",
        ]
    )
    sign_off = result.stdout.str().split("geocube sign-off report", 1)[1].split("no tests ran", 1)[0]
    # Said in the verdict's reason line and in the message block, not once per check needing the stack.
    assert sign_off.count("missing parameter(s)") == 2
    [run_json] = (pytester.path / "reports" / "runs").glob("*/run.json")
    record = json.loads(run_json.read_text())
    assert record["verdict"] == "ERROR" and record["exit_status"] == 3
    [error] = record["session_errors"]
    assert error["phase"] == "render"
    assert "DB_HOSTNAME: used at apiserver/config.yaml:4" in error["message"]
    assert {t["status"] for t in record["tests"]} == {"unrun"}


def test_an_unknown_parameter_is_an_error_naming_the_known_ones(pytester: pytest.Pytester) -> None:
    root = write_manifests(pytester)
    pytester.makepyfile(
        """
        def test_uses_the_stack(rendered_stack):
            pass
        """
    )
    result = pytester.runpytest(
        "-p", "fixtures.plugin", "-p", "no:asyncio", "--manifests-dir", str(root),
        "--set", "SERVER_IMG=img", "--set", "DB_HOSTNAME=db", "--set", "DB_HSOT=typo",
    )  # fmt: skip
    assert result.ret == 3  # ERROR, before anything is applied
    result.stdout.fnmatch_lines(
        [
            "render failed:",
            "*unknown parameter(s) DB_HSOT (cli --set): no template under * uses them. "
            "Known parameters: DB_HOSTNAME, POSTGRES_PASSWORD, SERVER_IMG. Fix: correct the name or drop it.",
        ]
    )


def test_a_parameter_of_another_profile_only_warns(pytester: pytest.Pytester) -> None:
    """A params file shared by profiles may hold values this profile's templates do not use."""
    root = pytester.path / "manifests"
    for folder, text in {
        "base": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: base}\ndata: {a: '{{BASE_VALUE}}'}\n",
        "messaging/pgqueue": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: q}\ndata: {a: 'x'}\n",
        "messaging/pubsub": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: q}\ndata: {a: '{{PUBSUB_PROJECT}}'}\n",
        "storage/local": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: s}\ndata: {a: 'x'}\n",
    }.items():
        (root / folder).mkdir(parents=True)
        (root / folder / "objects.yaml").write_text(text)
    pytester.makeini("[pytest]\nfilterwarnings = error\n")  # a harness warning must not fail a strict run
    pytester.makepyfile(
        """
        def test_uses_the_stack(rendered_stack):
            assert [m.ref for m in rendered_stack.objects] == ["ConfigMap/base", "ConfigMap/q", "ConfigMap/s"]
        """
    )
    result = pytester.runpytest(
        "-p", "fixtures.plugin", "-p", "no:asyncio", "--manifests-dir", str(root), "--messaging", "pgqueue",
        "--set", "BASE_VALUE=v", "--set", "PUBSUB_PROJECT=p",
    )  # fmt: skip
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*UnusedParameterWarning: parameter(s) used by no template under*PUBSUB_PROJECT*"])


def test_a_conftest_overriding_the_messaging_fixture_renders_its_choice(pytester: pytest.Pytester) -> None:
    """The settings say pubsub; a conftest.py's ``messaging_profile`` says pgqueue: pgqueue's templates render."""
    root = pytester.path / "manifests"
    for folder in ("base", "messaging/pgqueue", "messaging/pubsub", "storage/gs"):
        (root / folder).mkdir(parents=True)
        name = folder.replace("/", "-")
        (root / folder / "objects.yaml").write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\n")
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture(scope="session")
        def messaging_profile():
            return "pgqueue"
        """
    )
    pytester.makepyfile(
        """
        def test_uses_the_stack(rendered_stack, stack_params):
            assert [m.name for m in rendered_stack.objects] == ["base", "messaging-pgqueue", "storage-gs"]
            assert "PGQUEUE_CREATE_TABLE_SQL" in stack_params  # derived for pgqueue, not for the settings' pubsub
        """
    )
    result = pytester.runpytest(
        "-p", "fixtures.plugin", "-p", "no:asyncio", "--manifests-dir", str(root), "--messaging", "pubsub",
        "--storage", "gs", "--kubeconfig", str(pytester.path / "unused-kubeconfig"),
    )  # fmt: skip
    result.assert_outcomes(passed=1)
