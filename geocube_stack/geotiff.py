"""Tiny GeoTIFFs for consolidation checks, written and inspected in pure Python (no GDAL on the host).

:func:`write_geotiff` makes a single-band uint8 GeoTIFF (one strip, uncompressed) georeferenced
in a projected EPSG CRS (ModelPixelScale + ModelTiepoint + GeoKeyDirectory), which GDAL reads.
:func:`tiff_summary` reads the first IFD of a classic or BigTIFF file: enough to check that a
consolidated output is a tiled (cloud-optimised) GeoTIFF of the expected size.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

_TYPES = {1: ("B", 1), 2: ("s", 1), 3: ("H", 2), 4: ("I", 4), 12: ("d", 8), 16: ("Q", 8)}
TAG_NAMES = {
    256: "ImageWidth",
    257: "ImageLength",
    258: "BitsPerSample",
    259: "Compression",
    322: "TileWidth",
    323: "TileLength",
    277: "SamplesPerPixel",
    33550: "ModelPixelScale",
    33922: "ModelTiepoint",
    34735: "GeoKeyDirectory",
}


@dataclass(frozen=True)
class Raster:
    """Where a written raster lies: its CRS, origin (top-left corner) and pixel size in CRS units."""

    epsg: int
    origin_x: float
    origin_y: float
    pixel_size: float
    width: int
    height: int

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(min x, min y, max x, max y) in the raster's CRS."""
        return (
            self.origin_x,
            self.origin_y - self.height * self.pixel_size,
            self.origin_x + self.width * self.pixel_size,
            self.origin_y,
        )


def write_geotiff(raster: Raster, pixels: bytes | None = None) -> bytes:
    """A little-endian GeoTIFF of ``raster`` (uint8, one band); default pixels are a gradient in 1..255."""
    count = raster.width * raster.height
    data = (
        pixels if pixels is not None else bytes(1 + (i % raster.width + i // raster.width) % 255 for i in range(count))
    )
    if len(data) != count:
        raise ValueError(f"pixels must hold width*height = {count} bytes. Current input: {len(data)} bytes")
    geokeys = [
        1,
        1,
        0,
        3,
        1024,
        0,
        1,
        1,  # GTModelTypeGeoKey = ModelTypeProjected
        1025,
        0,
        1,
        1,  # GTRasterTypeGeoKey = RasterPixelIsArea
        3072,
        0,
        1,
        raster.epsg,
    ]  # ProjectedCSTypeGeoKey
    entries: list[tuple[int, int, list[float] | list[int] | bytes]] = [
        (256, 4, [raster.width]),
        (257, 4, [raster.height]),
        (258, 3, [8]),
        (259, 3, [1]),
        (262, 3, [1]),
        (273, 4, [0]),  # strip offset, patched below
        (277, 3, [1]),
        (278, 4, [raster.height]),
        (279, 4, [count]),
        (284, 3, [1]),
        (339, 3, [1]),
        (33550, 12, [raster.pixel_size, raster.pixel_size, 0.0]),
        (33922, 12, [0.0, 0.0, 0.0, raster.origin_x, raster.origin_y, 0.0]),
        (34735, 3, geokeys),
        (42113, 2, b"0\0"),  # GDAL_NODATA
    ]
    header = 8
    ifd_size = 2 + 12 * len(entries) + 4
    extra = bytearray()
    extra_base = header + ifd_size
    packed_entries: list[tuple[int, int, int, bytes]] = []
    for tag, kind, values in entries:
        fmt, size = _TYPES[kind]
        raw = bytes(values) if kind == 2 else struct.pack(f"<{len(values)}{fmt}", *values)  # type: ignore[arg-type]
        n = len(raw) // size
        if len(raw) <= 4:
            packed_entries.append((tag, kind, n, raw.ljust(4, b"\0")))
        else:
            offset = extra_base + len(extra)
            extra += raw + (b"\0" if len(raw) % 2 else b"")
            packed_entries.append((tag, kind, n, struct.pack("<I", offset)))
    strip_offset = extra_base + len(extra)
    out = bytearray(b"II*\0" + struct.pack("<I", header))
    out += struct.pack("<H", len(packed_entries))
    for tag, kind, n, value in packed_entries:
        if tag == 273:
            value = struct.pack("<I", strip_offset)
        out += struct.pack("<HHI", tag, kind, n) + value
    out += struct.pack("<I", 0)
    out += extra
    out += data
    return bytes(out)


def tiff_summary(data: bytes) -> dict[str, list[float] | list[int] | str]:
    """Named tags of the first IFD (see :data:`TAG_NAMES`); raises ValueError if ``data`` is no TIFF."""
    if data[:2] not in (b"II", b"MM"):
        raise ValueError(f"not a TIFF: starts with {data[:8]!r}")
    end = "<" if data[:2] == b"II" else ">"
    (version,) = struct.unpack(end + "H", data[2:4])
    if version == 42:
        (ifd,) = struct.unpack(end + "I", data[4:8])
        count_fmt, entry_fmt, entry_size, inline = "H", "HHI", 12, 4
    elif version == 43:
        (ifd,) = struct.unpack(end + "Q", data[8:16])
        count_fmt, entry_fmt, entry_size, inline = "Q", "HHQ", 20, 8
    else:
        raise ValueError(f"not a TIFF: version {version}")
    (count,) = struct.unpack_from(end + count_fmt, data, ifd)
    pos = ifd + struct.calcsize(count_fmt)
    found: dict[str, list[float] | list[int] | str] = {}
    for _ in range(count):
        tag, kind, n = struct.unpack_from(end + entry_fmt, data, pos)
        value_pos = pos + struct.calcsize(entry_fmt)
        pos += entry_size
        if tag not in TAG_NAMES or kind not in _TYPES:
            continue
        fmt, size = _TYPES[kind]
        if n * size > inline:
            (value_pos,) = struct.unpack_from(end + ("I" if inline == 4 else "Q"), data, value_pos)
        if kind == 2:
            found[TAG_NAMES[tag]] = data[value_pos : value_pos + n].rstrip(b"\0").decode(errors="replace")
        else:
            found[TAG_NAMES[tag]] = list(struct.unpack_from(f"{end}{n}{fmt}", data, value_pos))
    return found
