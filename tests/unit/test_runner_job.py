"""The in-cluster runner: what the pod is told, the objects it runs in, and what its image holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.config import Settings, resolve
from fixtures.runner_image import SITE_PACKAGES, runtime_distributions
from fixtures.runner_job import GRACE_SECONDS, params_file, pod_arguments, runner_objects
from geocube_acceptance import locations

SUITES = locations.suites_dir()


def settings_from(tmp_path: Path, cli: dict[str, object], env: dict[str, str] | None = None) -> Settings:
    return resolve(cli, env or {}, base_dir=tmp_path, cwd=tmp_path)


def test_the_pod_gets_the_resolved_settings_not_the_launchers_own(tmp_path: Path) -> None:
    settings = settings_from(
        tmp_path,
        {"geocube_messaging": "pubsub", "geocube_access_mode": "in-cluster", "geocube_run_id": "r1"},
        env={"GEOCUBE_TIMEOUTS_WAIT": "5m", "GEOCUBE_KUBECONFIG": "embedded"},
    )
    invocation = ["-p", "fixtures.plugin", str(SUITES / "database"), "--messaging", "pubsub", "--access-mode",
                  "in-cluster", "-k", "DB-AUTH", "-p", "no:cacheprovider", "--set=DB_USER=x",
                  "--geocube-run-id", "r1"]  # fmt: skip
    args = pod_arguments(settings, invocation, tmp_path)
    assert args == [
        f"{SITE_PACKAGES}/suites/database",
        "-k",
        "DB-AUTH",
        "-p",
        "no:cacheprovider",
        "--geocube-messaging=pubsub",
        "--geocube-timeouts-wait=300s",
        "--geocube-access-mode=in-cluster",
        "--geocube-params-file=/etc/geocube-acceptance/params",
        "--geocube-run-id=r1",
        "--geocube-report-dir=/reports",
    ]


def test_node_ids_inside_the_suites_become_the_images_paths_and_others_are_refused(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, {"geocube_access_mode": "in-cluster"})
    node = f"{SUITES / 'platform' / 'test_platform.py'}::test_workloads_are_ready"
    assert pod_arguments(settings, [node], tmp_path)[0] == (
        f"{SITE_PACKAGES}/suites/platform/test_platform.py::test_workloads_are_ready"
    )
    mine = tmp_path / "test_mine.py"
    mine.write_text("")
    with pytest.raises(pytest.UsageError, match=r"test_mine\.py is not part of the packaged suites"):
        pod_arguments(settings, [str(mine)], tmp_path)


def test_files_of_this_machine_are_refused_before_anything_runs(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, {"geocube_access_mode": "in-cluster", "geocube_manifests_dir": str(tmp_path)})
    with pytest.raises(pytest.UsageError, match=r"--geocube-manifests-dir .* name files of this machine"):
        pod_arguments(settings, [], tmp_path)


def test_the_params_file_says_where_each_value_came_from_and_refuses_multiline_values() -> None:
    text = params_file({"B": "2", "A": "1"}, {"A": "cli --set"})
    assert text.splitlines()[1:] == ["# A: cli --set", "A=1", "# B: embedded default", "B=2"]
    with pytest.raises(pytest.UsageError, match="template parameter X spans several lines"):
        params_file({"X": "a\nb"}, {})


def test_the_runner_is_bound_to_cluster_admin_labelled_for_the_janitor_and_given_time_to_clean_up() -> None:
    objects = {o["kind"]: o for o in runner_objects("ns-runner", "r1", "img:1", ["suites"], "A=1\n")}
    binding = objects["ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == "cluster-admin"
    assert binding["metadata"]["labels"]["geocube-acceptance/namespace"] == "ns-runner"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "geocube-acceptance-runner", "namespace": "ns-runner"}
    ]
    pod = objects["Job"]["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == GRACE_SECONDS
    assert objects["Job"]["spec"]["backoffLimit"] == 0
    suite, collector = pod["containers"]
    assert suite["args"] == ["run", "suites"]
    assert "trap 'exit 0' TERM" in collector["command"][-1]  # deleted at once, not after the grace period
    assert objects["Secret"]["stringData"] == {"params": "A=1\n"}


def test_the_runner_image_holds_the_runtime_dependencies_and_no_dev_tools() -> None:
    names = {d.metadata["Name"].lower() for d in runtime_distributions()}
    assert {"pytest", "kubernetes", "grpcio", "psycopg", "psycopg-binary", "google-cloud-pubsub"} <= names
    assert not names & {"ruff", "mypy", "types-pyyaml"}


def test_registry_files_are_carried_into_the_pod_not_passed_as_paths(tmp_path: Path) -> None:
    """--registry-config becomes a pull Secret in the runner's namespace, --registry-ca a file beside the params."""
    import base64
    import json

    from fixtures.runner_job import REGISTRY_CA_KEY, _registry_ca, _runner_pull_secret

    token = base64.b64encode(b"puller:pw-carried-1").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"registry.example:5000": {"auth": token}}}))
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n")
    settings = settings_from(
        tmp_path,
        {
            "geocube_access_mode": "in-cluster",
            "geocube_kubeconfig": str(tmp_path / "kubeconfig"),
            "geocube_registry_config": "config.json",
            "geocube_registry_ca": "ca.pem",
        },
    )
    args = pod_arguments(settings, [], tmp_path)
    assert not [a for a in args if "registry" in a], args  # the launcher adds them as the pod's own paths
    secret = _runner_pull_secret(settings)
    assert secret is not None and secret["type"] == "kubernetes.io/dockerconfigjson"
    ca = _registry_ca(settings)
    objects = runner_objects("ns", "r1", "runner:1", [], "params", ca)
    params = next(o for o in objects if o["kind"] == "Secret")
    assert params["stringData"][REGISTRY_CA_KEY] == ca
    mounts = next(o for o in objects if o["kind"] == "Job")["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "params", "mountPath": f"/etc/geocube-acceptance/{REGISTRY_CA_KEY}", "subPath": REGISTRY_CA_KEY,
            "readOnly": True} in mounts  # fmt: skip
