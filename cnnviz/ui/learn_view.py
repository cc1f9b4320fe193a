"""Streamlit pieces of the Learn page: a short explanation, the formula, and a live demo per idea.

The numbers come from ``cnnviz.learn`` (pure, tested); this module only draws them. Widget keys
start with ``learn_``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from cnnviz import charts
from cnnviz import learn, recipes
from cnnviz.data import get_dataset_spec, list_datasets
from cnnviz.data.images import EXTENSIONS, MAX_PHOTO_MB, ImageLoadError, load_image
from cnnviz.models import get_spec, list_models
from cnnviz.training.config import MODES
from cnnviz.ui.predict_view import SAMPLES_DIR, cached_model
from cnnviz.ui.widgets import open_store

TRAIN_PAGE = "pages/train.py"
GENERATED = "generated picture (sky, sun, flower)"


def _link_to_train(text: str) -> None:
    st.info(text, icon=":material/info:")
    try:
        st.page_link(TRAIN_PAGE, label="Go to the Train page", icon=":material/model_training:")
    except st.errors.StreamlitAPIException:  # the page run on its own (tests): no router to link through
        st.markdown("Open the **Train** page from the sidebar.")


def picture(*, key: str, label: str = "Picture") -> Any:
    """A PIL image: an upload, a sample picture from assets/samples, or the generated one."""
    samples = sorted(p.name for p in SAMPLES_DIR.glob("*.jpg")) if SAMPLES_DIR.is_dir() else []
    left, right = st.columns([1, 1])
    choice = left.selectbox(label, [GENERATED, *samples], key=f"{key}_sample")
    upload = right.file_uploader("...or upload your own", type=list(EXTENSIONS), max_upload_size=MAX_PHOTO_MB,
                                 key=f"{key}_upload")
    if upload is not None:
        try:
            return load_image(upload.getvalue(), name=upload.name)
        except ImageLoadError as exc:
            st.error(str(exc))
    if choice == GENERATED:
        return Image.fromarray(learn.sample_image(size=192).permute(1, 2, 0).numpy())
    return load_image(Path(SAMPLES_DIR) / choice)


def finished_runs(*, predicate=None) -> list[Any]:
    """Finished/stopped runs with a checkpoint file, newest first (optionally filtered)."""
    runs = [r for r in open_store().list(status=("finished", "stopped"))
            if r.checkpoint and Path(r.checkpoint).is_file()]
    return [r for r in runs if predicate is None or predicate(r)]


def load_run_model(run) -> tuple[Any, dict]:
    """(model, payload) of a run's best checkpoint, shared read-only across sessions.

    Hooks on a shared model are safe: cnnviz.explain and cnnviz.learn hold ``MODEL_LOCK`` while attached.
    """
    loaded = cached_model(f"run:{run.id}", Path(run.checkpoint).stat().st_mtime)
    return loaded[0], loaded[1]


def run_label(run) -> str:
    """A run as a picker shows it: id, name, architecture, dataset, best accuracy."""
    acc = f", best val {run.best_val_acc:.3f}" if run.best_val_acc is not None else ""
    return f"run {run.id}: {run.label} ({run.config.arch} on {run.config.dataset}{acc})"


# -- AlexNet's ingredients ------------------------------------------------------------------------

def relu_vs_tanh() -> None:
    """ReLU vs tanh: curves, derivatives and the share of saturated inputs."""
    st.markdown("#### ReLU vs tanh")
    st.markdown("AlexNet replaced the saturating tanh with the rectified linear unit and trained several times "
                "faster (Krizhevsky et al. 2012, figure 1). Where tanh is flat its derivative is near zero, so the "
                "gradient that reaches earlier layers shrinks; ReLU's derivative is exactly 1 wherever it is on.")
    # Two short formulas, not one long line: st.latex does not wrap, and a narrow window cut the second off.
    st.latex(r"\mathrm{ReLU}(x)=\max(0,x),\quad \mathrm{ReLU}'(x)=[x>0]")
    st.latex(r"\tanh'(x)=1-\tanh^2(x)")
    curves = learn.activation_curves()
    left, right = st.columns(2)
    left.altair_chart(charts.activation_curves(curves, column="value"), width="stretch")
    right.altair_chart(charts.activation_curves(curves, column="gradient"), width="stretch")
    scale = st.slider("Spread of the inputs (std of x)", 0.5, 8.0, 3.0, 0.5, key="learn_relu_scale")
    cols = st.columns(3)
    for col, name in zip(cols, ("relu", "tanh", "sigmoid")):
        share = learn.saturated_share(activation=name, scale=scale)
        col.metric(f"{name}: inputs with derivative < 0.1", f"{share:.0%}")
    st.caption("ReLU's share stays at the half of inputs that are negative (those units are off, not saturated: "
               "the others pass the full gradient). tanh's share grows as inputs spread out.")


def lrn() -> None:
    """Local response normalisation: the formula and its effect on one pixel's channels."""
    st.markdown("#### Local response normalisation")
    st.markdown("Each activation is divided by the energy of its neighbours across channels at the same pixel: "
                "a strongly active channel damps the channels next to it (lateral inhibition). AlexNet used it "
                "after conv1 and conv2; batch norm has since replaced it.")
    st.latex(r"b^i_{x,y}=a^i_{x,y}\Big/\Big(k+\frac{\alpha}{n}\sum_{j=\max(0,i-n/2)}^{\min(N-1,i+n/2)}(a^j_{x,y})^2\Big)^{\beta}")
    st.caption("The paper writes α without the 1/n; PyTorch's `local_response_norm` divides by n. The paper's "
               "values: k = 2, n = 5, α = 1e-4, β = 0.75.")
    cols = st.columns(3)
    alpha = cols[0].select_slider("α (paper: 1e-4)", [1e-4, 1e-3, 1e-2, 1e-1], value=1e-3, key="learn_lrn_alpha")
    strong = cols[1].slider("the strong channel's activation", 10.0, 200.0, 100.0, 10.0, key="learn_lrn_strong")
    size = cols[2].select_slider("window n (channels)", [3, 5, 7], value=5, key="learn_lrn_size")
    frame = learn.lrn_demo(alpha=alpha * size, size=size, strong=strong)  # α·n: the paper's α in PyTorch's convention
    st.altair_chart(charts.channel_bars(frame, x="channel", columns=["before", "after"],
                                        y_title="activation at one pixel"), width="stretch")
    middle = len(frame) // 2
    near, far = frame["ratio"].iloc[middle + 1], frame["ratio"].iloc[-1]
    st.caption(f"Channel {middle} is the strong one. Its neighbour kept {near:.0%} of its value, "
               f"the far channel {frame['channel'].iloc[-1]} kept {far:.0%}.")


def dropout() -> None:
    """Dropout in training vs evaluation mode."""
    st.markdown("#### Dropout")
    st.markdown("During training each unit is zeroed with probability p and the survivors are scaled by "
                "1/(1-p), so no unit can rely on another being there; at evaluation nothing is dropped and "
                "nothing is scaled. AlexNet used p = 0.5 in its first two fully connected layers.")
    st.latex(r"\text{train: } y_i=\frac{m_i\,x_i}{1-p},\ m_i\sim\mathrm{Bernoulli}(1-p);\qquad \text{eval: } y_i=x_i")
    p = st.slider("p (drop probability)", 0.0, 0.9, 0.5, 0.1, key="learn_dropout_p")
    frame = learn.dropout_demo(p=p)
    st.altair_chart(charts.channel_bars(frame, x="unit", columns=["input", "train", "eval"], y_title="activation"),
                    width="stretch")
    ratio = learn.dropout_mean_ratio(p=p)
    st.caption(f"Over 100,000 units the training output's mean is {ratio:.3f}x the input's: the 1/(1-p) scaling "
               "keeps the expected activation the same in training and evaluation.")


def pca_colour() -> None:
    """AlexNet's PCA colour augmentation on a picture."""
    st.markdown("#### PCA colour augmentation")
    st.markdown("AlexNet shifted the colour of every training image along the principal components of the RGB "
                "values of ImageNet: a random amount of each, so lighting and tint vary while objects stay the "
                "same. It cut the top-1 error by over 1% (section 4.1).")
    st.latex(r"I'_{xy}=I_{xy}+[\mathbf p_1,\mathbf p_2,\mathbf p_3]\,[\alpha_1\lambda_1,\alpha_2\lambda_2,"
             r"\alpha_3\lambda_3]^\top,\quad \alpha_i\sim\mathcal N(0,0.1^2)")
    image = picture(key="learn_pca")
    cols = st.columns(3)
    strength = cols[0].slider("exaggerate (x the paper's 0.1)", 1.0, 20.0, 5.0, 1.0, key="learn_pca_strength")
    own = cols[1].toggle("this picture's own PCA", key="learn_pca_own")
    seed = cols[2].number_input("random draw", 0, 999, 0, key="learn_pca_seed")
    tensor = learn.image_to_tensor(image, max_side=224)
    samples = learn.pca_colour_samples(tensor, count=4, strength=strength, seed=int(seed), own_pca=own)
    pictures = [tensor] + [s for s, _ in samples]
    captions = ["original"] + [f"α = ({a[0]:+.2f}, {a[1]:+.2f}, {a[2]:+.2f})" for _, a in samples]
    for col, pic, cap in zip(st.columns(len(pictures)), pictures, captions):
        col.image(pic.permute(1, 2, 0).numpy(), caption=cap, width="stretch")
    vals, vecs = learn.rgb_pca(tensor)
    if own:
        st.caption("This picture's components (columns = p1, p2, p3; rows R, G, B): "
                   + np.array2string(vecs.numpy(), precision=2) + f"; λ = {np.array2string(vals.numpy(), precision=4)}")
    else:
        st.caption("ImageNet's components (from fb.resnet.torch): λ = (0.2175, 0.0188, 0.0045); the first is "
                   "brightness (all three channels together), the others shift the tint.")


@st.cache_data(show_spinner=False)
def plateau_recipes() -> list[tuple[str, str, str]]:
    """(architecture label, dataset label, mode) of every recipe that starts with the plateau schedule."""
    found = []
    for arch in list_models():
        for dataset in list_datasets():
            for mode in MODES:
                if recipes.registry_recipe(arch=arch, dataset=dataset, mode=mode).values["scheduler"] == "plateau":
                    found.append((get_spec(arch).label, get_dataset_spec(dataset).label, mode))
    return found


def _plateau_sentence(found: list[tuple[str, str, str]]) -> str:
    if not found:
        return "No recipe starts with `scheduler=plateau`; pick it on the Train page."
    archs, datasets, modes = (sorted({row[i] for row in found}) for i in range(3))
    if len(found) == len(archs) * len(datasets) * len(modes):  # every combination: say it in one line
        return (f"The recipes start with `scheduler=plateau` only in mode {' / '.join(f'`{m}`' for m in modes)}, "
                f"for {', '.join(archs)}, on {' and '.join(datasets)}.")
    return ("The recipes start with `scheduler=plateau` only for "
            + "; ".join(f"{a} ({m}) on {d}" for a, d, m in found) + ".")


def sgd_recipe() -> None:
    """AlexNet's optimiser settings and update rule, beside the Train page's actual defaults."""
    st.markdown("#### AlexNet's optimiser")
    st.markdown("Stochastic gradient descent with momentum 0.9 and weight decay 5e-4, batch 128, learning rate "
                "0.01 divided by 10 whenever the validation error stopped improving (three times in 90 epochs).")
    st.latex(r"v_{t+1}=0.9\,v_t-0.0005\,\epsilon\,w_t-\epsilon\,\Big\langle\frac{\partial L}{\partial w}\Big\rangle_{D_t},"
             r"\qquad w_{t+1}=w_t+v_{t+1}")
    config = recipes.default_config()
    table = learn.compare_with_alexnet(config.to_dict())
    same = table[table["same"]]["setting"].tolist()
    differ = table[~table["same"]]["setting"].tolist()
    text = f"The Train page's first run ({config.describe()}) keeps AlexNet's {', '.join(f'`{k}`' for k in same) or 'none'}"
    if differ:
        text += f" and differs in {', '.join(f'`{k}`' for k in differ)}"
    st.markdown(text + ". " + _plateau_sentence(plateau_recipes()))
    st.dataframe(table, hide_index=True, width="stretch")


# -- residual networks ----------------------------------------------------------------------------

def residual_blocks() -> None:
    """y = F(x) + x, the projection shortcut and option A zero padding, with live shapes."""
    st.markdown("#### The residual block")
    st.markdown("A block learns a correction F(x) to its input instead of a whole new mapping. If the best thing "
                "to do is nothing, it only has to push F to zero — easy — and the gradient always has the "
                "identity path back to earlier layers.")
    st.latex(r"y=F(x,\{W_i\})+x,\qquad \frac{\partial y}{\partial x}=\frac{\partial F}{\partial x}+I")
    st.markdown("When F changes the shape (more channels, stride 2) x cannot be added as it is. Two fixes "
                "(He et al. 2016): **option A** subsamples x and adds zero channels, half before and half after x's "
                "channels as this project's ResNets do (no parameters); "
                "**option B** projects it with a 1x1 convolution W_s.")
    st.latex(r"\text{option B: } y=F(x,\{W_i\})+W_s x")
    cols = st.columns(3)
    cin = cols[0].select_slider("input channels", [16, 32, 64, 128], value=16, key="learn_res_in")
    cout = cols[1].select_slider("output channels", [16, 32, 64, 128, 256], value=32, key="learn_res_out")
    stride = cols[2].select_slider("stride", [1, 2], value=2, key="learn_res_stride")
    shapes = learn.residual_shapes(in_channels=cin, out_channels=cout, stride=stride, size=32)
    rows = [
        {"tensor": "x (input)", "shape": str(shapes.x), "parameters": ""},
        {"tensor": "F(x): 3x3 conv, BN, ReLU, 3x3 conv, BN", "shape": str(shapes.fx), "parameters": f"{shapes.branch_params:,}"},
        {"tensor": "identity shortcut x", "shape": str(shapes.identity) if shapes.identity else "shape differs: cannot add", "parameters": "0"},
        {"tensor": "option A: x[:, :, ::s, ::s] + zero channels",
         "shape": str(shapes.option_a) if shapes.option_a else ("not needed" if shapes.identity else "impossible (fewer channels)"),
         "parameters": "0"},
        {"tensor": "option B: W_s x (1x1 conv + BN)", "shape": str(shapes.option_b), "parameters": f"{shapes.projection_params:,}"},
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    if shapes.zero_channels:
        st.caption(f"Option A adds {shapes.zero_channels} channels of zeros ({shapes.zeros_before} before x's "
                   f"channels, {shapes.zeros_after} after): those outputs get no shortcut, only "
                   f"F(x). Option B costs {shapes.projection_params:,} extra parameters "
                   f"({shapes.projection_params / shapes.branch_params:.0%} of the block).")


def bottleneck() -> None:
    """Basic vs bottleneck block parameter counts."""
    st.markdown("#### Bottleneck blocks")
    st.markdown("Deep ResNets (50+ layers) replace the two 3x3 convolutions by 1x1 (reduce) → 3x3 → 1x1 (expand): "
                "the expensive 3x3 runs on a quarter of the channels.")
    channels = st.select_slider("block width (channels)", [64, 128, 256, 512, 1024, 2048], value=256,
                                key="learn_bottleneck_channels")
    count = learn.bottleneck_params(channels=channels, mid=channels // 4)
    a, b, c = st.columns(3)
    a.metric("3x3 - 3x3 (basic)", f"{count.basic:,}", help=count.basic_formula)
    b.metric("1x1 - 3x3 - 1x1 (bottleneck)", f"{count.bottleneck:,}", help=count.bottleneck_formula)
    c.metric("ratio", f"{count.basic / count.bottleneck:.1f}x")
    st.caption(f"Weights: {count.basic_formula} = {count.basic:,} vs {count.bottleneck_formula} = {count.bottleneck:,} "
               "(convolution weights only, no biases).")


# -- squeeze-and-excitation -------------------------------------------------------------------------

def _has_se(run) -> bool:
    from cnnviz.models import resolve_options

    try:
        options = resolve_options(run.config.arch, run.config.options)
    except ValueError:
        return False
    return any(v is True and k.startswith("se_") for k, v in options.items())


def squeeze_excitation() -> None:
    """SE gate values of a trained run on a picture."""
    st.markdown("#### Squeeze-and-excitation")
    st.markdown("An SE block squeezes each channel to one number (global average), passes the vector through a "
                "small bottleneck MLP, and multiplies every channel by the resulting gate in [0, 1]: the network "
                "learns which channels matter *for this image* (Hu et al. 2018).")
    st.latex(r"z_c=\frac{1}{HW}\sum_{i,j}u_c(i,j),\quad s=\sigma\big(W_2\,\mathrm{ReLU}(W_1 z)\big),"
             r"\quad \tilde u_c=s_c\,u_c")
    runs = finished_runs(predicate=_has_se)
    if not runs:
        _link_to_train("No trained run with SE blocks yet. On the Train page pick **AlexSE** (`alex_se`, SE after "
                       "block 2) on `shapes` or CIFAR-10 and train it for a few epochs; its gates then show here.")
        return
    labels = {r.id: run_label(r) for r in runs}
    run_id = st.selectbox("Trained run with SE blocks", list(labels), format_func=labels.get, key="learn_se_run")
    run = next(r for r in runs if r.id == run_id)
    image = picture(key="learn_se")
    model, payload = load_run_model(run)
    gates = learn.se_gates_for_image(model, payload, image)
    if not gates:
        st.warning("This model has no SE modules after all.")
        return
    frame = learn.gates_frame(gates)
    left, right = st.columns([1, 3])
    left.image(image, caption="input", width="stretch")
    with right:
        for module, rows in frame.groupby("module", sort=False):
            st.caption(f"`{module}`: {len(rows)} channels")
            st.altair_chart(charts.gate_bars(rows), width="stretch")
    summary = frame.groupby("module")["gate"].agg(["mean", "min", "max", "std"]).reset_index()
    st.dataframe(summary, hide_index=True, width="stretch")
    st.caption("A gate near 1 lets the channel through, near 0 silences it for this picture. Try another picture: "
               "the gates change, which is the point of SE.")


# -- losses ---------------------------------------------------------------------------------------

def losses() -> None:
    """Cross-entropy vs BCE vs BCE-with-logits on a toy batch."""
    st.markdown("#### Cross-entropy vs binary cross-entropy (with logits)")
    st.markdown("For two classes you can output two logits and use softmax cross-entropy, or one logit z and "
                "binary cross-entropy on σ(z). They are the same model: softmax over [0, z] gives σ(z). Computing "
                "σ first and then the log is where it goes wrong: in float32 σ(z) rounds to exactly 1 for z ≳ 17, "
                "and log(1 - 1) = -∞ (PyTorch clamps the log at -100). `BCEWithLogits` uses the log-sum-exp form "
                "and stays within float32's rounding of the exact loss for any z.")
    st.latex(r"\mathrm{CE}=-\log\frac{e^{z_y}}{\sum_k e^{z_k}},\qquad "
             r"\mathrm{BCE}=-[y\log\sigma(z)+(1-y)\log(1-\sigma(z))]")
    st.latex(r"\mathrm{BCEWithLogits}=\max(z,0)-zy+\log\!\big(1+e^{-|z|}\big)")
    margin = st.slider("how confident the toy model is (logit scale)", 0.5, 30.0, 2.0, 0.5, key="learn_loss_margin")
    z, y = learn.toy_logits(margin=margin)
    table = learn.loss_table(z, y)
    losses_format = {column: f"{{:.{learn.LOSS_DECIMALS}f}}" for column in table.columns[3:]}
    st.dataframe(table.style.format({"logit z": "{:g}", "sigmoid(z)": "{:.6g}", **losses_format}),
                 hide_index=True, width="stretch")
    bad = learn.naive_bce_unstable_rows(table)
    if bad:
        rows = ", ".join(f"z = {table['logit z'][i]:g}" for i in bad)
        st.caption(f"Rows where BCE on σ(z) is wrong ({rows}): the exact loss is the last column, computed in "
                   "float64.")
    st.caption(float32_note(learn.float32_errors(table)))
    means = table[["CE [0, z]", "BCE-with-logits", learn.NAIVE_BCE]].mean()
    st.caption("Batch means: " + ", ".join(f"{k} {v:.{learn.LOSS_DECIMALS}f}" for k, v in means.items()))


def float32_note(errors: list[learn.Float32Error]) -> str:
    """What float32 rounding does to the exact forms of the loss, in numbers."""
    worst = max(errors, key=lambda e: e.max_abs_error)
    names = ", ".join(e.form for e in errors)
    text = (f"{names} are the same loss. Computed in float32, as in training, each stays within "
            f"{worst.max_abs_error:.1e} of the exact value (largest: {worst.form} at z = {worst.at_logit:g}): "
            "float32 keeps about 7 significant digits, so a tiny loss next to a large logit can round to 0.")
    off = [e for e in errors if not e.agrees_when_rounded]
    if off:
        text += (f" At {learn.LOSS_DECIMALS} decimals {', '.join(e.form for e in off)} shows a different last digit "
                 "than the exact column: that tiny error falls on a rounding boundary.")
    else:
        text += f" At the {learn.LOSS_DECIMALS} decimals shown they all equal the exact column."
    return text


# -- inside a trained run -------------------------------------------------------------------------

def filters_and_maps() -> None:
    """First-layer filters and feature maps of a finished run."""
    from cnnviz.explain import conv_layers, feature_maps, first_layer_filters

    st.markdown("#### First-layer filters and feature maps")
    st.markdown("The first convolution's kernels can be drawn as small RGB pictures: trained networks learn "
                "edges at many orientations and colour blobs (AlexNet paper, figure 3). Deeper layers' outputs "
                "(feature maps) show where in the picture each channel responds.")
    runs = finished_runs()
    if not runs:
        _link_to_train("No finished run yet. Train any run on the Train page (a `shapes` run takes about a minute), "
                       "then come back to see its filters.")
        return
    labels = {r.id: run_label(r) for r in runs}
    run_id = st.selectbox("Run", list(labels), format_func=labels.get, key="learn_maps_run")
    run = next(r for r in runs if r.id == run_id)
    model, payload = load_run_model(run)
    try:
        tiles = first_layer_filters(model)
    except ValueError as exc:
        st.info(str(exc))
        return
    scale = max(2, 48 // max(tiles.shape[1], 1))  # about 48 px per filter, whatever the kernel size
    st.image(learn.tile_grid(tiles, columns=8 if len(tiles) <= 64 else 16, scale=scale),
             caption=f"{len(tiles)} first-layer filters of run {run.id} ({tiles.shape[1]}x{tiles.shape[2]} kernels, "
                     "each scaled to its own range)")
    layers = conv_layers(model)
    layer = st.selectbox("Feature maps of layer", layers, key="learn_maps_layer")
    image = picture(key="learn_maps")
    maps = feature_maps(model, payload, image, layer)
    shown = maps[:32]
    side = max(2, 96 // max(shown.shape[-1], 1))
    left, right = st.columns([1, 3])
    left.image(image, caption="input", width="stretch")
    right.image(learn.tile_grid(shown, columns=8, scale=side),
                caption=f"first {len(shown)} of {len(maps)} channels of {layer}, each scaled to its own range")
