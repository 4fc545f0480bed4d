"""``folder:PATH`` problems: PATH/{odd,pdd,tdd}/CLASS/*.ext, class ids from the sorted class folder names.

Any split may be missing. Every split present must use the same class folders (a split may lack a
class, but no split may add one the others do not know). Files are read whole; their content decides
the format.
"""

import os

from copycat_tf.errors import CopycatError
from copycat_tf.problems.base import SPLITS, Example, Problem

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
_CHUNK = 500


def _read(part):
    for path, label in part:
        with open(path, "rb") as handle:
            yield Example(handle.read(), label, path)


def folder_problem(path: str, name: str | None = None, description: str = "") -> Problem:
    if not os.path.isdir(path):
        raise CopycatError(f"problem folder {path} does not exist; it must hold odd/, pdd/ and/or tdd/ with a subfolder per class")
    present = [s for s in SPLITS if os.path.isdir(os.path.join(path, s))]
    if not present:
        raise CopycatError(f"{path} has none of odd/, pdd/, tdd/; each holds one subfolder per class")
    classes = sorted({c for s in present for c in os.listdir(os.path.join(path, s)) if os.path.isdir(os.path.join(path, s, c))})
    if not classes:
        raise CopycatError(f"{path}: no class folders inside {', '.join(present)}")
    parts = {}
    for split in present:
        files = []
        for label, class_name in enumerate(classes):
            folder = os.path.join(path, split, class_name)
            if os.path.isdir(folder):
                for root, _, names in os.walk(folder):
                    files += [(os.path.join(root, n), label) for n in sorted(names) if n.lower().endswith(IMAGE_SUFFIXES)]
        parts[split] = [files[i:i + _CHUNK] for i in range(0, len(files), _CHUNK)]
    return Problem(
        name=name or f"folder:{path}", description=description or f"image folders under {path}",
        class_names=tuple(classes), parts=parts, read_part=_read,
    )
