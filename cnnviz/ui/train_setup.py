"""The set-up half of the Train page: a named recipe, dataset, model, mode and initialisation,
hyperparameters, the learning-rate finder, launch.

Every widget key starts with ``train_``; ``cnnviz.ui.logic.build_train_config``
turns their values into the run's ``TrainConfig``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

from cnnviz import paths
from cnnviz.data import DatasetError, DatasetUnavailable, dataset_display_name, get_dataset_spec, list_datasets
from cnnviz.experiments.groups import running_epoch_text
from cnnviz.jobs.estimates import epoch_estimate
from cnnviz.models import get_spec
from cnnviz.runs import RunStore
from cnnviz.recipes import (
    NAMED_BY_NAME,
    default_config,
    default_init,
    default_probe_layer,
    default_start,
    estimate_epoch_seconds,
    features_cached,
    format_seconds,
    registry_recipe,
)
from cnnviz.training.checks import random_backbone_problem
from cnnviz.training.config import (AUGMENTS, MODES, OPTIMIZERS, PRECISIONS, SCHEDULERS, ConfigError, TrainConfig,
                                   evaluation_views, nesterov_applies)
from cnnviz.ui import cached, state
from cnnviz.ui.logic import (
    UploadError,
    build_train_config,
    images_for_estimate,
    kept_values_note,
    merge_recipe,
    number_bounds,
    options_key,
    plural,
    recipe_choices,
    round_lr,
    run_images_text,
    your_run_label,
    save_upload,
    widget_values,
)
from cnnviz.ui.widgets import PERSIST

PREVIEW_SIZE = 64  # px: big enough to see a sample, small enough to decode a dataset fast
MODE_LABELS = {"scratch": "From scratch", "finetune": "Fine-tune", "freeze": "Freeze backbone", "probe": "Linear probe"}
MODE_HELP = ("**From scratch**: random weights, everything trains.  \n**Fine-tune**: start from pretrained weights, "
             "new head, everything trains.  \n**Freeze backbone**: pretrained weights, only the new head trains.  \n"
             "**Linear probe**: softmax regression on the features at one layer (or on raw pixels).")
INIT_LABELS = {"imagenet": "ImageNet weights", "run": "An earlier run of mine", "file": "A weights file",
               "none": "Random (no pretraining)"}
LRS = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
BATCHES = (8, 16, 32, 64, 128, 256)
LR_FIND_STEPS = 100  # batches in the page's sweep: seconds on shapes, and the page waits for it
LR_FOUND = "train_lr_found"  # dict: the last sweep (lrs, losses, suggested_lr) the page draws
LR_PENDING = "train_lr_pending"  # float: a suggestion to put into the lr widget before it is drawn
PREVIEW_SHOWN = "train_preview_shown"  # (dataset, labels, path) whose summary the page last drew


@dataclass(frozen=True)
class DatasetChoice:
    """The chosen dataset and what its preview learned about it."""

    name: str
    labels: str
    path: str | None
    preview: dict
    split_slot: Any = None  # where ``run_images_line`` says what a run uses, once the settings are known


# -- a named recipe ---------------------------------------------------------------------------

def recipe_picker() -> None:
    """The named recipes; choosing one fills every widget of the form in one click (a callback, before they draw)."""
    names = recipe_choices()
    if st.session_state.get("train_recipe") not in (None, *names):
        st.session_state["train_recipe"] = None
    name = st.selectbox("Recipe", names, index=None, key="train_recipe", on_change=_fill_from_recipe,
                        format_func=lambda n: f"{n}: {NAMED_BY_NAME[n].title}",
                        placeholder="Start from a named recipe (fills the whole form)...",
                        help="A whole configuration with a name, as `python -m cnnviz train --recipe NAME` runs it; "
                             "change any setting afterwards.")
    if name:
        st.caption(NAMED_BY_NAME[name].why)


def _fill_from_recipe() -> None:
    name = st.session_state.get("train_recipe")
    if name:
        state.prefill_train_form(NAMED_BY_NAME[name].config())
        st.session_state.pop("train_init_run", None)


def _start_for_dataset() -> None:
    """A new dataset starts from its own architecture and mode (``recipes.STARTS``): photos fine-tune ImageNet weights."""
    arch, mode = default_start(st.session_state["train_dataset"])
    st.session_state.update(train_model=arch, train_mode=mode)
    st.session_state["train_init"] = default_init(arch, mode) if mode != "scratch" else "none"


# -- dataset ----------------------------------------------------------------------------------

@st.cache_data(show_spinner="Loading the dataset (decoded once, then cached)...", max_entries=16)
def dataset_preview(name: str, labels: str, path: str | None, size: int) -> dict:
    """Class counts, a few samples per class and the source images of the augmentation preview."""
    from cnnviz.data import load_dataset

    train = load_dataset(name, split="train", image_size=size, labels=labels, path=path)
    # Without an official validation split both calls see the same seeded stratified 80/20 split.
    val = load_dataset(name, split="val", image_size=size, labels=labels, path=path)
    val_counts = val.class_counts()
    labels_list = train.labels.tolist()
    per_class = max(1, min(8, 16 // len(train.classes)))  # about 16 samples, at least one per class
    picks: list[int] = []
    for c in range(min(len(train.classes), 20)):
        picks += [i for i, y in enumerate(labels_list) if y == c][:per_class]
    images = train.images[picks].permute(0, 2, 3, 1).numpy()
    return {"classes": list(train.classes), "counts": train.class_counts(), "val_counts": val_counts,
            "official_val": get_dataset_spec(name).official_val, "val_carved": val.carved,
            "skipped": train.skipped, "samples": [(images[i], train.classes[labels_list[j]]) for i, j in enumerate(picks)],
            "aug_source": train.images[picks[: min(4, len(picks))]].numpy()}


def dataset_section() -> DatasetChoice:
    """Dataset choice, upload, counts and samples; a missing dataset explains itself and stops the page."""
    names = list_datasets()
    left, right = st.columns([2, 1])
    with left:
        name = st.selectbox("Dataset", names, key="train_dataset", persist_state=PERSIST,
                            format_func=lambda n: get_dataset_spec(n).label, on_change=_start_for_dataset)
    spec = get_dataset_spec(name)
    labels = "fine"
    if len(spec.label_sets) > 1:
        if st.session_state.get("train_labels") not in spec.label_sets:
            st.session_state["train_labels"] = spec.label_sets[0]
        with right:
            labels = st.segmented_control("Labels", list(spec.label_sets), key="train_labels", required=True,
                                          persist_state=PERSIST,
                                          help="CIFAR-100: 100 fine classes or 20 coarse superclasses.")
    st.caption(spec.description)
    path = upload_dataset() if spec.needs_path else None
    # The summary's slot: while another dataset (or upload) decodes, the last one's counts must not stay on screen.
    slot = st.empty()
    shown = (name, labels, path)
    if st.session_state.get(PREVIEW_SHOWN) != shown:
        slot.info(f"Reading {dataset_display_name(name, path)}...")
    try:
        preview = dataset_preview(name, labels, path, min(PREVIEW_SIZE, spec.native_size or PREVIEW_SIZE))
    except DatasetUnavailable as exc:
        slot.error(f"**{spec.label} is not on this machine.** {exc}")  # the message says what to place where
        st.session_state.pop(PREVIEW_SHOWN, None)
        st.stop()
    except DatasetError as exc:
        slot.error(f"**This dataset cannot be used:** {exc}")
        st.session_state.pop(PREVIEW_SHOWN, None)
        st.stop()
    with slot.container():
        show_preview(preview, source=dataset_display_name(name, path) if path else None)
        split_slot = st.empty()
    st.session_state[PREVIEW_SHOWN] = shown
    return DatasetChoice(name=name, labels=labels, path=path, preview=preview, split_slot=split_slot)


def run_images_line(data: DatasetChoice) -> None:
    """Under the dataset's counts: how many images a run with the chosen settings trains and validates on."""
    text = run_images_text(train_counts=data.preview["counts"], val_counts=data.preview["val_counts"],
                           subset=st.session_state.get("train_subset") or None,
                           val_subset=st.session_state.get("train_val_subset") or None,
                           official_val=data.preview["official_val"], val_carved=data.preview["val_carved"])
    (data.split_slot or st).markdown(text)


def upload_dataset() -> str:
    """The .zip of class folders: uploaded, saved under CNNVIZ_HOME/uploads by content hash."""
    upload = st.file_uploader("A .zip of class folders (one folder per class, pictures inside)", type=["zip"],
                              key="train_upload")
    if upload is not None:
        try:
            st.session_state[state.UPLOAD_PATH] = str(save_upload(upload.getvalue(), folder=paths.home() / "uploads",
                                                                  filename=upload.name))
        except UploadError as exc:
            st.error(str(exc))
            st.session_state.pop(state.UPLOAD_PATH, None)
    path = st.session_state.get(state.UPLOAD_PATH)
    if not path:
        st.info("Upload a .zip such as `my_pictures.zip` holding `cats/*.jpg` and `dogs/*.jpg` (a `train/` and "
                "`val/` level above the class folders is used as the split).")
        st.stop()
    return path


def show_preview(preview: dict, *, source: str | None = None) -> None:
    """Class counts and a grid of samples; ``source`` names the uploaded file they come from."""
    counts, val = preview["counts"], sum(preview["val_counts"].values())
    split = f"{val:,} validation images" + (" (the official split)" if preview["official_val"] else "")
    st.markdown((f"`{source}`: " if source else "")
                + f"**{len(counts)} classes**; the dataset has {sum(counts.values()):,} training images and {split}."
                + (f" {preview['skipped']} unreadable files were skipped." if preview["skipped"] else ""))
    with st.expander("Class counts and sample images", expanded=True):
        from cnnviz.charts import class_counts

        left, right = st.columns([1, 2])
        left.altair_chart(class_counts(counts), width="stretch")
        with right:
            images, captions = zip(*preview["samples"])
            st.image(list(images), caption=list(captions), width=72)


# -- model, mode and initialisation ----------------------------------------------------------

def mode_section(arch: str, options: dict) -> str:
    """Mode, probe layer and initialisation widgets; returns the mode."""
    spec = get_spec(arch)
    left, right = st.columns([3, 2])
    with left:
        st.session_state.setdefault("train_mode", TrainConfig().mode)
        mode = st.segmented_control("Mode", list(MODES), key="train_mode", required=True, persist_state=PERSIST,
                                    format_func=MODE_LABELS.get, help=MODE_HELP)
    if mode == "probe":
        points = ["input", *spec.probe_points]
        if st.session_state.get("train_probe_layer") not in points:
            st.session_state["train_probe_layer"] = default_probe_layer(arch)
        right.selectbox("Probe layer", points, key="train_probe_layer", persist_state=PERSIST,
                        help="The features a softmax regression reads: 'input' is the raw pixels (the baseline).")
    if mode == "scratch":
        st.caption("Random initialisation: nothing is pretrained.")
        return mode
    init_section(spec, options)
    random_weights_note(arch, options, mode)
    return mode


def random_weights_note(arch: str, options: dict, mode: str) -> None:
    """Say what random starting weights mean in this mode: a refusal for freeze/probe, from scratch for fine-tune."""
    if st.session_state.get("train_init") != "none":
        return
    if mode == "finetune":
        st.info("Fine-tuning from random weights is **training from scratch**: nothing is pretrained.")
    elif mode == "freeze" or st.session_state.get("train_probe_layer") != "input":
        st.error("This run cannot start: " + random_backbone_problem(arch, options, mode=mode) + ".")


def init_section(spec, options: dict) -> None:
    """Where the weights come from: ImageNet (says if the file is missing), an earlier run, or a file."""
    weights, needs = spec.weights_for(options)
    kinds = (["imagenet"] if spec.weights else []) + ["run", "file", "none"]
    if st.session_state.get("train_init") not in kinds:
        st.session_state["train_init"] = kinds[0]
    kind = st.radio("Start from", kinds, key="train_init", horizontal=True, format_func=INIT_LABELS.get,
                    persist_state=PERSIST)
    if kind == "imagenet":
        imagenet_note(spec, options, weights, needs)
    elif kind == "run":
        earlier_run_picker(spec.name)
    elif kind == "file":
        upload_weights()


def imagenet_note(spec, options: dict, weights: str | None, needs: dict) -> None:
    """Whether the ImageNet weights fit these options and are in the torch cache (and what to do if not)."""
    from cnnviz.models import hub_checkpoints_dir, weights_file_name

    clash = {k: v for k, v in needs.items() if options.get(k) != v and not k.startswith("se_")}
    if clash:
        wanted = ", ".join(f"{k}={v}" for k, v in clash.items())
        st.warning(f"The ImageNet weights of {spec.label} were trained with {wanted}; with your options they "
                   "cannot load. Change those options, or start from random weights.")
        return
    file = hub_checkpoints_dir() / weights_file_name(weights)
    if file.exists():
        st.caption(f"ImageNet weights found in the torch cache: `{file}`.")
    else:
        st.warning(f"The ImageNet weights are **not in the cache** on this machine. Training will try to download "
                   f"`{file.name}`; offline, place that file in `{file.parent}`, or choose *A weights file* to "
                   "upload it, or start from *an earlier run*.")


def earlier_run_picker(arch: str) -> None:
    """A selectbox of this architecture's finished runs that saved a checkpoint."""
    from cnnviz.runs import RunStore

    runs = [r for r in RunStore().list(status=("finished", "stopped")) if r.config.arch == arch and r.checkpoint]
    if not runs:
        st.info(f"No finished run of {arch} with a checkpoint yet: train one from scratch first.")
        st.session_state.pop("train_init_run", None)
        return
    labels = {r.id: f"{r.label}: {r.config.describe()}, best val {r.best_val_acc or 0:.1%}" for r in runs}
    if st.session_state.get("train_init_run") not in labels:
        st.session_state["train_init_run"] = runs[0].id
    st.selectbox("Earlier run", list(labels), key="train_init_run", format_func=labels.get, persist_state=PERSIST)


def upload_weights() -> None:
    """A weights file (a torchvision state_dict or a cnnviz checkpoint), kept under CNNVIZ_HOME/uploads."""
    upload = st.file_uploader("Weights file (.pth / .pt)", key="train_weights_upload")
    if upload is not None:
        try:
            path = save_upload(upload.getvalue(), folder=paths.home() / "uploads" / "weights",
                               filename=upload.name, kind="weights")
            st.session_state[state.WEIGHTS_PATH] = str(path)
        except UploadError as exc:
            st.error(str(exc))
    if st.session_state.get(state.WEIGHTS_PATH):
        st.caption(f"Using `{st.session_state[state.WEIGHTS_PATH]}`; it is checked when training starts.")


# -- hyperparameters --------------------------------------------------------------------------

def apply_recipe(arch: str, data: DatasetChoice, mode: str) -> list[str]:
    """Put the recipe's defaults into the widgets when architecture, dataset or mode changed; returns the reasons.

    The values are ``recipes.default_config``'s, the ones the command line's ``train`` starts from;
    settings the recipe does not choose keep what the student set (the config's defaults at first).
    """
    num_classes = len(data.preview["classes"])
    rec = registry_recipe(arch=arch, dataset=data.name, mode=mode, num_classes=num_classes)
    values = widget_values(default_config(arch=arch, dataset=data.name, mode=mode))
    signature = (arch, data.name, mode)
    if st.session_state.get("train_recipe_for") != signature:
        # Values typed by hand survive a change of mode, dataset or model; the recipe's own are offered.
        chosen = {f"train_{field}": values[f"train_{field}"] for field in rec.values}
        applied = st.session_state.setdefault(state.RECIPE_APPLIED, {})
        updates, held = merge_recipe(st.session_state, applied, chosen)
        st.session_state.update(updates)
        applied.update(chosen)
        st.session_state[state.RECIPE_HELD] = held
        st.session_state[state.RECIPE_HELD_FOR] = f"{mode} on {dataset_display_name(data.name, data.path)}"
        st.session_state["train_recipe_for"] = signature
    for key, value in values.items():
        st.session_state.setdefault(key, value)
    return rec.why


def held_values_note() -> None:
    """One line naming the hand-typed values kept over the recipe's, with a button that takes the recipe's."""
    held = st.session_state.get(state.RECIPE_HELD) or {}
    note = kept_values_note(held, st.session_state, recipe_for=st.session_state.get(state.RECIPE_HELD_FOR, ""))
    if not note:
        return
    with st.container(horizontal=True, vertical_alignment="center"):
        st.caption(note)
        st.button("Use it" if len(held) == 1 else "Use them", key="train_use_recipe", on_click=_use_held_values,
                  help="Put the recipe's values in place of the ones you typed.")


def _use_held_values() -> None:
    st.session_state.update(st.session_state.pop(state.RECIPE_HELD, None) or {})


def hyperparameter_section(why: list[str], num_classes: int) -> None:
    """Epochs, batch size, learning rate, optimiser, input size, subset, augmentation and the rest."""
    if LR_PENDING in st.session_state:  # the lr finder's suggestion, set before the widget exists
        st.session_state["train_lr"] = st.session_state.pop(LR_PENDING)
    held_values_note()
    c = st.columns(4)
    c[0].number_input("Epochs", **number_bounds("epochs"), step=1, key="train_epochs", persist_state=PERSIST)
    c[1].select_slider("Batch size", _with_current(BATCHES, "train_batch_size"), key="train_batch_size",
                       persist_state=PERSIST)
    c[2].select_slider("Learning rate", _with_current(LRS, "train_lr"), key="train_lr", persist_state=PERSIST,
                       format_func=lambda v: f"{v:g}")
    c[3].selectbox("Optimiser", OPTIMIZERS, key="train_optimizer", persist_state=PERSIST)
    c = st.columns(4)
    c[0].number_input("Input size (px)", min_value=8, max_value=512, step=1, key="train_image_size",
                      persist_state=PERSIST, help="Images are resized to this before the network sees them.")
    c[1].number_input("Images per class (0 = all)", min_value=0, step=50, key="train_subset", persist_state=PERSIST)
    c[2].selectbox("Augmentation", AUGMENTS, key="train_augment", persist_state=PERSIST,
                   help="standard: random crop + flip; cifar: pad 4 px, crop + flip; translate: reflect-pad 2 px, crop + "
                        "flip (airbench, for short runs); alexnet: crops, flips and PCA colour noise.")
    c[3].selectbox("LR schedule", SCHEDULERS, key="train_scheduler", persist_state=PERSIST,
                   help="plateau divides the rate by 10 when validation loss stalls (AlexNet); onecycle rises to the rate "
                        "and falls on a cosine; linear is airbench's straight-line triangle.")
    with st.expander("More settings"):
        c = st.columns(4)
        c[0].number_input("Momentum", **number_bounds("momentum"), step=0.05, key="train_momentum",
                          persist_state=PERSIST)
        c[1].number_input("Weight decay", **number_bounds("weight_decay"), step=1e-4, format="%g",
                          key="train_weight_decay", persist_state=PERSIST)
        c[2].number_input("Label smoothing", **number_bounds("label_smoothing"), step=0.05, key="train_label_smoothing",
                          persist_state=PERSIST)
        losses = ["ce", "bce"] if num_classes == 2 else ["ce"]
        if st.session_state.get("train_loss") not in losses:
            st.session_state["train_loss"] = "ce"
        c[3].selectbox("Loss", losses, key="train_loss", persist_state=PERSIST,
                       format_func={"ce": "cross-entropy", "bce": "binary cross-entropy (1 logit)"}.get)
        c = st.columns(4)
        c[0].selectbox("Validation split", ["official", "random"], key="train_val_split", persist_state=PERSIST,
                       help="official: the dataset's own val split where it has one, else carved from the training "
                            "pictures; random: always carved from the training pictures (seeded, stratified: 10% "
                            "for CIFAR, 20% elsewhere), the own val split becoming the test set.")
        c[1].number_input("Validation images per class (0 = all)", min_value=0, step=50, key="train_val_subset",
                          persist_state=PERSIST,
                          help="Validating on every carved CIFAR picture each epoch costs a lot on a CPU. Where "
                               "validation is carved from the training pictures (CIFAR, a folder without val/), "
                               "only these are held out and the rest train.")
        c[2].number_input("Seed", **number_bounds("seed"), step=1, key="train_seed", persist_state=PERSIST)
        c[3].number_input("LR step (epochs)", **number_bounds("step_size"), step=1, key="train_step_size",
                          persist_state=PERSIST,
                          help="For the step schedule: divide by 10 every this many epochs.")
        c = st.columns(4)
        c[0].selectbox("Precision", PRECISIONS, key="train_precision", persist_state=PERSIST,
                       help="auto: mixed precision on a GPU, and bf16 on a CPU with AMX tiles; float32 elsewhere.")
        c[1].number_input("Weight average (EMA) decay", **number_bounds("ema_decay"), step=0.01, format="%g",
                          key="train_ema_decay", persist_state=PERSIST,
                          help="Validate a moving average of the weights, updated after every batch with this "
                               "decay (0.98: about the last 50 batches); 0 turns it off.")
        applies = nesterov_applies(st.session_state.get("train_optimizer"),
                                   st.session_state.get("train_momentum", TrainConfig.momentum))
        c[2].toggle("Nesterov momentum", key="train_nesterov", persist_state=PERSIST, disabled=not applies,
                    help="SGD looks ahead along its momentum before taking the gradient (airbench uses it). "
                         "For SGD with momentum only.")
        c[3].toggle("Mirror at test time", key="train_tta_flip", persist_state=PERSIST,
                    help="Evaluate each picture and its mirror image and average the two answers.")
        c = st.columns(4)
        c[0].number_input("Test images per class (0 = all)", min_value=0, step=50, key="train_test_subset",
                          persist_state=PERSIST, help="The test set is evaluated once, after the last epoch, on the "
                                                      "best-validation weights; it never chooses the epoch.")
        c[1].toggle("Shift at test time", key="train_tta_shift", persist_state=PERSIST,
                    help="Also evaluate each picture moved one pixel up-left and one pixel down-right (mirrored "
                         "too when mirroring is on) and average the answers, the original counting half.")
        c[2].toggle("Alternate flips", key="train_alternate_flip", persist_state=PERSIST,
                    disabled=st.session_state.get("train_augment") == "none",
                    help="Mirror each training picture every other epoch (at random in the first) instead of at "
                         "random each time, so no picture is seen the same way twice in a row (airbench). For an "
                         "augmentation that flips.")
        c[3].toggle("Lookahead", key="train_lookahead", persist_state=PERSIST,
                    help="Every 5 batches move the weights back to a slow average of them, which pulls harder as "
                         "the run ends (airbench). Unlike the EMA above, it changes what trains.")
        st.toggle("Track gradient norms", key="train_grad_norms", persist_state=PERSIST,
                  help="Per-layer gradient norms each epoch (the degradation experiment).")
    st.caption("Defaults: " + "; ".join(why) + ".")


def lr_finder(options: dict) -> None:
    """A button that sweeps the learning rate on the configured run, draws loss against lr, and fills in the pick."""
    from cnnviz.charts import lr_find_curve

    if st.button("Find a learning rate", key="train_lr_find",
                 help=f"Trains the configured run for up to {LR_FIND_STEPS} batches while the learning rate grows "
                      "from 1e-7 to 10 (Smith 2015; fastai's lr_find), then puts the rate where the loss fell "
                      "fastest into the form. Nothing is saved."):
        found = _sweep(options)
        if found is not None:
            st.session_state[LR_FOUND] = found
            if found["suggested_lr"]:
                st.session_state[LR_PENDING] = round_lr(found["suggested_lr"])
            st.rerun()
    found = st.session_state.get(LR_FOUND)
    if found:
        st.altair_chart(lr_find_curve(found["lrs"], found["losses"], suggested=found["suggested_lr"]), width="stretch")
        st.caption(f"Suggested learning rate **{round_lr(found['suggested_lr']):g}** (steepest fall of the smoothed "
                   f"loss), filled in above; {found['describe']}." if found["suggested_lr"] else
                   "The loss never went down in the sweep: no suggestion (try more images per class).")


def _sweep(options: dict) -> dict | None:
    """Run the sweep on the form's config; None (and an error shown) when the form cannot run."""
    from cnnviz.training.checks import validate_config
    from cnnviz.training.lr_find import lr_find

    try:
        config = build_train_config(st.session_state, options=options)
        validate_config(config)
    except ConfigError as exc:
        st.error("The learning-rate finder cannot run this configuration: " + "; ".join(exc.problems) + ".")
        return None
    except ValueError as exc:
        st.error(str(exc))
        return None
    with st.spinner(f"Sweeping the learning rate over up to {LR_FIND_STEPS} batches..."):
        try:
            result = lr_find(config, steps=LR_FIND_STEPS)
        except (DatasetError, RuntimeError, ValueError) as exc:  # e.g. weights that are not on this machine
            st.error(f"The learning-rate finder failed: {exc}")
            return None
    return {**result.to_dict(), "describe": f"{len(result.lrs)} batches of {config.describe()}"}


def _with_current(choices: tuple, key: str) -> list:
    """The slider's choices plus the value already in the widget (a run filled in from an experiment)."""
    current = st.session_state.get(key)
    return sorted({*choices, current}) if current is not None else list(choices)


def augmentation_preview(preview: dict, preset: str) -> None:
    """A few training images and three random augmentations of each."""
    if preset == "none" or not len(preview["aug_source"]):
        return
    import torch

    from cnnviz.data import augment_batch

    seed = st.session_state.get("train_aug_seed", 0)
    with st.expander(f"Augmentation preview ({preset})"):
        source = torch.from_numpy(preview["aug_source"])
        generator = torch.Generator().manual_seed(seed)
        draws = [source] + [augment_batch(source, preset, generator=generator) for _ in range(4)]
        grid = torch.stack(draws, dim=1).permute(0, 1, 3, 4, 2).numpy()  # (image, draw, H, W, C)
        for row in grid:  # one line per picture: the original, then four random draws
            st.image(list(np.ascontiguousarray(row)), width=96, caption=["original"] + ["augmented"] * 4)
        if st.button("Other random draws", key="train_aug_reroll"):
            st.session_state["train_aug_seed"] = seed + 1
            st.rerun()


# -- cost and time -----------------------------------------------------------------------------

def cost_and_estimate(arch: str, options: dict, *, num_classes: int, data: DatasetChoice) -> None:
    """Parameters and FLOPs of the configured model, and the estimated time per epoch."""
    from cnnviz.inspect import format_count, format_flops

    size = int(st.session_state["train_image_size"])
    problem = cached.input_size_problem(arch, size, options)
    if problem:
        st.error(problem)
        return
    params, flops = cached.cost(arch, options_key(options), num_classes, size)
    spec = get_spec(arch)
    measure_size = max(min(size, 64), spec.min_size)  # measuring at 224 px would take seconds per architecture
    speed = cached.flops_per_second(arch, measure_size)
    n_train, n_val = images_for_estimate(train_counts=data.preview["counts"], val_counts=data.preview["val_counts"],
                                         subset=st.session_state.get("train_subset") or None,
                                         val_subset=st.session_state.get("train_val_subset") or None,
                                         val_carved=data.preview["val_carved"])
    mode = st.session_state.get("train_mode", "scratch")
    views = evaluation_views(st.session_state.get("train_tta_flip", False),
                             st.session_state.get("train_tta_shift", False), mode=mode)
    seconds = estimate_epoch_seconds(flops_per_image=flops, train_images=n_train, val_images=n_val,
                                     flops_per_second=speed, mode=mode, views=views)
    epochs = int(st.session_state.get("train_epochs", 1))
    once = features_cached(mode=mode, augment=st.session_state.get("train_augment", "none"))
    # This server's own epochs replace the benchmark once there are any (cached-feature epochs time the head alone).
    learned = None if once else epoch_estimate(
        RunStore(), arch=arch, image_size=size, mode=mode, images=n_train + n_val, options=options,
        probe_layer=st.session_state.get("train_probe_layer") if mode == "probe" else None)
    source = "from the FLOPs and a quick speed measurement on this device"
    if learned:
        seconds = learned.seconds
        source = f"{learned.source} ({format_seconds(learned.low)} to {format_seconds(learned.high)})"
    total = seconds if once else seconds * epochs
    c = st.columns(3)
    c[0].metric("Parameters", format_count(params), help=f"{params:,}")
    c[1].metric("FLOPs per image", format_flops(flops), help=f"{flops:,} at {size} px")
    c[2].metric("First epoch (estimate)" if once else "Time per epoch (estimate)", f"~{format_seconds(seconds)}",
                help=f"{n_train:,} training and {n_val:,} validation images; {source}. "
                     f"About {format_seconds(total)} for {plural(epochs, 'epoch')}"
                     + ("; the frozen features are computed once, so later epochs take moments." if once else "."))


# -- your runs --------------------------------------------------------------------------------

def your_runs(student: str) -> None:
    """This student's running and queued runs: status, place in the queue, a link that shows each."""
    from cnnviz.runs import RunStore

    store = RunStore()
    mine = [r for r in store.list(("running", "queued")) if r.student == student]
    if not mine:
        return
    line = {r.id: i for i, r in enumerate(store.queue(), start=1)}
    st.markdown(f"**Your runs** ({student})")
    for run in sorted(mine, key=lambda r: r.id):
        if run.id in line:
            where = f"position {line[run.id]} in the queue"
        elif run.status == "running":
            where = "running, " + running_epoch_text(len(store.epochs(run.id)), run.config.epochs)
        else:
            where = run.status
        label = your_run_label(run, dataset=dataset_display_name(run.config.dataset, run.config.data_path),
                               where=where)
        st.page_link("pages/train.py", label=label, icon=":material/monitoring:",
                     query_params={state.QUERY_RUN: str(run.id), "student": student})
