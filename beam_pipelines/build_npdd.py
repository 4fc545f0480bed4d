"""build_npdd: natural random images in, a deduplicated, sharded NPDD lake folder out.

    sources ─ read ─ decode+validate → normalize → content id + perceptual hash
      ├─ rejects (dead letter, with reasons)
      └─ exact dedupe (same decoded pixels, grouped by content id)
           └─ near dedupe (banded pHash, verified Hamming distance ≤ near_dup_bits)
                └─ shards by hashed id, sorted within each shard  +  duplicates report

Only light candidates (id, hash, size, source key) take part in the dedupe; the pixels travel
through one shuffle, straight to the shard that keeps them. Every input ends counted as kept,
exact duplicate, near duplicate or rejected. The manifest and the TFDS metadata are written after
the job has finished, by the launching process, from the job's own counts.
"""

import dataclasses
import functools
import json
import logging
from typing import Sequence

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindows

from beam_pipelines import lake_io, local_workers, sources
from beam_pipelines.build_npdd_config import BuildNpddConfig
from beam_pipelines.image_decode import Rejected, stored_image
from beam_pipelines.progress import Progress
from beam_pipelines.near_duplicates import BucketStats, Candidate, band_keys, resolve_bucket
from beam_pipelines.runner import DIRECT, make_pipeline
from tfrecords_schema import IMAGE, Manifest, fileio, shard_for
from tfrecords_schema.extras import NpddExtra

STAGE = "build_npdd"
SHARD_PREFIX = lake_io.SHARD_PREFIX
REPORT_SHARDS = "-SSSSS"  # duplicates-00000.jsonl: unlike the image shards, no "-of-" for TFDS to mistake
OUTCOMES = ("kept", "exact_duplicates", "near_duplicates", "rejected")
log = logging.getLogger("copycat.build_npdd")


def _counter(name: str):
    return beam.metrics.Metrics.counter(STAGE, name)


# ---------------------------------------------------------------------------------------------
# Decode and normalize


class _Normalize(beam.DoFn):
    """RawImage → (dedupe candidate, encoded IMAGE record) (main output) or reject report (tagged 'rejected').

    With ``workers`` > 1 the decoding, hashing and re-encoding run in that many local processes and
    come back in input order, so the outputs are exactly those of the one-process run. A progress
    line (images/s and, with ``expected`` inputs, the time left) is logged every PROGRESS_SECONDS.
    """

    PROGRESS_SECONDS = 5.0

    def __init__(self, config: BuildNpddConfig, workers: int = 1, expected: int = 0):
        self._config = config
        self._workers = workers
        self._expected = expected
        self._seen = _counter("seen")
        self._rejected = _counter("rejected")
        self._pool = None

    def setup(self):
        if self._workers > 1:
            self._pool = local_workers.OrderedPool(self._work, self._workers)

    def start_bundle(self):
        self._progress = Progress("build_npdd: normalized", self._expected, self.PROGRESS_SECONDS)

    @property
    def _work(self):
        config = self._config
        return functools.partial(
            stored_image, max_side=config.max_side, jpeg_quality=config.jpeg_quality, max_pixels=config.max_pixels
        )

    def process(self, item):
        self._seen.inc()
        if self._pool is None:
            result = (Rejected(item.reason, item.detail) if isinstance(item, sources.EarlyReject)
                      else self._work(item.source, item.key, item.data))
            yield from self._emit(item, result)
            return
        if isinstance(item, sources.EarlyReject):  # known at once, but emitted in its place in the input order
            ready = self._pool.put_done(item, Rejected(item.reason, item.detail))
        else:
            ready = self._pool.put(item, (item.source, item.key, item.data), size=len(item.data))
        for done, result in ready:
            yield from self._emit(done, result)

    def finish_bundle(self):
        if self._pool is not None:
            for done, result in self._pool.drain():
                for output in self._emit(done, result):
                    if isinstance(output, beam.pvalue.TaggedOutput):
                        yield beam.pvalue.TaggedOutput(output.tag, GlobalWindows.windowed_value(output.value))
                    else:
                        yield GlobalWindows.windowed_value(output)
        self._progress.finish()

    def teardown(self):
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def _emit(self, item, result):
        self._progress.step()
        if isinstance(result, Rejected):
            self._rejected.inc()
            yield beam.pvalue.TaggedOutput(
                "rejected", {"source": item.source, "source_key": item.key, "reason": result.reason, "detail": result.detail}
            )
        else:
            yield result


# ---------------------------------------------------------------------------------------------
# Dedupe (light candidates only)


def _duplicate_report(removed: Candidate, kept: Candidate, distance: int, kind: str) -> dict:
    return {
        "kind": kind,
        "removed_id": removed.id, "removed_source": removed.source, "removed_key": removed.source_key,
        "kept_id": kept.id, "kept_source": kept.source, "kept_key": kept.source_key,
        "distance": distance,
    }


class _PickExact(beam.DoFn):
    """One content id's candidates → the preferred one, and a report for each other copy."""

    def __init__(self):
        self._removed = _counter("exact_duplicates")

    def process(self, element):
        _, candidates = element
        best = min(candidates)
        yield best
        for other in candidates:
            if other != best:
                self._removed.inc()
                yield beam.pvalue.TaggedOutput("duplicates", _duplicate_report(other, best, 0, "exact"))


class _ResolveBucket(beam.DoFn):
    """One band bucket → (removed id, (preferred partner, removed, distance)) pairs."""

    def __init__(self, near_dup_bits: int, max_bucket: int):
        self._bits = near_dup_bits
        self._max_bucket = max_bucket
        self._pairs = _counter("near_pairs_compared")
        self._oversized = _counter("near_buckets_dense")

    def process(self, element):
        (mask, _), members = element
        stats = BucketStats()
        for removed, partner, distance in resolve_bucket(members, mask, self._bits, self._max_bucket, stats):
            yield removed.id, (partner, removed, distance)
        self._pairs.inc(stats.compared_pairs)
        self._oversized.inc(stats.oversized_buckets)


def _most_preferred(matches):
    return min(matches, key=lambda match: match[0])


def _split_kept(element):
    """CoGroupByKey of one id: kept unless a near-duplicate partner was found for it."""
    _, grouped = element
    removed = list(grouped["near"])
    for candidate in grouped["winner"]:
        if removed:
            partner, _, distance = removed[0]
            yield beam.pvalue.TaggedOutput("duplicates", _duplicate_report(candidate, partner, distance, "near"))
        else:
            yield candidate


# ---------------------------------------------------------------------------------------------
# Shards


class _WriteShard(beam.DoFn):
    """One shard index with its kept candidates and all (id, source, key, encoded record) → one TFRecord file
    sorted by (id, source, key)."""

    def __init__(self, output: str):
        self._output = output
        self._kept = _counter("kept")

    def process(self, element, num_shards):
        index, grouped = element
        keep = {(c.id, c.source, c.source_key) for c in grouped["keep"]}
        records = sorted(r for r in grouped["records"] if r[:3] in keep)
        self._kept.inc(len(records))
        yield lake_io.write_encoded_shard_file(self._output, index, num_shards, [r[3] for r in records])


def _keyed_by_shard(stored: tuple[Candidate, bytes], num_shards: int) -> tuple[int, tuple]:
    candidate, example = stored
    return shard_for(candidate.id, num_shards), (candidate.id, candidate.source, candidate.source_key, example)


def _shard_count(total_bytes: int, config: BuildNpddConfig) -> int:
    return lake_io.shards_for(total_bytes, config.num_shards, config.shard_mb)


# ---------------------------------------------------------------------------------------------
# The pipeline


def check_sources(config: BuildNpddConfig) -> list[tuple[sources.SourceSpec, int]]:
    """Every --source parsed and counted (files matched, examples, crops) before any work: a bad one
    stops the run with one line naming it, before the output folder is touched."""
    checked = []
    for spec_text in config.sources:
        spec = sources.parse_source(spec_text)
        if spec.kind == "dir":
            count = sources.check_glob(spec)
            log.info("source %s: %d files matched", spec.name, count)
        elif spec.kind == "tfds":
            builder, _, split = sources.tfds_builder(spec, config.tfds_data_dir)
            count = builder.info.splits[split].num_examples
            log.info("source %s: %d examples", spec.name, count)
        else:
            count = config.bundled_crops
            log.info("source bundled: %d random crops of %d photos", count, len(sources.bundled_photo_paths()))
        checked.append((spec, count))
    return checked


def _read_sources(pipeline, config: BuildNpddConfig, checked: list[tuple[sources.SourceSpec, int]]):
    """One read per --source."""
    reads = []
    max_file_bytes = int(config.max_file_mb * 2**20)
    for i, (spec, _) in enumerate(checked):
        if spec.kind == "dir":
            reads.append(pipeline | f"Read{i} {spec.name}" >> sources.ReadFolder(spec, max_file_bytes))
        elif spec.kind == "tfds":
            reads.append(pipeline | f"Read{i} {spec.name}" >> sources.ReadTfds(spec, config.tfds_data_dir))
        else:
            reads.append(pipeline | f"Read{i} bundled" >> sources.ReadBundled(config.bundled_crops, config.seed))
    return reads


def _dedupe(candidates, config: BuildNpddConfig):
    """Candidates → (exact: winners + exact duplicate reports, split: kept + near duplicate reports)."""
    exact = (
        candidates
        | "ById" >> beam.Map(lambda c: (c.id, c))
        | "GroupById" >> beam.GroupByKey()
        | "PickExact" >> beam.ParDo(_PickExact()).with_outputs("duplicates", main="winners")
    )
    near_removed = (
        exact.winners
        | "Bands" >> beam.FlatMap(lambda c: [(key, c) for key in band_keys(c.phash, config.near_dup_bits)])
        | "GroupByBand" >> beam.GroupByKey()
        | "ResolveBuckets" >> beam.ParDo(_ResolveBucket(config.near_dup_bits, config.max_bucket))
        | "MostPreferred" >> beam.CombinePerKey(_most_preferred)
    )
    split = (
        {"winner": exact.winners | "WinnerById" >> beam.Map(lambda c: (c.id, c)), "near": near_removed}
        | "JoinNear" >> beam.CoGroupByKey()
        | "SplitKept" >> beam.FlatMap(_split_kept).with_outputs("duplicates", main="kept")
    )
    return exact, split


def _write_shards(pipeline, records, kept, config: BuildNpddConfig):
    """The kept images' encoded records → shards sized from their bytes; (per-shard stats, shard count side input)."""
    num_shards = (
        kept
        | "KeptBytes" >> beam.Map(lambda c: c.nbytes)
        | "TotalBytes" >> beam.CombineGlobally(sum)
        | "ShardCount" >> beam.Map(_shard_count, config)
    )
    shards = beam.pvalue.AsSingleton(num_shards)
    written = (
        {
            "records": records | "RecordShard" >> beam.Map(_keyed_by_shard, shards),
            "keep": kept | "KeepShard" >> beam.Map(lambda c, n: (shard_for(c.id, n), c), shards),
            "slot": lake_io.shard_slots(pipeline, shards),
        }
        | "JoinShards" >> beam.CoGroupByKey()
        | "WriteShards" >> beam.ParDo(_WriteShard(config.output), shards)
    )
    return written, shards


def build_pipeline(pipeline, config: BuildNpddConfig, workers: int = 1, in_process: bool = False, checked=None):
    """Add build_npdd's transforms to ``pipeline``; the stats file is its last output. ``workers``: local
    processes for the per-image work (:func:`beam_pipelines.local_workers.worker_count`); ``in_process``:
    one DoFn instance sees every input, so its progress line can tell the time left; ``checked``: the
    result of :func:`check_sources` (checked here when not given)."""
    output = config.output
    checked = check_sources(config) if checked is None else checked
    expected = sum(count for _, count in checked)
    raw = tuple(_read_sources(pipeline, config, checked)) | "AllSources" >> beam.Flatten()
    normalize = _Normalize(config, workers, expected if in_process else 0)
    normalized = raw | "Normalize" >> beam.ParDo(normalize).with_outputs("rejected", main="records")
    records, rejected = normalized.records, normalized.rejected

    exact, split = _dedupe(records | "Candidates" >> beam.Map(lambda stored: stored[0]), config)
    kept = split.kept
    written, shards = _write_shards(pipeline, records, kept, config)

    duplicates = (exact.duplicates, split.duplicates) | "AllDuplicates" >> beam.Flatten()
    duplicates | "DuplicatesJson" >> beam.Map(json.dumps, sort_keys=True) | "WriteDuplicates" >> beam.io.WriteToText(
        fileio.join(output, "duplicates"), file_name_suffix=".jsonl", shard_name_template=REPORT_SHARDS
    )
    rejected | "RejectsJson" >> beam.Map(json.dumps, sort_keys=True) | "WriteRejects" >> beam.io.WriteToText(
        fileio.join(output, "rejects"), file_name_suffix=".jsonl", shard_name_template=REPORT_SHARDS
    )

    events = (
        raw | "SeenEvent" >> beam.Map(lambda item: (item.source, "seen", "")),
        rejected | "RejectEvent" >> beam.Map(lambda r: (r["source"], "rejected", r["reason"])),
        exact.duplicates | "ExactEvent" >> beam.Map(lambda d: (d["removed_source"], "exact_duplicates", "")),
        split.duplicates | "NearEvent" >> beam.Map(lambda d: (d["removed_source"], "near_duplicates", "")),
        kept | "KeptEvent" >> beam.Map(lambda c: (c.source, "kept", "")),
    ) | "AllEvents" >> beam.Flatten()
    counts = events | "CountEvents" >> beam.combiners.Count.PerElement()
    return (
        pipeline
        | "StatsTrigger" >> beam.Create([None])
        | "WriteStats" >> beam.Map(
            _write_stats, output, beam.pvalue.AsList(counts), beam.pvalue.AsList(written), shards
        )
    )


def _write_stats(_, output: str, counts: list, shards: list, num_shards: int) -> None:
    lake_io.write_stats(output, {
        "counts": [[source, outcome, reason, n] for (source, outcome, reason), n in sorted(counts)],
        "shards": sorted(shards, key=lambda s: s["index"]),
        "num_shards": num_shards,
    })


# ---------------------------------------------------------------------------------------------
# Launching and the manifest


def source_folders(config: BuildNpddConfig) -> list[tuple[str, str]]:
    """The folders the build reads (dir: patterns' roots, the TFDS data_dir): never an output."""
    from copycat_tf.stage_output import glob_root

    folders = []
    for text in config.sources:
        spec = sources.parse_source(text)
        if spec.kind == "dir":
            folders.append((f"--source={text}", glob_root(spec.value)))
        elif spec.kind == "tfds" and config.tfds_data_dir:
            folders.append(("--tfds_data_dir", config.tfds_data_dir))
    return folders


def summarize(stats: dict) -> tuple[dict, dict, dict]:
    """(counts, rejected_by_reason, per-source counts) from the job's event counts."""
    totals = {"seen": 0, **{outcome: 0 for outcome in OUTCOMES}}
    by_reason: dict[str, int] = {}
    per_source: dict[str, dict[str, int]] = {}
    for source, outcome, reason, n in stats["counts"]:
        totals[outcome] += n
        row = per_source.setdefault(source, {"seen": 0, **{o: 0 for o in OUTCOMES}})
        row[outcome] += n
        if outcome == "rejected":
            by_reason[reason] = by_reason.get(reason, 0) + n
    return totals, by_reason, per_source


def run(config: BuildNpddConfig, runner: str = DIRECT, pipeline_args: Sequence[str] = ()) -> Manifest:
    """Run the job to completion on ``runner`` and write the manifest and the TFDS metadata."""
    config.validate()
    checked = check_sources(config)
    lake_io.claim_stage_output(config.output, STAGE, source_folders(config), ["duplicates-?????.jsonl", "rejects-?????.jsonl"])
    workers = local_workers.worker_count(config.workers, runner, pipeline_args)
    log.info("build_npdd: %d local worker process(es) decode and hash the images", workers)
    with make_pipeline(runner, pipeline_args) as pipeline:
        build_pipeline(pipeline, config, workers, local_workers.in_process(runner, pipeline_args), checked)
    stats = lake_io.read_and_remove_stats(config.output)
    counts, by_reason, per_source = summarize(stats)
    accounted = sum(counts[o] for o in OUTCOMES)
    if accounted != counts["seen"]:  # the rule of the house; a mismatch is a bug, never hidden
        raise RuntimeError(f"build_npdd lost images: seen {counts['seen']} but accounted for {accounted}: {counts}")
    for source, row in sorted(per_source.items()):
        log.info("source %s: %s", source, ", ".join(f"{k} {v}" for k, v in row.items()))
    manifest = Manifest(
        stage=STAGE,
        record_kind=IMAGE.name,
        options={**dataclasses.asdict(config), "runner": runner, "pipeline_args": list(pipeline_args)},
        counts=counts,
        extra=NpddExtra(
            rejected_by_reason=by_reason, per_source=per_source, num_shards=stats["num_shards"],
            shard_lengths=lake_io.shard_lengths(stats["shards"]),
            phash="imagehash.phash of the normalized image (8x8 DCT of 32x32 grayscale), 64 bits",
        ).to_dict(),
    )
    lake_io.finish_folder(config.output, manifest, stats["shards"])
    log.info(
        "build_npdd: seen %d = kept %d + exact duplicates %d + near duplicates %d + rejected %d -> %s",
        counts["seen"], counts["kept"], counts["exact_duplicates"], counts["near_duplicates"], counts["rejected"],
        config.output,
    )
    return manifest
