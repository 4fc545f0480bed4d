"""Procedural query images: random strokes and shapes on a plain background, drawn from a seed.

The threat model lets an attacker know the rough look of a problem ("an object on a plain
background", grayscale or not) but never its images. These images encode that prior and nothing
more: pen strokes (polylines and Bézier curves of random width), ellipses, polygons and arcs, one to
four of them, in a random foreground tone on a random plain background, sometimes blurred or seen at
low resolution. They are cheap, endless and free of any problem image. Whether they help against a
given oracle is for the attack to find out from its answers (the per-oracle mixture of query families).
"""

import io
import random

import numpy as np
import PIL.Image
import PIL.ImageDraw
import PIL.ImageFilter

SIDE = 64  # drawn at this size; consumers resize


def _bezier(points, steps: int = 24):
    """Points along a cubic Bézier curve through four control points."""
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = points
    out = []
    for i in range(steps + 1):
        t = i / steps
        a, b, c, d = (1 - t) ** 3, 3 * t * (1 - t) ** 2, 3 * t * t * (1 - t), t ** 3
        out.append((a * x0 + b * x1 + c * x2 + d * x3, a * y0 + b * y1 + c * y2 + d * y3))
    return out


def _point(rng: random.Random, margin: float = 0.12):
    return (rng.uniform(margin, 1 - margin) * SIDE, rng.uniform(margin, 1 - margin) * SIDE)


def _draw_one(draw: PIL.ImageDraw.ImageDraw, rng: random.Random, fill) -> None:
    kind = rng.choice(("stroke", "stroke", "curve", "curve", "ellipse", "polygon", "arc"))
    width = max(1, int(SIDE * rng.uniform(0.04, 0.14)))
    if kind == "stroke":
        draw.line([_point(rng) for _ in range(rng.randint(2, 4))], fill=fill, width=width, joint="curve")
    elif kind == "curve":
        draw.line(_bezier([_point(rng) for _ in range(4)]), fill=fill, width=width, joint="curve")
    elif kind == "ellipse":
        (x0, y0), (x1, y1) = _point(rng), _point(rng)
        box = [min(x0, x1), min(y0, y1), max(x0, x1) + 4, max(y0, y1) + 4]
        if rng.random() < 0.5:
            draw.ellipse(box, outline=fill, width=width)
        else:
            draw.ellipse(box, fill=fill)
    elif kind == "polygon":
        points = [_point(rng) for _ in range(rng.randint(3, 5))]
        if rng.random() < 0.5:
            draw.line(points + points[:1], fill=fill, width=width, joint="curve")
        else:
            draw.polygon(points, fill=fill)
    else:
        (x0, y0), (x1, y1) = _point(rng), _point(rng)
        box = [min(x0, x1), min(y0, y1), max(x0, x1) + 8, max(y0, y1) + 8]
        start = rng.uniform(0, 360)
        draw.arc(box, start, start + rng.uniform(90, 300), fill=fill, width=width)


def shapes_image(seed: int | str, index: int) -> PIL.Image.Image:
    """Image ``index`` of the family seeded by ``seed``: 1-4 strokes or shapes on a plain background (RGB)."""
    rng = random.Random(f"shapes/{seed}/{index}")
    background = rng.randint(0, 255)
    contrast = rng.uniform(0.45, 1.0)
    foreground = int(round(background + (255 - background if background < 128 else -background) * contrast))
    colour = rng.random() < 0.3
    tint = [rng.uniform(0.6, 1.0) for _ in range(3)] if colour else [1.0, 1.0, 1.0]
    image = PIL.Image.new("L", (SIDE, SIDE), background)
    draw = PIL.ImageDraw.Draw(image)
    for _ in range(rng.choice((1, 1, 2, 2, 3, 4))):
        _draw_one(draw, rng, foreground)
    if rng.random() < 0.4:
        image = image.filter(PIL.ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0)))
    if rng.random() < 0.3:
        small = rng.choice((8, 12, 16))
        image = image.resize((small, small), PIL.Image.Resampling.BOX).resize((SIDE, SIDE), PIL.Image.Resampling.BILINEAR)
    pixels = np.asarray(image, np.float32)[..., None] * np.asarray(tint, np.float32)[None, None, :]
    angle = rng.uniform(-25, 25)
    rgb = PIL.Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    return rgb.rotate(angle, resample=PIL.Image.Resampling.BILINEAR, fillcolor=(int(background * tint[0]),
                                                                                  int(background * tint[1]),
                                                                                  int(background * tint[2])))


def shapes_png(seed: int | str, index: int) -> bytes:
    buffer = io.BytesIO()
    shapes_image(seed, index).save(buffer, "PNG")
    return buffer.getvalue()


__all__ = ["SIDE", "shapes_image", "shapes_png"]
