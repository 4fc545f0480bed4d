"""Gradient and activation maps from tf-keras-vis, as alternatives to LRP.

``saliency`` (|gradient|), ``smoothgrad`` (saliency averaged over noisy copies), ``gradcam``,
``gradcam++`` and ``scorecam`` (class activation maps of the last convolution). All explain the
class score with the softmax replaced by a linear output.
"""

import numpy as np

from copycat_tf.errors import CopycatError

METHODS = ("saliency", "smoothgrad", "gradcam", "gradcam++", "scorecam")


def _last_conv(model) -> str:
    import keras

    convs = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    if not convs:
        raise CopycatError(f"{model.name} has no convolution for a class activation map")
    return convs[-1]


def vis_map(model, images: np.ndarray, class_ids, method: str) -> np.ndarray:
    """[N, H, W] maps of ``method`` for the given classes."""
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.saliency import Saliency
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    score = CategoricalScore(list(np.asarray(class_ids).tolist()))
    images = np.asarray(images, np.float32)
    if method in ("saliency", "smoothgrad"):
        explainer = Saliency(model, model_modifier=ReplaceToLinear(), clone=True)
        return np.asarray(explainer(score, images, smooth_samples=20 if method == "smoothgrad" else 0, smooth_noise=0.1))
    classes = {"gradcam": Gradcam, "gradcam++": GradcamPlusPlus, "scorecam": Scorecam}
    if method not in classes:
        raise CopycatError(f"unknown relevance method {method!r}; use lrp-RULE or one of {', '.join(METHODS)}")
    explainer = classes[method](model, model_modifier=ReplaceToLinear(), clone=True)
    extra = {"max_N": 16} if method == "scorecam" else {}
    return np.asarray(explainer(score, images, penultimate_layer=_last_conv(model), **extra))
