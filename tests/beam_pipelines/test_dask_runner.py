"""Every Beam stage on a Dask cluster (``--runner=DaskRunner``) writes what it writes on the DirectRunner.

One local Dask cluster (two worker processes) serves the whole module, reached through
``--dask_client_address`` as a user's own cluster would be.
"""

import dataclasses
import json
import os

import apache_beam as beam
import dask
import distributed  # the test extra installs Dask: without it this module fails, it is not skipped
import pytest

from beam_pipelines import balance, build_npdd, pool_transforms, prepare_problem, steal_labels
from beam_pipelines.runner import make_pipeline
from copycat_tf import forked_steps
from copycat_tf.oracles import OracleSpec
from tests.beam_pipelines.load_counting import LoadCountingHandler
from tests.conftest import image_record, labeled_record
from tests.tiny_oracles import save_bytes_oracle
from tfrecords_schema import IMAGE, LABELED_IMAGE, Manifest, write_manifest, write_shards


# What a run records about where and how it ran: the only lines allowed to differ between the two runners.
RUN_FIELDS = {"created", "output", "runner", "pipeline_args"}


@pytest.fixture(scope="module")
def dask_args():
    # The worker processes are forked from the test process's warm server (TensorFlow and Beam imported once),
    # not spawned: a spawned worker imports them again when it unpickles its first task.
    forked_steps.server()
    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    try:
        yield [f"--dask_client_address={cluster.scheduler_address}"]
    finally:
        cluster.close()


def _strip(value, paths):
    if isinstance(value, dict):
        return {k: _strip(v, paths) for k, v in value.items() if k not in RUN_FIELDS}
    if isinstance(value, list):
        return [_strip(v, paths) for v in value]
    if isinstance(value, str):
        for path in paths:
            value = value.replace(path, "<this run's>")
    return value


def _contents(folder: str, *own_paths: str) -> dict:
    """file name → bytes, with the JSON files' run-specific fields dropped and the run's own paths blanked."""
    out = {}
    for base, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(base, name)
            data = open(path, "rb").read()
            if name.endswith(".json"):
                data = _strip(json.loads(data), (folder, *own_paths))
            out[os.path.relpath(path, folder)] = data
    return out


def _same(direct: str, dask: str, direct_paths=(), dask_paths=()) -> None:
    a, b = _contents(direct, *direct_paths), _contents(dask, *dask_paths)
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name] == b[name], name


def test_tagged_outputs_stay_apart_and_every_sink_is_written(dask_args, tmp_path):
    """The two gaps of Beam's own DaskRunner: one consumer of a tagged output got every output's elements, and
    only the sink visited last ran (and a file sink's finish_bundle output was dropped, so it wrote nothing)."""

    def split(x):
        yield beam.pvalue.TaggedOutput("threes", x) if x % 3 == 0 else x

    with make_pipeline("DaskRunner", dask_args + ["--dask_npartitions=3"]) as pipeline:
        numbers = pipeline | beam.Create(list(range(20)))
        parts = numbers | beam.FlatMap(split).with_outputs("threes", main="rest")
        parts.rest | "Times10" >> beam.Map(lambda v: v * 10) | "Rest" >> beam.io.WriteToText(str(tmp_path / "rest"))
        parts.threes | "Threes" >> beam.io.WriteToText(str(tmp_path / "threes"))
        (numbers | beam.Map(lambda v: (v % 2, v)) | beam.GroupByKey() | beam.MapTuple(lambda k, vs: (k, sorted(vs)))
         | "Groups" >> beam.io.WriteToText(str(tmp_path / "groups")))

    def lines(prefix):
        return sorted(line for name in os.listdir(tmp_path) if name.startswith(prefix + "-")
                      for line in open(tmp_path / name).read().split())

    assert sorted(map(int, lines("rest"))) == [10 * v for v in range(20) if v % 3]
    assert sorted(map(int, lines("threes"))) == [v for v in range(20) if v % 3 == 0]
    groups = sorted(line for n in os.listdir(tmp_path) if n.startswith("groups-")
                    for line in open(tmp_path / n).read().splitlines())
    assert groups == [str((0, list(range(0, 20, 2)))), str((1, list(range(1, 20, 2))))]
    assert not [n for n in os.listdir(tmp_path) if n.startswith("beam-temp")]  # each sink initialized once


def test_build_npdd(dask_args, tmp_path):
    config = build_npdd.BuildNpddConfig(sources=["bundled"], bundled_crops=60, output=str(tmp_path / "direct"),
                                        num_shards=2)
    build_npdd.run(config)
    manifest = build_npdd.run(dataclasses.replace(config, output=str(tmp_path / "dask")), runner="DaskRunner",
                              pipeline_args=dask_args)
    assert manifest.counts["kept"] > 50 and manifest.options["runner"] == "DaskRunner"
    _same(str(tmp_path / "direct"), str(tmp_path / "dask"))


def _problem_folder(root):
    """A folder: problem of three splits and three classes, with copies within and across splits to drop."""
    for split, seeds in (("odd", range(0, 30)), ("pdd", range(30, 45)), ("tdd", range(45, 60))):
        for seed in seeds:
            folder = root / split / f"class{seed % 3}"
            folder.mkdir(parents=True, exist_ok=True)
            png = image_record(seed, 16, 16)["image"]
            (folder / f"{seed}.png").write_bytes(png)
            if seed % 10 == 0:
                (folder / f"{seed}-again.png").write_bytes(png)  # within the split
    (root / "tdd" / "class0" / "from-odd.png").write_bytes(image_record(3, 16, 16)["image"])  # across splits
    return f"folder:{root}"


def test_prepare_problem(dask_args, tmp_path):
    """A small folder: problem, not the 1,797 digits: what is checked is that both runners write the same."""
    problem = _problem_folder(tmp_path / "problem")
    direct = prepare_problem.run(prepare_problem.PrepareProblemConfig(problem=problem, output=str(tmp_path / "direct")))
    prepare_problem.run(prepare_problem.PrepareProblemConfig(problem=problem, output=str(tmp_path / "dask")),
                        runner="DaskRunner", pipeline_args=dask_args)
    assert direct["odd"].counts["cross_split_duplicates"] == 1  # the test split keeps its copy
    assert sum(m.counts["within_split_duplicates"] for m in direct.values()) == 6
    _same(str(tmp_path / "direct"), str(tmp_path / "dask"), [str(tmp_path / "problem")], [str(tmp_path / "problem")])


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("npdd"))
    records = [image_record(i, 16, 16) for i in range(24)]
    write_shards(folder, IMAGE, records, num_shards=3)
    write_manifest(folder, Manifest(stage="build_npdd", record_kind="image", counts={"kept": len(records)}))
    return folder


def test_steal_labels(dask_args, images, tmp_path):
    oracle = OracleSpec(save_bytes_oracle(str(tmp_path / "oracle")))
    for name, runner, args in (("direct", "DirectRunner", []), ("dask", "DaskRunner", dask_args)):
        manifest = steal_labels.run(steal_labels.StealLabelsConfig(
            images=images, oracle=oracle, output=str(tmp_path / name), ledger=str(tmp_path / f"ledger-{name}"),
            batch_size=8), runner=runner, pipeline_args=args)
        assert manifest.counts["queries"] == 24
    _same(str(tmp_path / "direct"), str(tmp_path / "dask"), [str(tmp_path / "ledger-direct")],
          [str(tmp_path / "ledger-dask")])


def test_balance(dask_args, tmp_path):
    stolen = str(tmp_path / "stolen")
    records = [labeled_record(i, label=i % 3 if i < 15 else 0) for i in range(20)]
    write_shards(stolen, LABELED_IMAGE, records, num_shards=2)
    write_manifest(stolen, Manifest(stage="steal_labels", record_kind="labeled_image", counts={"labeled": 20},
                                    extra={"num_classes": 3, "label_histogram": [10, 5, 5]}))
    for name, runner, args in (("direct", "DirectRunner", []), ("dask", "DaskRunner", dask_args)):
        balance.run(balance.BalanceConfig(input=stolen, output=str(tmp_path / name), per_class=6, seed=1),
                    runner=runner, pipeline_args=args)
    _same(str(tmp_path / "direct"), str(tmp_path / "dask"))


def test_pool_transforms(dask_args, images, tmp_path):
    for name, runner, args in (("direct", "DirectRunner", []), ("dask", "DaskRunner", dask_args)):
        pool_transforms.run(pool_transforms.PoolConfig(images=images, output=str(tmp_path / name),
                                                       variants=["grayscale", "invert+contrast"], seed=0),
                            runner=runner, pipeline_args=args)
    _same(str(tmp_path / "direct"), str(tmp_path / "dask"))


def test_the_oracle_is_loaded_once_per_worker_process(dask_args, tmp_path):
    from apache_beam.ml.inference.base import RunInference

    from copycat_tf.oracles import open_oracle

    oracle = OracleSpec(save_bytes_oracle(str(tmp_path / "oracle")))
    fingerprint = open_oracle(oracle).fingerprint
    loads = tmp_path / "loads"
    loads.mkdir()
    answers = tmp_path / "answers"
    handler = LoadCountingHandler(str(loads), oracle, fingerprint, str(tmp_path / "ledger"), "run", 4, None, None)
    with make_pipeline("DaskRunner", dask_args) as pipeline:
        _ = (pipeline
             | beam.Create([image_record(i, 16, 16) for i in range(48)])
             | beam.Reshuffle()
             | RunInference(handler)
             | beam.Map(lambda p: f"{p.example['id']} {p.inference}")
             | beam.io.WriteToText(str(answers)))
    answered = [line for path in tmp_path.glob("answers*") for line in open(path)]
    assert len(answered) == 48  # 12 batches of 4
    pids = [name.split("-")[0] for name in os.listdir(loads)]
    assert pids and len(pids) == len(set(pids)), f"a worker process loaded the oracle more than once: {sorted(pids)}"
    assert len(set(pids)) <= 2  # the cluster's two worker processes
