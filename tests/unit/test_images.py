"""Self-tests of the image builder that need neither root nor containerd nor a Debian mirror."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from localcluster import files_layer, layer_tar, oci_archive, pause_binary, reproducible, rootfs_tree
from localcluster.buildtools import go_executable
from localcluster.image_spec import BuiltImage, DebianBase, ImageBuildError, ImageSpec
from localcluster.images import PAUSE_IMAGE, build_image, build_pause_image

GO = go_executable()
needs_go = pytest.mark.skipif(GO is None, reason="the Go toolchain is not installed (go not on PATH)")


def _entry(kind: Any = "file", mode: int = 0o644, data: str = "") -> rootfs_tree.Entry:
    return rootfs_tree.Entry(kind, mode, data=data)


def _read_archive(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: (tar.extractfile(m).read() if m.isfile() else b"") for m in tar}  # type: ignore[union-attr]


def _layer_members(blob: bytes, tmp_path: Path) -> dict[str, tarfile.TarInfo]:
    path = tmp_path / f"layer-{hashlib.sha256(blob).hexdigest()[:8]}.tar"
    path.write_bytes(blob)
    with tarfile.open(path) as tar:
        return {m.name: m for m in tar}


def _manifest_and_config(archive: Path) -> tuple[dict[str, bytes], dict[str, Any], dict[str, Any]]:
    files = _read_archive(archive)
    index = json.loads(files["index.json"])
    manifest = json.loads(files["blobs/sha256/" + index["manifests"][0]["digest"][7:]])
    config = json.loads(files["blobs/sha256/" + manifest["config"]["digest"][7:]])
    return files, manifest, config


# ------------------------------------------------------------------------------------------------
# Layer diff and whiteouts
# ------------------------------------------------------------------------------------------------


def test_diff_writes_changes_with_their_parents_and_whiteouts_removals() -> None:
    lower = {
        "etc": _entry("dir", 0o755),
        "etc/keep": _entry(data="a"),
        "etc/change": _entry(data="old"),
        "etc/gone": _entry(data="x"),
        "usr": _entry("dir", 0o755),
        "usr/share": _entry("dir", 0o755),
    }
    upper = {
        "etc": _entry("dir", 0o755),
        "etc/keep": _entry(data="a"),
        "etc/change": _entry(data="new"),
        "usr": _entry("dir", 0o755),
        "usr/share": _entry("dir", 0o755),
        "usr/share/new": _entry(data="n"),
    }
    write, whiteouts = rootfs_tree.diff(lower, upper)
    assert write == ["etc", "etc/change", "usr", "usr/share", "usr/share/new"]
    assert whiteouts == ["etc/gone"]


def test_diff_whites_out_a_removed_directory_once_not_its_children() -> None:
    lower = {
        "opt": _entry("dir", 0o755),
        "opt/tool": _entry("dir", 0o755),
        "opt/tool/bin": _entry("dir", 0o755),
        "opt/tool/bin/run": _entry(data="r"),
    }
    write, whiteouts = rootfs_tree.diff(lower, {"opt": _entry("dir", 0o755)})
    assert whiteouts == ["opt/tool"]
    assert write == ["opt"]


def test_diff_replacing_a_directory_by_a_file_needs_no_child_whiteouts() -> None:
    lower = {"data": _entry("dir", 0o755), "data/a": _entry(data="a")}
    upper = {"data": _entry("symlink", 0o777, data="/srv/data")}
    write, whiteouts = rootfs_tree.diff(lower, upper)
    assert (write, whiteouts) == (["data"], [])


def test_diff_sees_metadata_only_changes() -> None:
    lower = {"run.sh": _entry(mode=0o644, data="s")}
    upper = {"run.sh": _entry(mode=0o755, data="s")}
    assert rootfs_tree.diff(lower, upper) == (["run.sh"], [])


def test_diff_layer_written_from_real_trees_has_oci_whiteouts(tmp_path: Path) -> None:
    lower_root, upper_root = tmp_path / "lower", tmp_path / "upper"
    for root in (lower_root, upper_root):
        (root / "etc").mkdir(parents=True)
        (root / "etc" / "same").write_text("same\n")
    (lower_root / "etc" / "removed").write_text("bye\n")
    (lower_root / "var" / "cache").mkdir(parents=True)
    (lower_root / "var" / "cache" / "x").write_text("x")
    (upper_root / "var").mkdir()
    (upper_root / "etc" / "added").write_text("hi\n")
    lower = rootfs_tree.rootfs_index(rootfs_tree.scan_tree(lower_root))
    nodes = rootfs_tree.scan_tree(upper_root)
    write, whiteouts = rootfs_tree.diff(lower, rootfs_tree.rootfs_index(nodes))
    layer = layer_tar.write_layer(layer_tar.rootfs_items(nodes, write, whiteouts), tmp_path / "diff.tar")
    with tarfile.open(layer.path) as tar:
        members = {m.name: m for m in tar}
    assert sorted(members) == ["etc", "etc/.wh.removed", "etc/added", "var", "var/.wh.cache"]
    assert members["etc/.wh.removed"].isfile() and members["etc/.wh.removed"].size == 0


# ------------------------------------------------------------------------------------------------
# Deterministic layers
# ------------------------------------------------------------------------------------------------


def _make_tree(root: Path) -> None:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tool").write_bytes(b"#!/bin/sh\necho tool\n")
    (root / "bin" / "tool").chmod(0o755)
    os.link(root / "bin" / "tool", root / "bin" / "tool-alias")
    (root / "bin" / "sh").symlink_to("tool")
    (root / "etc").mkdir()
    (root / "etc" / "conf").write_text("k=v\n")
    (root / "etc" / "conf").chmod(0o600)


def test_layer_digest_ignores_mtimes_and_scan_order(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    _make_tree(one)
    _make_tree(two)
    os.utime(two / "etc" / "conf", (time.time() + 1000, time.time() + 1000))
    os.utime(two / "bin", (12345, 12345))  # before the clamp epoch
    os.utime(one / "bin", (12345, 12345))
    digests = []
    for root in (one, two):
        nodes = rootfs_tree.scan_tree(root)
        layer = layer_tar.write_layer(layer_tar.rootfs_items(nodes, nodes, ()), tmp_path / f"{root.name}.tar")
        digests.append(layer.digest)
    assert digests[0] == digests[1]
    assert digests[0] == "sha256:" + hashlib.sha256((tmp_path / "one.tar").read_bytes()).hexdigest()


def test_layer_keeps_modes_symlinks_and_hardlinks(tmp_path: Path) -> None:
    _make_tree(tmp_path / "tree")
    nodes = rootfs_tree.scan_tree(tmp_path / "tree")
    layer = layer_tar.write_layer(layer_tar.rootfs_items(nodes, nodes, ()), tmp_path / "l.tar")
    with tarfile.open(layer.path) as tar:
        members = {m.name: m for m in tar}
    assert list(members) == ["bin", "bin/sh", "bin/tool", "bin/tool-alias", "etc", "etc/conf"]
    assert members["bin/tool"].mode == 0o755
    assert members["etc/conf"].mode == 0o600
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "tool"
    assert members["bin/tool-alias"].islnk() and members["bin/tool-alias"].linkname == "bin/tool"
    assert all(m.uname == "" and m.mtime <= reproducible.EPOCH for m in members.values())


# ------------------------------------------------------------------------------------------------
# Images: OCI layout, determinism, cache keys
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def host_files(tmp_path: Path) -> Path:
    """A small host directory to copy into images: an executable and a data file."""
    src = tmp_path / "src"
    (src / "lib").mkdir(parents=True)
    (src / "run").write_text("#!/bin/sh\nexec true\n")
    (src / "run").chmod(0o750)
    (src / "lib" / "data.txt").write_text("data\n")
    return src


def _scratch_spec(host_files: Path) -> ImageSpec:
    return ImageSpec(
        name="selftest/scratch",
        tag="1.0",
        files={"/app": host_files, "/etc/motd": b"hello\n", "/usr/bin/hi": b"#!/bin/sh\necho hi\n"},
        entrypoint=("/app/run",),
        cmd=("--flag",),
        env={"MODE": "test"},
        workdir="/app",
        user="1000:1000",
        exposed_ports=("8080/tcp", "9090"),
        labels={"purpose": "unit-test"},
    )


def test_oci_archive_layout(tmp_path: Path, host_files: Path) -> None:
    spec = _scratch_spec(host_files)
    image = build_image(spec, cache=tmp_path / "cache")
    assert image.ref == "localhost/geocube-acceptance/selftest/scratch:1.0"
    files, manifest, config = _manifest_and_config(image.archive)
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(files["index.json"])
    (desc,) = index["manifests"]
    assert desc["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert desc["annotations"] == {
        "io.containerd.image.name": image.ref,
        "org.opencontainers.image.ref.name": image.ref,
    }
    assert desc["digest"] == image.manifest_digest
    for name, blob in files.items():
        if name.startswith("blobs/sha256/") and blob:
            assert hashlib.sha256(blob).hexdigest() == name.rsplit("/", 1)[1], f"blob {name} is corrupt"
    assert manifest["config"]["digest"] == image.config_digest
    assert [layer["digest"] for layer in manifest["layers"]] == list(image.layer_digests)
    assert config["rootfs"]["diff_ids"] == list(image.layer_digests)
    assert config["config"] == {
        "Entrypoint": ["/app/run"],
        "Cmd": ["--flag"],
        "Env": [oci_archive.DEFAULT_PATH, "MODE=test"],
        "WorkingDir": "/app",
        "User": "1000:1000",
        "ExposedPorts": {"8080/tcp": {}, "9090/tcp": {}},
        "Labels": {"purpose": "unit-test"},
    }
    (layer_blob,) = (files["blobs/sha256/" + d[7:]] for d in image.layer_digests)
    members = _layer_members(layer_blob, tmp_path)
    assert sorted(members) == [
        "app",
        "app/lib",
        "app/lib/data.txt",
        "app/run",
        "etc",
        "etc/motd",
        "usr",
        "usr/bin",
        "usr/bin/hi",
    ]
    assert members["app/run"].mode == 0o750, "host exec bits must be kept"
    assert members["usr/bin/hi"].mode == 0o755, "inline scripts are executable"
    assert members["etc/motd"].mode == 0o644
    assert all(m.uid == 0 and m.gid == 0 for m in members.values())


def test_rebuild_in_a_fresh_cache_gives_identical_bytes(tmp_path: Path, host_files: Path) -> None:
    spec = _scratch_spec(host_files)
    first = build_image(spec, cache=tmp_path / "a")
    os.utime(host_files / "run", (time.time() + 3600, time.time() + 3600))  # a checkout touches mtimes
    second = build_image(spec, cache=tmp_path / "b")
    assert (first.manifest_digest, first.layer_digests) == (second.manifest_digest, second.layer_digests)
    assert first.archive.read_bytes() == second.archive.read_bytes()


def test_cache_hit_returns_the_same_archive_without_rewriting(tmp_path: Path, host_files: Path) -> None:
    spec = _scratch_spec(host_files)
    first = build_image(spec, cache=tmp_path)
    written = first.archive.stat().st_mtime_ns
    second = build_image(spec, cache=tmp_path)
    assert second == first
    assert second.archive.stat().st_mtime_ns == written


def test_cache_key_changes_when_a_host_file_changes(tmp_path: Path, host_files: Path) -> None:
    spec = _scratch_spec(host_files)
    before = build_image(spec, cache=tmp_path)
    (host_files / "lib" / "data.txt").write_text("other data\n")
    after = build_image(spec, cache=tmp_path)
    assert after.archive != before.archive
    assert after.manifest_digest != before.manifest_digest
    (host_files / "lib" / "data.txt").chmod(0o755)
    assert build_image(spec, cache=tmp_path).manifest_digest != after.manifest_digest, "mode is part of the key"


def test_images_with_equal_files_share_the_layer_digest(tmp_path: Path, host_files: Path) -> None:
    one = build_image(ImageSpec(name="one", tag="1", files={"/app": host_files}), cache=tmp_path)
    two = build_image(ImageSpec(name="two", tag="1", files={"/app": host_files}, cmd=("x",)), cache=tmp_path)
    assert one.layer_digests == two.layer_digests
    assert one.manifest_digest != two.manifest_digest


def test_chain_id_matches_containerd_definition() -> None:
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    image = BuiltImage("r", Path("x"), "m", "c", (a, b), (1, 1), 2)
    assert image.chain_id == "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()


def test_files_below_usrmerge_symlinks_are_written_through_them(tmp_path: Path) -> None:
    lower = {
        "bin": _entry("symlink", 0o777, "usr/bin"),
        "usr": _entry("dir", 0o755),
        "usr/bin": _entry("dir", 0o755),
        "tmp": _entry("dir", 0o1777),
    }
    assert files_layer.resolve_parents("bin/tool", lower) == "usr/bin/tool"
    sources = files_layer.file_items({"/bin/tool": b"#!/bin/sh\n", "/tmp/x": b"x", "/new/dir/f": b"f"})
    layer = files_layer.write_files_layer(sources, lower, tmp_path / "files.tar")
    with tarfile.open(layer.path) as tar:
        names = tar.getnames()
    # Existing parents (usr/bin, the sticky /tmp) are left alone; missing ones are created.
    assert names == ["new", "new/dir", "new/dir/f", "tmp/x", "usr/bin/tool"]


# ------------------------------------------------------------------------------------------------
# Spec validation and error messages
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Bad Name", "tag": "1"}, "ImageSpec.name"),
        ({"name": "ok", "tag": "bad tag"}, "ImageSpec.tag"),
        ({"name": "ok", "tag": "1"}, "a scratch image needs files"),
        ({"name": "ok", "tag": "1", "packages": ("curl",), "files": {"/x": b""}}, "need a Debian base"),
        ({"name": "ok", "tag": "1", "files": {"relative/path": b""}}, "absolute paths"),
        ({"name": "ok", "tag": "1", "files": {"/../etc": b""}}, "absolute paths"),
        ({"name": "ok", "tag": "1", "base": DebianBase(), "packages": ("curl; rm",)}, "Debian package names"),
        ({"name": "ok", "tag": "1", "base": DebianBase(), "exposed_ports": ("http",)}, "8080/tcp"),
    ],
)
def test_spec_validation_says_what_is_wrong(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ImageSpec(**kwargs)


def test_base_key_ignores_package_order_but_not_content() -> None:
    assert DebianBase(packages=("a1", "b2")).key() == DebianBase(packages=("b2", "a1")).key()
    assert DebianBase(packages=("a1",)).key() != DebianBase().key()
    assert DebianBase(variant="minbase").key() != DebianBase().key()


def _debian_spec() -> ImageSpec:
    return ImageSpec(name="needs-debian", tag="1", base=DebianBase(suite="bookworm", packages=("tzdata",)))


def test_missing_mmdebstrap_says_which_package_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ImageBuildError, match=r"install Debian package mmdebstrap \(apt-get install mmdebstrap\)"):
        build_image(_debian_spec(), cache=tmp_path / "cache")


def _fake_mmdebstrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "mmdebstrap"
    fake.write_text(
        '#!/bin/sh\nfor i in $(seq 1 60); do echo "I: progress line $i"; done\n'
        "echo 'E: Unable to locate package tzdata' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")


def test_not_root_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_mmdebstrap(tmp_path, monkeypatch)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(ImageBuildError, match=r"needs root; running as uid 1000"):
        build_image(_debian_spec(), cache=tmp_path / "cache")


def test_mmdebstrap_failure_shows_command_and_log_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_mmdebstrap(tmp_path, monkeypatch)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    with pytest.raises(ImageBuildError) as excinfo:
        build_image(_debian_spec(), cache=tmp_path / "cache")
    message = str(excinfo.value)
    assert "mmdebstrap failed (1)" in message
    assert "--variant=essential" in message and "--include=tzdata" in message and " bookworm " in message
    assert "E: Unable to locate package tzdata" in message
    assert "progress line 60" in message and "progress line 1\n" not in message, "only the tail of the log"
    assert not list((tmp_path / "cache" / "tmp").iterdir()), "the work directory is removed after a failure"


# ------------------------------------------------------------------------------------------------
# Pause image
# ------------------------------------------------------------------------------------------------


@needs_go
def test_pause_image_is_scratch_with_only_pause(tmp_path: Path) -> None:
    image = build_pause_image(cache=tmp_path)
    assert image.ref == PAUSE_IMAGE == "localhost/geocube-acceptance/pause:3.10-1"
    files, _manifest, config = _manifest_and_config(image.archive)
    assert config["config"]["Entrypoint"] == ["/pause"]
    (layer_blob,) = (files["blobs/sha256/" + d[7:]] for d in image.layer_digests)
    members = _layer_members(layer_blob, tmp_path)
    assert list(members) == ["pause"] and members["pause"].mode == 0o755
    binaries = list((tmp_path / "pause").glob("*/pause"))
    assert len(binaries) == 1
    assert build_pause_image(cache=tmp_path) == image, "second build is a cache hit"


@needs_go
def test_pause_binary_is_static_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    build_pause_image(cache=tmp_path)
    (binary,) = (tmp_path / "pause").glob("*/pause")
    assert binary.read_bytes()[:4] == b"\x7fELF"
    assert b"/lib64/ld-linux" not in binary.read_bytes(), "must be static (CGO_ENABLED=0)"
    proc = subprocess.Popen([binary], stderr=subprocess.PIPE)
    try:
        time.sleep(0.3)
        assert proc.poll() is None, "pause must keep running"
        proc.send_signal(signal.SIGCHLD)
        time.sleep(0.1)
        assert proc.poll() is None, "SIGCHLD must not stop pause"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


@needs_go
def test_pause_go_tests_pass() -> None:
    assert GO is not None
    result = subprocess.run(
        [GO, "test", "-count=1", "./..."],
        cwd=pause_binary.PAUSE_SOURCE,
        capture_output=True,
        text=True,
        env={**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOFLAGS": "-buildvcs=false"},
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"go test in {pause_binary.PAUSE_SOURCE} failed:\n{result.stdout}{result.stderr}"


def test_exec_bits_survive_in_file_scan(tmp_path: Path) -> None:
    script = tmp_path / "s"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    (source,) = files_layer.file_items({"/s": script}).values()
    assert stat.S_IMODE(source.nodes[""].entry.mode) == 0o755
