"""Image loading (every format, EXIF, colour modes, broken files) and top-k prediction."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from cnnviz.models import get_model
from cnnviz.data.images import ImageLoadError, load_image
from cnnviz.predict import crop_box, imagenet_payload, load_pretrained, predict, preprocess, pretrained_available


def two_colour(width: int = 40, height: int = 30) -> Image.Image:
    """Left half red, right half blue."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[:, : width // 2] = (255, 0, 0)
    pixels[:, width // 2:] = (0, 0, 255)
    return Image.fromarray(pixels)


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def noisy(width: int = 128, height: int = 96) -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8))


FORMATS = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP", "bmp": "BMP", "gif": "GIF", "tiff": "TIFF"}


@pytest.mark.parametrize("ext", list(FORMATS))
def test_every_format_from_bytes_and_path(tmp_path, ext):
    data = encode(two_colour(), FORMATS[ext])
    path = tmp_path / f"picture.{ext}"
    path.write_bytes(data)
    for source in (data, path, str(path), io.BytesIO(data)):
        image = load_image(source)
        assert image.mode == "RGB" and image.size == (40, 30)
        red, blue = image.getpixel((5, 15)), image.getpixel((35, 15))
        assert red[0] > 200 and red[2] < 60 and blue[2] > 200 and blue[0] < 60


@pytest.mark.parametrize("orientation", [1, 6])
def test_big_jpeg_decodes_at_a_reduced_scale_that_still_covers_max_side(orientation):
    """A 4000 x 3000 JPEG asked for 768 px decodes at 1/4 scale (1000 x 750), upright, the colours in place."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(two_colour(4000, 3000), "JPEG", exif=exif.tobytes())
    image = load_image(data, max_side=768)
    assert image.size == ((1000, 750) if orientation == 1 else (750, 1000))
    assert max(image.size) >= 768
    red = image.getpixel((10, 10) if orientation == 1 else (375, 10))
    assert red[0] > 200 and red[2] < 60
    assert load_image(data).size == ((4000, 3000) if orientation == 1 else (3000, 4000))  # no max_side: full size
    png = encode(two_colour(1600, 1200), "PNG")
    assert load_image(png, max_side=768).size == (1600, 1200)  # no DCT scaling outside JPEG: the caller shrinks it


def test_exif_orientation_is_applied():
    """A phone photo stored sideways with Orientation=6 (rotate 90 clockwise) comes out upright."""
    exif = Image.Exif()
    exif[0x0112] = 6
    image = load_image(encode(two_colour(40, 20), "JPEG", exif=exif.tobytes()))
    assert image.size == (20, 40)
    top, bottom = image.getpixel((10, 5)), image.getpixel((10, 35))
    assert top[0] > 200 and top[2] < 60  # the stored left (red) half is now on top
    assert bottom[2] > 200 and bottom[0] < 60


def _mode_image(mode: str) -> tuple[Image.Image, str, tuple[int, int, int]]:
    """An image in ``mode``, the format to save it in, and the RGB expected at pixel (1, 1)."""
    if mode == "RGBA":  # fully transparent red: over white it is white
        return Image.new("RGBA", (8, 8), (255, 0, 0, 0)), "PNG", (255, 255, 255)
    if mode == "LA":
        return Image.new("LA", (8, 8), (0, 255)), "PNG", (0, 0, 0)
    if mode == "P":
        image = Image.new("P", (8, 8), 1)
        image.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
        return image, "PNG", (0, 255, 0)
    if mode == "P-transparent":
        image = Image.new("P", (8, 8), 1)
        image.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
        image.info["transparency"] = 1
        return image, "PNG", (255, 255, 255)
    if mode == "L":
        return Image.new("L", (8, 8), 128), "PNG", (128, 128, 128)
    if mode == "1":
        return Image.new("1", (8, 8), 1), "PNG", (255, 255, 255)
    if mode == "CMYK":  # pure cyan
        return Image.new("CMYK", (8, 8), (255, 0, 0, 0)), "TIFF", (0, 255, 255)
    if mode == "CMYK-jpeg":
        return Image.new("CMYK", (8, 8), (0, 0, 0, 0)), "JPEG", (255, 255, 255)
    if mode == "I;16":  # 16-bit grey at half scale must be scaled, not clipped to white
        return Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16)), "PNG", (128, 128, 128)
    if mode == "I":
        return Image.fromarray(np.full((8, 8), 65535, dtype=np.int32), mode="I"), "TIFF", (255, 255, 255)
    if mode == "F":
        return Image.fromarray(np.full((8, 8), 0.5, dtype=np.float32), mode="F"), "TIFF", (128, 128, 128)
    raise AssertionError(mode)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "P-transparent", "L", "1", "CMYK", "CMYK-jpeg", "I;16", "I", "F"])
def test_any_colour_mode_becomes_rgb(mode):
    image, fmt, expected = _mode_image(mode)
    loaded = load_image(encode(image, fmt))
    assert loaded.mode == "RGB" and loaded.size == (8, 8)
    assert all(abs(a - b) <= 3 for a, b in zip(loaded.getpixel((1, 1)), expected)), loaded.getpixel((1, 1))


def test_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (10, 10), c) for c in ("red", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    assert load_image(buffer.getvalue()).getpixel((5, 5))[0] > 200


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_file(fmt):
    data = encode(noisy(), fmt)
    with pytest.raises(ImageLoadError, match="damaged or truncated") as info:
        load_image(data[: len(data) // 2], name=f"half.{fmt.lower()}")
    assert str(info.value).startswith(f"half.{fmt.lower()}: ") and "\n" not in str(info.value)


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("these are my lecture notes, not a photo")
    with pytest.raises(ImageLoadError, match=r"^notes.jpg: not a readable image: its contents are not a JPEG, PNG"):
        load_image(path)
    with pytest.raises(ImageLoadError, match="not a readable image"):
        load_image(b"")
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"  # never handed to Ghostscript
    with pytest.raises(ImageLoadError, match="not a readable image"):
        load_image(eps)
    with pytest.raises(ImageLoadError, match="cannot read the file"):
        load_image(tmp_path / "missing.png")


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims to be width x height but holds (almost) no pixel data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


@pytest.mark.parametrize("side", [10_000, 60_000])  # above our limit; above Pillow's own bomb limit
def test_decompression_bomb_is_refused(side):
    with pytest.raises(ImageLoadError, match="absurdly large"):
        load_image(png_header(side, side), name="bomb.png")


def test_max_pixels_is_configurable():
    with pytest.raises(ImageLoadError, match=r"40x30 = 0 megapixels"):
        load_image(encode(two_colour(), "PNG"), max_pixels=1000)


def test_streamlit_upload_like_object():
    class Upload(io.BytesIO):
        name = "photo.png"

    assert load_image(Upload(encode(two_colour(), "PNG"))).size == (40, 30)


# -- prediction ---------------------------------------------------------------------------------------


def payload_for(classes, size=16):
    return {"arch": "softmax", "options": {"pixels": 16}, "num_classes": len(classes), "classes": list(classes),
            "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "image_size": size}


def test_preprocess_matches_the_centre_crop():
    payload = payload_for(["a", "b"], size=16)
    image = two_colour(400, 300)
    assert crop_box(image.size, payload) == (50, 0, 350, 300)
    assert crop_box(image.size, {**payload, "resize_size": 32}) == (125, 75, 275, 225)  # ImageNet-style 256 -> 224
    x = preprocess(image, payload)
    assert x.shape == (1, 3, 16, 16) and x.dtype == torch.float32
    assert torch.allclose(x[0, :, 8, 2], torch.tensor([2.0, -2.0, -2.0]))  # red, normalised


def test_predict_top_k():
    torch.manual_seed(0)
    classes = ["circle", "square", "star", "wave"]
    model = get_model("softmax", num_classes=4, options={"pixels": 16}).eval()
    top = predict(model, payload_for(classes), two_colour(), topk=3)
    assert len(top) == 3 and {c for c, _ in top} <= set(classes)
    probs = [p for _, p in top]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6
    everything = predict(model, payload_for(classes), two_colour(), topk=99)
    assert len(everything) == 4 and abs(sum(p for _, p in everything) - 1) < 1e-5


def test_predict_with_a_single_bce_logit():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 1))
    torch.nn.init.zeros_(model[1].weight)
    torch.nn.init.constant_(model[1].bias, 2.0)
    top = predict(model, payload_for(["ants", "bees"]), two_colour(), topk=2)
    assert top[0][0] == "bees" and abs(top[0][1] - torch.sigmoid(torch.tensor(2.0)).item()) < 1e-6


def test_imagenet_weights_from_the_cache_only(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    payload = imagenet_payload("resnet18")
    assert payload["num_classes"] == 1000 and payload["classes"][0] == "tench"
    assert (payload["image_size"], payload["resize_size"]) == (224, 256)
    assert pretrained_available() == []
    from cnnviz.models import WeightsUnavailable

    with pytest.raises(WeightsUnavailable, match="resnet18-f37072fd.pth"):
        load_pretrained("resnet18")
    # A weights file placed in the cache by hand (as a teacher would before an offline class) is used.
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(get_model("resnet18", num_classes=1000).state_dict(), folder / "resnet18-f37072fd.pth")
    assert pretrained_available() == ["resnet18"]
    model, payload = load_pretrained("resnet18")
    top = predict(model, payload, noisy(), topk=3)
    assert len(top) == 3 and all(name in payload["classes"] for name, _ in top)
    with pytest.raises(ValueError, match="no ImageNet weights"):
        imagenet_payload("softmax")


def test_analyse_images_answers_per_model_and_names_unusable_files():
    from cnnviz.explain import analyse_images

    torch.manual_seed(0)
    model = get_model("alexnet_cifar", num_classes=3).eval()
    payload = {"image_size": 32, "mean": [0.5] * 3, "std": [0.25] * 3, "classes": ["a", "b", "c"]}
    results = analyse_images(images=[("ok.png", encode(two_colour(), "PNG")), ("bad.gif", b"GIF89a")],
                             models=[("tiny", (model, payload)), ("gone", "gone could not be loaded: no file")], topk=2)
    (name, picture, answers), (bad, nothing, warning) = results
    assert name == "ok.png" and picture.size == (40, 30)
    assert [a.label for a in answers] == ["tiny", "gone"]
    assert len(answers[0].top) == 2 and answers[0].overlay.size == picture.size and answers[0].error is None
    assert answers[1].error == "gone could not be loaded: no file"
    assert bad == "bad.gif" and nothing is None and "bad.gif" in warning
