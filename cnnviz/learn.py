"""Small, exact demos behind the Learn page: each returns numbers or tensors, never draws.

Every function here computes the thing the page explains with the same PyTorch call a model
would use, so the page can show formula and measurement side by side (and tests can check them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.models import count_params, se_modules
from cnnviz.models.resnet import ShortcutA

# AlexNet's PCA colour noise uses the RGB eigenvectors/eigenvalues of the ImageNet training set
# (Krizhevsky et al. 2012, section 4.1); these are the figures fb.resnet.torch published for it.
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)


# ---------------------------------------------------------------- ReLU vs tanh
def activation_curves(*, low: float = -5.0, high: float = 5.0, points: int = 201) -> pd.DataFrame:
    """Value and derivative of ReLU, tanh and sigmoid on a grid (long format: x, function, value, gradient)."""
    x = torch.linspace(low, high, points, requires_grad=True)
    rows = []
    for name, fn in (("ReLU", torch.relu), ("tanh", torch.tanh), ("sigmoid", torch.sigmoid)):
        y = fn(x)
        (grad,) = torch.autograd.grad(y.sum(), x)
        for xi, yi, gi in zip(x.detach().tolist(), y.detach().tolist(), grad.tolist()):
            rows.append({"x": xi, "function": name, "value": yi, "gradient": gi})
    return pd.DataFrame(rows)


def saturated_share(*, activation: str, scale: float, threshold: float = 0.1, samples: int = 20000, seed: int = 0) -> float:
    """Share of inputs x ~ N(0, scale^2) where the activation's derivative is below ``threshold``.

    For ReLU that is the half of inputs below zero whatever the scale; for tanh it grows with the
    scale of the inputs: large pre-activations saturate and pass almost no gradient.
    """
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(samples, generator=gen) * scale).requires_grad_(True)
    fn = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}[activation]
    (grad,) = torch.autograd.grad(fn(x).sum(), x)
    return float((grad.abs() < threshold).float().mean())


# ---------------------------------------------------------------- LRN
def lrn_demo(*, channels: int = 9, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0,
             strong: float = 100.0, seed: int = 0) -> pd.DataFrame:
    """Per-channel activation at one pixel before and after local response normalisation.

    The input has one strongly active channel in the middle; LRN (AlexNet section 3.3) divides
    each channel by its neighbours' energy, so the channels next to the strong one are damped
    more than far ones ("lateral inhibition"). Uses ``torch.nn.functional.local_response_norm``,
    whose ``alpha`` is divided by ``size`` (the paper's formula has no 1/n).
    """
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(1, channels, 1, 1, generator=gen) * 10.0 + 5.0
    a[0, channels // 2] = strong
    b = F.local_response_norm(a, size=size, alpha=alpha, beta=beta, k=k)
    return pd.DataFrame(
        {"channel": list(range(channels)), "before": a.flatten().tolist(), "after": b.flatten().tolist()}
    ).assign(ratio=lambda d: d["after"] / d["before"])


def lrn_manual(a: torch.Tensor, *, size: int, alpha: float, beta: float, k: float) -> torch.Tensor:
    """LRN written out from the formula (PyTorch convention: alpha divided by size), for checking."""
    c = a.shape[1]
    out = torch.empty_like(a)
    for i in range(c):
        lo, hi = max(0, i - size // 2), min(c - 1, i + (size - 1) // 2)
        energy = a[:, lo : hi + 1].pow(2).sum(dim=1)
        out[:, i] = a[:, i] / (k + alpha / size * energy).pow(beta)
    return out


# ---------------------------------------------------------------- dropout
def dropout_demo(*, p: float, n: int = 12, seed: int = 0) -> pd.DataFrame:
    """One vector of activations through nn.Dropout in train and in eval mode.

    In training each unit is zeroed with probability p and survivors are scaled by 1/(1-p)
    ("inverted dropout"), so the expected value is unchanged and eval mode is the identity.
    """
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, generator=gen) + 0.5
    layer = nn.Dropout(p)
    torch_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    layer.train()
    train_out = layer(x)
    torch.random.set_rng_state(torch_state)
    layer.eval()
    eval_out = layer(x)
    return pd.DataFrame({"unit": list(range(n)), "input": x.tolist(), "train": train_out.tolist(), "eval": eval_out.tolist()})


def dropout_mean_ratio(*, p: float, n: int = 100_000, seed: int = 0) -> float:
    """Mean of dropout's training output over the mean of its input (close to 1: inverted scaling)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, generator=gen) + 0.5
    torch_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    out = F.dropout(x, p=p, training=True)
    torch.random.set_rng_state(torch_state)
    return float(out.mean() / x.mean())


# ---------------------------------------------------------------- PCA colour augmentation
def sample_image(*, size: int = 160) -> torch.Tensor:
    """A colourful generated picture (uint8, 3xHxW): sky, sun, hills, a flower — no file needed."""
    ys, xs = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    img = torch.zeros(3, size, size)
    sky = torch.stack([0.35 + 0.3 * ys, 0.55 + 0.3 * ys, torch.full_like(ys, 0.95)])
    img[:] = sky
    sun = ((xs - 0.78) ** 2 + (ys - 0.2) ** 2) < 0.012
    img[:, sun] = torch.tensor([1.0, 0.85, 0.2])[:, None]
    hill = ys > 0.62 + 0.08 * torch.sin(xs * 7.0)
    img[:, hill] = torch.stack([0.15 + 0.2 * ys, 0.45 + 0.25 * (1 - ys), 0.12 + 0.0 * ys])[:, hill]
    for angle in range(0, 360, 60):
        cx = 0.3 + 0.09 * math.cos(math.radians(angle))
        cy = 0.55 + 0.09 * math.sin(math.radians(angle))
        petal = ((xs - cx) ** 2 + (ys - cy) ** 2) < 0.004
        img[:, petal] = torch.tensor([0.9, 0.2, 0.45])[:, None]
    centre = ((xs - 0.3) ** 2 + (ys - 0.55) ** 2) < 0.003
    img[:, centre] = torch.tensor([0.95, 0.75, 0.1])[:, None]
    stem = (abs(xs - 0.3) < 0.008) & (ys > 0.6)
    img[:, stem] = torch.tensor([0.1, 0.5, 0.1])[:, None]
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)


def image_to_tensor(image: Any, *, max_side: int = 256) -> torch.Tensor:
    """A PIL image (any mode) as a uint8 3xHxW tensor, shrunk so its longer side is at most ``max_side``."""
    image = image.convert("RGB")
    image.thumbnail((max_side, max_side))
    arr = np.asarray(image, dtype=np.uint8).copy()
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def rgb_pca(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (descending) and eigenvectors (columns) of the RGB covariance of one image's pixels (in [0,1])."""
    pixels = image.reshape(3, -1).T.double() / 255.0
    cov = torch.cov(pixels.T)
    vals, vecs = torch.linalg.eigh(cov)
    order = torch.argsort(vals, descending=True)
    return vals[order].float(), vecs[:, order].float()


def pca_colour_shift(*, alphas: tuple[float, float, float], eigval: tuple = IMAGENET_EIGVAL,
                     eigvec: tuple = IMAGENET_EIGVEC) -> torch.Tensor:
    """The RGB offset AlexNet adds to every pixel: [p1 p2 p3] [a1 l1, a2 l2, a3 l3]^T (values in [0,1] units)."""
    vec = torch.tensor(eigvec, dtype=torch.float32)
    val = torch.tensor(eigval, dtype=torch.float32)
    return vec @ (torch.tensor(alphas, dtype=torch.float32) * val)


def pca_colour_augment(image: torch.Tensor, *, alphas: tuple[float, float, float], eigval: tuple = IMAGENET_EIGVAL,
                       eigvec: tuple = IMAGENET_EIGVEC) -> torch.Tensor:
    """``image`` (uint8 3xHxW) with the PCA colour offset for ``alphas`` added to every pixel."""
    shift = pca_colour_shift(alphas=alphas, eigval=eigval, eigvec=eigvec)
    out = image.float() / 255.0 + shift[:, None, None]
    return (out.clamp(0, 1) * 255).round().to(torch.uint8)


def pca_colour_samples(image: torch.Tensor, *, count: int = 4, std: float = 0.1, strength: float = 1.0,
                       seed: int = 0, own_pca: bool = False) -> list[tuple[torch.Tensor, tuple[float, float, float]]]:
    """``count`` augmented copies of ``image`` with alphas ~ N(0, std^2) (times ``strength`` to exaggerate).

    ``own_pca`` uses the image's own RGB principal components instead of ImageNet's.
    """
    gen = torch.Generator().manual_seed(seed)
    if own_pca:
        vals, vecs = rgb_pca(image)
        eigval, eigvec = tuple(vals.tolist()), tuple(map(tuple, vecs.tolist()))
    else:
        eigval, eigvec = IMAGENET_EIGVAL, IMAGENET_EIGVEC
    out = []
    for _ in range(count):
        alphas = tuple(float(a) for a in torch.randn(3, generator=gen) * std * strength)
        out.append((pca_colour_augment(image, alphas=alphas, eigval=eigval, eigvec=eigvec), alphas))
    return out


# ---------------------------------------------------------------- AlexNet's optimiser
# Krizhevsky et al. 2012, section 5: SGD, batch 128, momentum 0.9, weight decay 5e-4, lr 0.01
# divided by 10 when the validation error stopped improving.
ALEXNET_OPTIMISER = {"optimizer": "sgd", "batch_size": 128, "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4,
                     "scheduler": "plateau"}


def compare_with_alexnet(values: dict[str, Any]) -> pd.DataFrame:
    """AlexNet's optimiser settings beside ``values`` (e.g. a config's fields): setting, AlexNet, here, same."""
    rows = [{"setting": key, "AlexNet paper": f"{paper:g}" if isinstance(paper, float) else str(paper),
             "here": f"{values[key]:g}" if isinstance(values[key], float) else str(values[key]),
             "same": values[key] == paper}
            for key, paper in ALEXNET_OPTIMISER.items()]
    return pd.DataFrame(rows, columns=["setting", "AlexNet paper", "here", "same"])


# ---------------------------------------------------------------- residual blocks and shortcuts
def option_a_shortcut(x: torch.Tensor, *, out_channels: int, stride: int = 2) -> torch.Tensor:
    """He et al.'s option A through the models' own ``ShortcutA``: subsample by ``stride``, add zero channels.

    The zero channels are split evenly, half before and half after x's channels (no parameters).
    """
    if out_channels < x.shape[1]:
        raise ValueError(f"option A cannot reduce channels ({x.shape[1]} -> {out_channels})")
    return ShortcutA(x.shape[1], out_channels, stride)(x)


def option_a_padding(*, in_channels: int, out_channels: int) -> tuple[int, int]:
    """How many zero channels option A puts before and after x's channels (as ``ShortcutA`` does)."""
    x = torch.ones(1, in_channels, 1, 1)
    kept = option_a_shortcut(x, out_channels=out_channels, stride=1)[0, :, 0, 0]
    first = int(kept.nonzero()[0]) if in_channels else out_channels
    return first, out_channels - in_channels - first


def _basic_residual_branch(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
    )


@dataclass(frozen=True)
class ShortcutShapes:
    """Shapes through one residual block: y = F(x) + shortcut(x)."""

    x: tuple[int, ...]
    fx: tuple[int, ...]
    identity: tuple[int, ...] | None  # None: x cannot be added as it is (shape differs)
    option_a: tuple[int, ...] | None  # None: option A not needed / impossible
    option_b: tuple[int, ...]
    branch_params: int
    projection_params: int
    zero_channels: int
    zeros_before: int = 0  # option A's zero channels in front of x's channels
    zeros_after: int = 0  # ...and behind them


def residual_shapes(*, in_channels: int = 16, out_channels: int = 32, stride: int = 2, size: int = 32) -> ShortcutShapes:
    """Run a basic block's branch F and both shortcut options on a random input and report shapes and parameters."""
    x = torch.randn(1, in_channels, size, size)
    branch = _basic_residual_branch(in_channels, out_channels, stride).eval()
    projection = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)).eval()
    with torch.no_grad():
        fx = branch(x)
        proj = projection(x)
    same = fx.shape == x.shape
    opt_a, before, after = None, 0, 0
    if not same and out_channels >= in_channels:
        opt_a = tuple(option_a_shortcut(x, out_channels=out_channels, stride=stride).shape)
        before, after = option_a_padding(in_channels=in_channels, out_channels=out_channels)
    return ShortcutShapes(
        x=tuple(x.shape), fx=tuple(fx.shape), identity=tuple(x.shape) if same else None, option_a=opt_a,
        option_b=tuple(proj.shape), branch_params=count_params(branch), projection_params=count_params(projection),
        zero_channels=max(0, out_channels - in_channels) if not same else 0, zeros_before=before, zeros_after=after,
    )


@dataclass(frozen=True)
class BottleneckCount:
    """Weights of a basic 3x3-3x3 block vs a 1x1-3x3-1x1 bottleneck on the same width (convolutions only)."""

    channels: int
    mid: int
    basic: int
    bottleneck: int
    basic_formula: str
    bottleneck_formula: str


def bottleneck_params(*, channels: int = 256, mid: int = 64) -> BottleneckCount:
    """Count conv weights of both block designs by building them (He et al. 2016, figure 5)."""
    basic = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.Conv2d(channels, channels, 3, padding=1, bias=False))
    bottleneck = nn.Sequential(
        nn.Conv2d(channels, mid, 1, bias=False), nn.Conv2d(mid, mid, 3, padding=1, bias=False), nn.Conv2d(mid, channels, 1, bias=False)
    )
    return BottleneckCount(
        channels=channels, mid=mid, basic=count_params(basic), bottleneck=count_params(bottleneck),
        basic_formula=f"2 x 3x3x{channels}x{channels}",
        bottleneck_formula=f"1x1x{channels}x{mid} + 3x3x{mid}x{mid} + 1x1x{mid}x{channels}",
    )


# ---------------------------------------------------------------- squeeze-and-excitation
def se_gate_weights(model: nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-channel gate values s (in [0,1]) of every SE block for ``images`` (a normalised float batch).

    A forward hook on each block's sigmoid reads the gate, averaged over the batch.
    """
    gates: dict[str, torch.Tensor] = {}
    handles = []
    for name, module in se_modules(model):
        def hook(_m, _inp, out, name=name):
            gates[name] = out.detach().reshape(out.shape[0], -1).mean(0)
        handles.append(module.gate.register_forward_hook(hook))
    try:
        model.eval()
        with torch.no_grad():
            model(images)
    finally:
        for handle in handles:
            handle.remove()
    return gates


def gates_frame(gates: dict[str, torch.Tensor]) -> pd.DataFrame:
    """Gate values as a long table (module, channel, gate) for a chart."""
    rows = []
    for name, values in gates.items():
        for channel, value in enumerate(values.tolist()):
            rows.append({"module": name, "channel": channel, "gate": value})
    return pd.DataFrame(rows, columns=["module", "channel", "gate"])


# ---------------------------------------------------------------- CE vs BCE vs BCE-with-logits
def toy_logits(*, margin: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """A toy two-class batch: logits z (one per image; z > 0 means class 1) and targets y."""
    z = torch.tensor([margin, -margin, 0.5 * margin, -0.25 * margin, 40.0, -40.0], dtype=torch.float32)
    y = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    return z, y


EXACT_LOSS = "exact (float64)"
# The forms that compute the same loss without the naive sigmoid-then-log step.
EXACT_FORMS = ("CE [0, z]", "BCE-with-logits", "manual formula")
NAIVE_BCE = "BCE(sigmoid(z))"
# Losses are shown with this many decimals: float32 spaces numbers below 128 less than 1e-5 apart,
# so at this precision a float32 loss is not showing digits it does not have.
LOSS_DECIMALS = 5


def _exact_loss(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The binary cross-entropy of logit z for target y, in float64 with log1p: the reference value."""
    z, y = z.double(), y.double()
    return z.clamp(min=0) - z * y + torch.log1p(torch.exp(-z.abs()))


def _values(t: torch.Tensor) -> list[float]:
    # + 0.0 turns IEEE negative zero (CE's -log(1) in float32) into 0, which is what a loss of zero is
    return (t.double() + 0.0).tolist()


def loss_table(logits: torch.Tensor, targets: torch.Tensor) -> pd.DataFrame:
    """Per-example losses of a two-class batch computed four ways in float32 (as in training), and exactly.

    - CE: softmax cross-entropy over the two logits [0, z] (same model, written as two classes);
    - BCE-with-logits: log-sum-exp form on z, stable for any z;
    - BCE on sigmoid(z): the naive two-step form; sigmoid rounds to exactly 0 or 1 for |z| >~ 17
      in float32 and the log then hits -inf (PyTorch clamps it at -100);
    - manual: max(z,0) - z*y + log(1 + exp(-|z|)), the formula BCE-with-logits implements;
    - exact: the same formula in float64, the reference the float32 values are compared with.
    """
    z = logits.float()
    y = targets.float()
    two = torch.stack([torch.zeros_like(z), z], dim=1)
    ce = F.cross_entropy(two, y.long(), reduction="none")
    bcel = F.binary_cross_entropy_with_logits(z, y, reduction="none")
    p = torch.sigmoid(z)
    bce = F.binary_cross_entropy(p, y, reduction="none")
    manual = z.clamp(min=0) - z * y + torch.log1p(torch.exp(-z.abs()))
    return pd.DataFrame({
        "logit z": _values(z), "target y": y.int().tolist(), "sigmoid(z)": _values(p),
        "CE [0, z]": _values(ce), "BCE-with-logits": _values(bcel), NAIVE_BCE: _values(bce),
        "manual formula": _values(manual), EXACT_LOSS: _values(_exact_loss(z, y)),
    })


@dataclass(frozen=True)
class Float32Error:
    """How far one float32 form of the loss is from the exact value over a batch."""

    form: str
    max_abs_error: float  # the largest |float32 - exact| over the rows
    at_logit: float  # the z of that row
    agrees_when_rounded: bool  # equal to the exact loss in every row at LOSS_DECIMALS decimals


def float32_errors(table: pd.DataFrame, *, forms: tuple[str, ...] = EXACT_FORMS) -> list[Float32Error]:
    """Each form's largest distance from the exact loss, where it happens, and whether rounding hides it."""
    exact = table[EXACT_LOSS]
    out = []
    for form in forms:
        diff = (table[form] - exact).abs()
        row = int(diff.idxmax())
        agrees = bool((table[form].round(LOSS_DECIMALS) == exact.round(LOSS_DECIMALS)).all())
        out.append(Float32Error(form=form, max_abs_error=float(diff.max()), at_logit=float(table.loc[row, "logit z"]),
                                agrees_when_rounded=agrees))
    return out


def naive_bce_unstable_rows(table: pd.DataFrame, *, tolerance: float = 1e-3) -> list[int]:
    """Row indices where the naive BCE on sigmoid(z) disagrees with BCE-with-logits."""
    diff = (table[NAIVE_BCE] - table["BCE-with-logits"]).abs()
    return [int(i) for i in table.index[diff > tolerance]]


def se_gates_for_image(model: nn.Module, payload: dict, image: Any) -> dict[str, torch.Tensor]:
    """SE gate values of a trained model for one PIL image, preprocessed as the model was trained."""
    from cnnviz.predict import MODEL_LOCK, model_device, preprocess

    with MODEL_LOCK:  # the hooks must not see another session's forward pass
        x = preprocess(image, payload).to(model_device(model))
        return se_gate_weights(model, x)


# ---------------------------------------------------------------- pictures of tensors
def tile_grid(tiles: np.ndarray, *, columns: int = 8, scale: int = 4, pad: int = 1) -> np.ndarray:
    """Arrange tiles (N, h, w) or (N, h, w, 3) with values in [0, 1] in a grid; uint8 RGB, nearest upscaling."""
    tiles = np.asarray(tiles, dtype=np.float32)
    if tiles.ndim == 3:
        tiles = np.repeat(tiles[..., None], 3, axis=-1)
    n, h, w, _ = tiles.shape
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    th, tw = h * scale, w * scale
    grid = np.full((rows * (th + pad) + pad, columns * (tw + pad) + pad, 3), 255, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, columns)
        big = np.kron(np.clip(tiles[i], 0, 1), np.ones((scale, scale, 1), dtype=np.float32))
        y, x = pad + r * (th + pad), pad + c * (tw + pad)
        grid[y:y + th, x:x + tw] = (big * 255).round().astype(np.uint8)
    return grid
