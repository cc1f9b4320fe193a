"""Widgets shared by several pages: the architecture + options picker, the run store, a link to Train.

Options are drawn from each spec's schema (``Option.kind`` / ``Option.group``),
never from literals, so a newly registered architecture appears with its own
toggles. Keys: ``<prefix>_model``, ``<prefix>_opt_<option>``, ``<prefix>_size``,
``<prefix>_classes``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import streamlit as st

from cnnviz.models import get_spec, list_models
from cnnviz.models.registry import ModelSpec, Option
from cnnviz.runs import RunStore
from cnnviz.ui.state import PERSIST

TRAIN_PAGE = "pages/train.py"


@dataclass(frozen=True)
class Picked:
    """What the picker returned: architecture, its full option dict, input size and classes."""

    arch: str
    options: dict[str, Any]
    image_size: int | None = None
    num_classes: int | None = None


def option_key(prefix: str, name: str) -> str:
    """The session key of one option widget."""
    return f"{prefix}_opt_{name}"


def reset_options_if_arch_changed(prefix: str, spec: ModelSpec) -> None:
    """When the architecture changes, put its defaults (and presets) into the option widgets.

    Without this a toggle keeps the value it had for the previous architecture
    (``alex_se`` -> ``alex_resnet`` would keep SE on).
    """
    tracker = f"{prefix}_options_for"
    if st.session_state.get(tracker) == spec.name:
        return
    for name, value in spec.defaults().items():
        st.session_state[option_key(prefix, name)] = value
    st.session_state[tracker] = spec.name


def option_widget(opt: Option, *, key: str) -> Any:
    """One widget for one option, chosen by its kind."""
    label = opt.label or opt.name
    common = {"key": key, "help": opt.help or None, "persist_state": PERSIST}
    if opt.kind == "bool":
        return st.toggle(label, **common)
    if opt.kind == "choice" and len(opt.choices) <= 4:
        return st.segmented_control(label, list(opt.choices), required=True, **common)
    if opt.choices:
        return st.selectbox(label, list(opt.choices), **common)
    if opt.kind == "int":
        return st.number_input(label, min_value=int(opt.low) if opt.low is not None else None,
                               max_value=int(opt.high) if opt.high is not None else None, step=1, **common)
    return st.number_input(label, min_value=opt.low, max_value=opt.high, format="%g", **common)


def option_widgets(spec: ModelSpec, *, prefix: str) -> dict[str, Any]:
    """Draw every option of ``spec``: plain ones in a row, grouped ones (per block/stage) in columns."""
    reset_options_if_arch_changed(prefix, spec)
    plain = [o for o in spec.options if not o.group]
    groups: dict[str, list[Option]] = {}
    for opt in spec.options:
        if opt.group:
            groups.setdefault(opt.group, []).append(opt)
    values: dict[str, Any] = {}
    switches = [o for o in plain if o.kind == "bool"]
    if switches:  # a row that wraps: a long label ("Local response normalisation") is never cut
        with st.container(horizontal=True, gap="medium"):
            for opt in switches:
                values[opt.name] = option_widget(opt, key=option_key(prefix, opt.name))
    others = [o for o in plain if o.kind != "bool"]
    for start in range(0, len(others), 3):
        row = others[start:start + 3]
        for col, opt in zip(st.columns(3), row):
            with col:
                values[opt.name] = option_widget(opt, key=option_key(prefix, opt.name))
    if groups:
        for col, (group, opts) in zip(st.columns(len(groups)), groups.items()):
            with col:
                st.markdown(f"**{group.capitalize()}**")
                for opt in opts:
                    values[opt.name] = option_widget(opt, key=option_key(prefix, opt.name))
    return values


def model_select(*, key: str, label: str = "Architecture", default: str | None = None, help: str | None = None) -> str:
    """A selectbox of registered architectures, shown by their display labels (default: the first registered)."""
    names = list_models()
    if key not in st.session_state or st.session_state[key] not in names:
        st.session_state[key] = default if default in names else names[0]
    return st.selectbox(label, names, key=key, format_func=lambda n: get_spec(n).label, help=help,
                        persist_state=PERSIST)


def architecture_picker(*, prefix: str, default: str | None = None, size: bool = True, classes: bool = True) -> Picked:
    """Architecture, its options, and (optionally) input size and number of classes."""
    top = st.columns([3, 1, 1]) if (size or classes) else [st.container()]
    with top[0]:
        arch = model_select(key=f"{prefix}_model", default=default)
    spec = get_spec(arch)
    image_size = num_classes = None
    if size:
        size_key = f"{prefix}_size"
        if st.session_state.get(f"{prefix}_size_for") != arch:  # a new architecture starts at its own size
            st.session_state[size_key] = spec.default_size
            st.session_state[f"{prefix}_size_for"] = arch
        with top[1]:
            image_size = int(st.number_input("Input size (px)", min_value=1, max_value=1024, step=1, key=size_key,
                                             help=f"Default {spec.default_size}, minimum {spec.min_size}.",
                                             persist_state=PERSIST))
    if classes:
        st.session_state.setdefault(f"{prefix}_classes", 1000)
        with top[-1]:
            num_classes = int(st.number_input("Classes", min_value=1, max_value=100000, step=1,
                                              key=f"{prefix}_classes", persist_state=PERSIST,
                                              help="Size of the new head: 1000 for ImageNet, 10 for CIFAR-10, 2 for ants vs bees."))
    if spec.description:
        st.caption(spec.description + (f"  \nPaper: {spec.paper}" if spec.paper else ""))
    options = option_widgets(spec, prefix=prefix) if spec.options else {}
    return Picked(arch=arch, options=options, image_size=image_size, num_classes=num_classes)


def open_store() -> RunStore:
    """The run store of this app's home folder (cheap: each call opens short-lived connections)."""
    return RunStore()


def link_to_train(text: str) -> None:
    """Say ``text`` and link to the Train page (plain words when the page is run on its own, as in tests)."""
    st.info(text, icon=":material/info:")
    try:
        st.page_link(TRAIN_PAGE, label="Go to the Train page", icon=":material/model_training:")
    except st.errors.StreamlitAPIException:
        st.markdown("Open the **Train** page from the sidebar.")
