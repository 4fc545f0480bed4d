"""``glyphs``: uppercase letters rendered offline from the TTF fonts that ship with matplotlib (16 classes).

A second small problem beside ``digits`` with another look: dark letters on a light, plain
background (digits are light strokes on black), 20 x 20 px grayscale, 16 classes instead of 10.
Each image is one random rendering: a random font (DejaVu Sans/Serif/Mono in their regular, bold and
oblique cuts, STIX General, Computer Modern roman/sans/typewriter/bold/italic), size, position,
rotation (±15°), stroke thickness and gray levels; rendering ``i`` depends only on ``i``. The
renderings are split once, by a seeded permutation, into disjoint ODD (40%), PDD (30%) and TDD (30%),
like ``digits``; the fonts are shared between the splits, the renderings are not.

The second offline problem of issue #14 (copy fidelity must hold beyond digits): it needs no download,
and its look (polarity, size, glyph shapes, class count) differs from digits, so a stealing recipe tuned
to digits shows here. ``copycat-prepare-problem --problem=glyphs``.
"""

import functools
import io
import os
import random

import numpy as np
import PIL.Image
import PIL.ImageDraw
import PIL.ImageFont

from copycat_tf.problems.base import Example, Problem
from copycat_tf.problems.digits import split_indices

CLASSES = tuple("ABCDEFGHJKLMNPRT")
PER_CLASS = 400  # 6,400 renderings: with 150 per class the 8-epoch target did not learn (macro F1 0.05)
SIZE = 20  # stored side in pixels
CANVAS = 64  # drawn at this side, then shrunk (antialiased) to SIZE
FONT_FILES = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf",
    "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf", "DejaVuSansMono-BoldOblique.ttf",
    "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf",
    "cmr10.ttf", "cmss10.ttf", "cmtt10.ttf", "cmb10.ttf", "cmti10.ttf",
)


@functools.lru_cache(maxsize=1)
def font_paths() -> tuple[str, ...]:
    import matplotlib

    folder = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "fonts", "ttf")
    paths = tuple(os.path.join(folder, name) for name in FONT_FILES if os.path.exists(os.path.join(folder, name)))
    if not paths:
        raise FileNotFoundError(f"no matplotlib TTF fonts found in {folder}")
    return paths


@functools.lru_cache(maxsize=512)
def _font(path: str, size: int) -> PIL.ImageFont.FreeTypeFont:
    return PIL.ImageFont.truetype(path, size)


def render(index: int) -> tuple[np.ndarray, int]:
    """Rendering ``index``: (uint8 [SIZE, SIZE] grayscale pixels, class id)."""
    rng = random.Random(f"glyphs/{index}")
    label = index % len(CLASSES)
    fonts = font_paths()
    font = _font(fonts[rng.randrange(len(fonts))], rng.randint(34, 50))
    background, ink = rng.randint(190, 255), rng.randint(0, 70)
    stroke = rng.choice((0, 0, 1, 2))
    layer = PIL.Image.new("L", (CANVAS, CANVAS), 0)
    draw = PIL.ImageDraw.Draw(layer)
    left, top, right, bottom = draw.textbbox((0, 0), CLASSES[label], font=font, stroke_width=stroke)
    x = (CANVAS - (right - left)) / 2 - left + rng.uniform(-5, 5)
    y = (CANVAS - (bottom - top)) / 2 - top + rng.uniform(-5, 5)
    draw.text((x, y), CLASSES[label], fill=255, font=font, stroke_width=stroke, stroke_fill=255)
    layer = layer.rotate(rng.uniform(-15, 15), resample=PIL.Image.Resampling.BILINEAR)
    mask = np.asarray(layer.resize((SIZE, SIZE), PIL.Image.Resampling.BOX), dtype=np.float32) / 255.0
    pixels = background + (ink - background) * mask
    pixels += np.random.default_rng(index).normal(0, 4, pixels.shape)  # a little sensor noise
    return np.clip(np.round(pixels), 0, 255).astype(np.uint8), label


def _read(part):
    split, indices = part
    for index in indices:
        pixels, label = render(int(index))
        buffer = io.BytesIO()
        PIL.Image.fromarray(pixels, "L").save(buffer, "PNG")
        yield Example(buffer.getvalue(), label, f"glyphs/{index}")


def glyphs_problem(seed: int = 0, per_class: int = PER_CLASS) -> Problem:
    splits = split_indices(per_class * len(CLASSES), seed)  # digits' seeded 40/30/30 split
    chunk = 300
    parts = {split: [(split, idx[i:i + chunk].tolist()) for i in range(0, len(idx), chunk)] for split, idx in splits.items()}
    return Problem(
        name="glyphs", description=f"{len(CLASSES)} uppercase letters rendered from matplotlib's fonts ({SIZE}x{SIZE}, "
                                   "dark on light), split 40/30/30 into ODD/PDD/TDD",
        class_names=CLASSES, parts=parts, read_part=_read,
    )
