"""Detection of model extraction per API key from the distances between its queries (in the style of PRADA).

Juuti et al. (EuroS&P 2019) observed that a benign client's queries lie at distances from each other that
look normally distributed, while an extraction attack that makes its queries (small steps from a few seeds,
synthetic samples near the decision boundaries) produces many tiny distances and a few large ones. For each
key the monitor keeps, per answered class, a growing set of that key's queries; every new query adds its
distance to the nearest kept query of its class to the key's distance record, and is kept itself when that
distance is above the class's running threshold (mean minus standard deviation of the kept distances). Once
the record holds ``min_queries`` distances, a Shapiro–Wilk test runs after each query: W below ``delta``
flags the key, and the number of queries it took is recorded. With ``block`` the key's later requests are
refused (HTTP 403). The state lives in the server's memory (a restarted server starts every key afresh);
the query log marks each answer given after a key was flagged (``prada:flagged@N``, N the key's query count
when the detector flagged it, which concurrent requests cannot reorder), and the owner reads
the flags there, never through the public API.

Distances are Euclidean between 16x16 grayscale versions of the images scaled to [0, 1], so the monitor
costs a decode of a small image per query and never the model. An attacker that sends natural images may
look benign to it: measure it (the ``defenses`` experiment), don't assume it.
"""

import dataclasses
import io
import threading

import numpy as np
import PIL.Image

RECORD = 5000  # the Shapiro-Wilk test reads the key's last RECORD distances (its p-values are exact up to 5000)
KEPT_PER_CLASS = 2000  # queries kept per key and class at most (memory and search time stay bounded)


def features(image: bytes, size: int = 16) -> np.ndarray | None:
    """The image as the monitor compares it: ``size``x``size`` grayscale in [0, 1], flat; None if undecodable."""
    try:
        with PIL.Image.open(io.BytesIO(image)) as opened:
            small = opened.convert("L").resize((size, size), PIL.Image.Resampling.BILINEAR)
    except Exception:  # noqa: BLE001 — any image Pillow cannot read adds no distance (the model answered it anyway)
        return None
    return np.asarray(small, np.float32).reshape(-1) / 255.0


@dataclasses.dataclass
class _KeyState:
    kept: dict = dataclasses.field(default_factory=dict)  # class → [n, d] kept queries
    kept_distances: dict = dataclasses.field(default_factory=dict)  # class → distances of the kept ones
    thresholds: dict = dataclasses.field(default_factory=dict)  # class → running threshold
    distances: list = dataclasses.field(default_factory=list)
    queries: int = 0
    flagged_at: int | None = None
    last_w: float | None = None


class ExtractionMonitor:
    """The PRADA-style monitor of every key; thread-safe."""

    name = "prada"

    def __init__(self, delta: float = 0.9, min_queries: int = 100, block: bool = False, size: int = 16):
        if not 0 < delta < 1:
            raise ValueError("PRADA's delta is a Shapiro-Wilk W in (0, 1)")
        if min_queries < 3:
            raise ValueError("the Shapiro-Wilk test needs at least 3 distances")
        self.delta, self.min_queries, self.block, self.size = delta, min_queries, block, size
        self._keys: dict[str, _KeyState] = {}
        self._lock = threading.Lock()

    def spec(self) -> dict:
        return {"name": self.name, "delta": self.delta, "min_queries": self.min_queries, "block": self.block}

    def blocked(self, key: str) -> int | None:
        """With ``block``: the query count at which ``key`` was flagged (its requests are refused); else None."""
        with self._lock:
            state = self._keys.get(key)
            return state.flagged_at if self.block and state is not None else None

    def observe(self, key: str, images: list[bytes], class_ids) -> list[int | None]:
        """Record one request's answered images (``class_ids``: the model's own classes); for each, the key's
        query count at which it was flagged, if it stands flagged after that image (else None)."""
        from scipy.stats import shapiro

        flags = []
        with self._lock:
            state = self._keys.setdefault(key, _KeyState())
            for image, label in zip(images, class_ids):
                state.queries += 1
                vector = features(image, self.size)
                if vector is not None:
                    self._add(state, int(label), vector)
                    if state.flagged_at is None and len(state.distances) >= self.min_queries:
                        state.last_w = float(shapiro(np.asarray(state.distances[-RECORD:], np.float64)).statistic)
                        if state.last_w < self.delta:
                            state.flagged_at = state.queries
                flags.append(state.flagged_at)
        return flags

    @staticmethod
    def _add(state: _KeyState, label: int, vector: np.ndarray) -> None:
        kept = state.kept.get(label)
        if kept is None:
            state.kept[label] = vector[None, :]
            state.kept_distances[label] = []
            state.thresholds[label] = 0.0
            return
        distance = float(np.sqrt(((kept - vector) ** 2).sum(axis=1).min()))
        state.distances.append(distance)
        if len(state.distances) > 2 * RECORD:
            del state.distances[:-RECORD]
        if distance > state.thresholds[label] and len(kept) < KEPT_PER_CLASS:
            state.kept[label] = np.concatenate([kept, vector[None, :]])
            grown = state.kept_distances[label]
            grown.append(distance)
            state.thresholds[label] = max(state.thresholds[label], float(np.mean(grown) - np.std(grown)))

    def report(self) -> dict:
        """Per key: queries seen, the query count at which it was flagged (None: not flagged), the last W."""
        with self._lock:
            return {key: {"queries": s.queries, "flagged_at": s.flagged_at,
                          "shapiro_w": None if s.last_w is None else round(s.last_w, 4)}
                    for key, s in self._keys.items()}


__all__ = ["ExtractionMonitor", "features"]
