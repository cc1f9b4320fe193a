"""6. Why residuals work: plain against residual networks at depth 20 and 56 (the degradation
problem), zero-padding shortcuts (option A) against 1x1 projections (option B), and how the
gradient reaching each layer differs."""

from __future__ import annotations

import math
import statistics
from typing import Sequence

import pandas as pd

from cnnviz.experiments.planning import config, dataset_for
from cnnviz.experiments.spec import Choices, Experiment, Outcome, Pair, PlannedRun, Published, by_key

HE_2016 = "He, Zhang, Ren and Sun, 2016: Deep Residual Learning for Image Recognition, table 6"
HE_2016_FIGURE = "He, Zhang, Ren and Sun, 2016: Deep Residual Learning for Image Recognition, figure 6"
DEPTHS = (20, 56)
KINDS = (("plain", "plain"), ("resnet", "ResNet"))  # (run key prefix, name): residual=False, True
GRADIENT_PAIR = ("plain-56", "resnet-56")  # whose gradients the conclusion and the chart compare first


def plan(choices: Choices) -> list[PlannedRun]:
    """Plain and residual nets at each depth (shortcut A), and the deepest with shortcut B."""
    dataset = dataset_for(choices, "cifar10")
    if choices.size == "full":
        # He et al. section 4.2 (shortened): lr 0.1, batch 128, crop + flip; they trained 64k iterations.
        common = dict(epochs=40, batch_size=128, lr=0.1, image_size=32, augment="cifar", scheduler="cosine",
                      weight_decay=1e-4)
    else:
        # Quick: batch 32 for twice the steps per image seen; depth 56 needs a few hundred steps to move.
        common = dict(epochs=5, batch_size=32, lr=0.05, image_size=32, augment="none", subset=200,
                      val_subset=50, weight_decay=1e-4)
    runs = []
    for depth in DEPTHS:
        for residual in (False, True):
            key = f"{'resnet' if residual else 'plain'}-{depth}"
            label = f"{'ResNet' if residual else 'plain'}-{depth}" + (" (shortcut A)" if residual else "")
            runs.append(PlannedRun(key, label, config(
                arch="cifar_resnet", options={"depth": depth, "residual": residual, "shortcut": "A"},
                dataset=dataset, mode="scratch", track_grad_norms=True, **common)))
    deep = DEPTHS[-1]
    runs.append(PlannedRun(f"resnet-{deep}-B", f"ResNet-{deep} (shortcut B, 1x1 projections)", config(
        arch="cifar_resnet", options={"depth": deep, "residual": True, "shortcut": "B"},
        dataset=dataset, mode="scratch", track_grad_norms=True, **common)))
    return runs


def grad_norm_frame(outcomes: Sequence[Outcome]) -> pd.DataFrame:
    """Per-layer gradient norms over training: one row per (run, epoch, layer), layers in network order."""
    rows = []
    for o in outcomes:
        for row in o.epochs:
            norms = row.get("grad_norms") or {}
            for depth, (layer, norm) in enumerate(norms.items()):
                if norm is not None and math.isfinite(norm):
                    rows.append({"run": o.label, "key": o.key, "epoch": int(row.get("epoch", 0)),
                                 "layer": layer, "depth": depth, "grad_norm": float(norm)})
    return pd.DataFrame(rows, columns=["run", "key", "epoch", "layer", "depth", "grad_norm"])


def early_late_ratio(row: dict, *, layers: int = 3) -> float | None:
    """Gradient norm of the first ``layers`` conv layers over that of the last ``layers`` (medians; head excluded).

    Above 1 the gradient grows towards the input (exploding), below 1 it shrinks (vanishing).
    """
    norms = [float(v) for k, v in (row.get("grad_norms") or {}).items() if v is not None and k != "fc"]
    if len(norms) < 2 * layers:
        return None
    early, late = statistics.median(norms[:layers]), statistics.median(norms[-layers:])
    return early / late if late > 0 and early > 0 else None


def _factor(ratio: float) -> str:
    if ratio >= 1:
        return f"{ratio:.0f}x larger" if ratio >= 10 else f"{ratio:.1f}x larger"
    return f"{1 / ratio:.0f}x smaller" if ratio <= 0.1 else f"{1 / ratio:.1f}x smaller"


def _gradient_line(plain: Outcome, residual: Outcome) -> list[str]:
    """Compare how evenly plain and residual nets spread their gradient over depth, first and last epoch."""
    ratios = {}
    for o in (plain, residual):
        rows = [r for r in o.epochs if early_late_ratio(r)]
        if not rows:
            return []
        ratios[o.key] = (rows[0]["epoch"], early_late_ratio(rows[0]), rows[-1]["epoch"], early_late_ratio(rows[-1]))
    (e0, p0, e1, p1), (_, r0, _, r1) = ratios[plain.key], ratios[residual.key]
    spread = lambda *rs: max(abs(math.log10(r)) for r in rs)  # noqa: E731 - orders of magnitude away from even
    verdict = ("the plain network's gradient explodes or vanishes with depth, the shortcuts keep every layer's "
               "within a small factor" if spread(p0, p1) > spread(r0, r1) + 0.5
               else "no clear difference between them in this run")
    return [f"Gradient at the first layers compared with the last conv layers: {plain.label.split(' (')[0]} "
            f"{_factor(p0)} in epoch {e0} and {_factor(p1)} in epoch {e1}; {residual.label.split(' (')[0]} "
            f"{_factor(r0)} and {_factor(r1)} — {verdict}."]


def depth_lines(outcomes: list[Outcome]) -> list[str]:
    """Deep against shallow for each kind of network (training loss says whether it is degradation),
    then how the gradient spreads over depth in the plain and the residual deep net."""
    by = by_key(outcomes)
    shallow_depth, deep_depth = DEPTHS[0], DEPTHS[-1]
    lines = []
    for kind, name in KINDS:
        shallow, deep = by.get(f"{kind}-{shallow_depth}"), by.get(f"{kind}-{deep_depth}")
        if shallow and deep:
            ls, ld = shallow.last("train_loss"), deep.last("train_loss")
            verdict = ""
            if ls is not None and ld is not None:
                worse = ld > ls
                verdict = (f"; final training loss {ld:.3f} vs {ls:.3f}: "
                           + ("the deeper net fits its own training data worse: degradation" if worse and kind == "plain"
                              else "deeper trained worse here too" if worse
                              else "the deeper net fits its training data better, as depth should allow"))
            lines.append(f"{name}-{deep_depth} vs {name}-{shallow_depth}: {deep.best_val_acc:.3f} vs "
                         f"{shallow.best_val_acc:.3f} best val accuracy{verdict}.")
    p, r = (by.get(k) for k in GRADIENT_PAIR)
    if p and r:
        lines += _gradient_line(p, r)
    return lines


EXPERIMENT = Experiment(
    key="exp6", number=6, title="Why residuals work: plain vs residual at depth 20 and 56",
    short_title="Plain vs residual",
    question="If deeper is better, why does a plain 56-layer network train worse than a 20-layer one — and what "
             "do shortcuts change?",
    expectation="Plain-56 ends with higher training loss than plain-20 (degradation: not overfitting, since "
                "training error is worse too); ResNet-56 at least matches ResNet-20; option A and B close; the "
                "plain network's early layers receive much smaller gradients.",
    why="Each plain layer multiplies the backward signal by its Jacobian, so it can shrink layer after layer; "
        "y = F(x) + x adds an identity path (dy/dx = dF/dx + 1) and lets a block default to doing nothing.",
    dataset="cifar10", planner=plan,
    published=(
        Published("ResNet-20 (option A)", 0.9125, HE_2016, "resnet-20"),
        Published("ResNet-56 (option A)", 0.9303, HE_2016, "resnet-56"),
        Published("plain-56 vs plain-20", None, HE_2016_FIGURE, text="plain-56 has higher training and test error"),
    ),
    pairs=(Pair("resnet-56-B", "resnet-56", ("projections (B)", "zero-padding (A)"),
                prefix="Shortcut B vs A at depth 56: "),),
    custom=depth_lines, sections=("custom", "pairs", "noise", "published"),
    chart="grad_norms", highlight=GRADIENT_PAIR,
    settings={"quick": "32 px, 200 images per class (50 for validation), 5 epochs, batch 32, gradient norms per layer",
              "full": "32 px, all 50,000 images, 40 epochs, lr 0.1, cosine schedule"},
)
