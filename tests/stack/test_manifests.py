"""The manifests without a cluster: every placeholder documented, every profile pair renders cleanly.

Needs the Go toolchain and module proxy once (Geocube's SQL comes from the Go module cache).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from geocube_stack.images import IMAGE_PARAMS
from geocube_stack.params import (
    MANIFESTS_DIR,
    MESSAGING_PROFILES,
    PARAMETERS,
    STORAGE_PROFILES,
    parameters_for,
    render_params,
    template_dirs,
)
from geocube_stack.render import placeholders, render_profile, template_files

pytestmark = pytest.mark.skipif(
    shutil.which("go") is None and not Path("/usr/local/go/bin/go").exists(),
    reason="needs the Go toolchain to read Geocube's SQL from the Go module cache",
)
PAIRS = [(m, s) for m in MESSAGING_PROFILES for s in STORAGE_PROFILES]
IMAGES = {name: f"localhost/geocube-acceptance/{name.lower()}:test" for name in IMAGE_PARAMS.values()}


def _render(messaging: str, storage: str) -> tuple[dict[str, str], list[dict[str, Any]]]:
    params = render_params(messaging, storage, images=IMAGES, local_host_path="/srv/geocube")
    return params, list(render_profile(messaging, storage, params).objects)


def test_every_placeholder_is_documented_once() -> None:
    used = placeholders(p for p in MANIFESTS_DIR.rglob("*.yaml"))
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
    used = set(placeholders(template_files(template_dirs(messaging, storage))))
    assert used == {p.name for p in parameters_for(messaging, storage)}


@pytest.mark.parametrize(("messaging", "storage"), PAIRS)
def test_renders_namespace_agnostic_valid_objects(messaging: str, storage: str) -> None:
    params, objects = _render(messaging, storage)
    names = {f"{o['kind']}/{o['metadata']['name']}" for o in objects}
    assert len(names) == len(objects), "an object is defined twice"
    for obj in objects:
        assert "namespace" not in obj["metadata"], f"{obj['kind']}/{obj['metadata']['name']} names a namespace"
        assert "default" not in str(obj).replace("defaultMode", ""), f"'default' hard-wired in {obj['metadata']}"
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


@pytest.mark.parametrize(("messaging", "storage"), PAIRS)
def test_the_suite_framework_renders_them(messaging: str, storage: str) -> None:
    render = pytest.importorskip("fixtures.render")
    params = render_params(messaging, storage, images=IMAGES, local_host_path="/srv/geocube")
    templates = [t for d in template_dirs(messaging, storage) for t in render.load_templates(d)]
    result = render.render(templates, params, namespace="ns-test", labels={"run": "x"})
    assert {m.kind for m in result.objects} >= {"Deployment", "ReplicationController", "Secret", "ConfigMap"}
