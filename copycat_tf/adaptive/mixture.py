"""The per-oracle family mixture: which of the pool's families (originals, each transform variant) to query.

``--pool_transforms`` turns every photo into several looks (grayscale, inverted, blurred, line drawings…).
Which looks pay depends on the oracle: a digits model answers most photos with one class whatever their
look, while light strokes on black spread its answers over many classes. The attacker may not know in
advance which look resembles the problem, so the oracle's own answers choose: a probe spends an equal
share on every family, then the rest of the seed set follows the family weights that make the expected
label histogram most even (maximum entropy), with a floor spread over every family so that no look is
dropped on the evidence of a small probe. Nothing here names a problem; NumPy only.
"""

import numpy as np

ORIGINAL = "none"  # the family of the pool's untransformed images


def family_of(source: str) -> str:
    """The family of a pool image from its ``source`` field (``transform:VARIANT`` for derived images)."""
    return source[len("transform:"):] if source.startswith("transform:") else ORIGINAL


def entropy(histogram) -> float:
    """Shannon entropy (nats) of a label histogram; 0 for an empty one."""
    p = np.asarray(histogram, np.float64)
    p = p[p > 0]
    if not len(p):
        return 0.0
    p = p / p.sum()
    return float(-(p * np.log(p)).sum())


def max_entropy_mixture(histograms, floor: float = 0.2, iterations: int = 2000, step: float = 0.5) -> np.ndarray:
    """Family weights w (summing to 1) that maximize the entropy of the expected label histogram sum_f w_f p_f.

    ``histograms[f]`` counts family f's probe answers per class. Each p_f is shrunk towards the pooled
    histogram with a prior worth K labels (K classes), so a family answered a dozen times cannot win on
    noise. The objective is concave in w; exponentiated-gradient ascent stays on the simplex. ``floor`` of
    the weight is then spread evenly over all families.
    """
    histograms = np.asarray(histograms, np.float64)
    if histograms.ndim != 2 or not len(histograms):
        raise ValueError("histograms must be a non-empty [families, classes] array")
    k = histograms.shape[1]
    pooled = (histograms.sum(axis=0) + 1.0) / (histograms.sum() + k)
    p = (histograms + k * pooled) / (histograms.sum(axis=1, keepdims=True) + k)
    w = np.full(len(p), 1.0 / len(p))
    for _ in range(iterations):
        q = w @ p
        gradient = -(p * (np.log(q) + 1)).sum(axis=1)
        w = w * np.exp(step * (gradient - gradient.max()))
        w /= w.sum()
    return (1 - floor) * w + floor / len(w)


__all__ = ["ORIGINAL", "entropy", "family_of", "max_entropy_mixture"]
