"""Draw the sample pictures the Predict page offers: one per ``shapes`` class, from an unseen seed.

Run from the project root: ``python -m assets.samples.make_samples``. The
pictures come from the same generator as the ``shapes`` dataset but with a seed
no split uses, so a model trained on ``shapes`` has never seen them. Of
``CANDIDATES`` unseen pictures per class, the one whose shape stands out most
from its background (luma difference) is kept: a sample is a student's first
try, and a faint olive star on a green ground taught "the model is wrong" when
the point was what it looks at. The dataset itself keeps its hard cases.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

import torch

from cnnviz.data.shapes import SHAPE_CLASSES, SPLIT_SEEDS, _draw_params, generate_shapes

HERE = Path(__file__).resolve().parent
SEED = 7777  # not one of SPLIT_SEEDS
SIZE = 160  # big enough to see the Grad-CAM overlay, small enough to keep the repository light
CANDIDATES = 12  # unseen pictures drawn per class; the clearest is kept
LUMA = torch.tensor([0.299, 0.587, 0.114])


def contrast(params: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per picture: how far the shape's luma is from its background's (both background colours averaged)."""
    background = (params["bg1"] + params["bg2"]) / 2
    return ((params["fg"] - background) @ LUMA).abs()


def main() -> None:
    assert SEED not in SPLIT_SEEDS.values()
    images, labels = generate_shapes(CANDIDATES, size=SIZE, seed=SEED)
    # generate_shapes draws its parameters exactly so: the same numbers, to rank the candidates by.
    score = contrast(_draw_params(labels, torch.Generator().manual_seed(SEED)))
    for k, name in enumerate(SHAPE_CLASSES):
        rows = (labels == k).nonzero().flatten()
        best = int(rows[score[rows].argmax()])
        path = HERE / f"shapes-{name}.jpg"
        Image.fromarray(images[best].permute(1, 2, 0).numpy()).save(path, quality=92, optimize=True)
        print(f"{path.relative_to(HERE.parent.parent)}  (contrast {score[best]:.2f}, median {score[rows].median():.2f})")


if __name__ == "__main__":
    main()
