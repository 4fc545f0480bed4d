"""How alike two relevance maps are: rank correlation, top-k% overlap and structural similarity.

Maps are compared as absolute values (where a model looks, whatever the sign of the evidence).
Identical maps score 1 on all three.
"""

import numpy as np
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.abs(a).ravel(), np.abs(b).ravel()
    if np.all(a == a[0]) or np.all(b == b[0]):
        return 1.0 if np.array_equal(a, b) else 0.0
    return float(spearmanr(a, b).statistic)


def top_overlap(a: np.ndarray, b: np.ndarray, fraction: float = 0.1) -> float:
    """Intersection over union of the top ``fraction`` most relevant pixels of each map."""
    a, b = np.abs(a).ravel(), np.abs(b).ravel()
    k = max(1, int(round(fraction * a.size)))
    top_a, top_b = set(np.argsort(-a, kind="stable")[:k]), set(np.argsort(-b, kind="stable")[:k])
    return len(top_a & top_b) / len(top_a | top_b)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.abs(a), np.abs(b)
    a = a / a.max() if a.max() > 0 else a
    b = b / b.max() if b.max() > 0 else b
    window = min(7, *a.shape) // 2 * 2 + 1 if min(a.shape) >= 3 else 3
    return float(structural_similarity(a, b, data_range=1.0, win_size=window))


def similarity(a: np.ndarray, b: np.ndarray, fraction: float = 0.1) -> dict:
    return {"spearman": spearman(a, b), f"top{int(fraction * 100)}_overlap": top_overlap(a, b, fraction), "ssim": ssim(a, b)}
