"""The names ``--augment`` accepts and their parsing, without TensorFlow: a binary refuses a bad value
before it starts TensorFlow. The operations themselves are in ``copycat_tf.training.augment``."""

from copycat_tf.errors import CopycatError

# The paper's ten, in the order they are applied, then lowres (not in the paper).
OPERATIONS = ("intensity", "contrast", "crop", "flip", "blur", "noise", "rotate", "scale", "shear", "translate",
              "lowres")
PAPER = OPERATIONS[:10]  # --augment=paper: the paper's ten, not lowres


def parse_augmentation(spec: str) -> list[str]:
    """The operation names of an ``--augment`` value ([] for none); unknown names raise CopycatError."""
    if spec in ("", "none"):
        return []
    names = list(PAPER) if spec == "paper" else [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in OPERATIONS]
    if unknown or not names:
        raise CopycatError(f"--augment={spec}: unknown operation(s) {', '.join(unknown) or '(none given)'}; "
                           f"use none, paper or some of {', '.join(OPERATIONS)}")
    return names
