"""The user's read path: what was indexed comes back from GetCube pixel for pixel.

Users of Geocube index their images and read cubes of them (the official Python client's notebooks):
the suite indexes two records of distinct pixels, reads both back with GetCube on the inputs' own grid
(no reprojection, no resampling) and compares every pixel. Pure comparison helpers live here; the check
is in test_storage.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from geocube_stack.client import CubeImage
from geocube_stack.geotiff import Raster


@dataclass(frozen=True)
class ReadBack:
    """One record's comparison: where its pixels differ from its input, if anywhere."""

    record_id: str
    problem: str | None  # None: pixel-identical


def compare(raster: Raster, inputs: dict[str, bytes], images: list[CubeImage]) -> list[ReadBack]:
    """Each input record against the image GetCube returned for it (by record id); missing images are problems."""
    by_record = {image.record_ids[0]: image for image in images if len(image.record_ids) == 1}
    return [
        _compare_one(raster, record_id, expected, by_record.get(record_id)) for record_id, expected in inputs.items()
    ]


def _compare_one(raster: Raster, record_id: str, expected: bytes, image: CubeImage | None) -> ReadBack:
    if image is None:
        return ReadBack(record_id, "GetCube returned no image for it")
    if image.error:
        return ReadBack(record_id, f"GetCube returned an error instead of its image: {image.error}")
    if image.dtype != "UInt8":
        return ReadBack(record_id, f"GetCube returned {image.dtype} pixels, the variable is UInt8")
    if len(image.data) != len(expected):
        return ReadBack(
            record_id,
            f"GetCube returned {len(image.data)} bytes (shape {image.shape}) for a {raster.width}x{raster.height} "
            f"uint8 image ({len(expected)} bytes)",
        )
    differing = [i for i, (got, want) in enumerate(zip(image.data, expected, strict=True)) if got != want]
    if not differing:
        return ReadBack(record_id, None)
    first = differing[0]
    x, y = first % raster.width, first // raster.width
    return ReadBack(
        record_id,
        f"{len(differing)} of {len(expected)} pixels differ from the indexed input; the first at x={x} y={y}: "
        f"read {image.data[first]}, indexed {expected[first]}",
    )
