"""The read-path comparison: an image identical to its input passes; every other answer names what differs."""

from __future__ import annotations

from geocube_stack.client import CubeImage
from geocube_stack.geotiff import Raster, pattern
from suites.storage.read_path import compare

RASTER = Raster(32631, 0.0, 0.0, pixel_size=10, width=4, height=3)


def image(record: str, data: bytes, *, dtype: str = "UInt8", error: str = "") -> CubeImage:
    return CubeImage((record,), (3, 4, 1), dtype, data, error)


def test_identical_pixels_pass_and_the_patterns_differ_everywhere() -> None:
    first, second = pattern(RASTER, 0), pattern(RASTER, 1)
    assert 0 not in first + second, "0 is the variable's no-data"
    assert all(a != b for a, b in zip(first, second, strict=True))
    results = compare(RASTER, {"r1": first, "r2": second}, [image("r2", second), image("r1", first)])
    assert [(r.record_id, r.problem) for r in results] == [("r1", None), ("r2", None)]


def test_each_kind_of_wrong_answer_is_named() -> None:
    want = pattern(RASTER, 0)
    changed = bytes([want[0], want[1], 99, *want[3:]])
    cases = {
        "missing": [],
        "error": [image("r", b"", error="cannot open /geocube-storage/x.tif")],
        "dtype": [image("r", want, dtype="Float32")],
        "size": [image("r", want[:-1])],
        "pixels": [image("r", changed)],
    }
    said = {name: compare(RASTER, {"r": want}, images)[0].problem for name, images in cases.items()}
    assert said == {
        "missing": "GetCube returned no image for it",
        "error": "GetCube returned an error instead of its image: cannot open /geocube-storage/x.tif",
        "dtype": "GetCube returned Float32 pixels, the variable is UInt8",
        "size": "GetCube returned 11 bytes (shape (3, 4, 1)) for a 4x3 uint8 image (12 bytes)",
        "pixels": f"1 of 12 pixels differ from the indexed input; the first at x=2 y=0: read 99, indexed {want[2]}",
    }
