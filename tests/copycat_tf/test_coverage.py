"""Coverage numbers against hand computations."""

import pytest

from copycat_tf.coverage import coverage_report, describe, good_turing_unseen, unseen_rate_upper_95


def test_good_turing_is_the_share_of_singletons():
    assert good_turing_unseen([5, 1, 0, 1, 3]) == pytest.approx(2 / 10)
    assert good_turing_unseen([0, 0]) == 1.0  # nothing asked yet: anything is new


def test_unseen_rate_bound_is_the_rule_of_three():
    assert unseen_rate_upper_95(1000) == pytest.approx(1 - 0.05 ** (1 / 1000))
    assert unseen_rate_upper_95(1000) == pytest.approx(3 / 1000, rel=0.01)
    assert (1 - unseen_rate_upper_95(50)) ** 50 == pytest.approx(0.05)


def test_report_of_a_skewed_histogram():
    report = coverage_report([96, 1, 0, 3], quota=25)
    assert report["labels"] == 100 and report["classes_seen"] == 3 and report["classes_never_seen"] == [2]
    assert report["classes_seen_once"] == [1] and report["largest_class_share"] == 0.96
    assert report["good_turing_p_unseen"] == 0.01
    assert report["queries_to_see_an_unseen_class_at_least"] == 34  # 1 / (1 - 0.05 ** 0.01) = 33.9
    assert report["below_quota"] == [1, 2, 3]
    assert report["queries_to_quota"] == [0, 2500, None, 834]  # 25 * 100 / 1 and 25 * 100 / 3, rounded up
    assert "3 of 4 classes seen" in describe(report) and "< 1 in 34" in describe(report)
