"""Banded near-duplicate search: same decisions as comparing all pairs, without comparing all pairs."""

import random

import pytest

from beam_pipelines.near_duplicates import (
    FULL,
    BucketStats,
    band_keys,
    band_masks,
    make_candidate,
    resolve_bucket,
    split_bits,
)


def _candidate(i: int, phash: int, pixels: int = 100):
    return make_candidate({"id": f"{i:032x}", "phash": phash, "original_height": pixels, "original_width": 1,
                           "source": "s", "source_key": str(i), "image": b"x"})


def _clustered_hashes(seed: int, clusters: int = 300):
    rng = random.Random(seed)
    hashes = []
    for _ in range(clusters):
        base = rng.getrandbits(64)
        hashes.append(base)
        for _ in range(rng.randint(0, 3)):
            variant = base
            for bit in rng.sample(range(64), rng.randint(0, 10)):
                variant ^= 1 << bit
            hashes.append(variant)
    return hashes + [0] * 40 + [1, 3, 7]  # flat images share hash 0


def _all_pairs(candidates, k):
    """The decision rule applied literally: removed when a preferred candidate is within k bits."""
    decided = {}
    for c in candidates:
        better = [d for d in candidates if d < c and (d.phash ^ c.phash).bit_count() <= k]
        if better:
            decided[c.id] = min(better).id
    return decided


def _banded(candidates, k, max_bucket, stats):
    buckets = {}
    for c in candidates:
        for key in band_keys(c.phash, k):
            buckets.setdefault(key, []).append(c)
    decided = {}
    for (mask, _), members in buckets.items():
        for removed, partner, distance in resolve_bucket(members, mask, k, max_bucket, stats):
            assert distance == (removed.phash ^ partner.phash).bit_count() <= k
            assert partner < removed
            if removed.id not in decided or partner < decided[removed.id]:
                decided[removed.id] = partner
    return {i: p.id for i, p in decided.items()}


@pytest.mark.parametrize("k,max_bucket", [(4, 256), (8, 256), (8, 4), (8, 2), (12, 16)])
def test_banded_search_decides_exactly_like_all_pairs(k, max_bucket):
    hashes = _clustered_hashes(seed=k * 100 + max_bucket)
    candidates = [_candidate(i, h, pixels=(i * 7919) % 1000 + 1) for i, h in enumerate(hashes)]
    expected = _all_pairs(candidates, k)
    assert len(expected) > 100  # the data really has near duplicates
    assert _banded(candidates, k, max_bucket, BucketStats()) == expected


def test_bands_partition_the_64_bits():
    for k in range(0, 20):
        masks = band_masks(k)
        assert len(masks) == k + 1
        assert sum(masks) == FULL and all(a & b == 0 for i, a in enumerate(masks) for b in masks[i + 1:])
    assert [m.bit_count() for m in split_bits(0b1111_0110, 3)] == [2, 2, 2]


def test_identical_hashes_are_resolved_without_comparisons():
    stats = BucketStats()
    members = [_candidate(i, 0) for i in range(5000)]
    removed = list(resolve_bucket(members, band_masks(8)[0], 8, 256, stats))
    assert len(removed) == 4999
    assert {partner.id for _, partner, _ in removed} == {min(members).id}
    assert stats.compared_pairs == 0


def test_large_buckets_grow_far_below_quadratic():
    """Random hashes sharing one band: 4x the images must cost well under the 16x of all pairs."""
    mask = band_masks(8)[0]
    compared = []
    for n in (1000, 4000):
        rng = random.Random(1)
        members = [_candidate(i, rng.getrandbits(64) & ~mask) for i in range(n)]
        stats = BucketStats()
        list(resolve_bucket(members, mask, 8, 16, stats))
        compared.append(stats.compared_pairs)
    assert compared[1] < 8 * compared[0]
    assert compared[1] < 4000 * 3999 / 2 / 30
