"""``{{NAMESPACE}}`` (provided by the renderer, never by the user) and the life of cluster-scoped objects:
named after the namespace, labelled with it, deleted with it, and found by the janitor when a run died."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from fixtures.apply import delete_cluster_scoped_of
from fixtures.config import resolve
from fixtures.errors import ConfigError, HarnessError, RenderError
from fixtures.labels import MANAGED_BY_LABEL, MANAGED_BY_VALUE, NAMESPACE_LABEL, run_labels
from fixtures.namespace import CleanupRegistry
from fixtures.render import RenderResult, known_parameters, render_dir
from tests.unit.fake_kube import FakeClusterScoped

pytest_plugins = ["pytester"]

NS = "geocube-e2e-run1-abcde"
LABELS = run_labels("run1")
OURS = {**LABELS, NAMESPACE_LABEL: NS}

READER = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "geocube-{{NAMESPACE}}-reader"}
rules:
- {apiGroups: [""], resources: [nodes], verbs: [get, list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "geocube-{{NAMESPACE}}-reader"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "geocube-{{NAMESPACE}}-reader"}
subjects:
- {kind: ServiceAccount, name: apiserver, namespace: "{{NAMESPACE}}"}
- {kind: ServiceAccount, name: autoscaler}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: apiserver}
"""


def manifests(root: Path, text: str = READER) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "rbac.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def rendered(tmp_path: Path, text: str = READER, **params: str) -> RenderResult:
    return render_dir(manifests(tmp_path / "manifests", text), params, namespace=NS, labels=LABELS)


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------


def test_cluster_scoped_objects_are_named_and_labelled_after_the_namespace(tmp_path: Path) -> None:
    result = rendered(tmp_path)
    assert [m.ref for m in result.objects] == [
        "ServiceAccount/apiserver",
        f"ClusterRole/geocube-{NS}-reader",
        f"ClusterRoleBinding/geocube-{NS}-reader",
    ]
    account, role, binding = result.objects
    assert role.namespace is None and binding.namespace is None
    assert role.body["metadata"]["labels"] == OURS
    assert binding.body["metadata"]["labels"] == OURS
    # A namespaced object lives in the namespace: it needs no label naming it.
    assert account.namespace == NS and account.body["metadata"]["labels"] == LABELS
    assert binding.body["roleRef"]["name"] == role.name
    # {{NAMESPACE}} written explicitly in a subject, and a subject without namespace, both get the run's.
    assert [s["namespace"] for s in binding.body["subjects"]] == [NS, NS]


def test_namespace_is_provided_never_reported_unused_nor_known(tmp_path: Path) -> None:
    result = render_dir(manifests(tmp_path), {}, namespace=NS, labels=LABELS, check_unused=["NAMESPACE"])
    assert result.unused == ()
    assert "NAMESPACE" in result.used
    # What a user may --set: the reserved name is not one of them (nor listed as a known parameter).
    assert known_parameters(tmp_path) == set()


def test_a_cluster_scoped_name_without_the_namespace_says_how_to_fix_it(tmp_path: Path) -> None:
    text = READER.replace('"geocube-{{NAMESPACE}}-reader"}\nrules', '"geocube-reader"}\nrules', 1)
    with pytest.raises(RenderError) as error:
        rendered(tmp_path, text)
    assert (
        "rbac.yaml:1 (ClusterRole/geocube-reader): cluster-scoped ClusterRole 'geocube-reader' would collide "
        f"between runs: its name must contain the namespace ({NS}). Fix: put {{{{NAMESPACE}}}} in its name "
        "(e.g. name: geocube-reader-{{NAMESPACE}}); the harness replaces it with the run's namespace"
    ) in str(error.value).splitlines()


def test_a_namespace_among_the_parameters_is_an_error_of_the_renderer(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="template parameter NAMESPACE from the given parameters is reserved"):
        rendered(tmp_path, NAMESPACE="mine")


# --------------------------------------------------------------------------------------------------
# --set NAMESPACE=... is one clear error before anything
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cli", "env", "source"),
    [
        ({"geocube_set": ["NAMESPACE=mine"]}, {}, "cli --set"),
        ({}, {"GEOCUBE_PARAM_NAMESPACE": "mine"}, "env GEOCUBE_PARAM_NAMESPACE"),
    ],
)
def test_setting_the_namespace_is_a_configuration_error(
    tmp_path: Path, cli: dict[str, object], env: dict[str, str], source: str
) -> None:
    with pytest.raises(ConfigError) as error:
        resolve(cli, env, base_dir=tmp_path, cwd=tmp_path)
    assert str(error.value) == (
        f"template parameter NAMESPACE from {source} is reserved: the harness chooses the namespace and gives "
        "every template its name as {{NAMESPACE}}. Fix: drop it; to target a namespace of yours, use "
        "--existing-namespace NS."
    )


@pytest.mark.parametrize("existing", [[], ["--existing-namespace", "geocube"]], ids=["disposable", "existing"])
def test_set_namespace_stops_the_run_before_anything(pytester: pytest.Pytester, existing: list[str]) -> None:
    root = manifests(pytester.path / "manifests")
    pytester.makepyfile("def test_uses_the_stack(rendered_stack): pass")
    result = pytester.runpytest(
        "-p", "fixtures.plugin", "-p", "no:asyncio", "--manifests-dir", str(root), "--set", "NAMESPACE=mine", *existing
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert len(errors) == 1 and "template parameter NAMESPACE from cli --set is reserved" in errors[0]
    assert not (pytester.path / "reports").exists()  # nothing ran: no report, no cluster, no build


# --------------------------------------------------------------------------------------------------
# Deleted with the namespace, and by the janitor
# --------------------------------------------------------------------------------------------------


def fake_kube(dynamic: FakeClusterScoped) -> Any:
    return SimpleNamespace(dynamic=dynamic, target=SimpleNamespace(describe=lambda: "fake"))


def test_the_janitor_deletes_only_the_cluster_scoped_objects_labelled_with_the_namespace() -> None:
    other = {**LABELS, NAMESPACE_LABEL: "geocube-e2e-run2-fghij"}
    dynamic = FakeClusterScoped(
        {
            "ClusterRole": [(f"geocube-{NS}-reader", OURS), ("geocube-e2e-run2-fghij-reader", other)],
            "ClusterRoleBinding": [(f"geocube-{NS}-reader", OURS), ("cluster-admin", {})],
            "StorageClass": [(f"{NS}-local", {NAMESPACE_LABEL: NS})],  # not managed by us: left alone
        },
        unserved=("PriorityClass",),
    )
    deleted, errors = delete_cluster_scoped_of(fake_kube(dynamic), NS)
    assert errors == []
    selector = f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE},{NAMESPACE_LABEL}={NS}"
    assert {c[2] for c in dynamic.calls if c[0] == "list"} == {selector}
    # Last applied first: the binding goes before the role it binds.
    assert deleted == [f"ClusterRoleBinding/geocube-{NS}-reader", f"ClusterRole/geocube-{NS}-reader"]
    assert [c for c in dynamic.calls if c[0] == "delete"] == [
        ("delete", "ClusterRoleBinding", f"geocube-{NS}-reader"),
        ("delete", "ClusterRole", f"geocube-{NS}-reader"),
    ]


def test_the_janitor_dry_run_deletes_nothing_and_errors_are_collected() -> None:
    objects = {"ClusterRole": [("a-" + NS, OURS), ("gone-" + NS, OURS), ("locked-" + NS, OURS)]}
    dry = FakeClusterScoped(objects)
    assert delete_cluster_scoped_of(fake_kube(dry), NS, ["ClusterRole"], dry_run=True) == (
        [f"ClusterRole/a-{NS}", f"ClusterRole/gone-{NS}", f"ClusterRole/locked-{NS}"],
        [],
    )
    assert [c[0] for c in dry.calls] == ["list"]
    real = FakeClusterScoped(objects)
    real.fail = {"gone-" + NS: 404, "locked-" + NS: 403}
    deleted, errors = delete_cluster_scoped_of(fake_kube(real), NS, ["ClusterRole"])
    assert deleted == [f"ClusterRole/a-{NS}", f"ClusterRole/gone-{NS}"]  # NotFound is success
    assert errors == [f"ClusterRole/locked-{NS}: 403 Forbidden"]


@pytest.mark.parametrize(
    ("namespace", "kinds", "message"),
    [
        ("", None, "namespace must be named"),
        (NS, ["ClusterRole", "Namespace", "Role"], "not a cluster-scoped kind a template may hold: Namespace, Role"),
    ],
)
def test_the_janitor_refuses_what_would_select_too_much(namespace: str, kinds: list[str] | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        delete_cluster_scoped_of(fake_kube(FakeClusterScoped({})), namespace, kinds)


def test_deletion_with_the_namespace_is_registered_before_anything_is_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fixtures.stack
    from fixtures.stack import StackDeployer

    dynamic = FakeClusterScoped({})
    registry = CleanupRegistry()
    register: Callable[[str, Callable[[], None]], Any] = registry.register

    def recording_register(description: str, action: Callable[[], None]) -> Any:
        dynamic.calls.append(("register", description))
        return register(description, action)

    def not_ready(*args: Any, **kwargs: Any) -> None:
        raise HarnessError("the stack never became ready")

    monkeypatch.setattr(registry, "register", recording_register)
    monkeypatch.setattr(fixtures.stack, "CLEANUPS", registry)
    monkeypatch.setattr(fixtures.stack, "wait_for_stack", not_ready)
    monkeypatch.setattr(fixtures.stack, "collect", lambda *args, **kwargs: tmp_path / "diagnostics")
    settings: Any = SimpleNamespace(timeouts=SimpleNamespace(deploy=1.0))
    with pytest.raises(HarnessError, match="never became ready"):
        StackDeployer(fake_kube(dynamic), settings).deploy(NS, rendered(tmp_path), {}, diagnostics_dir=tmp_path)
    assert dynamic.calls == [
        ("register", f"delete cluster-scoped objects of {NS}"),
        ("apply", "ServiceAccount", "apiserver"),
        ("apply", "ClusterRole", f"geocube-{NS}-reader"),
        ("apply", "ClusterRoleBinding", f"geocube-{NS}-reader"),
    ]
    assert registry.run_all("test") == []  # a failed deploy still removes what outlives the namespace
    assert dynamic.calls[4:] == [
        ("delete", "ClusterRoleBinding", f"geocube-{NS}-reader"),
        ("delete", "ClusterRole", f"geocube-{NS}-reader"),
    ]
