"""Built images really run: import into a private, throwaway containerd and start containers with runc.

Needs root, containerd (``ctr``), runc and mmdebstrap, plus a reachable Debian mirror for the first
build (later runs hit the layer cache in ``cache_dir()``). The containerd started here has its own
config, root, state and socket under a pytest temporary directory and is stopped by PID: the system
containerd, if any, is never touched.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from localcluster import layer_tar, oci_archive, rootfs_tree
from localcluster.image_spec import BuiltImage, DebianBase, ImageSpec
from localcluster.images import PAUSE_IMAGE, build_image, build_pause_image, image_digest, image_present, import_image

_MISSING = [
    tool for tool in ("containerd", "containerd-shim-runc-v2", "ctr", "runc", "mmdebstrap") if not shutil.which(tool)
]

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(
        bool(_MISSING), reason=f"missing on PATH: {', '.join(_MISSING)} (apt-get install containerd runc mmdebstrap)"
    ),
]

NAMESPACE = "k8s.io"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
BASE = DebianBase(suite="bookworm", variant="essential")


@dataclass(frozen=True)
class PrivateContainerd:
    address: str
    root: Path
    log: Path

    def ctr(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = ["ctr", "--address", self.address, "--namespace", NAMESPACE, *args]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            pytest.fail(
                f"`{' '.join(cmd)}` exited {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}\n"
                f"containerd log tail:\n{_tail(self.log)}"
            )
        return result


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _config(root: Path) -> str:
    # Everything containerd writes goes below `root`; the CRI plugin is off (no CNI, no stream server
    # port), and the opt plugin is moved off the shared /opt/containerd.
    return f"""version = 2
root = "{root}/root"
state = "{root}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{root}/containerd.sock"

[ttrpc]
  address = "{root}/containerd.sock.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/opt"
"""


def _mounts_below(root: Path) -> list[str]:
    prefix = str(root.resolve())
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return sorted((p for p in points if p.startswith(prefix + "/")), key=len, reverse=True)


@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateContainerd]:
    """A containerd of our own (config, root, state, socket in a temp dir), stopped by PID afterwards."""
    root = tmp_path_factory.mktemp("ctrd")
    config = root / "config.toml"
    config.write_text(_config(root))
    log = root / "containerd.log"
    address = str(root / "containerd.sock")
    proc: subprocess.Popen[bytes] | None = None
    try:
        with open(log, "wb") as log_file:
            proc = subprocess.Popen(
                ["containerd", "--config", str(config), "--log-level", "info"],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        handle = PrivateContainerd(address, root, log)
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"private containerd exited {proc.returncode} at startup; log:\n{_tail(log)}")
            if os.path.exists(address) and handle.ctr("version", check=False).returncode == 0:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"private containerd did not answer on {address} within 60 s; log:\n{_tail(log)}")
            time.sleep(0.2)
        yield handle
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
        # Containers run with --rm; a leftover rootfs mount of a failed test is lazily detached so the
        # temp dir can be removed. Only mounts below our own root are touched.
        for point in _mounts_below(root):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)


@pytest.fixture(scope="module")
def pause_image() -> BuiltImage:
    """The pause image, built (or taken from the cache) once."""
    return build_pause_image()


@pytest.fixture(scope="module")
def uuid_image() -> BuiltImage:
    """Debian base + uuid-runtime (diff layer) + a script (files layer)."""
    return build_image(
        ImageSpec(
            name="selftest-uuid",
            tag="1",
            base=BASE,
            packages=("uuid-runtime",),
            files={
                "/usr/local/bin/hello": b'#!/bin/sh\necho "hello from $(cat /etc/debian_version)"\nexec uuidgen -r\n'
            },
            cmd=("/usr/local/bin/hello",),
        )
    )


@pytest.fixture(scope="module")
def plain_image() -> BuiltImage:
    """Debian base + a script, no extra packages."""
    return build_image(
        ImageSpec(
            name="selftest-plain", tag="1", base=BASE, files={"/etc/selftest": b"plain\n"}, cmd=("cat", "/etc/selftest")
        )
    )


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_debian_images_share_the_base_layer(uuid_image: BuiltImage, plain_image: BuiltImage) -> None:
    assert uuid_image.layer_digests[0] == plain_image.layer_digests[0]
    assert len(uuid_image.layer_digests) == 3 and len(plain_image.layer_digests) == 2
    assert uuid_image.layer_sizes[1] < uuid_image.layer_sizes[0] / 5, "the packages layer holds only the difference"


def test_import_tags_the_normalized_ref_and_unpacks(
    containerd: PrivateContainerd, pause_image: BuiltImage, uuid_image: BuiltImage, plain_image: BuiltImage
) -> None:
    for image in (pause_image, uuid_image, plain_image):
        assert not image_present(image.ref, containerd.address, NAMESPACE)
        started = time.monotonic()
        import_image(image, containerd.address, NAMESPACE)
        print(f"import {image.ref} ({image.size / 1e6:.1f} MB): {time.monotonic() - started:.2f} s")
        assert image_digest(image.ref, containerd.address, NAMESPACE) == image.manifest_digest
        containerd.ctr("snapshots", "info", image.chain_id)  # unpacked for the default (overlayfs) snapshotter
    listed = containerd.ctr("images", "ls", "-q").stdout.split()
    assert PAUSE_IMAGE in listed
    assert not [name for name in listed if name.startswith("import-")], "no ref may need --base-name"


def test_reimport_of_a_present_image_is_skipped(containerd: PrivateContainerd, uuid_image: BuiltImage) -> None:
    import_image(uuid_image, containerd.address, NAMESPACE)
    started = time.monotonic()
    import_image(uuid_image, containerd.address, NAMESPACE)
    elapsed = time.monotonic() - started
    print(f"re-import of {uuid_image.ref}: {elapsed:.2f} s")
    assert image_present(uuid_image.ref, containerd.address, NAMESPACE, digest=uuid_image.manifest_digest)


def test_debian_image_runs_packages_and_files(containerd: PrivateContainerd, uuid_image: BuiltImage) -> None:
    import_image(uuid_image, containerd.address, NAMESPACE)
    result = containerd.ctr("run", "--rm", uuid_image.ref, _unique("selftest-uuid"), timeout=180)
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("hello from 12."), f"unexpected output: {result.stdout!r}"
    assert UUID_RE.match(lines[1]), f"uuidgen -r printed {lines[1]!r}, expected a version-4 UUID"


def test_base_only_image_runs(containerd: PrivateContainerd, plain_image: BuiltImage) -> None:
    import_image(plain_image, containerd.address, NAMESPACE)
    result = containerd.ctr("run", "--rm", plain_image.ref, _unique("selftest-plain"), timeout=180)
    assert result.stdout == "plain\n"
    missing = containerd.ctr(
        "run",
        "--rm",
        plain_image.ref,
        _unique("selftest-plain"),
        "sh",
        "-c",
        "command -v uuidgen || echo absent",
        timeout=180,
    )
    assert missing.stdout.strip() == "absent", "uuid-runtime must only be in the image that asked for it"


def test_pause_runs_as_non_root_and_exits_0_on_sigterm(containerd: PrivateContainerd, pause_image: BuiltImage) -> None:
    import_image(pause_image, containerd.address, NAMESPACE)
    name = _unique("selftest-pause")
    cmd = ["ctr", "--address", containerd.address, "--namespace", NAMESPACE, "run", "--rm", PAUSE_IMAGE, name]
    run = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while name not in containerd.ctr("tasks", "ls").stdout:
            assert run.poll() is None, f"pause exited early ({run.returncode}): {run.communicate()}"
            assert time.monotonic() < deadline, "pause task did not show up within 60 s"
            time.sleep(0.2)
        time.sleep(1)
        assert run.poll() is None, "pause must keep running"
        pid = int(containerd.ctr("tasks", "ls").stdout.split(name, 1)[1].split()[0])
        status = Path(f"/proc/{pid}/status").read_text()
        assert re.search(r"^Uid:\s+65535\s", status, re.M), "pause runs as 65535 like upstream's"
        containerd.ctr("tasks", "kill", "--signal", "SIGTERM", name)
        _out, err = run.communicate(timeout=60)
        assert run.returncode == 0, f"ctr run of pause exited {run.returncode} after SIGTERM; stderr: {err}"
    finally:
        if run.poll() is None:
            containerd.ctr("tasks", "kill", "--signal", "SIGKILL", name, check=False)
            run.communicate(timeout=60)


def test_whiteouts_and_type_changes_apply_in_containerd(containerd: PrivateContainerd, tmp_path: Path) -> None:
    """A diff layer's whiteouts, removed directories and dir→symlink replacement, as containerd applies them."""
    lower_root, upper_root = tmp_path / "lower", tmp_path / "upper"
    for root in (lower_root, upper_root):
        (root / "etc").mkdir(parents=True)
        (root / "etc" / "keep").write_text("keep\n")
    (lower_root / "etc" / "gone").write_text("gone\n")
    (lower_root / "opt" / "tool" / "bin").mkdir(parents=True)
    (lower_root / "opt" / "tool" / "bin" / "run").write_text("run\n")
    (lower_root / "data").mkdir()
    (lower_root / "data" / "old").write_text("old\n")
    (upper_root / "opt").mkdir()
    (upper_root / "data").symlink_to("etc")
    (upper_root / "etc" / "added").write_text("added\n")

    lower_nodes = rootfs_tree.scan_tree(lower_root)
    first = layer_tar.write_layer(layer_tar.rootfs_items(lower_nodes, lower_nodes, ()), tmp_path / "lower.tar")
    upper_nodes = rootfs_tree.scan_tree(upper_root)
    write, whiteouts = rootfs_tree.diff(rootfs_tree.rootfs_index(lower_nodes), rootfs_tree.rootfs_index(upper_nodes))
    second = layer_tar.write_layer(layer_tar.rootfs_items(upper_nodes, write, whiteouts), tmp_path / "upper.tar")
    spec = ImageSpec(name="selftest-whiteout", tag="1", files={"/unused": b""})
    image = oci_archive.write_archive(spec, [first, second], ["lower", "diff"], tmp_path / "image.tar")
    import_image(image, containerd.address, NAMESPACE)

    target = tmp_path / "mnt"
    target.mkdir()
    containerd.ctr("images", "mount", image.ref, str(target))
    try:
        seen = sorted(str(p.relative_to(target)) for p in target.rglob("*"))
        assert seen == ["data", "etc", "etc/added", "etc/keep", "opt"], seen
        assert (target / "data").is_symlink() and os.readlink(target / "data") == "etc"
    finally:
        containerd.ctr("images", "unmount", str(target), check=False)
