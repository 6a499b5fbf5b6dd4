"""The COG layout rules on hand-made TIFFs: tiled throughout, IFDs before the data, overviews beyond 512 px."""

from __future__ import annotations

import struct

from geocube_stack.geotiff import Raster, cog_problems, tiff_ifds, write_geotiff


def tiled_tiff(width: int, height: int, tile: int = 256, *, ifd_first: bool = True) -> bytes:
    """A classic little-endian tiled uint8 TIFF with one IFD, placed before or after its tile data."""
    tiles = -(-width // tile) * -(-height // tile)
    tile_bytes = tile * tile
    entries_count = 7
    ifd_size = 2 + 12 * entries_count + 4
    arrays_size = 8 * tiles
    if ifd_first:
        ifd_at, arrays_at, data_at = 8, 8 + ifd_size, 8 + ifd_size + arrays_size
    else:
        data_at = 8
        ifd_at = data_at + tiles * tile_bytes
        arrays_at = ifd_at + ifd_size
    offsets = [data_at + i * tile_bytes for i in range(tiles)]

    def entry(tag: int, kind: int, count: int, value: int) -> bytes:
        return struct.pack("<HHII", tag, kind, count, value)

    ifd = (
        struct.pack("<H", entries_count)
        + b"".join(
            [
                entry(256, 4, 1, width),
                entry(257, 4, 1, height),
                entry(258, 3, 1, 8),
                entry(322, 4, 1, tile),
                entry(323, 4, 1, tile),
                entry(324, 4, tiles, arrays_at if tiles > 1 else offsets[0]),
                entry(325, 4, tiles, arrays_at + 4 * tiles if tiles > 1 else tile_bytes),
            ]
        )
        + struct.pack("<I", 0)
    )
    arrays = struct.pack(f"<{tiles}I", *offsets) + struct.pack(f"<{tiles}I", *[tile_bytes] * tiles)
    data = bytes(tiles * tile_bytes)
    head = b"II*\x00" + struct.pack("<I", ifd_at)
    return head + ifd + arrays + data if ifd_first else head + data + ifd + arrays


def test_a_tiled_tiff_with_its_ifd_first_is_a_cog() -> None:
    data = tiled_tiff(512, 512)
    assert [ifd.number("ImageWidth") for ifd in tiff_ifds(data)] == [512]
    assert cog_problems(data) == []


def test_each_broken_rule_is_named() -> None:
    strips = cog_problems(write_geotiff(Raster(32631, 0, 0, 10, 64, 64)))
    assert strips == ["image 0 (64x64, IFD at byte 8) is not tiled (strips): a COG is tiled throughout"]
    [late] = cog_problems(tiled_tiff(256, 256, ifd_first=False))
    assert "its IFD comes after image data (first tile at byte 8)" in late
    [no_overviews] = cog_problems(tiled_tiff(1024, 600))
    assert no_overviews.startswith("the full-resolution image is 1024x600 and has no overviews")
    assert cog_problems(b"GIF89a") == ["not a readable TIFF: not a TIFF: starts with b'GIF89a'"]
