"""Quotas, allocations and picks, checked against hand computations."""

import numpy as np

from copycat_tf.adaptive.selection import Allocation, Picker, TopK, allocate, random_order, selection_key


def test_allocation_follows_the_deficits_and_sends_unseen_shares_to_exploration():
    # quota 10: deficits [0, 6, 10, 2] -> the 16 non-explore queries split 6:10:2 (of 18), class 2 is unseen
    allocation = allocate(np.array([12, 4, 0, 8]), quota=10, round_size=20, explore=0.2)
    assert allocation.per_class.tolist() == [0, 5, 0, 2]
    assert allocation.uncertain == 4 + 9  # the fixed 20% plus class 2's share (16 * 10 / 18 = 8.9 -> 9)
    assert allocation.per_class.sum() + allocation.uncertain == 20


def test_no_allocation_when_every_class_has_its_quota():
    allocation = allocate(np.array([10, 11]), quota=10, round_size=50, explore=0.5)
    assert allocation.per_class.tolist() == [0, 0] and allocation.uncertain == 0


def test_top_k_streamed_in_chunks_equals_a_full_sort():
    rng = np.random.default_rng(0)
    scores = rng.random(1000)
    top = TopK(25)
    for start in range(0, 1000, 128):
        top.add(scores[start:start + 128], np.arange(start, min(start + 128, 1000)))
    assert top.ranked().tolist() == np.argsort(-scores)[:25].tolist()


def test_picks_take_the_neediest_class_first_never_repeat_and_fill_uncertain_last():
    probabilities = np.array([
        [0.9, 0.1, 0.0],   # 0: class 0's best
        [0.8, 0.2, 0.0],   # 1
        [0.6, 0.4, 0.0],   # 2: class 1's second best
        [0.1, 0.9, 0.0],   # 3: class 1's best
        [0.0, 0.3, 0.7],   # 4: margin 0.4, less certain than image 1 (0.6)
    ])
    picker = Picker(Allocation(per_class=np.array([1, 2, 0]), uncertain=1))
    picker.add(probabilities[:3], np.arange(3))
    picker.add(probabilities[3:], np.arange(3, 5))
    chosen, made = picker.picks()
    # class 1 (2 wanted) first: 3 (0.9), 2 (0.4); then class 0: 0; uncertain: smallest margin of {1, 4} -> 4
    assert chosen == [3, 2, 0, 4]
    assert made == {"class_1": 2, "class_0": 1, "uncertain": 1}


def test_random_order_is_the_seeded_hash_order():
    ids = [f"id{i}" for i in range(20)]
    order = random_order(ids, seed=3)
    assert [ids[i] for i in order] == sorted(ids, key=lambda i: selection_key(3, i))
    assert random_order(ids, seed=4).tolist() != order.tolist()
