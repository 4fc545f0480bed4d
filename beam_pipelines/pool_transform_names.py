"""The transform names ``--pool_transforms`` accepts and their parsing, without Beam or TensorFlow: steal-labels
refuses a misspelt transform before it starts either. The transforms themselves are in
``beam_pipelines.pool_transforms``, which checks that it implements exactly these names."""

from typing import Sequence

from copycat_tf.errors import CopycatError

NAMES = ("grayscale", "invert", "contrast", "zoom", "rotate", "lowres", "plain", "strokes", "scribble", "bold")


def parse_variants(spec: str | Sequence[str] | None) -> list[str]:
    """``a+b,c`` → ["a+b", "c"]; unknown transform names are one error listing the known ones."""
    if not spec:
        return []
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    variants = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        unknown = [name for name in item.split("+") if name not in NAMES]
        if unknown:
            raise CopycatError(f"--pool_transforms: unknown transform {unknown[0]!r} in {item!r}; known: "
                               f"{', '.join(NAMES)} (chain them with +, separate variants with commas)")
        if item not in variants:
            variants.append(item)
    return variants
