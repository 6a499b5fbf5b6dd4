"""Cold and warm build times of the image builder (numbers printed, never asserted).

    sudo .venv/bin/python benchmarks/bench_images.py [--cache DIR] [--containerd-address SOCK]

Cold builds run in a fresh cache directory (removed afterwards unless ``--cache`` is given), so they
include ``go build`` for the pause image and two ``mmdebstrap`` runs for the Debian image (the base
rootfs, then base+packages for the diff layer). Warm builds are the same calls again: cache hits.
With ``--containerd-address``, import times into that containerd are measured too (cold import,
then the no-op re-import).
"""

from __future__ import annotations

import argparse
import functools
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from localcluster.image_spec import BuiltImage, DebianBase, ImageSpec
from localcluster.images import build_image, build_pause_image, import_image
from localcluster.paths import cache_dir

T = TypeVar("T")


def timed(label: str, fn: Callable[[], T]) -> T:
    started = time.monotonic()
    result = fn()
    print(f"{label:<48} {time.monotonic() - started:8.2f} s", flush=True)
    return result


def describe(image: BuiltImage) -> None:
    layers = ", ".join(
        f"{d[7:19]} {size / 1e6:.1f} MB" for d, size in zip(image.layer_digests, image.layer_sizes, strict=True)
    )
    print(f"  {image.ref}: {image.size / 1e6:.1f} MB; layers: {layers}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, help="cache directory to use and keep (default: a fresh temporary one)")
    parser.add_argument("--containerd-address", help="also time imports into the containerd at this socket")
    parser.add_argument("--namespace", default="k8s.io")
    args = parser.parse_args()
    # The builder logs its phases (mmdebstrap, scan+diff+tar) at INFO: show them between the totals.
    logging.basicConfig(level=logging.INFO, format="    %(message)s")

    temporary = args.cache is None
    if temporary:
        (cache_dir() / "tmp").mkdir(parents=True, exist_ok=True)
        cache = Path(tempfile.mkdtemp(prefix="bench-images-", dir=cache_dir() / "tmp"))
    else:
        cache = args.cache
    print(f"cache: {cache}{' (fresh, removed at the end)' if temporary else ''}")
    base = DebianBase()
    script = b"#!/bin/sh\nexec uuidgen\n"
    plain = ImageSpec(name="bench-plain", tag="1", base=base, files={"/usr/local/bin/hello": script})
    with_packages = ImageSpec(
        name="bench-uuid",
        tag="1",
        base=base,
        packages=("uuid-runtime",),
        files={"/usr/local/bin/hello": script},
    )
    try:
        pause = timed("pause image, cold (go build + archive)", lambda: build_pause_image(cache=cache))
        timed("pause image, warm", lambda: build_pause_image(cache=cache))
        describe(pause)
        debian = timed("debian image, cold (base rootfs + layer)", lambda: build_image(plain, cache=cache))
        timed("debian image, warm", lambda: build_image(plain, cache=cache))
        describe(debian)
        uuid = timed("debian+uuid-runtime, cold (2nd rootfs + diff)", lambda: build_image(with_packages, cache=cache))
        timed("debian+uuid-runtime, warm", lambda: build_image(with_packages, cache=cache))
        describe(uuid)
        print(f"  base layer shared: {debian.layer_digests[0] == uuid.layer_digests[0]}")
        if args.containerd_address:
            for image in (pause, debian, uuid):
                load = functools.partial(import_image, image, args.containerd_address, args.namespace)
                timed(f"import {image.ref.rsplit('/', 1)[-1]}, cold", load)
                timed(f"import {image.ref.rsplit('/', 1)[-1]}, already there", load)
    finally:
        if temporary:
            shutil.rmtree(cache, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
