"""Predict benchmark: top-k plus Grad-CAM of a 12-megapixel photo on ResNet-18, one pass vs the old path.

Library level (what the page calls per picture and model, after decoding): the one-pass path
(``cnnviz.explain.explain_image``: one forward keeping the spec's cam layer, one backward) against the
old multi-pass path in the same invocation (``predict`` for the top-k, then a target pass and Captum's
``LayerGradCam``, which runs its own forward and backward). Then the page itself: a new photo against
five trained models, timed with Streamlit's AppTest (one script run, warm: models loaded, torch
imported), and the same page rerun with only the top-k slider moved (every answer from the cache).

Random weights throughout (no download); the photo is built in code.

    python benchmarks/bench_predict.py [--threads 2] [--repeats 5]
"""

from __future__ import annotations

import io
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def photo(width: int = 4000, height: int = 3000, seed: int = 0):
    """A 12-megapixel photo-like picture: smooth gradients plus noise (JPEG-encodable, not a flat colour)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width, y / height, (x + y) / (width + height)], axis=-1) * 200
    noise = rng.normal(0, 20, (height, width, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def old_path(model, payload, image):
    """The multi-pass path: predict, then the target pass and Captum LayerGradCam (forward + backward)."""
    import torch
    import torch.nn.functional as F
    from captum.attr import LayerGradCam

    from cnnviz.explain import _normalise, _to_image_geometry, gradcam_layer, overlay
    from cnnviz.predict import predict, preprocess

    top = predict(model, payload, image, topk=5)
    x = preprocess(image, payload)
    _, module = gradcam_layer(model)
    with torch.no_grad():
        cls = int(model(x).argmax())
    with torch.enable_grad():
        cam = LayerGradCam(model, module).attribute(x.requires_grad_(True), target=cls, relu_attributions=True)
    cam = F.interpolate(cam.detach().float(), size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    return top, overlay(image, _to_image_geometry(_normalise(cam.numpy()), image, payload))


def new_path(model, payload, image):
    """The one-pass path the page uses (uncached)."""
    from cnnviz.explain import answer

    return answer(label="m", model=model, payload=payload, image=image, topk=5)


def timed(fn, repeats: int) -> float:
    fn()  # warm
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def library(repeats: int) -> tuple[float, float]:
    import torch

    from cnnviz.explain import display_copy
    from cnnviz.models import get_model

    torch.manual_seed(0)
    model = get_model("resnet18", num_classes=1000).eval().requires_grad_(False)
    payload = {"image_size": 224, "resize_size": 256, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
               "classes": [f"class {i}" for i in range(1000)]}
    picture = display_copy(photo())  # what the page hands the models: decoded once, shrunk to MAX_SIDE px
    return timed(lambda: old_path(model, payload, picture), repeats), timed(lambda: new_path(model, payload, picture), repeats)


def page(repeats: int) -> tuple[float, float]:
    """Seconds for the Predict page to answer a new photo with five models, and a top-k change (AppTest)."""
    sys.path.insert(0, str(common.ROOT / "tests"))
    from streamlit.testing.v1 import AppTest
    from test_page_predict import seed_run

    ids = [seed_run(["circle", "square", "star"]) for _ in range(5)]
    at = AppTest.from_file(str(common.ROOT / "pages" / "predict.py"), default_timeout=300)
    at.run()
    at.multiselect(key="predict_models").set_value([f"run:{i}" for i in ids])
    at.run()
    new, topk = [], []
    for seed in range(repeats + 1):
        out = io.BytesIO()
        photo(seed=seed + 1).save(out, format="JPEG", quality=90)
        at.file_uploader(key="predict_upload").set_value((f"photo{seed}.jpg", out.getvalue(), "image/jpeg"))
        start = time.perf_counter()
        at.run()
        new.append(time.perf_counter() - start)
        assert not at.exception, at.exception
        at.slider(key="predict_topk").set_value(2 + seed % 3)
        start = time.perf_counter()
        at.run()
        topk.append(time.perf_counter() - start)
    return statistics.median(new[1:]), statistics.median(topk[1:])  # the first run loads the models


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--skip-page", action="store_true", help="library timing only")
    args = p.parse_args()
    common.setup(args)
    old, new = library(args.repeats)
    print(f"library, 12 MP photo, ResNet-18 top-k + Grad-CAM (warm, median of {args.repeats}):")
    print(f"  old multi-pass path  {old * 1000:8.1f} ms")
    print(f"  one forward+backward {new * 1000:8.1f} ms   ratio old/new {old / new:.2f}x")
    if not args.skip_page:
        fresh, slider = page(args.repeats)
        print("page (AppTest script run), new 12 MP photo x 5 trained alexnet_cifar models:")
        print(f"  new photo            {fresh:8.2f} s")
        print(f"  top-k slider moved   {slider:8.2f} s   (answers from the cache)")


if __name__ == "__main__":
    main()
