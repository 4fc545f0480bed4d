"""steal_labels: ask the oracle for the top-1 class of every image, in batches, paying once per image.

    images ─ (budget: the first N by seeded hash) ─┬─ answered in the ledger already ────┐
                                                    └─ not yet ─ RunInference ───────────┴─ labeled shards (SL)
                                                                      │
                                                ledger: spend before sending, answers after

Which images are asked (``strategy``): ``random`` (the paper) takes the first ``max_queries`` images of
a seeded-hash order, whether the ledger holds their answers or not, so the output at budget N is the
prefix of the output at any larger budget (a data curve sharing one ``--ledger`` pays for its largest
point only); ``adaptive`` (copycat_tf.adaptive) runs rounds in the launcher that steer the budget to the
classes furthest below quota, then this pipeline writes what the ledger holds (with the variant queries
the rounds made, ``OUTPUT/variants``). Strategies are registered in copycat_tf.query_strategies. With
``pool_transforms`` the pool is first widened with derived images (beam_pipelines.pool_transforms).
Every manifest carries a coverage report (copycat_tf.coverage).

The oracle sits behind a RunInference ModelHandler: one loaded model (or HTTP client) per worker
process, shared by its threads, fed full batches of ``batch_size``. Every batch is recorded in the
ledger (copycat_tf.ledger) before more goes out, so a crash loses at most the batches in flight and a
rerun only asks for what the ledger does not hold.
"""

import dataclasses
import json
import logging
import os
import tempfile
import uuid
from typing import Sequence

import apache_beam as beam
from apache_beam.ml.inference.base import ModelHandler, PredictionResult, RunInference

from beam_pipelines import lake_io, pool_transforms
from beam_pipelines.runner import DIRECT, make_pipeline
from beam_pipelines.steal_labels_config import StealLabelsConfig
from copycat_tf import coverage, query_strategies
from copycat_tf.adaptive import variants
from copycat_tf.adaptive.selection import selection_key
from copycat_tf.errors import CopycatError
from copycat_tf.ledger import Ledger
from copycat_tf.oracles import OracleSpec, open_oracle
from tfrecords_schema import IMAGE, LABELED_IMAGE, Manifest, fileio, input_entry, open_folder
from tfrecords_schema.extras import StolenExtra
from tfrecords_schema.image_records import labeled_record
from tfrecords_schema.manifest import expected_records

STAGE = "steal_labels"
NAMESPACE = "copycat_oracle"
log = logging.getLogger("copycat.steal_labels")


@dataclasses.dataclass
class LoadedOracle:
    """What one worker process holds: the oracle client and its ledger (Beam shares it by weak reference)."""

    oracle: object
    ledger: Ledger


class OracleModelHandler(ModelHandler):
    """RunInference's view of the oracle: batches of image records in, (record, class id) out."""

    def __init__(self, spec: OracleSpec, fingerprint: str, ledger_root: str, run_id: str,
                 batch_size: int, max_queries: int | None, process_budget: int | None):
        super().__init__(min_batch_size=batch_size, max_batch_size=batch_size)
        self._spec = spec
        self._fingerprint = fingerprint
        self._ledger_root = ledger_root
        self._run_id = run_id
        self._max_queries = max_queries
        self._process_budget = process_budget

    def load_model(self):
        oracle = open_oracle(self._spec)
        if oracle.fingerprint != self._fingerprint:
            raise CopycatError(
                f"the oracle changed while the job ran ({self._fingerprint} became {oracle.fingerprint}); rerun"
            )
        return LoadedOracle(oracle, Ledger(self._ledger_root, self._fingerprint))

    def run_inference(self, batch, model, inference_args=None):
        oracle, ledger = model.oracle, model.ledger
        ids = [record["id"] for record in batch]
        allowed = ledger.claim(self._run_id, ids, self._max_queries, self._process_budget)  # skips what another run holds
        by_id = {}
        if allowed:
            first = {}
            for record in batch:
                first.setdefault(record["id"], record)
            labels = oracle.classify([first[i]["image"] for i in allowed])
            ledger.record(allowed, labels)
            beam.metrics.Metrics.counter(NAMESPACE, "queries").inc(len(allowed))
            by_id = dict(zip(allowed, (int(label) for label in labels)))
        return [PredictionResult(record, by_id.get(record["id"])) for record in batch]

    def get_num_bytes(self, batch) -> int:
        return sum(len(record["image"]) for record in batch)

    def get_metrics_namespace(self) -> str:
        return NAMESPACE


def _split_by_ledger(element):
    _, grouped = element
    answers = sorted(grouped["answer"])
    for record in grouped["image"]:
        if answers:
            yield beam.pvalue.TaggedOutput("known", (record, answers[0]))
        else:
            yield record


def _labeled(fingerprint: str):
    def to_record(pair):
        record, label = pair
        return labeled_record(record, label, fingerprint)

    return to_record


def _keep_chosen(elements, chosen, name: str, image_id):
    """The elements whose image id is among ``chosen`` ((id, True) pairs)."""
    return (
        {"element": elements | f"{name}ById" >> beam.Map(lambda e: (image_id(e), e)), "chosen": chosen}
        | f"Join{name}Chosen" >> beam.CoGroupByKey()
        | f"Keep{name}Chosen" >> beam.FlatMap(lambda e: e[1]["element"] if e[1]["chosen"] else [])
    )


def build_pipeline(pipeline, config: StealLabelsConfig, shards: Sequence[str], fingerprint: str, run_id: str,
                   budget_left: int | None, num_shards: int, prefix: bool = True):
    ledger = Ledger(config.ledger_root, fingerprint)
    records = pipeline | "Read" >> lake_io.ReadRecords(shards, IMAGE)
    answers = (
        pipeline
        | "LedgerGlob" >> beam.Create([ledger.answers_glob])
        | "ReadLedger" >> beam.io.ReadAllFromText()
        | "ParseAnswers" >> beam.Map(json.loads)
        | "AnswerById" >> beam.Map(lambda row: (row["id"], row["label"]))
    )
    split = (
        {"image": records | "ById" >> beam.Map(lambda r: (r["id"], r)), "answer": answers}
        | "JoinLedger" >> beam.CoGroupByKey()
        | "SplitByLedger" >> beam.FlatMap(_split_by_ledger).with_outputs("known", main="ask")
    )
    known, to_ask = split.known, split.ask
    if prefix and config.max_queries is not None:
        # The output is the first max_queries images of one seeded-hash order, answered already or not: a run
        # at budget N is a prefix of a run at a larger budget, and with a shared --ledger a data curve pays
        # only for its largest point. The ledger's claim keeps the spend within the budget.
        seed = config.seed
        if config.max_queries > 0:
            chosen = (
                records
                | "SelectionKeys" >> beam.Map(lambda r: (selection_key(seed, r["id"]), r["id"]))
                | "FirstN" >> beam.combiners.Top.Smallest(config.max_queries)
                | "ChosenIds" >> beam.FlatMap(lambda top: [(image_id, True) for _, image_id in sorted(set(top))])
            )
        else:
            chosen = pipeline | "NoneChosen" >> beam.Create([])
        to_ask = _keep_chosen(to_ask, chosen, "Ask", lambda r: r["id"])
        known = _keep_chosen(known, chosen, "Known", lambda pair: pair[0]["id"])
    if budget_left == 0:  # nothing may be sent: the oracle is not even loaded
        new = pipeline | "NothingAsked" >> beam.Create([])
    else:
        handler = OracleModelHandler(config.oracle, fingerprint, config.ledger_root, run_id, config.batch_size,
                                     config.max_queries, budget_left)
        answered = to_ask | "AskOracle" >> RunInference(handler)
        new = (answered | "Answered" >> beam.Filter(lambda p: p.inference is not None)
               | "Pairs" >> beam.Map(lambda p: (p.example, p.inference)))
    labeled = (known, new) | "AllLabeled" >> beam.Flatten() | "ToRecord" >> beam.Map(_labeled(fingerprint))
    written = labeled | "WriteShards" >> lake_io.WriteShards(config.output, LABELED_IMAGE, num_shards)

    count = beam.combiners.Count.Globally
    histogram = labeled | "Labels" >> beam.Map(lambda r: r["label"]) | "Histogram" >> beam.combiners.Count.PerElement()
    return (
        pipeline
        | "StatsTrigger" >> beam.Create([None])
        | "WriteStats" >> beam.Map(
            lambda _, images, known, new_count, hist, shards_written: lake_io.write_stats(config.output, {
                "images": images, "ledger_hits": known, "answered": new_count,
                "histogram": sorted(hist), "shards": sorted(shards_written, key=lambda s: s["index"]),
            }),
            beam.pvalue.AsSingleton(records | "CountImages" >> count()),
            beam.pvalue.AsSingleton(known | "CountKnown" >> count()),
            beam.pvalue.AsSingleton(new | "CountNew" >> count()),
            beam.pvalue.AsList(histogram),
            beam.pvalue.AsList(written),
        )
    )


def _adaptive_work(config: StealLabelsConfig) -> str:
    """Where the adaptive rounds keep the pool index: the cache, OUTPUT/adaptive, or a local temporary folder."""
    if config.adaptive_cache:
        if fileio.is_remote(config.adaptive_cache):
            raise CopycatError(f"--adaptive_cache={config.adaptive_cache} must be a local folder (it is memory-mapped)")
        return config.adaptive_cache
    if fileio.is_remote(config.output):
        return tempfile.mkdtemp(prefix="copycat-adaptive-")
    return os.path.join(config.output, "adaptive")


def _pool(config: StealLabelsConfig, runner: str, pipeline_args: Sequence[str]) -> str:
    """The folder whose images are queried: the input, or the input plus its derived variants."""
    if not config.pool_transforms:
        return config.images
    pool = config.pool or fileio.join(config.output, "pool")
    same = {os.path.normpath(str(p)).rstrip("/") for p in (config.images, config.output)}
    if os.path.normpath(pool).rstrip("/") in same:
        raise CopycatError(f"--pool={pool} must be a folder of its own, not --images or --output")
    pool_transforms.run(pool_transforms.PoolConfig(config.images, pool, list(config.pool_transforms), config.seed),
                        runner, pipeline_args)
    return pool


def _origin_stage(manifest: Manifest) -> str:
    """The stage that made the images a folder derives from (looking through pool_transforms folders)."""
    stage, inputs = manifest.stage, manifest.inputs
    while stage == pool_transforms.STAGE and inputs and isinstance(inputs[0], dict) and isinstance(
            inputs[0].get("manifest"), dict):
        stage, inputs = inputs[0]["manifest"].get("stage"), inputs[0]["manifest"].get("inputs") or []
    return stage


@dataclasses.dataclass
class Asked:
    """What the asking phase of one steal knows once its queries are made: the manifest's inputs."""

    images: str  # the folder queried (the pool, with pool transforms)
    source: Manifest  # that folder's manifest
    description: str  # the oracle, as the ledger records it
    ledger_folder: str
    num_classes: int | None  # from the oracle's output or --num_classes; None: inferred from the labels
    num_classes_from: str
    spent_before: int  # the ledger's spend before this run
    queries: int = 0  # spent by this run (the ledger's count: a resent batch is paid twice)
    sent: int = 0  # images the strategy asked about (each once)
    report: dict | None = None  # the strategy's report, when it asked before the pipeline (query_strategies)
    made: list = dataclasses.field(default_factory=list)  # LakeFolders of the images it made (variant queries)


def _strategy(config: StealLabelsConfig) -> query_strategies.QueryStrategy:
    strategy = query_strategies.get(config.strategy)
    if strategy.needs_budget and config.max_queries is None:
        raise CopycatError(f"--strategy={strategy.name} needs --max_queries: the budget it shares out")
    return strategy


def _ask_first(strategy, config: StealLabelsConfig, source, oracle, ledger, asked: Asked, run_id: str,
               fingerprint: str) -> None:
    """Run a strategy's own asking (before the pipeline), recording its report and the folders it made."""
    if strategy.needs_num_classes and asked.num_classes is None:
        raise CopycatError(f"--strategy={strategy.name} needs the number of classes: the oracle's output does not "
                           "tell it, so pass --num_classes")
    log.info("stealing labels (%s) from %s (%s): budget %s, %d already spent", strategy.name,
             config.oracle.target, fingerprint, config.max_queries, asked.spent_before)
    result = strategy.ask(query_strategies.AskContext(
        config=config, pool=source, oracle=oracle, ledger=ledger, run_id=run_id, num_classes=asked.num_classes,
        work=_adaptive_work(config), made_folder=variants.store_folder(config.output)))
    asked.report, asked.sent = result.report, result.queries
    asked.made = [open_folder(folder, IMAGE) for folder in result.made_folders]


def run(config: StealLabelsConfig, runner: str = DIRECT, pipeline_args: Sequence[str] = ()) -> Manifest:
    """Label the images of ``config.images`` (within the budget) and write the SL folder and manifest.

    In pieces: check the options, choose the pool (``_pool``: with or without transforms), let the
    strategy ask (copycat_tf.query_strategies: in the launcher, or inside the pipeline for random),
    write the labeled folder (the one Beam job, ``build_pipeline``), then build the manifest
    (``steal_manifest``, no I/O) and write it.
    """
    config.validate()
    strategy = _strategy(config)
    config.pool_transforms = pool_transforms.parse_variants(config.pool_transforms)
    open_folder(config.images, IMAGE)  # a wrong folder fails here, before any work
    lake_io.claim_stage_output(config.output, STAGE, [("--images", config.images)], clear=False)
    images = _pool(config, runner, pipeline_args)
    source = open_folder(images, IMAGE)
    oracle = open_oracle(config.oracle)
    fingerprint = oracle.fingerprint
    num_classes = oracle.num_classes or config.oracle.num_classes
    description = oracle.describe()
    ledger = Ledger(config.ledger_root, fingerprint, description)
    asked = Asked(images=images, source=source.manifest, description=description, ledger_folder=ledger.folder,
                  num_classes=num_classes, spent_before=ledger.reconcile(),
                  num_classes_from="oracle output" if oracle.num_classes else (
                      "--num_classes" if num_classes else "labels seen"))
    budget_left = None if config.max_queries is None else max(0, config.max_queries - asked.spent_before)
    run_id = f"{uuid.uuid4().hex[:12]}"
    lake_io.clear_stage_files(config.output)
    try:
        if strategy.ask is not None:
            _ask_first(strategy, config, source, oracle, ledger, asked, run_id, fingerprint)
            budget_left = 0  # every query is made; the pipeline writes what the ledger holds
    finally:
        oracle.close()
    if budget_left == 0 and asked.report is None:
        log.warning("the query budget (--max_queries=%d) is spent already: only ledger answers are used",
                    config.max_queries)
    made = [shard for folder in asked.made for shard in folder.shards]
    shards = list(source.shards) + made
    log.info("stealing labels of %s from %s (%s), batches of %d, budget %s", images, config.oracle.target,
             fingerprint, config.batch_size, "unlimited" if budget_left is None else budget_left)
    # At most the budget's images are labeled (the first max_queries of the order, or what the ledger holds once a
    # strategy asked): a 10,000-query steal of a large pool writes the shards of 10,000 images, not of the pool.
    most = config.max_queries if strategy.ask is None else ledger.spent()
    num_shards = lake_io.shards_for(labeled_bytes(lake_io.total_bytes(source.shards), expected_records(source.manifest),
                                                  lake_io.total_bytes(made), most), config.num_shards)
    with make_pipeline(runner, pipeline_args) as pipeline:
        build_pipeline(pipeline, config, shards, fingerprint, run_id, budget_left, num_shards,
                       prefix=strategy.ask is None)
    stats = lake_io.read_and_remove_stats(config.output)
    asked.queries = ledger.spent_by_run(run_id)
    manifest = steal_manifest(config, asked, stats, {"runner": runner, "pipeline_args": list(pipeline_args)})
    lake_io.finish_folder(config.output, manifest, stats["shards"], manifest.typed_extra().class_names)
    log.info("steal_labels: %d of %d images labeled (%d from the ledger, %d queries this run) -> %s",
             manifest.counts["labeled"], stats["images"], manifest.counts["ledger_hits"], asked.queries, config.output)
    return manifest


def labeled_bytes(pool_bytes: float, pool_images: int | None, made_bytes: float, most: int | None) -> float:
    """About how many bytes the labeled folder holds: the pool's share for at most ``most`` labeled images
    (None: every one), plus the images the strategy made; the whole pool where its image count is unknown."""
    if most is None or not pool_images:
        return pool_bytes + made_bytes
    return lake_io.bytes_of_records(min(most, pool_images), pool_bytes, pool_images) + made_bytes


def steal_manifest(config: StealLabelsConfig, asked: Asked, stats: dict, run_options: dict) -> Manifest:
    """The steal's manifest from what was asked and what the pipeline wrote (touches no file; logs warnings)."""
    stats = dict(stats)
    labeled = stats["ledger_hits"] + stats["answered"]
    if asked.report is not None:  # the strategy asked the oracle; the pipeline found those answers in the ledger
        stats["answered"] = asked.sent
        stats["ledger_hits"] = labeled - stats["answered"]
    if config.strategy == "random" and config.max_queries is not None and labeled < min(config.max_queries,
                                                                                       stats["images"]):
        log.warning("!!! only %d of the first %d images are labeled: the ledger %s had spent the budget on other "
                    "images; use a ledger of its own (--ledger) or a larger --max_queries", labeled,
                    min(config.max_queries, stats["images"]), asked.ledger_folder)
    found = {int(label): n for label, n in stats["histogram"]}
    num_classes = asked.num_classes
    if num_classes is None:
        num_classes = max(found, default=-1) + 1
        log.warning("the oracle does not tell its number of classes; assuming %d from the labels seen "
                    "(pass --num_classes to be sure)", num_classes)
    histogram = [found.get(c, 0) for c in range(num_classes)]
    never_seen = [c for c, n in enumerate(histogram) if n == 0]
    quota = asked.report["quota"] if asked.report and "quota" in asked.report else (
        config.max_queries // num_classes if config.max_queries and num_classes else None)
    report = coverage.coverage_report(histogram, quota)
    log.info("coverage: %s", coverage.describe(report))
    if never_seen:
        log.warning("!!! %d of %d classes were never returned by the oracle: %s. A copycat cannot learn them; "
                    "query more or other images (--strategy=adaptive, --pool_transforms).", len(never_seen),
                    num_classes, never_seen)
    spent_total = asked.spent_before + asked.queries
    extra = StolenExtra(
        num_classes=num_classes, class_names=[str(c) for c in range(num_classes)],
        label_histogram=histogram, classes_never_seen=never_seen, coverage=report,
        strategy=config.strategy, oracle=asked.description, ledger=asked.ledger_folder,
        queries_total=spent_total, shard_lengths=lake_io.shard_lengths(stats["shards"]),
        # What the attacker used beyond the oracle's answers (issue #14's threat model): the query strategy, the
        # look it assumed (pool transforms), where the class count came from, and which stage made the queried
        # images (build_npdd: natural images; prepare_problem: problem images, i.e. not an NPDD-only run).
        knowledge={"strategy": config.strategy, "pool_transforms": list(config.pool_transforms),
                   "num_classes": num_classes, "num_classes_from": asked.num_classes_from,
                   "query_images_from": _origin_stage(asked.source),
                   "variant_queries": (asked.report or {}).get("variants_labeled", 0)},
        strategy_report=asked.report,
    )
    if config.pool_transforms:
        extra.pool = {"folder": asked.images, "variants": list(config.pool_transforms),
                      "counts": asked.source.counts}
    if config.price_per_1000 is not None:
        extra.cost = {"price_per_1000": config.price_per_1000,
                      "this_run": asked.queries * config.price_per_1000 / 1000,
                      "total": spent_total * config.price_per_1000 / 1000}
    return Manifest(
        stage=STAGE, record_kind=LABELED_IMAGE.name, options={**dataclasses.asdict(config), **run_options},
        counts={"images": stats["images"], "labeled": labeled, "ledger_hits": stats["ledger_hits"],
                "queries": asked.queries, "unlabeled": stats["images"] - labeled},
        inputs=[input_entry(asked.images, asked.source)] + [input_entry(made.path, made.manifest) for made in asked.made],
        extra=extra.to_dict(),
    )
