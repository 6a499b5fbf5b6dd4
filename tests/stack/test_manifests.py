"""The manifests without a cluster: every placeholder documented, every profile pair renders cleanly.

Rendered by the suites' own renderer (``fixtures.render``, as ``fixtures.stack`` does for every run). Needs the
Go toolchain and module proxy once (Geocube's SQL comes from the Go module cache).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from fixtures.render import RESERVED_PARAMETERS, known_parameters, load_templates, profile_dirs, render
from geocube_stack.params import (
    IMAGE_PARAMETERS,
    MANIFESTS_DIR,
    MESSAGING_PROFILES,
    PARAMETERS,
    STORAGE_PROFILES,
    parameters_for,
    render_params,
)
from localcluster.buildtools import go_executable

pytestmark = pytest.mark.skipif(
    go_executable() is None,
    reason="needs the Go toolchain to read Geocube's SQL from the Go module cache",
)
PAIRS = [(m, s) for m in MESSAGING_PROFILES for s in STORAGE_PROFILES]
NAMESPACE = "ns-test"
IMAGES = {name: f"localhost/geocube-acceptance/{name.lower()}:test" for name in IMAGE_PARAMETERS.values()}


def _rendered(messaging: str, storage: str) -> tuple[dict[str, str], set[str], list[dict[str, Any]]]:
    """The parameters, the ones the templates used, and the objects in apply order."""
    params = render_params(messaging, storage, images=IMAGES, local_host_path="/srv/geocube")
    templates = load_templates(MANIFESTS_DIR, profile_dirs(MANIFESTS_DIR, messaging, storage))
    result = render(templates, params, namespace=NAMESPACE, labels={"run": "x"})
    return params, set(result.used) - RESERVED_PARAMETERS, [dict(m.body) for m in result.objects]


def _render(messaging: str, storage: str) -> tuple[dict[str, str], list[dict[str, Any]]]:
    params, _, objects = _rendered(messaging, storage)
    return params, objects


def test_every_placeholder_is_documented_once() -> None:
    used = known_parameters(MANIFESTS_DIR)
    documented = {p.name for p in PARAMETERS}
    assert len(documented) == len(PARAMETERS), "a parameter is documented twice in PARAMETERS"
    assert set(used) == documented, (
        f"undocumented: {sorted(set(used) - documented)}; unused: {sorted(documented - set(used))}"
    )
    readme = (MANIFESTS_DIR / "README.md").read_text()
    table = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", readme, flags=re.MULTILINE))
    assert table == documented, (
        f"README table differs: missing {sorted(documented - table)}, extra {sorted(table - documented)}"
    )


@pytest.mark.parametrize(("messaging", "storage"), PAIRS)
def test_profile_uses_exactly_its_parameters(messaging: str, storage: str) -> None:
    _, used, _ = _rendered(messaging, storage)
    assert used == {p.name for p in parameters_for(messaging, storage)}


@pytest.mark.parametrize(("messaging", "storage"), PAIRS)
def test_renders_namespace_agnostic_valid_objects(messaging: str, storage: str) -> None:
    params, objects = _render(messaging, storage)
    names = {f"{o['kind']}/{o['metadata']['name']}" for o in objects}
    assert len(names) == len(objects), "an object is defined twice"
    for obj in objects:
        # The harness puts every namespaced object into the run's namespace: no template names one of its own.
        assert obj["metadata"].get("namespace") in (None, NAMESPACE), f"{obj['metadata']} names a namespace"
        assert "default" not in str(obj).replace("defaultMode", ""), (
            f"'default' hard-wired in {obj['metadata']['name']}"
        )
        if obj["kind"] == "Deployment":
            assert obj["apiVersion"] == "apps/v1"
            labels = obj["spec"]["template"]["metadata"]["labels"]
            assert obj["spec"]["selector"]["matchLabels"].items() <= labels.items()
        if obj["kind"] == "Role":
            assert all(rule.get("apiGroups") == [""] for rule in obj["rules"])
    rendered = str(objects)
    assert "MISSING_" not in rendered
    assert params["DB_PASSWORD"] in rendered


@pytest.mark.parametrize(("messaging", "storage"), PAIRS)
def test_workloads_get_their_profile(messaging: str, storage: str) -> None:
    _, objects = _render(messaging, storage)
    by_name = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    secret = by_name[("Secret", "geocube-messaging")]["stringData"]
    assert bool(secret["pgqConnection"]) == (messaging == "pgqueue")
    assert bool(secret["pubsubProject"]) == (messaging == "pubsub")
    server = by_name[("Deployment", "apiserver")]["spec"]["template"]["spec"]["containers"][0]
    assert "-pgqConnection=$(PGQ_CONNECTION)" in server["args"]
    assert (
        f"-ingestionStorage={'/geocube-storage/ingestion' if storage == 'local' else 'gs://geocube/ingestion'}"
        in server["args"]
    )
    autoscaler = by_name[("Deployment", "consolidater-autoscaler")]["spec"]["template"]["spec"]
    assert autoscaler["serviceAccountName"] == "autoscaler-service-account"
    assert "-queue=consolidations" in autoscaler["containers"][0]["args"]
    initdb = by_name[("ConfigMap", "geocube-initdb")]["data"]
    assert "CREATE SCHEMA geocube" in initdb["10-geocube-create.sql"]
    messaging_init = by_name[("ConfigMap", "geocube-initdb-messaging")]["data"]
    assert ("CREATE TABLE pgq_jobs" in str(messaging_init)) == (messaging == "pgqueue")
    wrapper = by_name[("ReplicationController", "consolidater")]["spec"]["template"]["spec"]["containers"][0]
    assert "|| true" not in wrapper["args"][0] and "uuidgen" in wrapper["args"][0]
