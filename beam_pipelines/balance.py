"""balance: make every class equally frequent, as the paper does with stolen labels.

A class with more images than the target keeps a seeded-random subset (elimination); a class with
fewer repeats its images (replication): every image ``target // n`` times, and the first
``target % n`` of them, in seeded-hash order, once more. So the counts are exact and the choice
depends only on the seed and the image keys, never on input order or runner.

    target per class = --per_class, or --total // classes (the first --total % classes classes,
    by id, get one more), counting only classes that have images (--allow_missing_classes)
"""

import dataclasses
import logging
from typing import Sequence

import apache_beam as beam

from beam_pipelines import lake_io
from beam_pipelines.balance_config import BalanceConfig
from beam_pipelines.runner import DIRECT, make_pipeline
from copycat_tf.adaptive.selection import selection_key
from copycat_tf.errors import CopycatError
from tfrecords_schema import LABELED_IMAGE, Manifest, input_entry, open_folder
from tfrecords_schema.extras import BalancedExtra, StolenExtra, labeled_extra

STAGE = "balance"
log = logging.getLogger("copycat.balance")


def targets(num_classes: int, per_class: int | None, total: int | None) -> list[int]:
    """How many images each class gets."""
    if (per_class is None) == (total is None):
        raise CopycatError("give exactly one of --per_class=N or --total=N")
    if per_class is not None:
        if per_class < 1:
            raise CopycatError(f"--per_class={per_class} must be at least 1")
        return [per_class] * num_classes
    if total < num_classes:
        raise CopycatError(f"--total={total} is fewer than one image for each of the {num_classes} classes")
    return [total // num_classes + (1 if c < total % num_classes else 0) for c in range(num_classes)]


def copies_of(rank: int, available: int, target: int) -> int:
    """Copies of the image ranked ``rank`` (0-based, seeded-hash order) among ``available`` of its class."""
    return target // available + (1 if rank < target % available else 0)


def _record_key(record: dict) -> str:
    return f"{record['id']}|{record['source']}|{record['source_key']}"


def build_pipeline(pipeline, config: BalanceConfig, shards: Sequence[str], class_targets: list[int], num_shards: int):
    seed = config.seed
    records = pipeline | "Read" >> lake_io.ReadRecords(shards, LABELED_IMAGE)
    keyed = records | "ByKey" >> beam.Map(lambda r: (_record_key(r), r))

    def rank_class(element):
        label, keys = element
        ordered = sorted(set(keys), key=lambda k: selection_key(seed, k))
        target = class_targets[label] if label < len(class_targets) else 0
        for rank, key in enumerate(ordered):
            yield key, copies_of(rank, len(ordered), target)

    copies = (
        keyed
        | "LabelKey" >> beam.Map(lambda kv: (kv[1]["label"], kv[0]))
        | "ByClass" >> beam.GroupByKey()
        | "Rank" >> beam.FlatMap(rank_class)
    )

    def replicate(element):
        _, grouped = element
        times = sum(grouped["copies"])
        for record in grouped["record"][:1]:  # one image per key, repeated
            for _ in range(times):
                yield record

    balanced = (
        {"record": keyed, "copies": copies}
        | "Join" >> beam.CoGroupByKey()
        | "Replicate" >> beam.FlatMap(replicate)
    )
    written = balanced | "WriteShards" >> lake_io.WriteShards(config.output, LABELED_IMAGE, num_shards)
    after = balanced | "LabelsAfter" >> beam.Map(lambda r: r["label"]) | "CountAfter" >> beam.combiners.Count.PerElement()
    distinct = copies | "Distinct" >> beam.Filter(lambda kv: kv[1] > 0) | "CountDistinct" >> beam.combiners.Count.Globally()
    return (
        pipeline
        | "StatsTrigger" >> beam.Create([None])
        | "WriteStats" >> beam.Map(
            lambda _, hist, shards_written, distinct_kept: lake_io.write_stats(config.output, {
                "after": sorted(hist), "shards": sorted(shards_written, key=lambda s: s["index"]),
                "distinct_images": distinct_kept,
            }),
            beam.pvalue.AsList(after), beam.pvalue.AsList(written), beam.pvalue.AsSingleton(distinct),
        )
    )


def run(config: BalanceConfig, runner: str = DIRECT, pipeline_args: Sequence[str] = ()) -> Manifest:
    config.validate()
    source = open_folder(config.input, LABELED_IMAGE)
    facts = labeled_extra(source.manifest.extra)
    before = facts.label_histogram
    if not before:
        raise CopycatError(f"{config.input}: its manifest has no label_histogram; balance folders written by "
                           "copycat-steal-labels or copycat-prepare-problem")
    num_classes = int(facts.num_classes if facts.num_classes is not None else len(before))
    class_names = facts.names()
    missing = [c for c in range(num_classes) if before[c] == 0]
    if missing and not config.allow_missing_classes:
        names = ", ".join(f"{c} ({class_names[c]})" for c in missing)
        raise CopycatError(f"{config.input} has no image of class {names}; nothing can be replicated for it. "
                           "Steal more labels, or pass --allow_missing_classes to leave it empty")
    present = [c for c in range(num_classes) if before[c] > 0]
    class_targets = [0] * num_classes
    for c, target in zip(present, targets(len(present), config.per_class, config.total)):
        class_targets[c] = target
    records_in = sum(before)
    bytes_in = lake_io.total_bytes(source.shards)
    num_shards = lake_io.shards_for(lake_io.bytes_of_records(sum(class_targets), bytes_in, records_in),
                                    config.num_shards)
    lake_io.claim_stage_output(config.output, STAGE, [("--input", config.input)])
    with make_pipeline(runner, pipeline_args) as pipeline:
        build_pipeline(pipeline, config, source.shards, class_targets, num_shards)
    stats = lake_io.read_and_remove_stats(config.output)
    after_found = dict(stats["after"])
    after = [after_found.get(c, 0) for c in range(num_classes)]
    if after != class_targets:  # the counts are exact by construction; a mismatch is a bug
        raise RuntimeError(f"balance produced {after}, expected {class_targets}")
    extra = BalancedExtra(
        num_classes=num_classes, class_names=class_names, label_histogram_before=before, label_histogram=after,
        replication_factor=[round(a / b, 3) if b else 0.0 for a, b in zip(after, before)],
        shard_lengths=lake_io.shard_lengths(stats["shards"]), oracle=StolenExtra.from_dict(source.manifest.extra).oracle,
    ).to_dict()
    manifest = Manifest(
        stage=STAGE, record_kind=LABELED_IMAGE.name,
        options={**dataclasses.asdict(config), "runner": runner, "pipeline_args": list(pipeline_args)},
        counts={"records_before": records_in, "records": sum(after), "distinct_images": stats["distinct_images"]},
        inputs=[input_entry(config.input, source.manifest)], extra=extra,
    )
    lake_io.finish_folder(config.output, manifest, stats["shards"], class_names)
    log.info("balance: %s per class (was %s) -> %s", after, before, config.output)
    return manifest

