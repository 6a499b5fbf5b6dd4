"""Fakes of the Kubernetes APIs the janitor and the journal use, shared by the unit tests.

Only what the code under test calls, with the real client's signatures; the same code meets the real
API server in tests/live and tests/cluster.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import ResourceNotFoundError


class FakeClusterScoped:
    """The dynamic client's cluster-scoped resources, as far as apply, list by label and delete go.

    No other fake in tests/unit serves the dynamic client.
    """

    def __init__(self, objects: dict[str, list[tuple[str, dict[str, str]]]], unserved: tuple[str, ...] = ()) -> None:
        self.objects = objects  # kind -> (name, labels)
        self.unserved = unserved
        self.calls: list[tuple[str, ...]] = []
        self.fail: dict[str, int] = {}  # name -> status its deletion fails with
        self.resources = SimpleNamespace(get=self._resource)

    def _resource(self, api_version: str, kind: str) -> Any:
        if kind in self.unserved:
            raise ResourceNotFoundError(f"No matches found for {{'api_version': '{api_version}', 'kind': '{kind}'}}")
        return SimpleNamespace(
            get=lambda **kw: self._list(kind, **kw),
            delete=lambda **kw: self._delete(kind, **kw),
            server_side_apply=lambda **kw: self._apply(kind, **kw),
        )

    def _list(self, kind: str, label_selector: str, _request_timeout: float) -> Any:
        self.calls.append(("list", kind, label_selector))
        wanted = dict(pair.split("=", 1) for pair in label_selector.split(","))
        names = [name for name, labels in self.objects.get(kind, []) if wanted.items() <= labels.items()]
        return SimpleNamespace(items=[SimpleNamespace(metadata=SimpleNamespace(name=n)) for n in names])

    def _delete(self, kind: str, name: str, _request_timeout: float, namespace: str | None = None) -> None:
        self.calls.append(("delete", kind, name))
        if name in self.fail:
            raise ApiException(status=self.fail[name], reason="Forbidden" if self.fail[name] == 403 else "Not Found")

    def _apply(self, kind: str, body: dict[str, Any], name: str, dry_run: str | None = None, **_: Any) -> None:
        if dry_run is None:
            self.calls.append(("apply", kind, name))


class FakeLeases:
    """CoordinationV1Api for leases: create, merge-patch, delete, list (by namespace or everywhere)."""

    def __init__(self) -> None:
        self.leases: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str, str]] = []

    def create_namespaced_lease(self, namespace: str, body: dict[str, Any], _request_timeout: float) -> None:
        name = body["metadata"]["name"]
        self.calls.append(("create", namespace, name))
        if (namespace, name) in self.leases:
            raise ApiException(status=409, reason="AlreadyExists")
        self.leases[(namespace, name)] = json.loads(
            json.dumps({**body, "metadata": {**body["metadata"], "namespace": namespace}})
        )

    def patch_namespaced_lease(self, name: str, namespace: str, body: dict[str, Any], _request_timeout: float) -> None:
        self.calls.append(("patch", namespace, name))
        lease = self.leases.get((namespace, name))
        if lease is None:
            raise ApiException(status=404, reason="Not Found")
        annotations = lease["metadata"].setdefault("annotations", {})
        for key, value in (body.get("metadata") or {}).get("annotations", {}).items():
            if value is None:
                annotations.pop(key, None)
            else:
                annotations[key] = value
        lease["spec"].update(body.get("spec") or {})

    def delete_namespaced_lease(self, name: str, namespace: str, _request_timeout: float) -> None:
        self.calls.append(("delete", namespace, name))
        if self.leases.pop((namespace, name), None) is None:
            raise ApiException(status=404, reason="Not Found")

    def list_namespaced_lease(self, namespace: str, label_selector: str, _request_timeout: float) -> Any:
        return SimpleNamespace(items=[v for (ns, _), v in self.leases.items() if ns == namespace])

    def list_lease_for_all_namespaces(self, label_selector: str, _request_timeout: float) -> Any:
        return SimpleNamespace(items=list(self.leases.values()))


class FakeNamespaces:
    """Just enough of CoreV1Api for namespaces: every call is recorded; a name ending in "gone" is NotFound."""

    def __init__(self, namespaces: list[dict[str, Any]], create_fails: bool = False) -> None:
        self.namespaces = namespaces
        self.calls: list[tuple[str, str]] = []
        self.create_fails = create_fails

    def list_namespace(self, _request_timeout: float, label_selector: str = "") -> Any:
        self.calls.append(("list", label_selector))
        return SimpleNamespace(items=self.namespaces)

    def delete_namespace(self, name: str, propagation_policy: str, _request_timeout: float) -> None:
        self.calls.append(("delete", name))
        if name.endswith("gone"):
            raise ApiException(status=404, reason="Not Found")

    def create_namespace(self, body: dict[str, Any], _request_timeout: float) -> None:
        self.calls.append(("create", body["metadata"]["name"]))
        if self.create_fails:
            raise ApiException(status=500, reason="etcd timeout")


def fake_kube(core: FakeNamespaces, leases: FakeLeases | None = None) -> Any:
    return SimpleNamespace(
        core=core,
        coordination=leases or FakeLeases(),
        dynamic=FakeClusterScoped({}),
        to_dict=lambda item: item,
        target=SimpleNamespace(describe=lambda: "fake"),
    )
