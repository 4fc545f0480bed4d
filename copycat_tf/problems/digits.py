"""``digits``: scikit-learn's 1,797 real handwritten digits (8x8, 10 classes), offline: the embedded default.

The images are split once, by a seeded permutation, into disjoint ODD (40%), PDD (30%) and TDD (30%).
Pixels (0..16) are scaled to 0..255 and stored as 8x8 grayscale PNGs; training resizes them.
"""

import io

import numpy as np
import PIL.Image

from copycat_tf.problems.base import Example, Problem

FRACTIONS = {"odd": 0.4, "pdd": 0.3, "tdd": 0.3}


def split_indices(count: int, seed: int) -> dict[str, np.ndarray]:
    """A seeded permutation of ``count`` examples cut into disjoint ODD/PDD/TDD index sets (FRACTIONS)."""
    order = np.random.default_rng(seed).permutation(count)
    odd_end = int(count * FRACTIONS["odd"])
    pdd_end = odd_end + int(count * FRACTIONS["pdd"])
    return {"odd": order[:odd_end], "pdd": order[odd_end:pdd_end], "tdd": order[pdd_end:]}


def _read(part):
    from sklearn.datasets import load_digits

    split, indices = part
    digits = load_digits()
    for index in indices:
        pixels = np.clip(digits.images[index] * 16, 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        PIL.Image.fromarray(pixels, "L").save(buffer, "PNG")
        yield Example(buffer.getvalue(), int(digits.target[index]), f"sklearn-digits/{index}")


def digits_problem(seed: int = 0) -> Problem:
    from sklearn.datasets import load_digits

    count = len(load_digits().target)
    splits = split_indices(count, seed)
    chunk = 300
    parts = {split: [(split, idx[i:i + chunk].tolist()) for i in range(0, len(idx), chunk)] for split, idx in splits.items()}
    return Problem(
        name="digits", description="scikit-learn handwritten digits (8x8), split 40/30/30 into ODD/PDD/TDD",
        class_names=tuple(str(d) for d in range(10)), parts=parts, read_part=_read,
    )
