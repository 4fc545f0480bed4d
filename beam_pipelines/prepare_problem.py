"""prepare_problem: a problem's ODD, PDD and TDD as labeled-image (OL) folders in the lake.

    parts of each split ─ read ─ decode+validate ─┬─ rejects (counted, with reasons)
                                                   └─ by content id: one split per image ─ shards per split

ODD, PDD and TDD never share an image: an image found in several splits (the same pixels) is kept in
one only, by priority TDD, then ODD, then PDD, so the test set is never thinned; copies inside one
split are kept once. PNG and JPEG files are stored as they are; anything else, or anything that
needed converting (modes, EXIF rotation), is stored as a lossless PNG of the upright RGB pixels.
"""

import dataclasses
import io
import logging
from typing import Sequence

import apache_beam as beam

from beam_pipelines import lake_io
from beam_pipelines.image_decode import decode_upright_rgb, Rejected
from beam_pipelines.prepare_problem_config import PrepareProblemConfig
from beam_pipelines.runner import DIRECT, make_pipeline
from copycat_tf.problems import FOLDER_PROBLEMS, SPLIT_WORDS, SPLITS, Problem, get_problem
from tfrecords_schema import LABELED_IMAGE, Manifest, fileio
from tfrecords_schema.extras import ProblemExtra
from tfrecords_schema.image_records import image_record, labeled_record

STAGE = "prepare_problem"
PRIORITY = ("tdd", "odd", "pdd")
log = logging.getLogger("copycat.prepare_problem")


def problem_record(data: bytes, label: int, source: str, key: str):
    """A labeled_image (OL) record of one example, or a Rejected."""
    import PIL.Image

    decoded = decode_upright_rgb(data)
    if isinstance(decoded, Rejected):
        return decoded
    image, (stored_width, stored_height) = decoded
    original = PIL.Image.open(io.BytesIO(data))
    unchanged = original.format in ("JPEG", "PNG") and original.mode in ("RGB", "L") and image.size == (stored_width, stored_height) \
        and not original.getexif().get(0x0112, 1) != 1
    kept = {"encoded": data, "fmt": original.format.lower()} if unchanged else {"fmt": "png"}
    return labeled_record(image_record(image, source, key, **kept), label)


def _one_split_per_image(element):
    """All examples with one content id → the one kept (by split priority), the others counted."""
    _, tagged = element
    ordered = sorted(tagged, key=lambda t: (PRIORITY.index(t[0]), t[1]["source_key"]))
    split, record = ordered[0]
    yield split, record
    for other_split, _ in ordered[1:]:
        yield beam.pvalue.TaggedOutput("dropped", (other_split, "cross_split" if other_split != split else "within_split"))


def build_pipeline(pipeline, problem: Problem, config: PrepareProblemConfig, num_shards: dict[str, int]):
    tagged = []
    for split, parts in problem.parts.items():
        read = problem.read_part

        def to_record(example, split=split):
            result = problem_record(example.image, example.label, problem.name, example.key)
            if isinstance(result, Rejected):
                return split, {"rejected": result.reason, "source_key": example.key}
            return split, result

        tagged.append(
            pipeline
            | f"Parts {split}" >> beam.Create(parts)
            | f"Spread {split}" >> beam.Reshuffle()
            | f"Read {split}" >> beam.FlatMap(read)
            | f"Record {split}" >> beam.Map(to_record)
        )
    everything = tuple(tagged) | "AllSplits" >> beam.Flatten()
    rejected = everything | "Rejected" >> beam.Filter(lambda t: "rejected" in t[1])
    good = everything | "Good" >> beam.Filter(lambda t: "rejected" not in t[1])
    kept = (
        good
        | "ById" >> beam.Map(lambda t: (t[1]["id"], t))
        | "GroupById" >> beam.GroupByKey()
        | "OneSplit" >> beam.FlatMap(_one_split_per_image).with_outputs("dropped", main="kept")
    )
    written = []
    for split in problem.parts:
        written.append(
            kept.kept
            | f"Only {split}" >> beam.Filter(lambda t, s=split: t[0] == s)
            | f"Strip {split}" >> beam.Map(lambda t: t[1])
            | f"Write {split}" >> lake_io.WriteShards(fileio.join(config.output, split), LABELED_IMAGE, num_shards[split])
            | f"Tag {split}" >> beam.Map(lambda stats, s=split: (s, stats))
        )
    events = (
        everything | "SeenEvent" >> beam.Map(lambda t: (t[0], "seen", -1)),
        rejected | "RejectEvent" >> beam.Map(lambda t: (t[0], "rejected:" + t[1]["rejected"], -1)),
        kept.dropped | "DropEvent" >> beam.Map(lambda d: (d[0], d[1] + "_duplicates", -1)),
        kept.kept | "KeptEvent" >> beam.Map(lambda t: (t[0], "kept", t[1]["label"])),
    ) | "AllEvents" >> beam.Flatten() | "Count" >> beam.combiners.Count.PerElement()
    shards_written = tuple(written) | "AllWritten" >> beam.Flatten()
    return (
        pipeline
        | "StatsTrigger" >> beam.Create([None])
        | "WriteStats" >> beam.Map(
            lambda _, counts, shards: lake_io.write_stats(config.output, {"counts": sorted(counts), "shards": sorted(shards, key=str)}),
            beam.pvalue.AsList(events), beam.pvalue.AsList(shards_written),
        )
    )


def _problem_folder(config: PrepareProblemConfig) -> str | None:
    """The user's image folder a folder problem reads (never an output)."""
    if config.problem.startswith("folder:"):
        return config.problem[len("folder:"):]
    if config.problem in FOLDER_PROBLEMS:
        return fileio.join(config.data_dir, config.problem)
    return None


def run(config: PrepareProblemConfig, runner: str = DIRECT, pipeline_args: Sequence[str] = ()) -> dict[str, Manifest]:
    config.validate()
    problem = get_problem(config.problem, data_dir=config.data_dir, tfds_data_dir=config.tfds_data_dir, seed=config.seed)
    log.info("problem %s: %s; %d classes; splits %s", problem.name, problem.description, problem.num_classes,
             ", ".join(problem.parts))
    lake_io.claim_stage_output(config.output, STAGE, [("--data_dir", _problem_folder(config))], clear=False)
    for split in SPLITS:
        lake_io.claim_stage_output(fileio.join(config.output, split), STAGE)
    num_shards = {split: max(1, len(parts)) for split, parts in problem.parts.items()}  # one shard per part read
    with make_pipeline(runner, pipeline_args) as pipeline:
        build_pipeline(pipeline, problem, config, num_shards)
    stats = lake_io.read_and_remove_stats(config.output)
    manifests = {}
    for split in problem.parts:
        counts = {"seen": 0, "kept": 0, "rejected": 0, "cross_split_duplicates": 0, "within_split_duplicates": 0}
        histogram = [0] * problem.num_classes
        by_reason = {}
        for (row_split, outcome, label), n in stats["counts"]:
            if row_split != split:
                continue
            if outcome.startswith("rejected:"):
                counts["rejected"] += n
                by_reason[outcome[len("rejected:"):]] = by_reason.get(outcome[len("rejected:"):], 0) + n
            else:
                counts[outcome] += n
            if outcome == "kept":
                histogram[label] += n
        shard_stats = [s for s_split, s in stats["shards"] if s_split == split]
        folder = fileio.join(config.output, split)
        manifests[split] = Manifest(
            stage=STAGE, record_kind=LABELED_IMAGE.name,
            options={**dataclasses.asdict(config), "split": split, "runner": runner, "pipeline_args": list(pipeline_args)},
            counts=counts,
            extra=ProblemExtra(problem=problem.name, description=problem.description, split=split,
                               split_meaning=SPLIT_WORDS[split], num_classes=problem.num_classes,
                               class_names=list(problem.class_names), label_histogram=histogram,
                               rejected_by_reason=by_reason,
                               shard_lengths=lake_io.shard_lengths(shard_stats)).to_dict(),
        )
        lake_io.finish_folder(folder, manifests[split], shard_stats, problem.class_names)
        log.info("%s/%s: %d images kept of %d (%d rejected, %d in another split)", problem.name, split,
                 counts["kept"], counts["seen"], counts["rejected"], counts["cross_split_duplicates"])
    return manifests
