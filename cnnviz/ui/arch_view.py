"""Pieces of the Architectures page: cost metrics, the layer table, side-by-side costs."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from cnnviz.models import get_spec
from cnnviz.ui import cached
from cnnviz.inspect import format_bytes, format_count, format_flops
from cnnviz.ui.logic import options_key, signed_delta


def _shape_text(shape) -> str:
    """``[1, 64, 55, 55]`` -> ``64 × 55 × 55`` (the batch dimension of one image dropped)."""
    if isinstance(shape, (list, tuple)) and shape and not isinstance(shape[0], (list, tuple)):
        dims = list(shape[1:]) if len(shape) > 1 and shape[0] == 1 else list(shape)
        return " × ".join(str(d) for d in dims)
    return str(shape)


def _exact(n: int) -> str:
    return f"{n:,}"


def cost_metrics(arch: str, options: dict, *, num_classes: int, image_size: int) -> None:
    """Parameters, FLOPs and activation memory, with the change against the default options."""
    summ = cached.summary(arch, options_key(options), num_classes, image_size)
    base_params, base_flops = cached.cost(arch, options_key(get_spec(arch).defaults()), num_classes, image_size)
    cols = st.columns(4)
    # Exact counts: one SE block adds a few hundred parameters to millions, and students look for it.
    cols[0].metric("Parameters", f"{summ.params:,}", signed_delta(summ.params, base_params, _exact),
                   delta_color="off", help=f"{format_count(summ.params)} parameters")
    cols[1].metric("Trainable", f"{summ.trainable_params:,}", help=format_count(summ.trainable_params))
    cols[2].metric("FLOPs per image", format_flops(summ.flops), signed_delta(summ.flops, base_flops, format_flops),
                   delta_color="off", help=f"{summ.flops:,} FLOPs for one {image_size} px image (a multiply-add is 2)")
    cols[3].metric("Activation memory", format_bytes(summ.activation_bytes),
                   help="Memory of every layer's output for one image (float32), kept for the backward pass.")


def layer_table(arch: str, options: dict, *, num_classes: int, image_size: int) -> None:
    """The per-layer summary as a dataframe."""
    summ = cached.summary(arch, options_key(options), num_classes, image_size)
    frame = pd.DataFrame(summ.layers)
    if "output_shape" in frame.columns:
        frame["output_shape"] = frame["output_shape"].map(_shape_text)
    number = st.column_config.NumberColumn
    st.dataframe(frame, hide_index=True, height=420, key="arch_layers",
                 column_config={"params": number("params", format="localized"),
                                "trainable": number("trainable", format="localized"),
                                # A short header: a narrow window keeps params and trainable in view.
                                "output_shape": st.column_config.TextColumn(
                                    "output", help="The layer's output: channels × height × width")})


def printed_model(arch: str, options: dict, *, num_classes: int, image_size: int) -> None:
    """The model as PyTorch prints it."""
    summ = cached.summary(arch, options_key(options), num_classes, image_size)
    with st.expander("Printed model (as `print(model)` shows it)"):
        st.code(summ.text, language="text")


def side_by_side(archs: list[str], *, image_size: int, num_classes: int) -> None:
    """A table of the default-options costs of ``archs`` at one input size, and how they compare."""
    from cnnviz.ui.cached import input_size_problem

    rows, summaries = {}, []
    for arch in archs:
        spec = get_spec(arch)
        options = spec.defaults()
        problem = input_size_problem(arch, image_size, options)
        if problem:
            st.error(problem)
            continue
        summ = cached.summary(arch, options_key(options), num_classes, image_size)
        summaries.append((spec.label, summ))
        rows[spec.label] = {"parameters": f"{summ.params:,}", "FLOPs per image": format_flops(summ.flops),
                            "activation memory": format_bytes(summ.activation_bytes),
                            "layers listed": str(len(summ.layers)),
                            "input sizes": f"default {spec.default_size} px, minimum {spec.min_size} px"}
    if rows:
        st.table(pd.DataFrame(rows))
    if len(summaries) == 2 and all(s.params and s.flops for _, s in summaries):
        (a, sa), (b, sb) = summaries
        st.caption(f"{a} has {_ratio(sa.params, sb.params)} the parameters of {b} and needs "
                   f"{_ratio(sa.flops, sb.flops)} its FLOPs per {image_size} px image.")


def _ratio(x: float, y: float) -> str:
    """``5.2x`` or ``0.19x`` (x relative to y)."""
    r = x / y
    return f"{r:.2g}×" if r < 10 else f"{r:.0f}×"
