"""Draw the sample pictures the Predict page offers: one per ``shapes`` class, from an unseen seed.

Run from the project root: ``python -m assets.samples.make_samples``. The
pictures come from the same generator as the ``shapes`` dataset but with a seed
no split uses, so a model trained on ``shapes`` has never seen them.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from cnnviz.data.shapes import SHAPE_CLASSES, SPLIT_SEEDS, generate_shapes

HERE = Path(__file__).resolve().parent
SEED = 7777  # not one of SPLIT_SEEDS
SIZE = 160  # big enough to see the Grad-CAM overlay, small enough to keep the repository light


def main() -> None:
    assert SEED not in SPLIT_SEEDS.values()
    images, labels = generate_shapes(1, size=SIZE, seed=SEED)
    for image, label in zip(images, labels.tolist()):
        path = HERE / f"shapes-{SHAPE_CLASSES[label]}.jpg"
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(path, quality=92, optimize=True)
        print(path.relative_to(HERE.parent.parent))


if __name__ == "__main__":
    main()
