"""Relevance maps of target and copycat: where each model looks (LRP, or tf-keras-vis methods)."""

import numpy as np

from copycat_tf.errors import CopycatError
from copycat_tf.relevance.lrp import RULES, lrp, relevance_map
from copycat_tf.relevance.similarity import similarity
from copycat_tf.relevance.vis_methods import METHODS, vis_map

ALL_METHODS = tuple(f"lrp-{rule}" for rule in RULES) + METHODS


def explain(model, images: np.ndarray, class_ids, method: str = "lrp-composite") -> np.ndarray:
    """[N, H, W] relevance maps of ``model`` for ``class_ids`` with ``method`` (see ALL_METHODS)."""
    if method.startswith("lrp-"):
        return relevance_map(lrp(model, images, class_ids, rule=method[len("lrp-"):])[0])
    if method in METHODS:
        return vis_map(model, images, class_ids, method)
    raise CopycatError(f"unknown relevance method {method!r}; use one of {', '.join(ALL_METHODS)}")


__all__ = ["ALL_METHODS", "explain", "lrp", "relevance_map", "similarity"]
