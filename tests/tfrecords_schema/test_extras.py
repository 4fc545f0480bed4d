"""The typed manifest extras: the lake's JSON layout is unchanged, and each key is spelled in one place."""

import json

import pytest

from tfrecords_schema import Manifest
from tfrecords_schema.extras import (BY_STAGE, BalancedExtra, Extra, LabeledExtra, NpddExtra, ProblemExtra,
                                     StolenExtra, extra_of, labeled_extra)

# A steal manifest's extra as copycat-steal-labels wrote it before the typed classes (session 10's layout).
STOLEN = {
    "num_classes": 3, "class_names": ["0", "1", "2"], "label_histogram": [5, 0, 2], "classes_never_seen": [1],
    "coverage": {"classes_seen": 2, "num_classes": 3}, "strategy": "adaptive", "oracle": {"kind": "savedmodel"},
    "ledger": "/l", "queries_total": 7, "shard_lengths": [4, 3],
    "knowledge": {"strategy": "adaptive", "pool_transforms": ["grayscale"], "num_classes": 3},
    "adaptive": {"rounds_run": 2, "stopped": "budget", "quota": 2},
    "pool": {"folder": "/p", "variants": ["grayscale"], "counts": {"kept": 9}},
    "cost": {"price_per_1000": 1.0, "this_run": 0.007, "total": 0.007},
}


def test_a_stolen_extra_reads_and_writes_back_unchanged():
    typed = StolenExtra.from_dict(STOLEN)
    assert typed.strategy_report == {"rounds_run": 2, "stopped": "budget", "quota": 2}
    assert typed.queries_total == 7 and typed.cost["total"] == 0.007 and typed.other == {}
    assert typed.to_dict() == STOLEN


def test_the_strategy_report_is_stored_under_the_strategy_name():
    out = StolenExtra(strategy="k_center", strategy_report={"picked": 3}).to_dict()
    assert out["k_center"] == {"picked": 3} and "strategy_report" not in out
    assert "pool" not in out and "cost" not in out  # written only when the run used them
    assert StolenExtra(strategy="random").to_dict().keys().isdisjoint({"random", "strategy_report", "other"})


def test_an_older_manifest_reads_with_defaults_and_keeps_keys_it_does_not_know():
    typed = StolenExtra.from_dict({"label_histogram": [1, 2], "future_key": {"x": 1}})
    assert typed.strategy == "random" and typed.strategy_report is None and typed.queries_total == 0
    assert typed.coverage == {} and typed.num_classes is None
    assert typed.to_dict()["future_key"] == {"x": 1}
    assert StolenExtra.from_dict(None).label_histogram == []


def test_a_misspelt_key_fails_where_it_is_written():
    with pytest.raises(TypeError):
        StolenExtra(label_histgram=[1])
    with pytest.raises(TypeError):
        BalancedExtra([1, 2])  # keyword-only: no positional mix-ups between histograms


def test_each_stage_has_its_class_and_the_manifest_gives_it():
    manifest = Manifest(stage="balance", record_kind="labeled_image", extra={
        "num_classes": 2, "class_names": ["a", "b"], "label_histogram": [3, 3], "label_histogram_before": [5, 1],
        "replication_factor": [0.6, 3.0], "shard_lengths": [6]})
    typed = manifest.typed_extra()
    assert isinstance(typed, BalancedExtra) and typed.replication_factor == [0.6, 3.0]
    assert typed.to_dict() == manifest.extra  # no "oracle" key when the input named none
    assert isinstance(extra_of("build_npdd", {}), NpddExtra) and isinstance(extra_of("prepare_problem", {}), ProblemExtra)
    assert type(extra_of("pool_transforms", {"shard_lengths": [2]})) is Extra
    assert type(extra_of("some_future_stage", {})) is Extra
    assert set(BY_STAGE) == {"build_npdd", "prepare_problem", "pool_transforms", "adaptive_variants", "steal_labels",
                             "balance"}


def test_class_names_fall_back_to_ids():
    assert labeled_extra({"num_classes": 3}).names() == ["0", "1", "2"]
    assert labeled_extra({"label_histogram": [1, 1]}).names() == ["0", "1"]
    assert LabeledExtra(class_names=["cat", "dog"], num_classes=2).names() == ["cat", "dog"]


def test_every_class_writes_json():
    for cls in set(BY_STAGE.values()):
        json.dumps(cls().to_dict())


def test_strategy_names_cannot_take_a_stolen_extra_key():
    from copycat_tf.query_strategies import RESERVED

    assert RESERVED == {"num_classes", "class_names", "label_histogram", "classes_never_seen", "coverage", "strategy",
                        "oracle", "ledger", "queries_total", "shard_lengths", "knowledge", "pool", "cost"}
    assert set(StolenExtra(pool={}, cost={}, num_classes=1).to_dict()) == RESERVED  # every key a steal can write
