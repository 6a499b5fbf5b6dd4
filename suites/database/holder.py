"""A test-owned pod that fills the database up to a given number of connections and holds them.

A thousand connections cannot go through port-forward tunnels (one websocket and two threads
each), so they are opened inside the cluster, next to the API server: ``pgbench`` from the
database's own image, each client running ``pg_sleep`` until the check releases them. The
password reaches the pod through a Secret of the check's own, never through the pod spec or logs.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from types import TracebackType
from typing import Any

import psycopg
import pytest
from kubernetes.client.exceptions import ApiException

from fixtures.access import APPLICATION_NAME
from fixtures.deployed import ServerConfig
from fixtures.journal import EndSessions, Remove
from fixtures.labels import MANAGED_BY_LABEL, MANAGED_BY_VALUE
from fixtures.portforward import service_pod
from fixtures.stack import Stack
from fixtures.waits import tail_logs

HOLDER_APPLICATION = f"{APPLICATION_NAME}-holder"
SCRIPT = (
    "echo 'SELECT pg_sleep(600);' > /tmp/hold.sql && "
    "pgbench=$(ls /usr/lib/postgresql/*/bin/pgbench | head -n 1) && "
    'exec "$pgbench" -n -c "$HOLD" -j 4 -t 1 -f /tmp/hold.sql'
)


class ConnectionHolder:
    """``with ConnectionHolder(stack, n) as holder: holder.wait_holding(observer)`` — n connections held."""

    def __init__(self, stack: Stack, server: ServerConfig, count: int) -> None:
        if count < 1:
            raise ValueError(f"nothing to hold: {count} connections (is the server already full?)")
        self.stack = stack
        self.server = server
        self.count = count
        self.name = f"acceptance-conn-holder-{secrets.token_hex(3)}"
        self._undo = contextlib.ExitStack()

    def __enter__(self) -> ConnectionHolder:
        labels = {MANAGED_BY_LABEL: MANAGED_BY_VALUE, "app.kubernetes.io/component": "acceptance-probe"}
        # Journaled before they exist: after a SIGKILL the next run or gc deletes the pod and the Secret
        # (which holds the password); a half-made holder (the Secret without its pod) is removed too.
        # Undone newest first: the pod goes, then its connections (a killed client's backends may linger), then
        # the Secret.
        undos = (Remove("Secret", self.name), EndSessions(HOLDER_APPLICATION), Remove("Pod", self.name))
        self._undo.enter_context(self.stack.changes(*undos))
        try:
            self._create(labels)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _create(self, labels: dict[str, str]) -> None:
        kube, namespace, server = self.stack.kube, self.stack.namespace, self.server
        pod_name, _ = service_pod(kube, namespace, server.db_host, server.db_port)
        database = kube.core.read_namespaced_pod(pod_name, namespace, _request_timeout=15).spec
        image = database.containers[0].image
        # The database's own pull Secrets: its image may come from a private registry.
        pull_secrets = [{"name": s.name} for s in database.image_pull_secrets or []]
        kube.core.create_namespaced_secret(
            namespace,
            {"metadata": {"name": self.name, "labels": labels}, "stringData": {"password": server.db_password}},
            _request_timeout=15,
        )
        env: list[dict[str, Any]] = [
            {"name": "PGHOST", "value": server.db_host},
            {"name": "PGPORT", "value": str(server.db_port)},
            {"name": "PGDATABASE", "value": server.db_name},
            {"name": "PGUSER", "value": server.db_user},
            {"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {"name": self.name, "key": "password"}}},
            {"name": "PGAPPNAME", "value": HOLDER_APPLICATION},
            {"name": "PGSSLMODE", "value": "prefer"},
            {"name": "HOLD", "value": str(self.count)},
        ]
        pod = {
            "metadata": {"name": self.name, "labels": labels},
            "spec": {
                "restartPolicy": "Never",
                "activeDeadlineSeconds": 600,
                "terminationGracePeriodSeconds": 0,
                "automountServiceAccountToken": False,
                "imagePullSecrets": pull_secrets,
                "containers": [
                    {
                        "name": "holder",
                        "image": image,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["/bin/sh", "-c", SCRIPT],
                        "env": env,
                    }
                ],
            },
        }
        kube.core.create_namespaced_pod(namespace, pod, _request_timeout=15)

    def wait_holding(self, observer: psycopg.Connection[Any], *, timeout: float) -> None:
        """Until ``count`` holder connections are open; the pod's failure or the timeout fails the check."""
        __tracebackhide__ = True
        deadline = time.monotonic() + timeout
        held = 0
        while time.monotonic() < deadline:
            held = self._held(observer)
            if held >= self.count:
                return
            phase = self._phase()
            if phase in ("Failed", "Succeeded"):
                pytest.fail(
                    f"the holder pod {self.name} ended ({phase}) with {held}/{self.count} connections open; "
                    f"pgbench said:\n{self._logs()}",
                    pytrace=False,
                )
            time.sleep(0.5)
        pytest.fail(
            f"timed out after {timeout:g} s waiting for {self.count} held connections (open: {held}); "
            f"pod {self.name} is {self._phase()}; its log:\n{self._logs()}",
            pytrace=False,
        )

    def release(self, observer: psycopg.Connection[Any]) -> None:
        """Stop the pod and end its backends (the same role may terminate its own sessions)."""
        self._delete_pod()
        observer.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (HOLDER_APPLICATION,),
        )

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._undo.close()

    @staticmethod
    def _held(observer: psycopg.Connection[Any]) -> int:
        row = observer.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (HOLDER_APPLICATION,)
        ).fetchone()
        return int(row[0]) if row else 0

    def _phase(self) -> str:
        try:
            pod = self.stack.kube.core.read_namespaced_pod(self.name, self.stack.namespace, _request_timeout=15)
        except ApiException as err:
            return f"unreadable ({err.status})"
        return str(pod.status.phase)

    def _logs(self) -> str:
        return tail_logs(self.stack.kube, self.stack.namespace, self.name, None, previous=False, lines=20)

    def _delete_pod(self) -> None:
        try:
            self.stack.kube.core.delete_namespaced_pod(
                self.name, self.stack.namespace, grace_period_seconds=0, _request_timeout=15
            )
        except ApiException as err:
            if err.status != 404:
                raise
