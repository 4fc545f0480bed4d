"""The served model: an oracle-contract SavedModel as a function from encoded images to probabilities."""

import numpy as np
import tensorflow as tf

from copycat_tf.errors import CopycatError
from copycat_tf.oracles.saved_model import model_hash
from copycat_tf.serving.config import not_a_saved_model
from copycat_tf.run_dir import SAVED_MODEL


def load_predict(path: str):
    """(predict(list of encoded images) → float32 [N, K] probabilities, the model's identity hash).

    The model must meet the oracle contract (copycat_tf/export.py): one tf.string input of encoded
    images, a ``probabilities`` output (or ``class_id`` alone, answered as one-hot rows)."""
    if not tf.io.gfile.exists(tf.io.gfile.join(path, SAVED_MODEL)):
        raise not_a_saved_model(path)
    identity = model_hash(path)
    loaded = tf.saved_model.load(path)
    if "serving_default" not in loaded.signatures:
        raise CopycatError(f"--model={path} has no serving_default signature; export it with copycat-train")
    signature = loaded.signatures["serving_default"]
    inputs = signature.structured_input_signature[1]
    if len(inputs) != 1 or next(iter(inputs.values())).dtype != tf.string:
        raise CopycatError(f"--model={path} does not take encoded images (one tf.string input); serve a model "
                           "exported with copycat-train or copycat_tf.export.export_classifier")
    name = next(iter(inputs))
    outputs = signature.structured_outputs
    if "probabilities" not in outputs and "class_id" not in outputs:
        raise CopycatError(f"--model={path} answers {sorted(outputs)}, neither probabilities nor class_id")
    num_classes = int(outputs["probabilities"].shape[-1]) if "probabilities" in outputs else None

    def predict(images: list[bytes]) -> np.ndarray:
        answer = signature(**{name: tf.constant(images, tf.string)})
        if "probabilities" in answer:
            return answer["probabilities"].numpy().astype(np.float32)
        ids = answer["class_id"].numpy().astype(np.int64).reshape(-1)
        width = num_classes or int(ids.max()) + 1
        return np.eye(width, dtype=np.float32)[ids]

    return predict, identity
