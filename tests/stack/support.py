"""Shared types and settings of the stack self-tests (imported by conftest.py and the tests)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from localcluster.paths import stack_storage_dir

if TYPE_CHECKING:
    from geocube_stack.deploy import Deployment
    from localcluster.cluster import EmbeddedCluster

# Node directories behind the local storage profile: one per namespace, removed with it.
STORAGE_ROOT = stack_storage_dir()
# Faster than the guide's 30s so the autoscaling self-test takes seconds, not minutes; -max bounded so
# the multi-cell backlog shows the clamp on the 2-core node.
SELFTEST_OVERRIDES = {"AUTOSCALER_UPDATE": "5s", "AUTOSCALER_MAX": "8"}


@dataclass(frozen=True)
class StackEnv:
    """What a self-test needs: the cluster, the images' parameters and timings."""

    cluster: EmbeddedCluster
    image_params: dict[str, str]
    timings: dict[str, float]


@dataclass
class DeployedStack:
    """One deployed profile pair; ``storage_dir`` is the node directory behind local storage."""

    deployment: Deployment
    messaging: str
    storage: str
    storage_dir: Path | None
    images: dict[str, str]
