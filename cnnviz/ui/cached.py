"""Cached calls into the library, keyed by plain values so every session shares them.

``st.cache_data`` for tables and numbers (summaries, costs, previews);
``st.cache_resource`` only for read-only shared objects (loaded datasets).
Options are passed as sorted tuples of items so the cache key is order-free.
"""

from __future__ import annotations

import streamlit as st


@st.cache_data(show_spinner=False, max_entries=512)
def summary(arch: str, options: tuple, num_classes: int, image_size: int):
    """``cnnviz.inspect.summarize`` for one configuration (a Summary)."""
    from cnnviz.inspect import summarize

    return summarize(arch, options=dict(options), num_classes=num_classes, image_size=image_size)


@st.cache_data(show_spinner=False, max_entries=1024)
def cost(arch: str, options: tuple, num_classes: int, image_size: int) -> tuple[int, int]:
    """(parameters, FLOPs per image) for one configuration."""
    from cnnviz.inspect import model_cost

    return model_cost(arch, options=dict(options), num_classes=num_classes, image_size=image_size)


def input_size_problem(arch: str, image_size: int, options: dict) -> str | None:
    """The message naming the minimum when ``image_size`` is too small for ``arch``, else None."""
    from cnnviz.inspect import check_input_size

    try:
        check_input_size(arch, image_size, options=options)
    except ValueError as exc:
        return str(exc)
    return None


@st.cache_data(show_spinner=False, max_entries=512)
def block_diagram(arch: str, options: tuple) -> str:
    """Graphviz DOT of the architecture's blocks, shortcuts and SE blocks."""
    from cnnviz.inspect import block_diagram as dot

    return dot(arch, options=dict(options))


@st.cache_data(show_spinner="Measuring this device's speed once for this architecture...", max_entries=64)
def flops_per_second(arch: str, image_size: int) -> float:
    """Measured training throughput (FLOP/s) of ``arch`` at ``image_size`` with default options."""
    from cnnviz.recipes import measure_flops_per_second

    return measure_flops_per_second(arch=arch, image_size=image_size)


@st.cache_data(show_spinner=False, max_entries=256)
def _benchmark_seconds(config_json: str, flops_per_second: float) -> float:
    from cnnviz.recipes import estimate_run_seconds
    from cnnviz.training.config import TrainConfig

    return estimate_run_seconds(TrainConfig.from_json(config_json), flops_per_second=flops_per_second)


def benchmark_seconds(config) -> float:
    """Seconds to train ``config`` from its FLOPs and one timed test step: the guess before its model has run here.

    Cached by config, since counting a model's FLOPs takes a moment; the test step is timed once.
    """
    from cnnviz.recipes import REFERENCE_STEP

    return _benchmark_seconds(config.to_json(), flops_per_second(*REFERENCE_STEP))
