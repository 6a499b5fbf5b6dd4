"""Tiny GeoTIFFs for consolidation checks, written and inspected in pure Python (no GDAL on the host).

:func:`write_geotiff` makes a single-band uint8 GeoTIFF (one strip, uncompressed) georeferenced
in a projected EPSG CRS (ModelPixelScale + ModelTiepoint + GeoKeyDirectory), which GDAL reads.
:func:`tiff_ifds` reads every IFD of a classic or BigTIFF file (:func:`tiff_summary` the first one), and
:func:`cog_problems` checks a consolidated output against the layout rules of a cloud-optimised GeoTIFF.
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass

_TYPES = {1: ("B", 1), 2: ("s", 1), 3: ("H", 2), 4: ("I", 4), 12: ("d", 8), 16: ("Q", 8)}
TAG_NAMES = {
    254: "NewSubfileType",
    256: "ImageWidth",
    257: "ImageLength",
    258: "BitsPerSample",
    259: "Compression",
    322: "TileWidth",
    323: "TileLength",
    277: "SamplesPerPixel",
    273: "StripOffsets",
    324: "TileOffsets",
    325: "TileByteCounts",
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


def pattern(raster: Raster, seed: int) -> bytes:
    """Pixels in 1..255 (0 is the variable's no-data) that differ from one ``seed`` to the next at every pixel."""
    return bytes(
        1 + (x + 3 * y + 37 * seed) % 255 if seed % 2 == 0 else 1 + (7 * x + y + 37 * seed) % 255
        for y in range(raster.height)
        for x in range(raster.width)
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
    return tiff_ifds(data)[0].tags


@dataclass(frozen=True)
class Ifd:
    """One image file directory: where it is and its named tags."""

    offset: int
    tags: dict[str, list[float] | list[int] | str]

    def number(self, tag: str, default: int = 0) -> int:
        value = self.tags.get(tag)
        return int(value[0]) if isinstance(value, list) and value else default

    def numbers(self, tag: str) -> list[int]:
        value = self.tags.get(tag)
        return [int(v) for v in value] if isinstance(value, list) else []


def tiff_ifds(data: bytes) -> list[Ifd]:
    """Every IFD of a classic or BigTIFF file, in file-chain order; raises ValueError if ``data`` is no TIFF."""
    if data[:2] not in (b"II", b"MM"):
        raise ValueError(f"not a TIFF: starts with {data[:8]!r}")
    end = "<" if data[:2] == b"II" else ">"
    (version,) = struct.unpack(end + "H", data[2:4])
    if version == 42:
        (ifd,) = struct.unpack(end + "I", data[4:8])
        count_fmt, entry_fmt, entry_size, inline, offset_fmt = "H", "HHI", 12, 4, "I"
    elif version == 43:
        (ifd,) = struct.unpack(end + "Q", data[8:16])
        count_fmt, entry_fmt, entry_size, inline, offset_fmt = "Q", "HHQ", 20, 8, "Q"
    else:
        raise ValueError(f"not a TIFF: version {version}")
    found: list[Ifd] = []
    seen: set[int] = set()
    while ifd and ifd not in seen and len(found) < 10_000:
        seen.add(ifd)
        (count,) = struct.unpack_from(end + count_fmt, data, ifd)
        pos = ifd + struct.calcsize(count_fmt)
        tags: dict[str, list[float] | list[int] | str] = {}
        for _ in range(count):
            tag, kind, n = struct.unpack_from(end + entry_fmt, data, pos)
            value_pos = pos + struct.calcsize(entry_fmt)
            pos += entry_size
            if tag not in TAG_NAMES or kind not in _TYPES:
                continue
            fmt, size = _TYPES[kind]
            if n * size > inline:
                (value_pos,) = struct.unpack_from(end + offset_fmt, data, value_pos)
            if kind == 2:
                tags[TAG_NAMES[tag]] = data[value_pos : value_pos + n].rstrip(b"\0").decode(errors="replace")
            else:
                tags[TAG_NAMES[tag]] = list(struct.unpack_from(f"{end}{n}{fmt}", data, value_pos))
        found.append(Ifd(ifd, tags))
        (ifd,) = struct.unpack_from(end + offset_fmt, data, pos)
    return found


def cog_problems(data: bytes) -> list[str]:
    """Where ``data`` breaks the layout rules of a cloud-optimised GeoTIFF, if anywhere.

    The rules are those of GDAL's COG validation (validate_cloud_optimized_geotiff) that range reads depend on.

    A COG is read with HTTP range requests: every image (full resolution, overviews and, in Geocube's
    multi-record COGs, the other records) is tiled; every IFD comes before the image data, so one read of the
    file's head gives the whole structure; reduced-resolution images (NewSubfileType 1) get smaller; a
    full-resolution image larger than 512 px on a side has overviews; and the tiles are all inside the file.
    """
    try:
        ifds = tiff_ifds(data)
    except (ValueError, struct.error) as err:
        return [f"not a readable TIFF: {err}"]
    problems: list[str] = []
    first_tile = min((o for ifd in ifds for o in ifd.numbers("TileOffsets") if o), default=len(data))
    for index, ifd in enumerate(ifds):
        width, height = ifd.number("ImageWidth"), ifd.number("ImageLength")
        what = f"image {index} ({width}x{height}, IFD at byte {ifd.offset})"
        tile_w, tile_h = ifd.number("TileWidth"), ifd.number("TileLength")
        offsets, counts = ifd.numbers("TileOffsets"), ifd.numbers("TileByteCounts")
        if not tile_w or not tile_h or not offsets:
            problems.append(f"{what} is not tiled (strips): a COG is tiled throughout")
            continue
        tiles = -(-width // tile_w) * -(-height // tile_h)
        planes = max(1, ifd.number("SamplesPerPixel", 1))  # planar configuration: one set of tiles per sample
        if len(offsets) not in (tiles, tiles * planes):
            problems.append(f"{what} has {len(offsets)} tile offsets for {tiles} tiles of {tile_w}x{tile_h}")
        outside = [i for i, (o, n) in enumerate(zip(offsets, counts, strict=False)) if o and o + n > len(data)]
        if outside:
            problems.append(f"{what}: tile {outside[0]} ends after the end of the file ({len(data)} bytes)")
        if ifd.offset > first_tile:
            problems.append(
                f"{what}: its IFD comes after image data (first tile at byte {first_tile}): the structure cannot be "
                "read from the head of the file"
            )
    full = [ifd for ifd in ifds if not ifd.number("NewSubfileType") & 1]
    reduced = [ifd for ifd in ifds if ifd.number("NewSubfileType") & 1]
    sizes = [ifd.number("ImageWidth") for ifd in reduced]
    if any(later >= earlier for earlier, later in itertools.pairwise(sizes)) and len(full) == 1:
        problems.append(f"overviews are not in decreasing size order: widths {sizes}")
    if full and not reduced and max(full[0].number("ImageWidth"), full[0].number("ImageLength")) > 512:
        problems.append(
            f"the full-resolution image is {full[0].number('ImageWidth')}x{full[0].number('ImageLength')} and has no "
            "overviews: a COG larger than 512 px on a side carries reduced-resolution images"
        )
    return problems
