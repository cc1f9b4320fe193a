"""Altair chart builders: a DataFrame (or plain lists) in, a chart out.

Pure functions with no Streamlit import, so the Train and Compare pages, the
tests and a notebook all draw the same pictures.
"""

from __future__ import annotations

from typing import Sequence

import altair as alt
import pandas as pd

SPLIT_COLORS = alt.Scale(domain=["train", "val"], range=["#4c78a8", "#f58518"])
METRIC_TITLES = {"loss": "loss", "acc": "accuracy", "top5": "top-5 accuracy"}
BAR_STEP = 22  # px per bar of a horizontal bar chart: every class label stays readable
CONFUSION_SELECTION = "cell"  # name of the confusion-matrix point selection (st.altair_chart on_select)
# Ten clearly different hues (Tableau 10): a run keeps its colour on every chart, chosen by its id.
RUN_PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#eeca3b", "#9d755d",
               "#ff9da6", "#79706e")
PERCENT = ".1%"  # one format for every accuracy the app shows: 51.6%
LEGEND = alt.Legend(orient="bottom", direction="vertical", labelLimit=0, titleLimit=0)  # full run names
CHANCE_COLOR = "#888888"


def run_colors(labels: Sequence[str]) -> alt.Scale:
    """A colour scale over run labels: ``#<id> ...`` takes the palette entry of its id, the next free one on a clash."""
    taken, colors = set(), []
    for position, label in enumerate(labels):
        text = str(label)
        digits = text[1:].split(" ", 1)[0] if text.startswith("#") else ""
        slot = int(digits) % len(RUN_PALETTE) if digits.isdigit() else position % len(RUN_PALETTE)
        for step in range(len(RUN_PALETTE)):
            if (slot + step) % len(RUN_PALETTE) not in taken or len(taken) >= len(RUN_PALETTE):
                slot = (slot + step) % len(RUN_PALETTE)
                break
        taken.add(slot)
        colors.append(RUN_PALETTE[slot])
    return alt.Scale(domain=list(labels), range=colors)


def chance_rule(chance: float) -> alt.Chart:
    """A dotted horizontal line at chance level (1 / number of classes), labelled "chance"."""
    frame = pd.DataFrame({"chance": [float(chance)], "label": [f"chance {chance:{PERCENT}}"]})
    rule = alt.Chart(frame).mark_rule(strokeDash=[2, 3], color=CHANCE_COLOR).encode(y="chance:Q")
    # The label sits at the right end: at the left it covered the axis labels and the first epoch's points.
    text = alt.Chart(frame).mark_text(align="right", baseline="bottom", dx=-3, dy=-2, fontSize=10,
                                      color=CHANCE_COLOR).encode(y="chance:Q", x=alt.value("width"), text="label:N")
    return rule + text


def curves_frame(epochs: pd.DataFrame, *, metric: str) -> pd.DataFrame:
    """Long format of per-epoch rows: one row per (run, epoch, split) with ``value`` and ``wall`` (cumulative seconds)."""
    frame = epochs.copy()
    if "run" not in frame.columns:
        frame["run"] = "run"
    frame = frame.sort_values(["run", "epoch"])
    seconds = frame["seconds"] if "seconds" in frame.columns else pd.Series(0.0, index=frame.index)
    frame["wall"] = seconds.fillna(0).groupby(frame["run"]).cumsum()
    columns = {f"train_{metric}": "train", f"val_{metric}": "val"}
    present = {k: v for k, v in columns.items() if k in frame.columns}
    long = frame.melt(id_vars=["run", "epoch", "wall"], value_vars=list(present), var_name="split", value_name="value")
    long["split"] = long["split"].map(present)
    return long.dropna(subset=["value"]).reset_index(drop=True)


def curves(epochs: pd.DataFrame, *, metric: str = "loss", x: str = "epoch", height: int = 260,
           epochs_total: int | None = None, chance: float | None = None) -> alt.Chart:
    """Train and validation ``metric`` (loss/acc) against ``x`` (``epoch`` or ``wall`` seconds).

    ``epochs`` holds the stored epoch rows (``epoch``, ``train_loss``,
    ``val_acc``, ``seconds``...). With a ``run`` column several runs overlay:
    colour tells runs apart (stable per run id) and the dash tells train from validation.
    ``epochs_total`` fixes the epoch axis, so a live chart grows towards its end; ``chance``
    (1 / classes) draws the chance level on an accuracy chart. Every epoch is a point, so a
    one-epoch run shows.
    """
    long = curves_frame(epochs, metric=metric)
    x_title = "epoch" if x == "epoch" else "wall time (s)"
    if x == "epoch":
        last = max(epochs_total or 0, int(long["epoch"].max()) if len(long) else 1, 2)
        x_enc = alt.X("epoch:Q", title=x_title, axis=alt.Axis(tickMinStep=1, format="d"),
                      scale=alt.Scale(domain=[1, last], nice=False, padding=10))
    else:
        x_enc = alt.X(f"{x}:Q", title=x_title, scale=alt.Scale(zero=True, padding=10))
    y_title = METRIC_TITLES.get(metric, metric)
    is_acc = metric in ("acc", "top5")
    # A loss spans decades (a first epoch's validation loss of 20 beside 0.1 later): on a linear
    # axis the first point flattens the rest, so loss reads on a log axis.
    log_loss = not is_acc and len(long) and float(long["value"].min()) > 0
    if log_loss:
        y_title += " (log scale)"
    y_scale = (alt.Scale(domain=[0, 1]) if is_acc else alt.Scale(type="log") if log_loss
               else alt.Scale(zero=False, padding=6))
    y_axis = alt.Axis(format="%") if is_acc else alt.Axis()
    runs = list(dict.fromkeys(long["run"]))
    several = len(runs) > 1
    color = (alt.Color("run:N", title="run", scale=run_colors(runs), legend=LEGEND, sort=runs) if several
             else alt.Color("split:N", title=None, scale=SPLIT_COLORS, legend=alt.Legend(orient="bottom")))
    dash = alt.StrokeDash("split:N", title="split", sort=["train", "val"],
                          legend=alt.Legend(orient="bottom") if several else None)
    value_format = PERCENT if is_acc else ".4f"
    tooltip = ["run:N", "split:N", alt.Tooltip("epoch:Q", format="d"),
               alt.Tooltip("wall:Q", title="seconds", format=".1f"),
               alt.Tooltip("value:Q", title=y_title, format=value_format)]
    base = alt.Chart(long).encode(x=x_enc, y=alt.Y("value:Q", title=y_title, scale=y_scale, axis=y_axis), color=color,
                                  strokeDash=dash, detail="run:N", tooltip=tooltip)
    chart = base.mark_line() + base.mark_point(filled=True, size=50, opacity=1)
    if chance is not None and is_acc:
        chart = chart + chance_rule(chance)
    return chart.properties(height=height)


def batch_loss(batches: pd.DataFrame, *, window: int = 20, height: int = 200) -> alt.Chart:
    """The per-batch training loss (faint) with its running mean over ``window`` batches, with a legend."""
    frame = batches[["step", "loss"]].copy().sort_values("step")
    frame["smoothed"] = frame["loss"].rolling(window, min_periods=1).mean()
    raw_name, smooth_name = "each batch", f"mean of last {window}"
    long = frame.rename(columns={"loss": raw_name, "smoothed": smooth_name}).melt(
        id_vars=["step"], value_vars=[raw_name, smooth_name], var_name="series", value_name="loss")
    color = alt.Color("series:N", title=None, sort=[raw_name, smooth_name],
                      scale=alt.Scale(domain=[raw_name, smooth_name], range=["#9ab8d8", "#1f3b63"]),
                      legend=alt.Legend(orient="top-right"))
    return alt.Chart(long).mark_line().encode(
        x=alt.X("step:Q", title="batch", axis=alt.Axis(tickMinStep=1, format="d")),
        y=alt.Y("loss:Q", title="training loss", scale=alt.Scale(zero=False)),
        color=color, tooltip=[alt.Tooltip("step:Q", title="batch", format="d"), "series:N",
                              alt.Tooltip("loss:Q", format=".4f")],
    ).properties(height=height)


def confusion_frame(matrix: Sequence[Sequence[int]], classes: Sequence[str]) -> pd.DataFrame:
    """Long format of a confusion matrix (rows true, columns predicted) with a row-normalised ``rate``."""
    rows = []
    for t, row in enumerate(matrix):
        total = sum(row) or 1
        for p, count in enumerate(row):
            rows.append({"true": classes[t], "predicted": classes[p], "count": int(count), "rate": count / total,
                         "true_index": t, "pred_index": p})
    return pd.DataFrame(rows)


def confusion_size(num_classes: int) -> int:
    """The side in px of a square confusion matrix: a readable cell per class (28-40 px), numbers fit."""
    n = max(1, int(num_classes))
    cell = 40 if n <= 6 else 32 if n <= 12 else 24 if n <= 20 else max(5, 560 // n)
    return max(120, n * cell)


def confusion(frame: pd.DataFrame, *, selectable: bool = False, size: int | None = None) -> alt.Chart:
    """A square heat map of a confusion frame (see ``confusion_frame``); colour is the row-normalised rate.

    ``size`` (px per side) defaults to ``confusion_size`` of the class count. With
    ``selectable`` a click selects one cell (selection named ``CONFUSION_SELECTION`` over
    ``true_index``/``pred_index``). Show it with ``width="content"`` so it stays square.
    """
    order = list(dict.fromkeys(frame.sort_values("true_index")["true"]))
    n = len(order)
    size = size or confusion_size(n)
    angle = 0 if n <= 4 and max((len(str(c)) for c in order), default=0) <= 8 else -45
    base = alt.Chart(frame).encode(
        x=alt.X("predicted:N", sort=order, title="predicted",
                # Every class named under its column while cells are wide enough (Vega hid every other one).
                axis=alt.Axis(labelAngle=angle, labelLimit=110, labels=n <= 40, labelOverlap=n > 20)),
        y=alt.Y("true:N", sort=order, title="true", axis=alt.Axis(labelLimit=110, labels=n <= 40)),
    )
    tooltip = ["true:N", "predicted:N", "count:Q", alt.Tooltip("rate:Q", format=PERCENT)]
    rect = base.mark_rect().encode(color=alt.Color("rate:Q", title="share of true class",
                                                   scale=alt.Scale(scheme="blues", domain=[0, 1]),
                                                   legend=alt.Legend(format="%", orient="right", gradientLength=min(size, 160))),
                                   tooltip=tooltip)
    if selectable:
        pick = alt.selection_point(name=CONFUSION_SELECTION, fields=["true_index", "pred_index"], on="click", empty=False)
        rect = rect.add_params(pick).encode(strokeWidth=alt.condition(pick, alt.value(3), alt.value(0)),
                                            stroke=alt.value("#d62728"))
    chart = rect
    cell = size / max(n, 1)
    if n <= 20 and cell >= 18:  # numbers stop being readable in smaller cells
        text = base.mark_text(fontSize=11 if cell >= 28 else 9).encode(
            text="count:Q", color=alt.condition("datum.rate > 0.5", alt.value("white"), alt.value("black")))
        chart = rect + text
    # "pad": the cells get the whole size, axes and legend add to it. Streamlit's default ("fit")
    # fits everything into the size and squeezed a 10-class matrix to 12 px wide columns.
    return chart.properties(width=size, height=size, autosize=alt.AutoSizeParams(type="pad", contains="padding"))


def per_class_accuracy(classes: Sequence[str], accuracy: Sequence[float], *, height: int | None = None) -> alt.Chart:
    """Horizontal bars of validation accuracy per class."""
    frame = pd.DataFrame({"class": list(classes), "accuracy": [float(a) for a in accuracy]})
    return alt.Chart(frame).mark_bar().encode(
        y=alt.Y("class:N", sort=list(classes), title=None),
        x=alt.X("accuracy:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
        tooltip=["class:N", alt.Tooltip("accuracy:Q", format=PERCENT)],
    ).properties(height=height or ({"step": BAR_STEP} if len(frame) <= 30 else 600))  # CIFAR-100: tooltips name them


def class_counts(counts: dict[str, int], *, height: int | None = None) -> alt.Chart:
    """Horizontal bars of images per class."""
    frame = pd.DataFrame({"class": list(counts), "images": list(counts.values())})
    return alt.Chart(frame).mark_bar().encode(
        y=alt.Y("class:N", sort=list(counts), title=None), x=alt.X("images:Q", title="images"),
        tooltip=["class:N", "images:Q"],
    ).properties(height=height or ({"step": BAR_STEP} if len(frame) <= 30 else 600))


COST_TITLES = {"train_seconds": "training time (s)", "params": "parameters",
               "trainable_params": "trainable parameters (frozen layers not counted)", "flops": "FLOPs per image"}


def cost_scatter(runs: pd.DataFrame, *, cost: str = "train_seconds", accuracy: str = "best_val_acc",
                 chance: float | None = None) -> alt.Chart:
    """Accuracy against a cost (``train_seconds``, ``params``, ``trainable_params`` or ``flops``), one point per run.

    ``runs`` needs a ``run`` label column (``#<id> name``) plus the two numeric columns. Points
    are marked with their ``#id`` (short, so the last one stays inside) and the legend below
    gives the full names in each run's own colour.
    """
    frame = runs.dropna(subset=[cost, accuracy]).copy()
    frame["tag"] = frame["run"].astype(str).str.split(" ").str[0]
    log = cost in ("params", "trainable_params", "flops")
    x = alt.X(f"{cost}:Q", title=COST_TITLES.get(cost, cost),
              scale=alt.Scale(type="log", padding=24) if log else alt.Scale(zero=False, padding=24),
              axis=alt.Axis(format="~s") if log else alt.Axis())
    base = alt.Chart(frame).encode(x=x, y=alt.Y(f"{accuracy}:Q", title="best validation accuracy",
                                                 axis=alt.Axis(format="%"), scale=alt.Scale(zero=False, padding=16)))
    runs_order = list(dict.fromkeys(frame["run"]))
    points = base.mark_circle(size=90, opacity=1).encode(
        color=alt.Color("run:N", title="run", scale=run_colors(runs_order), sort=runs_order, legend=LEGEND),
        tooltip=["run:N", alt.Tooltip(f"{accuracy}:Q", format=PERCENT), alt.Tooltip(f"{cost}:Q", format=",.0f")])
    labels = base.mark_text(align="center", dy=-11, fontSize=11).encode(text="tag:N")
    chart = points + labels
    if chance is not None:
        chart = chart + chance_rule(chance)
    return chart.properties(height=320)


def topk_bars(predictions: Sequence[tuple[str, float]], *, height: int | None = None) -> alt.Chart:
    """Horizontal probability bars for a top-k prediction list of ``(class, probability)``."""
    frame = pd.DataFrame(list(predictions), columns=["class", "probability"])
    return alt.Chart(frame).mark_bar().encode(
        y=alt.Y("class:N", sort=list(frame["class"]), title=None),
        x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
        tooltip=["class:N", alt.Tooltip("probability:Q", format=PERCENT)],
    ).properties(height=height or {"step": BAR_STEP + 4})


# -- Experiments and Learn pages (appended by the experiments helper) ------------------------------

def published_bars(frame: pd.DataFrame, *, height: int | None = None) -> alt.Chart:  # height: px per run
    """Your best accuracy as a bar per run, with the published figure as a dark tick across it.

    ``frame`` has ``run``, ``yours`` and ``published`` columns (accuracies in [0, 1]).
    """
    runs = list(frame["run"])
    y = alt.Y("run:N", sort=runs, title=None, axis=alt.Axis(labelLimit=320))
    x_scale = alt.Scale(domain=[0, 1])
    bars = alt.Chart(frame).mark_bar(color="#4c78a8", size=18).encode(
        y=y, x=alt.X("yours:Q", scale=x_scale, axis=alt.Axis(format="%"), title="best validation accuracy (bar: yours, tick: published)"),
        tooltip=["run:N", alt.Tooltip("yours:Q", format=".1%"), alt.Tooltip("published:Q", format=".1%")])
    ticks = alt.Chart(frame).mark_tick(color="#222222", thickness=3, size=28).encode(
        y=y, x=alt.X("published:Q", scale=x_scale),
        tooltip=["run:N", alt.Tooltip("published:Q", format=".1%")])
    labels = alt.Chart(frame).mark_text(align="left", dx=4, fontSize=11).encode(
        y=y, x=alt.X("yours:Q", scale=x_scale), text=alt.Text("yours:Q", format=".1%"))
    # A step per row, not a total height: Streamlit counts the axes inside a total height, so a small
    # total squeezes the bars to nothing.
    return (bars + ticks + labels).properties(height=alt.Step(height or 36))


def probe_depth(frame: pd.DataFrame, *, chance: float | None = None, height: int = 260,
                split: str = "validation") -> alt.Chart:
    """Linear-probe accuracy by depth: ``layer`` (in network order by ``depth``) against ``accuracy``.

    The axis runs from 0 to 100% so a probe near chance looks near chance (a zoomed axis made a
    33-point spread look like the whole range).
    """
    order = list(frame.sort_values("depth")["layer"])
    base = alt.Chart(frame).encode(
        x=alt.X("layer:N", sort=order, title="features taken at (shallow to deep)", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("accuracy:Q", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1]),
                title=f"probe accuracy ({split})"),
        tooltip=["layer:N", alt.Tooltip("accuracy:Q", format=".1%")],
    )
    chart = (base.mark_line(point=alt.OverlayMarkDef(size=70, filled=True))
             + base.mark_text(dy=-12, fontSize=11).encode(text=alt.Text("accuracy:Q", format=".1%")))
    if chance:
        chart = chart + chance_rule(chance)
    return chart.properties(height=height)


def grad_norms(frame: pd.DataFrame, *, height: int = 300) -> alt.Chart:
    """Per-layer gradient norms (log scale) from input to output, one line per run (pass one epoch's rows).

    ``frame`` has ``run``, ``layer``, ``depth`` and ``grad_norm`` columns.
    """
    frame = frame[frame["grad_norm"] > 0]
    return alt.Chart(frame).mark_line(point=alt.OverlayMarkDef(size=18)).encode(
        x=alt.X("depth:Q", title="layer (input to output)", axis=alt.Axis(tickMinStep=1)),
        y=alt.Y("grad_norm:Q", scale=alt.Scale(type="log"), title="gradient norm (log scale)"),
        color=alt.Color("run:N", title="run"),
        tooltip=["run:N", "layer:N", alt.Tooltip("grad_norm:Q", format=".2e")],
    ).properties(height=height)


def activation_curves(frame: pd.DataFrame, *, column: str = "value", height: int = 240) -> alt.Chart:
    """ReLU / tanh / sigmoid curves (``x``, ``function`` and ``column``: ``value`` or ``gradient``)."""
    title = "f(x)" if column == "value" else "f'(x)"
    return alt.Chart(frame).mark_line().encode(
        x=alt.X("x:Q", title="x"), y=alt.Y(f"{column}:Q", title=title), color=alt.Color("function:N", title=None),
        tooltip=["function:N", alt.Tooltip("x:Q", format=".2f"), alt.Tooltip(f"{column}:Q", format=".3f")],
    ).properties(height=height)


def channel_bars(frame: pd.DataFrame, *, x: str, columns: Sequence[str], height: int = 220,
                 y_title: str = "value") -> alt.Chart:
    """Grouped bars of ``columns`` per ``x`` (e.g. activations before/after LRN or dropout)."""
    long = frame.melt(id_vars=[x], value_vars=list(columns), var_name="series", value_name="value")
    return alt.Chart(long).mark_bar().encode(
        x=alt.X(f"{x}:O", title=x), xOffset=alt.XOffset("series:N", sort=list(columns)),
        y=alt.Y("value:Q", title=y_title), color=alt.Color("series:N", sort=list(columns), title=None),
        tooltip=[f"{x}:O", "series:N", alt.Tooltip("value:Q", format=".3f")],
    ).properties(height=height)


def gate_bars(frame: pd.DataFrame, *, height: int = 180) -> alt.Chart:
    """SE gate values of one SE block per channel (``channel``, ``gate`` in [0, 1])."""
    return alt.Chart(frame).mark_bar().encode(
        x=alt.X("channel:O", title="channel", axis=alt.Axis(labels=False, ticks=False)),
        y=alt.Y("gate:Q", scale=alt.Scale(domain=[0, 1]), title="gate s"),
        color=alt.Color("gate:Q", scale=alt.Scale(scheme="viridis", domain=[0, 1]), legend=None),
        tooltip=["channel:O", alt.Tooltip("gate:Q", format=".3f")],
    ).properties(height=height)


def lr_find_curve(lrs: Sequence[float], losses: Sequence[float], *, suggested: float | None = None,
                  height: int = 240) -> alt.Chart:
    """The learning-rate finder's smoothed loss against the learning rate (log axis), the suggestion marked."""
    frame = pd.DataFrame({"lr": list(lrs), "loss": list(losses)})
    base = alt.Chart(frame).encode(
        x=alt.X("lr:Q", title="learning rate (log scale)", scale=alt.Scale(type="log"), axis=alt.Axis(format="~e")),
        y=alt.Y("loss:Q", title="training loss (smoothed)", scale=alt.Scale(zero=False)),
        tooltip=[alt.Tooltip("lr:Q", format=".2e"), alt.Tooltip("loss:Q", format=".4f")])
    chart = base.mark_line(color="#4c78a8")
    if suggested is not None:
        rule = alt.Chart(pd.DataFrame({"lr": [suggested], "label": [f"suggested {suggested:.2g}"]})).encode(
            x="lr:Q", tooltip=["label:N"])
        chart = chart + rule.mark_rule(color="#e45756", strokeDash=[4, 3]) + rule.mark_text(
            align="left", dx=4, dy=-4, color="#e45756", baseline="top").encode(text="label:N", y=alt.value(0))
    return chart.properties(height=height)
