"""Inspecting an architecture without training it: layer table, parameters, FLOPs,
activation memory, input-size check and a block diagram.

Everything here builds the model on PyTorch's ``meta`` device: tensors have shapes but no
memory or values, so even VGG-16 at 224 px is summarised in milliseconds, and toggling an
option on the Architectures page re-summarises instantly. Results are cached per
(architecture, options, classes, size).

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode``: two FLOPs per
multiply-add, convolutions and linear layers only (ReLU, pooling, batch norm and additions
are not counted). This is the convention of the course's reference figures (AlexNet 1.43
GFLOPs at 224 px); torchvision's model tables report multiply-adds, half these numbers.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torchinfo
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnviz.models import Stage, freeze_backbone, get_spec, meta_model, resolve_options

FLOPS_UNIT = "FLOPs (2 per multiply-add; conv and linear layers)"
MAX_PROBE_SIZE = 1024  # the input-size search gives up above this


@dataclass(frozen=True)
class Summary:
    """A model's layer table and totals at one input size (batch of one image)."""

    arch: str
    options: dict[str, Any]
    num_classes: int
    image_size: int
    layers: list[dict[str, Any]]  # rows: layer, type, depth, output_shape, params, trainable
    params: int
    trainable_params: int
    flops: int  # 2 per multiply-add, see FLOPS_UNIT
    activation_bytes: int  # float32 outputs of every layer for one image (what backward keeps)
    text: str  # the printed model (its repr)
    flops_unit: str = FLOPS_UNIT
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (the CLI's ``summary --json`` document)."""
        data = asdict(self)
        data.pop("text")
        return data

    def table(self) -> str:
        """The layer table and totals as plain text (what the CLI prints)."""
        header = f"{'Layer':<42} {'Type':<20} {'Output shape':<20} {'Params':>12} {'Trainable':>12}"
        lines = [header, "-" * len(header)]
        for row in self.layers:
            name = "  " * (row["depth"] - 1) + row["layer"].rsplit(".", 1)[-1]
            shape = "x".join(str(d) for d in row["output_shape"][1:]) if row["output_shape"] else "-"
            lines.append(f"{name[:42]:<42} {row['type'][:20]:<20} {shape:<20} {row['params']:>12,} {row['trainable']:>12,}")
        lines += ["-" * len(header),
                  f"Parameters: {self.params:,} ({self.trainable_params:,} trainable)",
                  f"FLOPs at {self.image_size}x{self.image_size}: {format_flops(self.flops)} (2 per multiply-add)",
                  f"Activations per image: {format_bytes(self.activation_bytes)}"]
        return "\n".join(lines)


def format_count(n: float) -> str:
    """61100840 -> '61.1 M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:g}"


def format_flops(flops: float) -> str:
    """1428376960 -> '1.43 GFLOPs'."""
    text = format_count(flops)
    return f"{text}FLOPs" if text[-1].isalpha() else f"{text} FLOPs"


def format_bytes(n: float) -> str:
    """Bytes as KiB/MiB/GiB."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def _key(name: str, options: dict[str, Any] | None) -> tuple:
    """A hashable cache key of the resolved options (validates them too)."""
    return tuple(sorted(resolve_options(name, options).items()))


def summarize(name: str, *, options: dict[str, Any] | None = None, num_classes: int = 1000,
              image_size: int | None = None, frozen: bool = False, depth: int = 3) -> Summary:
    """Layer table, totals, FLOPs and activation memory of ``name`` at ``image_size`` px.

    ``frozen=True`` shows the "freeze" phase (only the head trains); ``depth`` limits how
    deep nested modules are listed. Raises ValueError for an unknown option or too small input.
    """
    size = image_size or get_spec(name).default_size
    return _sized(name, size, options, _summarize, name, _key(name, options), num_classes, size, frozen, depth)


def _sized(name: str, size: int, options: dict[str, Any] | None, work, *args):
    """Run ``work(*args)``; a too small input becomes check_input_size's ValueError.

    The input-size search only runs when the forward pass fails, so the usual case costs
    no extra forward pass.
    """
    if size < get_spec(name).min_size:
        check_input_size(name, size, options)
    try:
        return work(*args)
    except RuntimeError:
        check_input_size(name, size, options)
        raise


@functools.lru_cache(maxsize=256)
def _summarize(name: str, key: tuple, num_classes: int, size: int, frozen: bool, depth: int) -> Summary:
    model = meta_model(name, num_classes=num_classes, options=dict(key)).eval()
    if frozen:
        freeze_backbone(model)
    x = torch.zeros(1, 3, size, size, device="meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:  # one forward for table and FLOPs
        info = torchinfo.summary(model, input_data=x, device=torch.device("meta"), depth=depth, verbose=0)
    names = {id(m): n for n, m in model.named_modules()}
    rows, activation = [], 0
    for layer in info.summary_list:
        shape = _flat_shape(layer.output_size)
        if layer.is_leaf_layer and not getattr(layer.module, "inplace", False):
            activation += 4 * math.prod(shape) if shape else 0  # in-place layers reuse their input's memory
        if layer.depth < 1 or layer.depth > depth:
            continue
        rows.append({"layer": names.get(id(layer.module), layer.var_name), "type": layer.class_name,
                     "depth": layer.depth, "output_shape": shape, "params": int(layer.num_params),
                     "trainable": int(layer.trainable_params)})
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Summary(arch=name, options=dict(key), num_classes=num_classes, image_size=size, layers=rows,
                   params=params, trainable_params=trainable, flops=int(counter.get_total_flops()),
                   activation_bytes=activation, text=repr(model))


def _flat_shape(size: Any) -> list[int]:
    """torchinfo's output size as a list of ints ([] for outputs that are not one tensor)."""
    if isinstance(size, (list, tuple)) and all(isinstance(d, int) for d in size):
        return list(size)
    return []


def _count_flops(model: nn.Module, x) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return int(counter.get_total_flops())


def model_cost(name: str, *, options: dict[str, Any] | None = None, num_classes: int = 1000,
               image_size: int | None = None) -> tuple[int, int]:
    """(parameters, FLOPs) of ``name`` at ``image_size``: the fast path for cost figures."""
    size = image_size or get_spec(name).default_size
    return _sized(name, size, options, _cost, name, _key(name, options), num_classes, size)


@functools.lru_cache(maxsize=512)
def _cost(name: str, key: tuple, num_classes: int, size: int) -> tuple[int, int]:
    model = meta_model(name, num_classes=num_classes, options=dict(key)).eval()
    params = sum(p.numel() for p in model.parameters())
    return params, _count_flops(model, torch.zeros(1, 3, size, size, device="meta"))


def min_input_size(name: str, options: dict[str, Any] | None = None) -> int:
    """The smallest square input ``name`` accepts with ``options``: the spec's ``min_size``, or
    the geometry's minimum (found by shape-only forward passes) when the options need more."""
    return _geometric_min(name, _key(name, options))


@functools.lru_cache(maxsize=256)
def _geometric_min(name: str, key: tuple) -> int:
    model = meta_model(name, num_classes=10, options=dict(key)).eval()
    floor = get_spec(name).min_size
    if _fits(model, floor):  # the usual case: one shape-only forward, no search
        return floor
    if not _fits(model, MAX_PROBE_SIZE):
        return MAX_PROBE_SIZE + 1
    low, high = floor, MAX_PROBE_SIZE  # invariant: low fails, high fits
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if _fits(model, mid) else (mid, high)
    return high


def _fits(model: nn.Module, size: int) -> bool:
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size, device="meta"))
    except RuntimeError:  # "Output size is too small", "Kernel size can't be greater than input"...
        return False
    return True


def check_input_size(name: str, image_size: int, options: dict[str, Any] | None = None) -> None:
    """Raise ValueError naming the minimum when ``image_size`` is too small for ``name``."""
    minimum = min_input_size(name, options)
    if image_size < minimum:
        raise ValueError(f"{name} needs inputs of at least {minimum}x{minimum} pixels, got {image_size}x{image_size}"
                         + (" (an architecture made for 32 px, such as alexnet_cifar, takes small images)"
                            if minimum > 32 else ""))


def block_diagram(name: str, options: dict[str, Any] | None = None) -> str:
    """A graphviz DOT string of the network's blocks: dashed arrows are shortcuts into a
    (+) node (one per residual block), orange hexagons are squeeze-and-excitation blocks."""
    spec = get_spec(name)
    resolved = resolve_options(name, options)
    stages = spec.diagram(resolved) if spec.diagram else [Stage("model", spec.label)]
    lines = [
        "digraph cnnviz {",
        '  rankdir=TB; nodesep=0.3; ranksep=0.25; forcelabels=true;',
        '  node [shape=box, style="rounded,filled", fillcolor="#e8eef8", color="#4a6fa5", fontname="Helvetica", fontsize=11];',
        '  edge [color="#555555", arrowsize=0.7];',
        '  input [label="input image", shape=ellipse, fillcolor="#ffffff"];',
    ]
    current = "input"
    for i, stage in enumerate(stages):
        if stage.shortcut and stage.blocks > 1:
            current = _residual_stage(lines, i, stage, current)
            continue
        node = f"s{i}"
        lines.append(f'  {node} [label="{_dot_text(stage.label)}"];')
        lines.append(f"  {current} -> {node};")
        tail = node
        if stage.se == "inside":  # SE-ResNet: on the residual branch, before the sum
            se = f"se{i}"
            lines.append(f'  {se} [label="SE\\n(in every block,\\nbefore the sum)", shape=hexagon, fillcolor="#ffb74d", color="#e65100"];')
            lines.append(f"  {tail} -> {se};")
            tail = se
        if stage.shortcut:
            add = f"add{i}"
            lines.append(f'  {add} [label="+", shape=circle, width=0.3, fixedsize=true, fillcolor="#c8e6c9", color="#2e7d32"];')
            lines.append(f"  {tail} -> {add};")
            lines.append(_skip(current, add, stage.shortcut))
            tail = add
        if stage.se == "after":
            se = f"se{i}"
            lines.append(f'  {se} [label="SE", shape=hexagon, fillcolor="#ffb74d", color="#e65100"];')
            lines.append(f"  {tail} -> {se};")
            tail = se
        current = tail
    lines.append('  output [label="class scores", shape=ellipse, fillcolor="#ffffff"];')
    lines.append(f"  {current} -> output;")
    lines.append("}")
    return "\n".join(lines)


BLOCKS_DRAWN = 6  # a stage with more blocks draws its first two, one box for the middle ones, its last


def _skip(source: str, add: str, label: str) -> str:
    """A dashed skip arc that leaves and joins on the right, its label beside the arc, not under it."""
    return (f'  {source} -> {add} [style=dashed, color="#2e7d32", fontcolor="#2e7d32", fontsize=9, '
            f'tailport=e, headport=e, constraint=false, xlabel=" {_dot_text(label)} "];')


def _residual_stage(lines: list[str], i: int, stage, current: str) -> str:
    """One cluster per stage with one box, one (+) and one skip arc per residual block; returns the last node."""
    import re

    header, _, body = stage.label.partition("\n")
    kind = re.sub(r" x \d+", "", body) or header
    n = stage.blocks
    shown = list(range(n)) if n <= BLOCKS_DRAWN else [0, 1, None, n - 1]
    lines.append(f"  subgraph cluster_{i} {{")
    lines.append(f'    label="{_dot_text(header)}"; labeljust=l; fontname="Helvetica"; fontsize=10; '
                 'style="rounded,dashed"; color="#9aa9c2";')
    for j in shown:
        tag = f"s{i}b{j if j is not None else 'm'}"
        if j is None:
            text, skip = f"... {n - 3} more blocks\nthe same, each with\nits identity skip", "identity"
        else:
            text, skip = f"{stage.name}.{j}: {kind}", stage.shortcut if j == 0 else "identity"
        lines.append(f'    {tag} [label="{_dot_text(text)}"];')
        lines.append(f"    {current} -> {tag};")
        tail = tag
        if stage.se == "inside":
            se = f"{tag}se"
            lines.append(f'    {se} [label="SE", shape=hexagon, fillcolor="#ffb74d", color="#e65100"];')
            lines.append(f"    {tail} -> {se};")
            tail = se
        add = f"{tag}add"
        lines.append(f'    {add} [label="+", shape=circle, width=0.3, fixedsize=true, fillcolor="#c8e6c9", color="#2e7d32"];')
        lines.append(f"    {tail} -> {add};")
        lines.append("  " + _skip(current, add, skip))
        current = add
    lines.append("  }")
    return current


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
