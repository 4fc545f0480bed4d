"""The answer defenses and the per-key limits, on made-up probabilities (no model, no server)."""

import math

import numpy as np
import pytest

from copycat_tf.serving.defenses import KeyLimits, Watermark, answer_chain, defend, fingerprint

K = 5


def _probabilities(n, seed=0):
    rng = np.random.default_rng(seed)
    raw = rng.random((n, K)).astype(np.float32)
    return raw / raw.sum(axis=1, keepdims=True)


def _images(n, prefix=b"img"):
    return [prefix + str(i).encode() for i in range(n)]


def test_top1_and_rounding_keep_the_argmax():
    probabilities = _probabilities(500)
    bare = defend([], _images(500), probabilities)
    np.testing.assert_array_equal(bare.class_ids, probabilities.argmax(axis=1))
    rounded = defend(answer_chain(round_to=1), _images(500), probabilities)
    np.testing.assert_array_equal(rounded.class_ids, bare.class_ids)
    assert np.all(np.abs(rounded.probabilities * 10 - np.round(rounded.probabilities * 10)) < 1e-5)
    top1 = defend(answer_chain(round_to=2, top1=True), _images(500), probabilities)
    assert top1.probabilities is None
    np.testing.assert_array_equal(top1.class_ids, bare.class_ids)


def test_the_watermark_is_keyed_repeatable_wrong_and_of_the_asked_share():
    images = _images(20_000)
    probabilities = _probabilities(20_000)
    true = probabilities.argmax(axis=1)
    mark = Watermark(b"owner secret", 0.02)
    first = defend([mark], images, probabilities)
    again = defend([Watermark(b"owner secret", 0.02)], images, probabilities)
    np.testing.assert_array_equal(first.class_ids, again.class_ids)  # repeatable: the same image, the same answer
    changed = first.class_ids != true
    assert 0.015 < changed.mean() < 0.025  # the share asked (2% of 20,000: 400 ± ~60)
    assert all(notes == ["watermark"] for notes, c in zip(first.notes, changed) if c)
    assert not any(notes for notes, c in zip(first.notes, changed) if not c)
    # the probabilities stay a distribution whose argmax is the answered (wrong) class
    np.testing.assert_array_equal(first.probabilities.argmax(axis=1), first.class_ids)
    np.testing.assert_allclose(first.probabilities.sum(axis=1), 1.0, rtol=1e-5)
    other = defend([Watermark(b"another secret", 0.02)], images, probabilities).class_ids != true
    assert (changed & other).sum() < 0.1 * changed.sum()  # another key marks other images
    labels = [mark.label(b"x%d" % i, 3, K) for i in range(2000)]
    assert 3 not in labels and set(labels) == {0, 1, 2, 4}  # never the true class, every other one


def test_key_limits_quota_window_and_rate_with_retry_after():
    now = [100.0]
    limits = KeyLimits(quota=10, window_s=60, clock=lambda: now[0])
    assert limits.admit("a", 6) is None
    assert limits.admit("a", 5) == pytest.approx(60.0)  # would pass 11 > 10: wait for the window's end
    assert limits.admit("b", 10) is None  # per key
    now[0] += 30
    assert limits.admit("a", 4) is None and limits.admit("a", 1) == pytest.approx(30.0)
    now[0] += 30
    assert limits.admit("a", 10) is None  # a new window
    assert math.isinf(limits.admit("a", 11))  # never fits

    rate = KeyLimits(rate=4.0, clock=lambda: now[0])
    assert rate.admit("a", 4) is None
    assert rate.admit("a", 2) == pytest.approx(0.5)  # two tokens at 4 per second
    now[0] += 0.5
    assert rate.admit("a", 2) is None
    assert rate.admit("a", 1) == pytest.approx(0.25)
    assert math.isinf(rate.admit("a", 5)) and rate.largest_request() == 4 == KeyLimits(quota=9, rate=4.0).largest_request()
    slow = KeyLimits(rate=0.5, clock=lambda: now[0])  # under one image a second: one at a time, every 2 s
    assert slow.admit("a", 1) is None and slow.admit("a", 1) == pytest.approx(2.0) and math.isinf(slow.admit("a", 2))


def test_images_given_back_return_to_the_quota_but_not_to_the_rate():
    now = [100.0]
    limits = KeyLimits(quota=10, window_s=60, rate=20.0, clock=lambda: now[0])
    assert limits.admit("a", 8) is None
    limits.give_back("a", 8)  # the model could not answer them
    assert limits.admit("a", 10) is None  # the whole quota again
    assert limits.admit("a", 1) == pytest.approx(60.0)
    limits.give_back("b", 5)  # a key never admitted gets nothing
    now[0] += 30
    assert limits.admit("b", 10) is None and limits.admit("b", 1) == pytest.approx(60.0)
    rate = KeyLimits(rate=4.0, clock=lambda: now[0])
    assert rate.admit("a", 4) is None
    rate.give_back("a", 4)
    assert rate.admit("a", 1) == pytest.approx(0.25)  # the tokens stay spent


def test_the_fingerprint_names_every_defense_and_no_secret():
    bare = fingerprint("abc", KeyLimits(), [])
    assert bare == "abc"
    marked = fingerprint("abc", KeyLimits(), answer_chain(Watermark(b"s1", 0.01)))
    assert marked.startswith("abc+") and marked != fingerprint("abc", KeyLimits(), answer_chain(Watermark(b"s2", 0.01)))
    assert fingerprint("abc", KeyLimits(quota=5), []) != fingerprint("abc", KeyLimits(quota=6), [])
    assert fingerprint("abc", KeyLimits(), answer_chain(top1=True)) != bare
    assert "s1" not in str(Watermark(b"s1", 0.01).spec())


def test_misinformation_flips_only_the_queries_above_its_threshold():
    probabilities = np.array([[0.90, 0.05, 0.03, 0.01, 0.01],  # score 0.10: in distribution, kept
                              [0.40, 0.30, 0.20, 0.06, 0.04],  # score 0.60: flipped to the least likely class
                              [0.71, 0.10, 0.09, 0.05, 0.05],  # score 0.29: just below, kept
                              [0.25, 0.25, 0.20, 0.20, 0.10]], np.float32)  # score 0.75: flipped
    answers = defend(answer_chain(misinformation=0.3), _images(4), probabilities)
    assert answers.class_ids.tolist() == [0, 4, 0, 4]
    assert answers.notes == [[], ["misinformation"], [], ["misinformation"]]
    # a fixed form that tells nothing of the model's probabilities: 0.7 + 0.3/5 on the label, 0.3/5 elsewhere
    np.testing.assert_allclose(answers.probabilities[[1, 3]], [[0.06] * 4 + [0.76]] * 2, rtol=1e-6)
    np.testing.assert_array_equal(answers.probabilities[0], probabilities[0])
    # before top-1 in the chain, so a hard-label client sees the misleading class
    hard = defend(answer_chain(top1=True, misinformation=0.3), _images(4), probabilities)
    assert hard.class_ids.tolist() == [0, 4, 0, 4] and hard.probabilities is None
    many = _probabilities(2000, seed=3)
    flipped = defend(answer_chain(misinformation=0.5), _images(2000), many).class_ids != many.argmax(axis=1)
    np.testing.assert_array_equal(flipped, 1 - many.max(axis=1) > 0.5)


def test_the_watermark_keys_on_the_models_class_even_after_misinformation():
    images = _images(4000)
    probabilities = _probabilities(4000, seed=5)  # unsure rows: misinformation flips most of them
    mark = Watermark(b"owner secret", 0.2)
    answers = defend(answer_chain(watermark=mark, misinformation=0.3), images, probabilities)
    model = probabilities.argmax(axis=1)
    chosen = np.array([mark.chosen(i) for i in images])
    expected = [mark.label(i, int(c), K) for i, c in zip(images, model)]
    np.testing.assert_array_equal(answers.class_ids[chosen], np.array(expected)[chosen])  # what verify rebuilds
    assert all(notes[-1] == "watermark" for notes, c in zip(answers.notes, chosen) if c)
    flipped = ~chosen & (1 - probabilities.max(axis=1) > 0.3)
    np.testing.assert_array_equal(answers.class_ids[flipped], probabilities.argmin(axis=1)[flipped])
    np.testing.assert_array_equal(answers.probabilities.argmax(axis=1), answers.class_ids)
