"""Decode image files: one picture robustly (``load_image``), or many into square uint8 tensors, fast.

``load_image`` is the one loader of single pictures (uploads, the command line): any
phone photo, scan, screenshot or 16-bit TIFF becomes an upright RGB picture, and
anything else a one-line ``ImageLoadError``. ``to_rgb`` is the one Pillow-mode
conversion, shared by both paths.

For datasets, JPEGs (nearly every dataset) go through torchvision's batched libjpeg-turbo
decoder, about 30 us per CIFAR picture; anything else, and any JPEG it
refuses, goes through Pillow, which converts every mode (palette, RGBA,
grayscale, 16-bit, CMYK) to RGB and applies the EXIF orientation. Every
picture is then resized so its shorter side is ``size`` (antialiased) and
centre-cropped to a square.
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path
from typing import BinaryIO, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

try:  # iPhones save photos as HEIC; pillow-heif teaches Pillow to read HEIC and HEIF
    import pillow_heif
except ImportError:  # the uploaders still accept .heic, and the message says what to install
    pillow_heif = None
else:
    pillow_heif.register_heif_opener()

CHUNK = 2048  # files read and decoded per step: bounds the raw bytes held at once
BATCH_RESIZE_MIN = 16  # this many same-sized pictures resize faster as one torch batch than one by one
HEIF_AVAILABLE = pillow_heif is not None
HEIF_INSTALL = "pip install pillow-heif==1.8.1"
# Formats we decode (phones' MPO files open as JPEG). Passing this list to Image.open also keeps
# Pillow from trying plugins that call out to other programs (EPS runs Ghostscript).
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF") + (("HEIF",) if HEIF_AVAILABLE else ())
# What the uploaders accept: HEIC/HEIF even without pillow-heif, so the user sees why it failed.
EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff", "heic", "heif")
# A file whose bytes are no picture format, whatever its name says (a .jpg that is really a text file).
NOT_A_PICTURE = ("not a readable image: its contents are not a JPEG, PNG, WebP, BMP, GIF, TIFF or HEIC/HEIF "
                 "picture, whatever its name says; open it in an image viewer and save it as JPEG or PNG")
MAX_PIXELS = 40_000_000  # 40 megapixels: bigger than any phone photo, far below a decompression bomb
# Largest photo an uploader takes, per file: a 40-megapixel phone photo is 10-25 MB; uploads are held in memory.
MAX_PHOTO_MB = 30
# The ISO base media file brands of HEIC/HEIF stills (the bytes after "ftyp" at offset 4).
HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1")


class ImageLoadError(ValueError):
    """An image that cannot be used; the message is one line saying what was wrong and what to do."""


def load_image(data: bytes | str | Path | BinaryIO, *, max_pixels: int = MAX_PIXELS,
               name: str | None = None, max_side: int | None = None) -> Image.Image:
    """Decode ``data`` (bytes, a path, or a file object) into an upright RGB image, or raise ImageLoadError.

    With ``max_side``, a JPEG is decoded at the smallest of 1/2, 1/4 or 1/8 scale whose longer side
    is still at least ``max_side`` (its DCT scaling: a 12-megapixel photo decodes several times
    faster); the caller shrinks it the rest of the way. Other formats decode in full.
    """
    label = name or (Path(data).name if isinstance(data, (str, Path)) else getattr(data, "name", None) or "image")
    try:
        fp = _open_source(data)
    except OSError as exc:
        raise ImageLoadError(f"{label}: cannot read the file ({exc.strerror or exc}); check the path") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(fp, formats=FORMATS)
            _check_size(image, max_pixels, label)
            if max_side:
                _draft(image, max_side)
            image.load()  # the header alone says nothing about truncation: decode now
            image = _upright(image)
            return to_rgb(image)
    except ImageLoadError:
        raise
    except Image.UnidentifiedImageError:
        if not HEIF_AVAILABLE and is_heif(fp.getvalue()):
            raise ImageLoadError(f"{label}: a HEIC/HEIF photo, which needs pillow-heif to read: run "
                                 f"`{HEIF_INSTALL}` and restart, or save the photo as JPEG") from None
        raise ImageLoadError(f"{label}: {NOT_A_PICTURE}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageLoadError(
            f"{label}: the image is absurdly large (a possible decompression bomb); resize it below "
            f"{max_pixels / 1e6:.0f} megapixels") from None
    except Exception as exc:  # truncated data, corrupt chunks, bad headers: Pillow raises many types
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ImageLoadError(
            f"{label}: the file is damaged or truncated ({reason}); save or download it again") from None


def _draft(image: Image.Image, max_side: int) -> None:
    """Ask a JPEG decoder for a reduced scale that keeps the longer side at least ``max_side``."""
    width, height = image.size
    if max(width, height) <= max_side:
        return
    ratio = max_side / max(width, height)
    image.draft("RGB", (max(1, math.ceil(width * ratio)), max(1, math.ceil(height * ratio))))


def is_heif(data: bytes) -> bool:
    """Whether ``data`` starts like a HEIC/HEIF still image (an ISO media 'ftyp' box with a HEIF brand)."""
    return data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS


def _open_source(data) -> io.BytesIO:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(data))
    if isinstance(data, (str, Path)):
        return io.BytesIO(Path(data).read_bytes())
    if hasattr(data, "getvalue"):  # Streamlit's UploadedFile, BytesIO
        return io.BytesIO(data.getvalue())
    return io.BytesIO(data.read())


def _check_size(image: Image.Image, max_pixels: int, label: str) -> None:
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageLoadError(f"{label}: the image has no pixels ({width}x{height}); use another file")
    if width * height > max_pixels:
        raise ImageLoadError(
            f"{label}: the image is absurdly large ({width}x{height} = {width * height / 1e6:.0f} megapixels); "
            f"resize it below {max_pixels / 1e6:.0f} megapixels")


def _upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation (phone photos are stored sideways with a rotate-me tag)."""
    try:
        return ImageOps.exif_transpose(image) or image
    except Exception:  # a broken EXIF block should not cost the picture
        return image


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB: transparency over white, 16-bit and float scaled, CMYK converted."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode.startswith("I") or mode == "F":
        return Image.fromarray(_scale_to_uint8(np.asarray(image), mode)).convert("RGB")
    return image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def _scale_to_uint8(array: np.ndarray, mode: str) -> np.ndarray:
    """16/32-bit integer or float pixels to 0..255 grey levels (16-bit ranges are scaled, not clipped)."""
    array = array.astype(np.float64)
    if array.size == 0:
        return array.astype(np.uint8)
    low, high = float(array.min()), float(array.max())
    if mode == "F":
        if low >= 0.0 and high <= 1.0:
            array = array * 255.0
        elif high > low:
            array = (array - low) / (high - low) * 255.0
    elif mode.startswith("I;16"):
        array = array / 65535.0 * 255.0
    elif high > 255:  # mode "I": 16-bit data widened to 32 bits, or true 32-bit
        array = array / (65535.0 if high <= 65535 else high) * 255.0
    return np.clip(array.round(), 0, 255).astype(np.uint8)


# -- datasets: many files at one size ------------------------------------------------------------


def fit_square(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize uint8 (3, H, W) or (N, 3, H, W) so the shorter side is ``size``, then centre-crop to size x size."""
    h, w = image.shape[-2:]
    if (h, w) != (size, size):
        scale = size / min(h, w)
        new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
        batch = image if image.dim() == 4 else image[None]
        out = F.interpolate(batch.float(), size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True)
        top, left = (new_h - size) // 2, (new_w - size) // 2
        out = out[..., top:top + size, left:left + size].round_().clamp_(0, 255).to(torch.uint8)
        image = out if image.dim() == 4 else out[0]
    return image


def pil_fit_square(img: Image.Image, size: int) -> torch.Tensor:
    """An RGB Pillow image -> uint8 (3, size, size): centre square of the shorter side, resized (antialiased).

    Pillow works single-threaded, which on a busy 2-core machine beats torch's
    threaded interpolate (measured 20x) for one-off pictures of odd sizes.
    """
    w, h = img.size
    side = min(w, h)
    box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
    if (w, h) != (size, size):
        img = img.resize((size, size), Image.BILINEAR, box=box)
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


def decode_with_pil(data: bytes, size: int) -> torch.Tensor | None:
    """One picture through Pillow -> uint8 (3, size, size), or None if it is unreadable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's palette/EXIF chatter; a bad file is simply skipped
            img = Image.open(io.BytesIO(data))
            img.draft("RGB", (size, size))  # JPEG DCT scaling: decode big photos at (>=) the size we need
            img = ImageOps.exif_transpose(img)
            img = to_rgb(img)
            if min(img.size) < 1:
                return None
            return pil_fit_square(img, size)
    except Exception:  # truncated, not an image, decompression bomb...: skipped and counted by the caller
        return None


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header without decoding it, or None if not found."""
    i, n = 2, len(data)
    while i + 9 < n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = (data[i + 2] << 8) | data[i + 3]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start-of-frame segment
            return (data[i + 7] << 8) | data[i + 8], (data[i + 5] << 8) | data[i + 6]
        i += 2 + length
    return None


def _decode_jpegs(datas: list[bytes], size: int) -> list[torch.Tensor | None]:
    """JPEGs through torchvision in one call; if the batch fails, one by one to find the bad ones."""
    from torchvision.io import ImageReadMode, decode_jpeg

    tensors = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in datas]
    try:
        decoded = decode_jpeg(tensors, mode=ImageReadMode.RGB, apply_exif_orientation=True)
    except Exception:
        decoded = []
        for t, raw in zip(tensors, datas):
            try:
                decoded.append(decode_jpeg(t, mode=ImageReadMode.RGB, apply_exif_orientation=True))
            except Exception:
                decoded.append(None)  # Pillow gets a second try below (CMYK and odd JPEGs)
    return [None if d is None or d.shape[0] != 3 else d for d in decoded]


def _small_jpeg(data: bytes, size: int) -> bool:
    """Worth a full decode by torchvision; bigger photos go to Pillow, whose DCT scaling decodes them smaller."""
    dims = jpeg_size(data)
    return dims is not None and min(dims) <= 2 * size


def decode_many(datas: Sequence[bytes | None], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode a list of file contents -> (uint8 (N, 3, size, size), bool ok (N,)); unreadable rows are zeros."""
    n = len(datas)
    out = torch.zeros(n, 3, size, size, dtype=torch.uint8)
    ok = torch.zeros(n, dtype=torch.bool)
    jpeg_rows = [i for i, d in enumerate(datas) if d is not None and d[:3] == b"\xff\xd8\xff" and _small_jpeg(d, size)]
    decoded: dict[int, torch.Tensor | None] = dict(zip(jpeg_rows, _decode_jpegs([datas[i] for i in jpeg_rows], size)))
    by_shape: dict[tuple[int, int], list[int]] = {}
    for i, img in decoded.items():
        if img is not None:
            by_shape.setdefault(tuple(img.shape[-2:]), []).append(i)
    for shape, rows in by_shape.items():
        if shape != (size, size) and len(rows) < BATCH_RESIZE_MIN:  # odd-sized photos: Pillow, one by one
            for i in rows:
                out[i] = pil_fit_square(Image.fromarray(decoded[i].permute(1, 2, 0).numpy()), size)
                ok[i] = True
            continue
        for start in range(0, len(rows), 256):  # same-sized pictures (all of CIFAR) resize as one batch
            part = rows[start:start + 256]
            out[part] = fit_square(torch.stack([decoded[i] for i in part]), size)
            ok[part] = True
    for i, data in enumerate(datas):
        if data is not None and not ok[i]:
            img = decode_with_pil(data, size)
            if img is not None:
                out[i], ok[i] = img, True
    return out, ok


def decode_files(read: Callable[[list[str]], list[bytes | None]], names: Sequence[str], size: int,
                 *, progress: Callable[[int, int], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Read and decode ``names`` in chunks -> (uint8 (N, 3, size, size), bool ok (N,)).

    Reading the next chunk (Python, holds the GIL) overlaps with decoding the
    current one (C++, releases it): two threads, which is what 2 cores can use.
    """
    from concurrent.futures import ThreadPoolExecutor

    chunks = [list(names[i:i + CHUNK]) for i in range(0, len(names), CHUNK)]
    images = torch.zeros(len(names), 3, size, size, dtype=torch.uint8)  # filled in place: peak memory is one copy
    ok = torch.zeros(len(names), dtype=torch.bool)
    with ThreadPoolExecutor(max_workers=1) as reader:
        pending = reader.submit(read, chunks[0]) if chunks else None
        for k in range(len(chunks)):
            datas = pending.result()
            pending = reader.submit(read, chunks[k + 1]) if k + 1 < len(chunks) else None
            start = k * CHUNK
            images[start:start + len(datas)], ok[start:start + len(datas)] = decode_many(datas, size)
            if progress is not None:
                progress(start + len(datas), len(names))
    return images, ok
