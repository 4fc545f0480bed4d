"""Near-duplicate search by banding 64-bit perceptual hashes: never all pairs.

Pigeonhole: if two hashes differ in at most k bits, then among k+1 disjoint bands of bits at
least one band is equal in both. Images are grouped by (band, band value); only images in the same
bucket are compared, and candidate pairs are verified by their exact Hamming distance.

A bucket that is too large is split again the same way over the bits its key does not fix yet
(any pair within k bits still shares one of the k+1 sub-buckets), identical hashes are collapsed
first (flat, low-entropy images share one hash), and once at most k bits remain unfixed every pair
in the bucket is within k bits, so no comparison is needed. Only a dense cluster of distinct
hashes that no split can separate is compared pairwise, and it is counted.

The rule that decides which image stays is local and order-free: an image is removed when some
image within k bits is preferred to it (larger original resolution, then smaller id, then smaller
source and key); its reported partner is the most preferred such image.
"""

import dataclasses
from typing import Iterable, Iterator

import numpy as np

FULL = (1 << 64) - 1
DEFAULT_MAX_BUCKET = 256
_BLOCK = 1024  # rows compared at once in a pairwise block


@dataclasses.dataclass(frozen=True, order=True)
class Candidate:
    """What the dedupe needs to know of an image (no pixels). Ordered by preference: smaller wins."""

    rank: tuple  # (-original pixel count, id, source, source_key)
    id: str
    phash: int
    source: str
    source_key: str
    nbytes: int = 0  # size of the stored image, for sizing shards


def make_candidate(record) -> Candidate:
    """The candidate of an image record."""
    return Candidate(
        rank=(-record["original_height"] * record["original_width"], record["id"], record["source"], record["source_key"]),
        id=record["id"],
        phash=record["phash"],
        source=record["source"],
        source_key=record["source_key"],
        nbytes=len(record["image"]),
    )


def split_bits(mask: int, parts: int) -> list[int]:
    """Split the set bits of ``mask`` into ``parts`` disjoint masks of near-equal size (low bits first)."""
    bits = [b for b in range(64) if mask >> b & 1]
    sizes = [len(bits) // parts + (1 if i < len(bits) % parts else 0) for i in range(parts)]
    masks, start = [], 0
    for size in sizes:
        masks.append(sum(1 << b for b in bits[start:start + size]))
        start += size
    return masks


def band_masks(max_bits: int) -> list[int]:
    """The k+1 top-level bands for a distance threshold k."""
    return split_bits(FULL, max_bits + 1)


def band_keys(phash: int, max_bits: int) -> list[tuple[int, int]]:
    """(band mask, band value) of every top-level bucket an image goes to."""
    return [(mask, phash & mask) for mask in band_masks(max_bits)]


@dataclasses.dataclass
class BucketStats:
    """How the work in buckets went (reported as Beam counters)."""

    compared_pairs: int = 0
    oversized_buckets: int = 0


def resolve_bucket(
    members: Iterable[Candidate], fixed_mask: int, max_bits: int,
    max_bucket: int = DEFAULT_MAX_BUCKET, stats: BucketStats | None = None,
) -> Iterator[tuple[Candidate, Candidate, int]]:
    """(removed, preferred partner, distance) for every member with a preferred image within ``max_bits``.

    ``members`` share the bits in ``fixed_mask``. A member may be yielded more than once (with
    different partners); the caller keeps the most preferred partner.
    """
    stats = stats if stats is not None else BucketStats()
    by_hash: dict[int, list[Candidate]] = {}
    for member in members:
        by_hash.setdefault(member.phash, []).append(member)
    representatives = []
    twins: dict[str, list[Candidate]] = {}  # representative id → the others with its exact hash
    for same in by_hash.values():
        best = min(same)
        representatives.append(best)
        twins[best.id] = [other for other in same if other is not best]
        for other in twins[best.id]:
            yield other, best, 0
    for removed, partner, distance in _resolve(sorted(representatives), fixed_mask, max_bits, max_bucket, stats):
        yield removed, partner, distance
        for twin in twins[removed.id]:  # same hash, so the same partner at the same distance
            yield twin, partner, distance


def _resolve(reps: list[Candidate], fixed: int, k: int, max_bucket: int, stats: BucketStats):
    """``reps``: sorted by preference, distinct hashes, equal on ``fixed``."""
    if len(reps) < 2:
        return
    free = FULL & ~fixed
    if free.bit_count() <= k:  # every pair differs in at most k bits
        best = reps[0]
        for other in reps[1:]:
            yield other, best, (other.phash ^ best.phash).bit_count()
        return
    if len(reps) <= max_bucket:
        yield from _pairwise(reps, k, stats)
        return
    sub_masks = [fixed | part for part in split_bits(free, k + 1)]
    splits = []
    for mask in sub_masks:
        groups: dict[int, list[Candidate]] = {}
        for rep in reps:  # stays sorted within each group
            groups.setdefault(rep.phash & mask, []).append(rep)
        splits.append((mask, groups))
    largest = max(len(group) for _, groups in splits for group in groups.values())
    if largest > 0.9 * len(reps):  # a dense cluster: splitting does not shrink it
        stats.oversized_buckets += 1
        yield from _pairwise(reps, k, stats)
        return
    for mask, groups in splits:
        for group in groups.values():
            yield from _resolve(group, mask, k, max_bucket, stats)


def _pairwise(reps: list[Candidate], k: int, stats: BucketStats):
    """Each member's most preferred partner within k bits among the more preferred members."""
    hashes = np.array([rep.phash for rep in reps], dtype=np.uint64)
    n = len(reps)
    stats.compared_pairs += n * (n - 1) // 2
    for start in range(1, n, _BLOCK):
        rows = hashes[start:start + _BLOCK]
        distances = np.bitwise_count(rows[:, None] ^ hashes[None, :start + len(rows)])
        close = distances <= k
        index = np.arange(start, start + len(rows))
        close &= np.arange(start + len(rows))[None, :] < index[:, None]  # only more preferred partners
        for row in np.flatnonzero(close.any(axis=1)):
            partner = int(np.argmax(close[row]))
            yield reps[start + row], reps[partner], int(distances[row, partner])
