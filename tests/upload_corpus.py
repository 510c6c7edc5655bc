"""A hostile-upload corpus for the service: (name, bytes, expected), expected being
"score" or the HTTP status the upload must get. Everything is generated here."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def _save(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width × height pixels (a decompression bomb): one tiny IDAT, no more."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def corpus(max_image_bytes: int) -> list[tuple[str, bytes, object]]:
    rng = np.random.default_rng(3)
    photo = Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    jpg, png = _save(photo, "JPEG", quality=90), _save(photo, "PNG")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90°
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    pal = photo.convert("P", palette=Image.Palette.ADAPTIVE)
    pal.info["transparency"] = 0
    tiff = io.BytesIO()
    frames[0].save(tiff, format="TIFF", save_all=True, append_images=frames[1:])
    big = Image.fromarray(rng.integers(0, 255, (700, 700, 3), dtype=np.uint8))
    items: list[tuple[str, bytes, object]] = [
        ("photo.jpg", jpg, "score"),
        ("photo.png", png, "score"),
        ("photo.webp", _save(photo, "WEBP"), "score"),
        ("photo.bmp", _save(photo, "BMP"), "score"),
        ("photo.gif", _save(photo.convert("P"), "GIF"), "score"),
        ("grey.png", _save(photo.convert("L"), "PNG"), "score"),
        ("grey_alpha.png", _save(photo.convert("LA"), "PNG"), "score"),
        ("rgba.png", _save(photo.convert("RGBA"), "PNG"), "score"),
        ("sixteen_bit.png", _save(Image.fromarray((rng.integers(0, 65535, (40, 40))).astype(np.uint16)), "PNG"), "score"),
        ("cmyk.jpg", _save(photo.convert("CMYK"), "JPEG"), "score"),
        ("palette_alpha.png", _save(pal, "PNG"), "score"),
        ("animated.gif", _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0), "score"),
        ("multipage.tiff", tiff.getvalue(), "score"),
        ("exif_rotated.jpg", _save(photo, "JPEG", exif=exif), "score"),
        ("one_pixel.png", _save(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG"), "score"),
        ("strip_1x10000.png", _save(Image.new("RGB", (1, 10000), (90, 90, 90)), "PNG"), "score"),
        ("icon.ico", _save(photo, "ICO"), "score"),
        ("no_name_but_jpeg.txt", jpg, "score"),  # the name lies, the bytes decide
        ("truncated.jpg", jpg[: len(jpg) // 3], 422),
        ("truncated.png", png[:80], 422),
        ("corrupt.jpg", jpg[:20] + rng.integers(0, 255, 2000, dtype=np.uint8).tobytes(), 422),
        ("corrupt.png", b"\x89PNG\r\n\x1a\n" + rng.integers(0, 255, 500, dtype=np.uint8).tobytes(), 422),
        ("zero_bytes.jpg", b"", 422),
        ("random.jpg", rng.integers(0, 255, 4096, dtype=np.uint8).tobytes(), 415),
        ("page.jpg", b"<!doctype html><html><body>hello</body></html>", 415),
        ("drawing.jpg", b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>', 415),
        ("notes.jpg", b"shopping list: milk, eggs", 415),
        ("archive.png", b"PK\x03\x04" + bytes(200), 415),
        ("document.jpg", b"%PDF-1.7\n" + bytes(200), 415),
        ("phone.heic", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64), 415),
        ("bomb_30000x30000.png", _png_header_only(30000, 30000), 413),
        ("oversized.png", _save(big, "PNG"), 413),
    ]
    assert len(items[-1][1]) > max_image_bytes, "the oversized upload must exceed the limit"
    return items
