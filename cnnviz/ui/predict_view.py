"""Streamlit pieces of the Predict page: model pickers, picture inputs, answers with Grad-CAM.

The analysis (top-k, Grad-CAM, unusable files) is ``cnnviz.explain.analyse_images``;
the models on offer are ``cnnviz.compare.model_choices``. Every widget has a ``key``
starting with ``predict_`` so tests and the browser walk can find it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import streamlit as st
import torch

from cnnviz import charts, compare, explain
from cnnviz.compare import ModelChoice
from cnnviz.data.images import EXTENSIONS, MAX_PHOTO_MB
from cnnviz.explain import ModelAnswer
from cnnviz.predict import pretrained_weights
from cnnviz.runs import RunStore
from cnnviz.ui.student import current_student

# -- models ------------------------------------------------------------------------------

SAMPLES_DIR = Path(__file__).resolve().parents[2] / "assets" / "samples"


def model_choices(store: RunStore) -> list[ModelChoice]:
    """Runs with a saved checkpoint (newest first), then architectures whose ImageNet weights are cached."""
    return compare.model_choices(store.list(), pretrained=_pretrained_archs())


@st.cache_data(ttl=60, show_spinner=False)
def _pretrained_archs() -> list[tuple[str, float]]:
    """Architectures whose ImageNet weights are in the torch cache, with the file's mtime (looked up once a minute)."""
    return pretrained_weights()


@st.cache_resource(max_entries=6, show_spinner=False)
def cached_model(key: str, version: float):
    """``(model, payload)`` for a model choice, shared read-only by every session.

    Sharing is safe because ``cnnviz.predict`` and ``cnnviz.explain`` take turns on
    models (``MODEL_LOCK``) while Grad-CAM hooks are attached.
    """
    model, payload = compare.load_choice(key)
    model.requires_grad_(False)  # read-only; Grad-CAM needs gradients of activations, not of weights
    return model, payload


def pick_models(choices: Sequence[ModelChoice], *, datasets: Sequence[str] = ()) -> list[ModelChoice]:
    """The multiselect of models (key ``predict_models``).

    Defaults to this student's models that know the pictures' dataset (``compare.default_models``); while the
    user has not changed the selection, it follows the pictures chosen.
    """
    by_key = {c.key: c for c in choices}
    default = compare.default_models(choices, datasets=datasets, student=current_student())
    previous = st.session_state.get("predict_models_default")
    if "predict_models" not in st.session_state or st.session_state["predict_models"] == previous:
        st.session_state["predict_models"] = default
    st.session_state["predict_models_default"] = default
    st.session_state["predict_models"] = [k for k in st.session_state["predict_models"] if k in by_key]
    keys = st.multiselect("Models", list(by_key), key="predict_models", placeholder="choose one or more trained runs",
                          format_func=lambda k: f"{by_key[k].label} · {by_key[k].knows}" if by_key[k].knows
                          else by_key[k].label,
                          help="Each model answers only with the classes it was trained on (its \"knows\").")
    return [by_key[k] for k in keys]


def pretrained_note(choices: Sequence[ModelChoice]) -> None:
    """Say whether ImageNet-pretrained models are offered, and how to get them when they are not."""
    if any(c.key.startswith("imagenet:") for c in choices):
        return
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    st.caption("No ImageNet-pretrained weights are in the torch cache, so only runs trained here are offered. "
               "To add AlexNet, ResNet and VGG with their 1000 ImageNet classes, run `python -m cnnviz prefetch` "
               f"where there is internet, or copy the weight files into `{folder}`.")


# -- pictures --------------------------------------------------------------------------------

def sample_names() -> list[str]:
    """The sample pictures shipped in ``assets/samples``."""
    return sorted(p.name for p in SAMPLES_DIR.glob("*") if p.suffix.lower().lstrip(".") in EXTENSIONS)


def picked_datasets() -> list[str]:
    """The datasets of the sample pictures chosen (what the default models should know)."""
    return compare.picture_datasets(st.session_state.get("predict_samples") or [])


def image_inputs() -> list[tuple[str, bytes]]:
    """Uploaded files, sample pictures and a camera shot, as ``(name, bytes)`` in that order."""
    uploads = st.file_uploader("Your pictures", type=list(EXTENSIONS), accept_multiple_files=True,
                               max_upload_size=MAX_PHOTO_MB, key="predict_upload",
                               help=f"{', '.join(EXTENSIONS)}; up to {MAX_PHOTO_MB} MB each; several at once is fine")
    samples = st.multiselect("...or sample pictures that ship with the app", sample_names(), key="predict_samples",
                             placeholder="choose sample pictures")
    images = [(f.name, f.getvalue()) for f in uploads or []]
    images += [(name, (SAMPLES_DIR / name).read_bytes()) for name in samples]
    # Behind a toggle so the browser does not ask for the camera every time the page opens.
    if st.toggle("Take a picture with the camera", key="predict_use_camera"):
        shot = st.camera_input("Camera", key="predict_camera")
        if shot is not None:
            images.append(("camera.jpg", shot.getvalue()))
    return images


# -- results ---------------------------------------------------------------------------------

@st.cache_resource(show_spinner=False)
def _answers() -> explain.LRU:
    """Answers by (model, version, picture, class), shared by every session: the top-k slider and reruns reuse them."""
    return explain.LRU(maxsize=256)


@st.cache_resource(show_spinner=False)
def _pictures() -> explain.LRU:
    """Decoded pictures by content (a 12-megapixel photo decodes once)."""
    return explain.LRU(maxsize=24)


def analyse_images(*, images: Sequence[tuple[str, bytes]], models: Sequence[ModelChoice],
                   topk: int) -> list[tuple[str, Any, list[ModelAnswer] | str]]:
    """``cnnviz.explain.analyse_images`` with each chosen model loaded from the shared cache, answers cached."""
    return explain.analyse_images(images=images, models=[(c.label, _load(c), (c.key, c.version)) for c in models],
                                  topk=topk, cache=_answers(), pictures=_pictures())


def _load(choice: ModelChoice):
    """The cached ``(model, payload)``, or a one-line reason it cannot be loaded."""
    try:
        return cached_model(choice.key, choice.version)
    except Exception as exc:  # a deleted or damaged checkpoint, weights gone from the cache
        return f"{choice.label} could not be loaded: {explain.error_line(exc)}"


def show_results(results: Sequence[tuple[str, Any, Any]]) -> None:
    """One block per picture: the picture, then each model's Grad-CAM and top-k bars; the row wraps when narrow."""
    for name, picture, answers in results:
        if picture is None:
            st.warning(answers, icon=":material/broken_image:")
            continue
        st.markdown(f"##### {name}")
        with st.container(horizontal=True, gap="medium"):
            with st.container(width=ANSWER_WIDTH):
                st.image(picture, caption="your picture", width="stretch")
            for ans in answers:
                with st.container(width=ANSWER_WIDTH):
                    _show_answer(ans)
        st.caption(CROP_NOTE)
        st.divider()


ANSWER_WIDTH = 300  # px per picture and per model: three fit beside each other at 1280 px, one at 900
CROP_NOTE = ("Each model saw only the centre square of the picture (the dashed box), resized to its input size; "
             "the strips outside the box have no heat because the model never saw them.")


def _show_answer(ans: ModelAnswer) -> None:
    st.markdown(f"**{ans.label}**")
    if ans.error:
        st.error(ans.error)
        return
    best, prob = ans.top[0]
    st.image(ans.overlay, caption=f"says {best} ({prob:{charts.PERCENT}}); Grad-CAM: red = what drove “{best}”",
             width="stretch")
    if ans.note:
        st.info(f"Empty heat map: {ans.note}.", icon=":material/info:")
    # The chart's height includes its axis and title (autosize "fit"): leave ~22 px per bar above them.
    st.altair_chart(charts.topk_bars(ans.top, height=70 + 22 * len(ans.top)), width="stretch")
