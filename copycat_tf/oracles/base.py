"""The oracle interface: encoded images in, top-1 class ids out. Nothing else is ever read.

An oracle is the black box under attack: a local TensorFlow SavedModel or a REST endpoint speaking
TensorFlow Serving's predict protocol. Clients keep only the argmax of whatever the model returns
(probabilities, logits or class ids), so the attack sees hard labels only.
"""

import abc
from typing import Sequence

import numpy as np

from copycat_tf.errors import CopycatError


class OracleError(CopycatError):
    """The oracle could not be loaded, reached or understood; the message names the fix."""


class Oracle(abc.ABC):
    """Images in, class ids out."""

    #: stable identity of the model behind the oracle: ledgers only reuse answers of the same one
    fingerprint: str
    #: number of classes when the oracle tells it (a probabilities/logits output), else None
    num_classes: int | None = None

    @abc.abstractmethod
    def classify(self, images: Sequence[bytes]) -> np.ndarray:
        """Top-1 class id (int64) of each encoded image, in order."""

    def describe(self) -> dict:
        """What the manifest records about this oracle (never secrets)."""
        return {"fingerprint": self.fingerprint, "num_classes": self.num_classes}

    def close(self) -> None:
        """Release what the oracle holds (connections, the loaded model)."""


def top1(outputs: np.ndarray) -> np.ndarray:
    """Class ids from a model output: scores [N, K] → argmax; ids [N] or [N, 1] → as they are."""
    outputs = np.asarray(outputs)
    if outputs.ndim == 2 and outputs.shape[1] > 1:
        return np.argmax(outputs, axis=1).astype(np.int64)
    if outputs.ndim in (1, 2) and np.issubdtype(outputs.dtype, np.integer):
        return outputs.reshape(-1).astype(np.int64)
    if outputs.ndim == 2 and outputs.shape[1] == 1:  # one score per image: a binary sigmoid
        return (outputs[:, 0] > (0.5 if outputs.min() >= 0 and outputs.max() <= 1 else 0.0)).astype(np.int64)
    raise OracleError(f"cannot read a class from an oracle output of shape {outputs.shape} and type {outputs.dtype}")
