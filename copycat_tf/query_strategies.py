"""Query strategies of copycat-steal-labels: which images the oracle is asked about, in one registry.

The steal stage is in pieces (beam_pipelines.steal_labels): choose the pool, let the strategy ask,
write the labeled folder (one Beam job that writes every image the ledger has answered), build the
manifest. A strategy plugs in here, without touching the pipeline:

    random     the paper: the first --max_queries images of a seeded-hash order (asked inside the
               pipeline; a budget's output is a prefix of any larger budget's)
    adaptive   rounds of an interim copycat steer the budget to the classes furthest below quota,
               optionally with variant queries (copycat_tf.adaptive)

A strategy with an ``ask`` function runs it in the launcher before the pipeline. ``ask`` spends the
budget through the ledger (``Ledger.claim`` before a batch goes out, ``Ledger.record`` after; never an
image twice) and returns an ``AskResult``: its report (stored under the strategy's name in the
manifest's extras), how many queries it made, and any folders of images it made itself (variant
queries) whose answered images belong in the labeled output. This module imports nothing heavy, so
binaries can list the strategies in their flags.
"""

import dataclasses
from typing import Callable

from copycat_tf.errors import CopycatError
from tfrecords_schema.extras import StolenExtra


@dataclasses.dataclass
class AskContext:
    """What a strategy's ``ask`` is given: the steal's config, the pool and the means to ask."""

    config: object  # beam_pipelines.steal_labels.StealLabelsConfig
    pool: object  # tfrecords_schema.LakeFolder of the images to choose from
    oracle: object  # an opened copycat_tf.oracles oracle (``classify(list of encoded images)``)
    ledger: object  # copycat_tf.ledger.Ledger
    run_id: str
    num_classes: int | None
    work: str  # a local folder for caches (the adaptive pool index)
    made_folder: str  # where images the strategy makes itself go (variants), beside the output


@dataclasses.dataclass
class AskResult:
    report: dict  # stored in the manifest's extras under the strategy's name
    queries: int  # spent by this run
    made_folders: list[str] = dataclasses.field(default_factory=list)  # image folders to label besides the pool


@dataclasses.dataclass(frozen=True)
class QueryStrategy:
    name: str
    summary: str
    ask: Callable[[AskContext], AskResult] | None = None  # None: the pipeline's seeded-hash prefix (random)
    needs_budget: bool = False  # refuse a run without --max_queries
    needs_num_classes: bool = False  # refuse a run where neither the oracle nor --num_classes gives it


REGISTRY: dict[str, QueryStrategy] = {}
# Keys of a steal manifest's extras that a strategy's report (stored under the strategy's name) must not replace.
RESERVED = frozenset(f.name for f in dataclasses.fields(StolenExtra)) - {"other", "strategy_report"}


def register(strategy: QueryStrategy) -> QueryStrategy:
    """Add (or replace) a strategy; returns it. A name that is a manifest key of its own is refused."""
    if strategy.name in RESERVED or not strategy.name.replace("_", "").isalnum():
        raise CopycatError(f"a query strategy cannot be called {strategy.name!r}: use letters, digits and _, and "
                           f"none of {', '.join(sorted(RESERVED))}")
    REGISTRY[strategy.name] = strategy
    return strategy


def names() -> list[str]:
    return list(REGISTRY)


def get(name: str) -> QueryStrategy:
    """The strategy called ``name``; an unknown name is one clear error listing the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise CopycatError(f"--strategy={name!r} is unknown; use one of {', '.join(REGISTRY)}") from None


def _ask_adaptively(context: AskContext) -> AskResult:
    from copycat_tf.adaptive.rounds import steal_adaptively  # Keras and NumPy only when it runs

    config = context.config
    # The variants folder is always opened: variants an earlier run made (and paid for) stay in the output
    # even when this run makes none (--adaptive_variants=0).
    report = steal_adaptively(context.pool, context.oracle, context.ledger, context.run_id, config.max_queries,
                              context.num_classes, config.batch_size, config.seed, config.adaptive, context.work,
                              variants_folder=context.made_folder)
    made = [report["variants_folder"]] if report.get("variants_folder") else []
    return AskResult(report, report["queries_this_run"], made)


register(QueryStrategy("random", "the paper: the first --max_queries images of a seeded-hash order"))
register(QueryStrategy("adaptive", "rounds of an interim copycat steer the budget to the classes below quota",
                       ask=_ask_adaptively, needs_budget=True, needs_num_classes=True))

__all__ = ["AskContext", "AskResult", "QueryStrategy", "REGISTRY", "get", "names", "register"]
