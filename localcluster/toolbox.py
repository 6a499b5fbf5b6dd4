"""The toolbox image: Debian with busybox (httpd, nc, getent via libc) and curl.

Used by the embedded cluster's self-tests and by in-cluster access checks; it shares the Debian
base layer with every other Debian image the project builds.
"""

from __future__ import annotations

from localcluster.cluster import EmbeddedCluster
from localcluster.image_spec import DebianBase, ImageSpec
from localcluster.images import build_image, import_image

TOOLBOX = ImageSpec(
    name="toolbox",
    tag="bookworm-1",
    base=DebianBase(),
    packages=("busybox", "curl", "ca-certificates"),
    cmd=("/bin/sh",),
)


def ensure_toolbox_image(cluster: EmbeddedCluster) -> str:
    """Build (cached) and import the toolbox image into the cluster's containerd; return its ref."""
    image = build_image(TOOLBOX)
    import_image(image, str(cluster.layout.containerd_socket))
    return image.ref
