"""Behaviour of aigi.data.io on synthetic images written to tmp_path."""
from __future__ import annotations

import hashlib
import io
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from aigi.data.io import (
    IMAGE_EXTENSIONS,
    ImageReadError,
    file_sha256,
    list_images,
    read_image,
)


def _noise(h: int = 64, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _save(arr_or_im, path: Path, **kw) -> Path:
    im = arr_or_im if isinstance(arr_or_im, Image.Image) else Image.fromarray(arr_or_im)
    im.save(path, **kw)
    return path


def _read_error(source, **kw) -> ImageReadError:
    with pytest.raises(ImageReadError) as info:
        read_image(source, **kw)
    err = info.value
    assert "\n" not in str(err)
    assert str(err) == f"{err.path}: {err.cause}"
    return err


# ---------------------------------------------------------------- extensions


def test_image_extensions_are_lowercase_dotted_and_plugin_free() -> None:
    assert {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"} <= IMAGE_EXTENSIONS
    assert all(e.startswith(".") and e == e.lower() for e in IMAGE_EXTENSIONS)
    assert ".avif" not in IMAGE_EXTENSIONS and ".heic" not in IMAGE_EXTENSIONS


# ---------------------------------------------------------------- modes


def test_rgb_png_roundtrip_is_exact_and_loaded(tmp_path: Path) -> None:
    arr = _noise()
    path = _save(arr, tmp_path / "x.png")
    im = read_image(path)
    assert im.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(im), arr)
    path.unlink()  # fully loaded: no lazy file access after return
    assert np.asarray(im).shape == (64, 64, 3)


def test_exif_orientation_6_swaps_size_and_rotates(tmp_path: Path) -> None:
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:10, :10] = (255, 0, 0)  # red block in the stored top-left corner
    im = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    path = tmp_path / "rot.jpg"
    im.save(path, exif=exif, quality=95)
    out = read_image(path)
    assert out.size == (20, 40)  # width and height swapped
    # Clockwise rotation moves the stored top-left corner to the top-right.
    r, g, b = out.getpixel((15, 4))
    assert r > 200 and g < 60 and b < 60
    assert max(out.getpixel((4, 4))) < 60


def test_palette_with_transparency_composites_over_white(tmp_path: Path) -> None:
    im = Image.new("P", (4, 4), 1)
    im.putpalette([0, 0, 0, 10, 200, 30] + [0] * (254 * 3))
    im.putpixel((0, 0), 0)
    path = tmp_path / "p.png"
    im.save(path, transparency=0)
    out = read_image(path)
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (255, 255, 255)  # transparent index -> white, not black
    assert out.getpixel((1, 1)) == (10, 200, 30)


def test_rgba_transparent_pixel_becomes_white(tmp_path: Path) -> None:
    arr = np.zeros((2, 2, 4), np.uint8)
    arr[0, 0] = (0, 0, 0, 0)  # hidden black under full transparency
    arr[0, 1] = (10, 20, 30, 255)
    arr[1, 0] = (0, 0, 0, 128)  # half-transparent black -> mid grey
    path = _save(arr, tmp_path / "a.png")
    out = read_image(path)
    assert out.getpixel((0, 0)) == (255, 255, 255)
    assert out.getpixel((1, 0)) == (10, 20, 30)
    assert all(abs(c - 127) <= 1 for c in out.getpixel((0, 1)))


def test_la_image_composites_over_white() -> None:
    im = Image.new("LA", (2, 1), (50, 0))
    im.putpixel((1, 0), (50, 255))
    out = read_image(im)
    assert out.getpixel((0, 0)) == (255, 255, 255)
    assert out.getpixel((1, 0)) == (50, 50, 50)


def test_cmyk_tiff_converts_to_rgb(tmp_path: Path) -> None:
    path = tmp_path / "c.tif"
    Image.new("CMYK", (3, 3), (0, 255, 255, 0)).save(path)
    out = read_image(path)
    assert out.mode == "RGB"
    assert out.getpixel((1, 1)) == (255, 0, 0)


def test_16bit_grayscale_png_scales_to_8bit(tmp_path: Path) -> None:
    arr = np.array([[65535, 256], [255, 0]], dtype=np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(arr).save(path)
    with Image.open(path) as raw:
        assert raw.mode.startswith("I")  # really a 16-bit file
    out = read_image(path)
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (255, 255, 255)
    assert out.getpixel((1, 0)) == (1, 1, 1)
    assert out.getpixel((0, 1)) == (0, 0, 0)  # 255 >> 8


def test_32bit_int_mode_small_values_kept_large_values_shifted() -> None:
    small = Image.fromarray(np.array([[0, 200]], dtype=np.int32))
    assert small.mode == "I"
    assert read_image(small).getpixel((1, 0)) == (200, 200, 200)
    large = Image.fromarray(np.array([[-5, 65535, 512]], dtype=np.int32))
    out = read_image(large)
    assert [out.getpixel((x, 0))[0] for x in range(3)] == [0, 255, 2]


def test_float_mode_image_scaling() -> None:
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert [read_image(unit).getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]
    wide = Image.fromarray(np.array([[0.0, 100.0, 300.0]], dtype=np.float32))
    assert [read_image(wide).getpixel((x, 0))[0] for x in range(3)] == [0, 100, 255]


def test_animated_gif_uses_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    out = read_image(path)
    assert out.getpixel((4, 4)) == (255, 0, 0)


# ---------------------------------------------------------------- other sources


def test_bytes_and_file_like_sources(tmp_path: Path) -> None:
    arr = _noise(8, 8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    np.testing.assert_array_equal(np.asarray(read_image(buf.getvalue())), arr)
    buf.seek(0)
    np.testing.assert_array_equal(np.asarray(read_image(buf)), arr)
    assert _read_error(b"hello").path == "<bytes>"
    assert _read_error(b"").cause == "empty file"


def test_pil_source_is_not_modified() -> None:
    src = Image.new("RGBA", (2, 2), (0, 0, 0, 0))
    out = read_image(src)
    assert src.mode == "RGBA" and out is not src
    assert out.getpixel((0, 0)) == (255, 255, 255)
    rgb = Image.new("RGB", (2, 2), (1, 2, 3))
    assert read_image(rgb) is not rgb


def test_numpy_array_sources() -> None:
    gray = np.array([[0, 255]], dtype=np.uint8)
    assert read_image(gray).getpixel((1, 0)) == (255, 255, 255)
    assert read_image(gray[:, :, None]).getpixel((0, 0)) == (0, 0, 0)
    u16 = np.array([[65535, 256]], dtype=np.uint16)
    assert [read_image(u16).getpixel((x, 0))[0] for x in range(2)] == [255, 1]
    flags = np.array([[True, False]])
    assert read_image(flags).getpixel((0, 0)) == (255, 255, 255)
    floats = np.array([[[0.0, 0.5, 1.0]]], dtype=np.float32)
    assert read_image(floats).getpixel((0, 0)) == (0, 128, 255)
    rgba = np.zeros((1, 1, 4), np.uint8)
    assert read_image(rgba).getpixel((0, 0)) == (255, 255, 255)


def test_bad_arrays_raise_with_array_name() -> None:
    err = _read_error(np.full((2, 2), 2.5, dtype=np.float32))
    assert err.path == "<array>" and "[0, 1]" in err.cause
    assert "shape" in _read_error(np.zeros((2, 2, 2), np.uint8)).cause
    assert _read_error(np.zeros((0, 3), np.uint8)).cause == "empty image"
    assert "nan" in _read_error(np.full((2, 2), np.nan)).cause.lower()


# ---------------------------------------------------------------- failures


def test_truncated_jpeg_raises_single_line_error(tmp_path: Path) -> None:
    full = tmp_path / "full.jpg"
    _save(_noise(128, 128), full, quality=90)
    data = full.read_bytes()
    path = tmp_path / "half.jpg"
    path.write_bytes(data[: len(data) // 2])
    err = _read_error(path)
    assert err.path == str(path)
    assert err.cause == "truncated or corrupt image data"
    assert str(path) in str(err)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_text_file_missing_file_directory_and_empty_file(tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not an image at all\n")
    assert _read_error(text).cause == "not a recognised image format"
    assert _read_error(tmp_path / "missing.png").cause == "file not found"
    assert _read_error(tmp_path).cause == "is a directory"
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    assert _read_error(empty).cause == "empty file"


def test_error_pickles_for_worker_processes() -> None:
    err = pickle.loads(pickle.dumps(ImageReadError("a.png", "file not found")))
    assert (err.path, err.cause, str(err)) == ("a.png", "file not found", "a.png: file not found")
    assert str(ImageReadError("b.png", "line one\nline two")) == "b.png: line one line two"


def test_decompression_bomb_via_max_pixels(tmp_path: Path) -> None:
    path = _save(_noise(100, 100), tmp_path / "big.png")
    err = _read_error(path, max_pixels=5000)
    assert err.cause == "decompression bomb: 10000 pixels exceeds the limit of 5000"
    assert read_image(path, max_pixels=10000).size == (100, 100)
    assert _read_error(np.zeros((100, 100), np.uint8), max_pixels=5000).cause.startswith("decompression bomb")
    with pytest.raises(ValueError):
        read_image(path, max_pixels=0)


def test_decompression_bomb_via_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _save(_noise(100, 100), tmp_path / "big.png")
    monkeypatch.setenv("AIGI_MAX_IMAGE_PIXELS", "5000")
    assert _read_error(path).cause == "decompression bomb: 10000 pixels exceeds the limit of 5000"
    assert read_image(path, max_pixels=20000).size == (100, 100)  # argument beats env
    monkeypatch.setenv("AIGI_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ValueError, match="AIGI_MAX_IMAGE_PIXELS"):
        read_image(path)


def test_pillow_limit_is_default_and_global_state_is_restored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIGI_MAX_IMAGE_PIXELS", raising=False)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    big = _save(_noise(100, 100), tmp_path / "big.png")  # > 2x Pillow's limit: Pillow itself raises
    assert _read_error(big).cause == "decompression bomb: 10000 pixels exceeds the limit of 1000"
    mid = _save(_noise(40, 40), tmp_path / "mid.png")  # in Pillow's warning band
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the warning must surface as our error, not escape
        assert _read_error(mid).cause == "decompression bomb: 1600 pixels exceeds the limit of 1000"
    # A caller may allow more than Pillow's global, without changing it for good.
    assert read_image(big, max_pixels=20000).size == (100, 100)
    assert Image.MAX_IMAGE_PIXELS == 1000


# ---------------------------------------------------------------- hashing & listing


def test_file_sha256_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    data = bytes(range(256)) * 40
    path.write_bytes(data)
    assert file_sha256(path, chunk=100) == hashlib.sha256(data).hexdigest()
    assert file_sha256(str(path)) == hashlib.sha256(data).hexdigest()


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "imgs"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / ".hidden").mkdir()
    for rel in ["b.png", "a.JPG", "sub/c.webp", "sub/deeper/d.png", ".hidden/e.png", ".f.png"]:
        (root / rel).write_bytes(b"x")
    (root / "notes.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    return root


def test_list_images_folder_recursive_sorted_and_filtered(tree: Path) -> None:
    paths, problems = list_images([tree])
    assert paths == [tree / "a.JPG", tree / "b.png", tree / "sub" / "c.webp", tree / "sub" / "deeper" / "d.png"]
    assert problems == []
    flat, _ = list_images([tree], recursive=False)
    assert flat == [tree / "a.JPG", tree / "b.png"]


def test_list_images_explicit_files_globs_duplicates_and_missing(tree: Path, tmp_path: Path) -> None:
    pattern = str(tree / "**" / "*.png")
    missing_dir = str(tmp_path / "nope") + "/"
    no_match = str(tmp_path / "*.xyz")
    paths, problems = list_images(
        [tree / "notes.txt", pattern, tree / "b.png", missing_dir, no_match, tmp_path / "empty"]
    )
    # Explicit file kept despite its extension; glob sorted; b.png not repeated.
    assert paths == [tree / "notes.txt", tree / "b.png", tree / "sub" / "deeper" / "d.png"]
    assert problems == [
        (missing_dir, "no such file or directory"),
        (no_match, "pattern matched no files"),
        (str(tmp_path / "empty"), "no image files in directory"),
    ]


def test_list_images_glob_matching_only_non_images(tree: Path) -> None:
    pattern = str(tree / "*.txt")
    paths, problems = list_images([pattern])
    assert paths == [] and problems == [(pattern, "pattern matched no image files")]
