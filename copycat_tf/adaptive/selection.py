"""Which pool images to query next: quotas, per-class allocations and the picks themselves (NumPy only).

Each round, the classes furthest below their quota get most of the round's queries: a class's
share is proportional to its deficit (quota minus labels so far). For a class already seen, its
share goes to the unqueried images the interim copycat scores highest for it. A never-seen class
cannot be scored (the interim copycat has no example of it), so its share, plus the fixed
``explore`` fraction, goes to the images the interim copycat is least sure about (smallest margin
between its two best classes): new classes hide at the boundaries between known ones.
"""

import dataclasses
import hashlib

import numpy as np


def selection_key(seed: int, image_id: str) -> str:
    """Seeded hash that orders a pool for random querying (the same order in every mode and runner)."""
    return hashlib.sha256(f"{seed}:{image_id}".encode()).hexdigest()


def random_order(ids: list[str], seed: int) -> np.ndarray:
    """Positions of ``ids`` in seeded-hash order."""
    return np.array(sorted(range(len(ids)), key=lambda i: selection_key(seed, ids[i])), dtype=np.int64)


def apportion(total: int, weights: np.ndarray) -> np.ndarray:
    """Integers proportional to ``weights`` that sum to ``total`` (largest remainders)."""
    weights = np.asarray(weights, dtype=np.float64)
    if total <= 0 or weights.sum() <= 0:
        return np.zeros(len(weights), dtype=np.int64)
    exact = total * weights / weights.sum()
    counts = np.floor(exact).astype(np.int64)
    for i in np.argsort(-(exact - counts), kind="stable")[: total - counts.sum()]:
        counts[i] += 1
    return counts


@dataclasses.dataclass
class Allocation:
    per_class: np.ndarray  # queries aimed at each seen class (images it scores highest)
    uncertain: int  # queries on the least certain images (exploration and never-seen classes)


def allocate(histogram: np.ndarray, quota: int, round_size: int, explore: float) -> Allocation:
    """Split one round's queries between the classes below quota and exploration."""
    histogram = np.asarray(histogram, dtype=np.int64)
    deficits = np.maximum(0, quota - histogram)
    if round_size <= 0 or deficits.sum() == 0:
        return Allocation(np.zeros(len(histogram), dtype=np.int64), 0)
    explore_n = int(round(round_size * explore))
    shares = apportion(round_size - explore_n, deficits)
    unseen = histogram == 0
    explore_n += int(shares[unseen].sum())
    shares[unseen] = 0
    return Allocation(shares, explore_n)


class TopK:
    """The k best (score, position) pairs seen so far, fed chunk by chunk (memory O(k))."""

    def __init__(self, k: int):
        self.k = k
        self.scores = np.empty(0, dtype=np.float64)
        self.positions = np.empty(0, dtype=np.int64)

    def add(self, scores: np.ndarray, positions: np.ndarray) -> None:
        if self.k <= 0:
            return
        scores = np.concatenate([self.scores, scores])
        positions = np.concatenate([self.positions, positions])
        if len(scores) > self.k:
            keep = np.argpartition(-scores, self.k - 1)[: self.k]
            scores, positions = scores[keep], positions[keep]
        self.scores, self.positions = scores, positions

    def ranked(self) -> np.ndarray:
        """Positions, best first (ties by position, so picks are reproducible)."""
        order = np.lexsort((self.positions, -self.scores))
        return self.positions[order]


SPARE = 64


class Picker:
    """Streams the interim copycat's probabilities over the unqueried pool and keeps the candidates."""

    def __init__(self, allocation: Allocation):
        self.allocation = allocation
        # Each list keeps twice what it needs (plus a little): room for the picks another list takes first,
        # while memory and merge work stay proportional to the round, not to the round times the classes.
        self.by_class = {c: TopK(2 * int(n) + SPARE) for c, n in enumerate(allocation.per_class) if n > 0}
        self.uncertain = TopK(2 * allocation.uncertain + SPARE if allocation.uncertain else 0)

    def add(self, probabilities: np.ndarray, positions: np.ndarray) -> None:
        for c, top in self.by_class.items():
            top.add(probabilities[:, c], positions)
        if self.allocation.uncertain:
            best_two = -np.sort(-probabilities, axis=1)[:, :2]
            margin = best_two[:, 0] - (best_two[:, 1] if probabilities.shape[1] > 1 else 0.0)
            self.uncertain.add(-margin, positions)

    def picks(self) -> tuple[list[int], dict[str, int]]:
        """Chosen positions (no repeats): the neediest class first, then the uncertain images."""
        chosen: list[int] = []
        taken: set[int] = set()
        made = {}
        order = sorted(self.by_class, key=lambda c: -self.allocation.per_class[c])
        for name, want, ranked in [(f"class_{c}", int(self.allocation.per_class[c]), self.by_class[c].ranked())
                                   for c in order] + [("uncertain", self.allocation.uncertain, self.uncertain.ranked())]:
            got = 0
            for position in ranked:
                if got == want:
                    break
                if int(position) not in taken:
                    taken.add(int(position))
                    chosen.append(int(position))
                    got += 1
            made[name] = got
        return chosen, made


__all__ = ["Allocation", "Picker", "TopK", "allocate", "random_order", "selection_key"]
