"""The Predict page in AppTest: no models, a seeded run with a real checkpoint, uploads, samples, broken files."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from cnnviz.runs import RunStore
from cnnviz.training.config import TrainConfig

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "predict.py")
TIMEOUT = 120  # the first run imports torch and captum
CLASSES = ["circle", "square", "star"]


def _png(color=(200, 30, 30), size=(40, 30), mode="RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def seeded_run() -> int:
    """A finished run whose checkpoint is a real (untrained) 3-class alexnet_cifar."""
    return seed_run(CLASSES)


def seed_run(classes: list[str], dataset: str = "shapes") -> int:
    """Store a finished run with a real checkpoint of an untrained alexnet_cifar for ``classes``."""
    import torch

    from cnnviz.models import get_model

    torch.manual_seed(0)
    model = get_model("alexnet_cifar", num_classes=len(classes))
    config = TrainConfig(arch="alexnet_cifar", epochs=1, image_size=32, dataset=dataset)
    store = RunStore()
    run_id = store.create(config, name="tiny alex")
    store.record_start(run_id, params=1, flops=1, classes=classes)
    payload = {"arch": "alexnet_cifar", "options": dict(model.cnnviz_options), "num_classes": len(classes),
               "classes": classes, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "image_size": 32,
               "state_dict": model.state_dict(), "config": config.to_json(), "epoch": 1, "best_val_acc": 0.5}
    store.record_end(run_id, SimpleNamespace(
        status="finished", message=None, epochs=[], best_val_acc=0.5, best_epoch=1, train_seconds=1.0, params=1,
        flops=1, classes=classes, confusion=[[int(i == j) for j in range(len(classes))] for i in range(len(classes))],
        per_class_acc=[1.0] * len(classes),
        checkpoint=payload, val_predictions=[0, 1, 2]))
    return run_id


def _run(at: AppTest) -> AppTest:
    at.run(timeout=TIMEOUT)
    assert not at.exception, at.exception
    return at


def _captions(at: AppTest) -> list[str]:
    return [caption for image in at.get("image") for caption in image.captions]


def test_no_models_points_to_train():
    at = _run(AppTest.from_file(PAGE, default_timeout=TIMEOUT))
    assert "No trained model yet" in at.info[0].value
    assert any("python -m cnnviz prefetch" in c.value for c in at.caption)
    assert not at.multiselect


def test_uploads_predict_and_a_broken_file_only_warns(seeded_run):
    at = _run(AppTest.from_file(PAGE, default_timeout=TIMEOUT))
    assert at.multiselect(key="predict_models").value == [f"run:{seeded_run}"]  # the newest run is preselected
    assert any("Upload pictures" in i.value for i in at.info)
    at.file_uploader(key="predict_upload").set_value([
        ("red.png", _png(), "image/png"),
        ("broken.png", _png()[:60], "image/png"),  # truncated
        ("notes.png", b"this is not an image", "image/png"),
        ("grey.png", _png(color=128, mode="L"), "image/png"),
    ])
    at.slider(key="predict_topk").set_value(2)
    _run(at)
    warnings = [w.value for w in at.warning]
    assert len(warnings) == 2, warnings
    assert any(w.startswith("broken.png") for w in warnings) and any(w.startswith("notes.png") for w in warnings)
    assert all("\n" not in w for w in warnings)  # one line each
    headings = [m.value for m in at.markdown if m.value.startswith("#####")]
    assert headings == ["##### red.png", "##### grey.png"]
    assert len(at.get("vega_lite_chart")) == 2  # a top-k bar chart per good picture
    captions = _captions(at)
    assert sum("Grad-CAM" in c for c in captions) == 2 and sum(c == "your picture" for c in captions) == 2
    assert not at.error


def test_sample_pictures_and_pure_analysis(seeded_run):
    from cnnviz.ui import predict_view

    names = predict_view.sample_names()
    assert len(names) >= 5 and all(n.endswith(".jpg") for n in names)
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.session_state["predict_samples"] = names[:2]
    _run(at)
    assert [m.value for m in at.markdown if m.value.startswith("#####")] == [f"##### {n}" for n in names[:2]]
    assert len(at.get("vega_lite_chart")) == 2

    # The same per-picture work without a page: what the page draws, from bytes.
    choice = next(c for c in predict_view.model_choices(RunStore()) if c.key == f"run:{seeded_run}")
    results = predict_view.analyse_images(images=[("ok.png", _png()), ("bad.gif", b"GIF89a")], models=[choice], topk=5)
    (name, picture, answers), (bad_name, bad_picture, warning) = results
    assert name == "ok.png" and picture.mode == "RGB" and answers[0].error is None
    top = answers[0].top
    assert [c for c, _ in top] and {c for c, _ in top} <= set(CLASSES) and len(top) == 3  # top-k capped at 3 classes
    assert abs(sum(p for _, p in top) - 1.0) < 1e-4
    assert answers[0].overlay.size == picture.size
    assert bad_name == "bad.gif" and bad_picture is None and warning.startswith("bad.gif")


def test_a_missing_checkpoint_is_a_message_not_a_crash(seeded_run):
    at = _run(AppTest.from_file(PAGE, default_timeout=TIMEOUT))
    Path(RunStore().get(seeded_run).checkpoint).write_bytes(b"not a checkpoint")
    at.file_uploader(key="predict_upload").set_value(("red.png", _png(), "image/png"))
    _run(at)
    assert at.error and "could not be loaded" in at.error[0].value


def test_camera_is_off_until_asked(seeded_run):
    at = _run(AppTest.from_file(PAGE, default_timeout=TIMEOUT))
    assert not at.get("camera_input")
    at.toggle(key="predict_use_camera").set_value(True)
    _run(at)
    assert len(at.get("camera_input")) == 1


def test_cached_imagenet_weights_are_offered(tmp_path, monkeypatch):
    from cnnviz.predict import imagenet_weights_file
    from cnnviz.ui import predict_view

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    weights = imagenet_weights_file("alexnet")
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"a damaged download")  # listed because the file is there; loading it then fails politely
    predict_view._pretrained_archs.clear()
    try:
        at = _run(AppTest.from_file(PAGE, default_timeout=TIMEOUT))
        assert at.multiselect(key="predict_models").value == ["imagenet:alexnet"]
        assert not any("prefetch" in c.value for c in at.caption)
        at.session_state["predict_samples"] = predict_view.sample_names()[:1]
        _run(at)
        assert at.error and "could not be loaded" in at.error[0].value
    finally:
        predict_view._pretrained_archs.clear()


def test_default_models_know_the_sample_pictures_and_answers_are_reused(monkeypatch):
    import cnnviz.explain as explain
    from cnnviz.ui import predict_view

    shapes = seed_run(CLASSES)
    ants = seed_run(["ants", "bees"], dataset="hymenoptera")
    at = _run(AppTest.from_file(PAGE, default_timeout=TIMEOUT))
    assert at.multiselect(key="predict_models").value == [f"run:{ants}"]  # no pictures yet: the newest run
    at.multiselect(key="predict_samples").set_value([n for n in predict_view.sample_names() if "star" in n])
    _run(at)
    assert at.multiselect(key="predict_models").value == [f"run:{shapes}"]  # a shapes star goes to the shapes model
    assert any("knows: ants, bees" in o for o in at.multiselect(key="predict_models").options)
    assert any("centre square" in c.value for c in at.caption)

    passes = []
    real = explain.explain_image
    monkeypatch.setattr(explain, "explain_image", lambda *a, **k: passes.append(1) or real(*a, **k))
    at.slider(key="predict_topk").set_value(2)
    _run(at)
    assert passes == []  # the top-k slider reuses the cached pass
