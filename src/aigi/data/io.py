"""Image decoding and input discovery for the detectors.

Every decode failure becomes one :class:`ImageReadError` with a one-line,
human-readable cause, so batch tools can record a bad file and carry on instead
of dying on whichever of Pillow's many exception types a broken file raises.
All sources end up as fully loaded 8-bit RGB images, because every detector
backbone expects exactly that and silent mode differences (alpha, 16-bit,
CMYK, EXIF rotation) would otherwise change scores between callers.
"""
from __future__ import annotations

import glob
import hashlib
import io
import logging
import math
import os
import re
import stat
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterable, Iterator, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import AigiError, InputError

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS_ENV",
    "ImageReadError",
    "ImageSource",
    "file_sha256",
    "list_images",
    "read_image",
]

# Formats a stock Pillow wheel decodes with no extra plugin. AVIF/HEIC are left
# out on purpose: whether they open depends on the build / a third-party plugin.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".jpg", ".jpeg", ".jpe", ".jfif",
        ".png",
        ".webp",
        ".bmp",
        ".tif", ".tiff",
        ".gif",
        ".jp2", ".j2k",
        ".ppm", ".pgm", ".pbm", ".pnm",
    }
)

MAX_PIXELS_ENV = "AIGI_MAX_IMAGE_PIXELS"

ImageSource = Union[
    str, os.PathLike[str], bytes, bytearray, memoryview, IO[bytes], Image.Image, np.ndarray
]

_CORRUPT = "truncated or corrupt image data"
_PILLOW_BOMB_SIZE = re.compile(r"\((\d+) pixels\)")
# Serialises the rare temporary raise of Pillow's global limit (see _pillow_limit).
_PILLOW_LIMIT_LOCK = threading.Lock()
# A float array a hair above 1.0 is rounding noise from normalise/denormalise,
# not a [0, 255] array; anything beyond this is rejected rather than guessed.
_FLOAT_TOLERANCE = 1e-3


# unreadable: corrupt, truncated or an OS error; unsupported: an image format Pillow cannot decode
# here (HEIF/AVIF, SVG); too_many_pixels: over the decompression-bomb limit
READ_ERROR_KINDS = ("unreadable", "unsupported", "too_many_pixels")


class ImageReadError(AigiError):
    """One image could not be turned into RGB pixels; ``cause`` says why in words, ``kind`` in one
    of READ_ERROR_KINDS (what a caller branches on, e.g. the HTTP status of an upload)."""

    def __init__(self, path: str, cause: str, kind: str = "unreadable") -> None:
        # Causes may embed library messages; collapse whitespace so logs and
        # CSV error columns always get exactly one line.
        cause = " ".join(str(cause).split())
        super().__init__(path, cause, kind)  # args kept so the error pickles across workers
        self.path = path
        self.cause = cause
        self.kind = kind

    def __str__(self) -> str:
        return f"{self.path}: {self.cause}"


def _bomb(name: str, pixels: int | None, limit: int | None) -> ImageReadError:
    if pixels is None:
        return ImageReadError(name, f"decompression bomb: image exceeds the limit of {limit} pixels", "too_many_pixels")
    return ImageReadError(name, f"decompression bomb: {pixels} pixels exceeds the limit of {limit}", "too_many_pixels")


def _pixel_limit(max_pixels: int | None) -> int | None:
    """Explicit argument beats the environment beats Pillow's own default."""
    if max_pixels is not None:
        if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) or max_pixels <= 0:
            raise InputError(f"max_pixels must be a positive integer, got {max_pixels!r}")
        return int(max_pixels)
    env = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if env:
        try:
            value = int(env)
        except ValueError:
            value = 0
        if value <= 0:
            # A configuration mistake, not a property of one image: fail loudly.
            raise InputError(f"{MAX_PIXELS_ENV}={env!r} is not a positive integer")
        return value
    return Image.MAX_IMAGE_PIXELS


def _check_pixels(size: tuple[int, int], limit: int | None, name: str) -> None:
    pixels = int(size[0]) * int(size[1])
    if limit is not None and pixels > limit:
        raise _bomb(name, pixels, limit)


@contextmanager
def _pillow_limit(limit: int | None) -> Iterator[None]:
    """Let Image.open accept images our (higher) limit allows.

    Pillow checks its global ``MAX_IMAGE_PIXELS`` inside ``Image.open`` and
    raises above twice that value. When our limit is at or below Pillow's, any
    image Pillow objects to is one we reject anyway, so nothing is touched. Only
    when the caller allows more do we raise the global for the duration of the
    header parse, under a lock, and always restore it.
    """
    current = Image.MAX_IMAGE_PIXELS
    if limit is None or current is None or limit <= current:
        yield
        return
    with _PILLOW_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = limit
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _pillow_bomb(err: BaseException, name: str, limit: int | None) -> ImageReadError:
    match = _PILLOW_BOMB_SIZE.search(str(err))
    return _bomb(name, int(match.group(1)) if match else None, limit)


def _os_cause(err: OSError) -> str:
    """A short lower-case reason for an OS error (shared with the feature cache)."""
    if isinstance(err, FileNotFoundError):
        return "file not found"
    if isinstance(err, IsADirectoryError):
        return "is a directory"
    if isinstance(err, PermissionError):
        return "permission denied"
    return (err.strerror or str(err) or type(err).__name__).lower()


def _composite_over_white(im: Image.Image) -> Image.Image:
    """Flatten alpha the way a viewer on a white page shows it.

    The RGB stored under fully transparent pixels is arbitrary (often black,
    sometimes encoder garbage) and invisible to people; dropping alpha would
    feed that hidden data to the detector. White is a fixed, documented choice,
    so the same file always gives the same pixels.
    """
    rgba = im.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _gray_to_rgb(values: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(values, dtype=np.uint8)).convert("RGB")


def _to_rgb(im: Image.Image, name: str) -> Image.Image:
    """Map every Pillow mode onto 8-bit RGB; ``im`` must already be loaded."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in ("RGBA", "LA", "PA", "RGBa") or (mode == "P" and im.has_transparency_data):
        return _composite_over_white(im)
    if mode == "La":  # premultiplied; Pillow cannot convert it directly
        return _composite_over_white(im.convert("RGBa").convert("RGBA"))
    if mode.startswith("I;16"):
        return _gray_to_rgb(np.asarray(im).astype(np.uint16) >> 8)
    if mode.startswith("I"):
        values = np.asarray(im).astype(np.int64)
        if values.size and values.max() > 255:  # 16-bit data stored in a 32-bit mode
            values = values >> 8
        return _gray_to_rgb(np.clip(values, 0, 255))
    if mode == "F":
        values = np.nan_to_num(np.asarray(im, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        if values.size and values.max() <= 1.0:
            values = values * 255.0
        return _gray_to_rgb(np.clip(np.rint(values), 0, 255))
    try:  # L, 1, P, CMYK, YCbCr, LAB, HSV, RGBX ...
        return im.convert("RGB")
    except ValueError:
        raise ImageReadError(name, f"unsupported image mode {mode!r}") from None


def _finish(im: Image.Image, name: str, limit: int | None) -> Image.Image:
    """Decode, orient and convert; everything that can fail on bad data runs here."""
    _check_pixels(im.size, limit, name)
    try:
        im.load()  # decode now so truncation surfaces inside this try
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise _pillow_bomb(err, name, limit) from None
    except MemoryError:
        raise
    except Exception:
        raise ImageReadError(name, _CORRUPT) from None
    try:
        oriented = ImageOps.exif_transpose(im)
    except MemoryError:
        raise
    except Exception:
        # A mangled EXIF block should not cost us otherwise good pixels.
        oriented = im.copy()
    try:
        out = _to_rgb(oriented, name)
    except (ImageReadError, MemoryError):
        raise
    except Exception:
        raise ImageReadError(name, _CORRUPT) from None
    if out is im:  # never hand back the caller's own object
        out = out.copy()
    return out


log = logging.getLogger("aigi.io")

# Leading bytes of the formats Pillow reads, and of image formats it cannot (still images to a person).
_SIGNATURES: tuple[tuple[int, bytes], ...] = (
    (0, b"\xff\xd8\xff"), (0, b"\x89PNG"), (0, b"GIF8"), (0, b"BM"), (0, b"II*\x00"), (0, b"MM\x00*"),
    (8, b"WEBP"), (4, b"jP  "), (0, b"\xffO\xffQ"), (0, b"\x00\x00\x01\x00"), (4, b"ftyp"), (0, b"8BPS"),
    (0, b"P1"), (0, b"P2"), (0, b"P3"), (0, b"P4"), (0, b"P5"), (0, b"P6"), (0, b"DDS "), (0, b"icns"),
    (0, b"\x00\x00\x00\x0cjXL "), (0, b"\xff\x0a"),
)


def looks_like_image(head: bytes) -> bool:
    """Whether a file's first bytes are those of an image format (or an SVG drawing)."""
    if any(head[at : at + len(magic)] == magic for at, magic in _SIGNATURES):
        return True
    text = head.lstrip()[:256].lower()
    return text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text)


def _unknown_format(fp: IO[bytes]) -> tuple[str, str]:
    """Why Pillow could not open it, in words a person can act on, and the error kind."""
    try:
        fp.seek(0)
        head = fp.read(512)
    except (OSError, ValueError):
        return "not a recognised image format", "unreadable"
    brand = head[8:12] if head[4:8] == b"ftyp" else b""
    if brand[:3] in (b"hei", b"hev", b"mif", b"msf") or brand in (b"avif", b"avis"):
        return (f"{brand.decode('ascii', 'replace').strip()} (HEIF/AVIF) image: Pillow cannot decode it here; "
                "convert it to JPEG or PNG", "unsupported")
    if looks_like_image(head) and b"svg" in head.lower():
        return "SVG is a vector drawing: rasterise it (e.g. to PNG) first", "unsupported"
    return "not a recognised image format", "unreadable"


def _decode_stream(fp: IO[bytes], name: str, limit: int | None, min_side: int | None = None) -> Image.Image:
    with warnings.catch_warnings(record=True) as caught:  # Pillow's warnings name no file: we do
        warnings.simplefilter("always")
        try:
            return _decode_stream_quietly(fp, name, limit, min_side)
        finally:
            for w in caught:
                log.warning("%s: %s", name, " ".join(str(w.message).split()))


def _decode_stream_quietly(fp: IO[bytes], name: str, limit: int | None, min_side: int | None = None) -> Image.Image:
    try:
        with _pillow_limit(limit):
            im = Image.open(fp)
    except UnidentifiedImageError:
        raise ImageReadError(name, *_unknown_format(fp)) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise _pillow_bomb(err, name, limit) from None
    except MemoryError:
        raise
    except OSError as err:
        # errno set means the OS failed us (I/O error); Pillow's own OSErrors have none.
        raise ImageReadError(name, _os_cause(err) if err.errno else _CORRUPT) from None
    except Exception:
        raise ImageReadError(name, _CORRUPT) from None
    with im:
        # Animated GIF/WebP/APNG open on frame 0, which is the frame we use.
        if min_side and im.format == "JPEG":
            _draft(im, min_side, name, limit)
        return _finish(im, name, limit)


def _draft(im: Image.Image, min_side: int, name: str, limit: int | None) -> None:
    """Ask the JPEG decoder for the smallest DCT scale that keeps the short side ≥ ``min_side``
    (nothing when that is less than half the size: no gain)."""
    _check_pixels(im.size, limit, name)  # the limit applies to the file's own size
    w, h = im.size
    scale = min_side / min(w, h)
    if scale <= 0.5:
        im.draft(im.mode, (math.ceil(w * scale), math.ceil(h * scale)))


def _stream_is_empty(fp: IO[bytes]) -> bool:
    """True only when we can tell cheaply; Pillow reads streams from offset 0."""
    try:
        pos = fp.tell()
        end = fp.seek(0, os.SEEK_END)
        fp.seek(pos)
    except (AttributeError, OSError, ValueError):
        return False
    return end == 0


def _array_to_uint8(values: np.ndarray, name: str) -> np.ndarray:
    kind = values.dtype.kind
    if kind == "b":
        return values.astype(np.uint8) * 255
    if values.dtype == np.uint8:
        return values
    if values.dtype == np.uint16:
        return (values >> 8).astype(np.uint8)
    if kind == "f":
        if not np.isfinite(values).all():
            raise ImageReadError(name, "float array contains NaN or infinite values")
        lo, hi = float(values.min()), float(values.max())
        if lo < -_FLOAT_TOLERANCE or hi > 1.0 + _FLOAT_TOLERANCE:
            raise ImageReadError(name, f"float array values must lie in [0, 1] (found {lo:.4g}..{hi:.4g})")
        return np.clip(np.rint(values.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    if kind in "iu":
        lo, hi = int(values.min()), int(values.max())
        if lo < 0 or hi > 255:
            raise ImageReadError(
                name, f"{values.dtype} array values must lie in 0..255 (found {lo}..{hi}); use uint16 for 16-bit data"
            )
        return values.astype(np.uint8)
    raise ImageReadError(name, f"unsupported array dtype {values.dtype}")


def _array_to_image(values: np.ndarray, name: str, limit: int | None) -> Image.Image:
    if values.ndim == 3 and values.shape[2] == 1:
        values = values[:, :, 0]
    if not (values.ndim == 2 or (values.ndim == 3 and values.shape[2] in (3, 4))):
        raise ImageReadError(
            name, f"unsupported array shape {tuple(values.shape)} (expected HxW, HxWx1, HxWx3 or HxWx4)"
        )
    if values.shape[0] == 0 or values.shape[1] == 0:
        raise ImageReadError(name, "empty image")
    _check_pixels((values.shape[1], values.shape[0]), limit, name)
    im = Image.fromarray(np.ascontiguousarray(_array_to_uint8(values, name)))
    return _composite_over_white(im) if im.mode == "RGBA" else im.convert("RGB")


def read_image(source: ImageSource, max_pixels: int | None = None, min_side: int | None = None) -> Image.Image:
    """Return ``source`` as a fully loaded 8-bit RGB image or raise ImageReadError.

    ``max_pixels`` (else ``$AIGI_MAX_IMAGE_PIXELS``, else Pillow's default)
    bounds width*height for every source, checked from the header before any
    pixel data is decoded, so a hostile file cannot exhaust memory.

    ``min_side``: a JPEG may be decoded at 1/2, 1/4 or 1/8 of its size (Pillow's draft
    mode: the DCT does the downscaling) as long as its short side stays ≥ ``min_side``.
    For a view that resizes anyway; the pixels then differ slightly from a full decode.
    """
    limit = _pixel_limit(max_pixels)
    if isinstance(source, Image.Image):
        return _finish(source, "<PIL image>", limit)
    if isinstance(source, np.ndarray):
        return _array_to_image(source, "<array>", limit)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageReadError("<bytes>", "empty file")
        return _decode_stream(io.BytesIO(bytes(source)), "<bytes>", limit, min_side)
    if isinstance(source, (str, os.PathLike)):
        name = os.fsdecode(source)
        if os.path.isdir(name):  # Windows reports directories as permission errors
            raise ImageReadError(name, "is a directory")
        try:
            mode = os.stat(name).st_mode
        except OSError as err:
            raise ImageReadError(name, _os_cause(err)) from None
        if not stat.S_ISREG(mode):  # opening a FIFO would block forever
            raise ImageReadError(name, _not_regular(mode))
        try:
            fp = open(name, "rb")
        except OSError as err:
            raise ImageReadError(name, _os_cause(err)) from None
        with fp:
            if os.fstat(fp.fileno()).st_size == 0:
                raise ImageReadError(name, "empty file")
            return _decode_stream(fp, name, limit, min_side)
    if hasattr(source, "read"):
        raw_name = getattr(source, "name", None)
        name = raw_name if isinstance(raw_name, str) else "<file>"
        if _stream_is_empty(source):
            raise ImageReadError(name, "empty file")
        return _decode_stream(source, name, limit, min_side)
    raise TypeError(f"read_image() cannot read a {type(source).__name__}")


def _not_regular(mode: int) -> str:
    """Why a path that is not a regular file is refused (reading a pipe could block forever)."""
    return f"not a regular file ({'a FIFO (named pipe)' if stat.S_ISFIFO(mode) else 'a device or socket'})"


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hash of the file's bytes: the cache key, so renamed copies share results. A pipe or a
    device is refused (OSError) before it is opened: reading one could block forever."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise OSError(_not_regular(mode))
    digest = hashlib.sha256()
    with open(path, "rb") as fp:
        while block := fp.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _is_image_file(path: str) -> bool:
    """Named like an image, or its first bytes say it is one (a .heic, an extension-less JPEG)."""
    if _is_image_name(path):
        return True
    try:
        with open(path, "rb") as fp:
            return looks_like_image(fp.read(64))
    except OSError:
        return False


def _images_in_dir(folder: str, recursive: bool, skipped: dict[str, int] | None = None) -> list[Path]:
    """Image files below ``folder`` (by name or by content), sorted. Hidden entries and files
    that are not images are skipped, and counted in ``skipped`` by reason."""
    found: list[Path] = []
    counts = skipped if skipped is not None else {}

    def consider(path: str, name: str) -> None:
        if name.startswith("."):
            counts["hidden"] = counts.get("hidden", 0) + 1
            return
        try:
            regular = stat.S_ISREG(os.stat(path).st_mode)
        except OSError:  # vanished meanwhile, or a dangling link: it gets its error record
            regular = False
        if not regular or _is_image_file(path):  # a pipe gets an error record, never a blocking read
            found.append(Path(path))
        else:
            counts["not images"] = counts.get("not images", 0) + 1

    if recursive:
        for dirpath, dirnames, filenames in os.walk(folder):
            hidden = sum(d.startswith(".") for d in dirnames)
            if hidden:
                counts["hidden"] = counts.get("hidden", 0) + hidden
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for f in filenames:
                consider(os.path.join(dirpath, f), f)
    else:
        with os.scandir(folder) as entries:
            for e in entries:
                if not e.is_dir():
                    consider(e.path, e.name)
    return sorted(found)


def _has_magic(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def list_images(
    inputs: Iterable[str | os.PathLike[str]], recursive: bool = True, skipped: dict[str, int] | None = None
) -> tuple[list[Path], list[tuple[str, str]]]:
    """Expand files, folders and glob patterns into image paths.

    Returns ``(paths, problems)``. Paths keep input order between groups and are
    sorted inside each folder/pattern expansion, without duplicates. Files named
    explicitly are kept whatever their extension, so an unreadable one still
    produces an error record downstream instead of vanishing. ``problems`` lists
    ``(input, reason)`` for inputs that exist nowhere or yield no images. Folders are
    read by content as well as by name; what they hold that is skipped (hidden entries,
    files that are not images, pipes) is counted in ``skipped``.
    """
    paths: list[Path] = []
    seen: set[str] = set()
    problems: list[tuple[str, str]] = []

    def add(group: Iterable[Path]) -> None:
        for p in group:
            key = os.path.normcase(os.path.abspath(p))
            if key not in seen:
                seen.add(key)
                paths.append(p)

    for item in inputs:
        text = os.fsdecode(item)
        if os.path.isfile(text):
            add([Path(text)])
        elif os.path.isdir(text):
            group = _images_in_dir(text, recursive, skipped)
            if not group:
                problems.append((text, "no image files in directory"))
            add(group)
        elif _has_magic(text):
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                problems.append((text, "pattern matched no files"))
                continue
            group = []
            for match in matches:
                if os.path.isdir(match):
                    group.extend(_images_in_dir(match, recursive, skipped))
                elif os.path.isfile(match) and _is_image_file(match):
                    group.append(Path(match))
            if not group:
                problems.append((text, "pattern matched no image files"))
            add(sorted(group))
        elif os.path.exists(text):  # a pipe or a device: an error record, never a blocking read
            add([Path(text)])
        else:
            problems.append((text, "no such file or directory"))
    return paths, problems
