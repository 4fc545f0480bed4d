"""The query-strategy registry: a new strategy plugs into copycat-steal-labels without editing the pipeline."""

import io

import numpy as np
import PIL.Image
import pytest

from beam_pipelines.steal_labels import StealLabelsConfig, run
from copycat_tf import query_strategies
from copycat_tf.errors import CopycatError
from copycat_tf.oracles import OracleSpec
from tests.predict_server import PredictServer
from tfrecords_schema import IMAGE, LABELED_IMAGE, Manifest, content_id, read_records, write_manifest, write_shards

COUNT = 12


def brightness_class(pixels: np.ndarray) -> int:
    return int(np.asarray(pixels).mean() >= 128)


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("pool"))
    records = []
    for i in range(COUNT):
        pixels = np.full((6, 6, 3), 20 * i, np.uint8)
        buffer = io.BytesIO()
        PIL.Image.fromarray(pixels).save(buffer, "PNG")
        records.append({"image": buffer.getvalue(), "format": "png", "height": 6, "width": 6, "id": content_id(pixels),
                        "phash": i, "source": "test", "source_key": str(i), "original_height": 6, "original_width": 6})
    write_shards(folder, IMAGE, records, num_shards=1)
    write_manifest(folder, Manifest(stage="build_npdd", record_kind="image", counts={"kept": COUNT}))
    return folder, {r["id"]: int(r["source_key"]) for r in records}


def _brightest_first(context: query_strategies.AskContext) -> query_strategies.AskResult:
    """A toy strategy: ask about the brightest images first, through the ledger, within the budget."""
    records = sorted(read_records(context.pool, IMAGE), key=lambda r: -int(r["source_key"]))
    chosen = records[:context.config.max_queries]
    allowed = set(context.ledger.claim(context.run_id, [r["id"] for r in chosen], context.config.max_queries, None))
    sent = [r for r in chosen if r["id"] in allowed]
    context.ledger.record([r["id"] for r in sent], context.oracle.classify([r["image"] for r in sent]))
    return query_strategies.AskResult({"asked": [r["source_key"] for r in sent]}, len(sent))


def test_an_unknown_strategy_is_one_error_naming_the_known_ones():
    with pytest.raises(CopycatError, match="--strategy='nope' is unknown; use one of random, adaptive"):
        query_strategies.get("nope")


def test_a_registered_strategy_runs_without_editing_the_pipeline(pool, tmp_path, monkeypatch):
    images, index_of = pool
    monkeypatch.setitem(query_strategies.REGISTRY, "brightest", query_strategies.QueryStrategy(
        "brightest", "the brightest images first", ask=_brightest_first, needs_budget=True))
    with PredictServer(brightness_class) as server:
        manifest = run(StealLabelsConfig(images=images, oracle=OracleSpec(server.url, num_classes=2),
                                         output=str(tmp_path / "sl"), max_queries=4, strategy="brightest"))
        asked = [i for batch in server.received_ids for i in batch]
    labeled = {r["id"]: r["label"] for r in read_records(str(tmp_path / "sl"), LABELED_IMAGE)}
    assert sorted(index_of[i] for i in labeled) == [8, 9, 10, 11] and sorted(asked) == sorted(labeled)
    assert set(labeled.values()) == {1}
    assert manifest.extra["brightest"] == {"asked": ["11", "10", "9", "8"]} and manifest.counts["queries"] == 4
    assert manifest.extra["knowledge"]["strategy"] == "brightest"
    with pytest.raises(CopycatError, match="--strategy=brightest needs --max_queries"):
        run(StealLabelsConfig(images=images, oracle=OracleSpec("http://127.0.0.1:9/v1/models/m:predict"),
                              output=str(tmp_path / "other"), strategy="brightest"))
