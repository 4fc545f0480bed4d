"""Adaptive querying (``copycat-steal-labels --strategy=adaptive``): spend the budget where classes are missing.

    seed set (random, seeded-hash order) ─ query ─┐
    ┌─────────────────────────────────────────────┘
    └─ round: train the interim copycat on what was stolen → score the unqueried pool (free)
              → allocate the round to the classes furthest below quota (+ uncertain images)
              → query those images through the ledger → repeat
    until every class has its quota, the budget is spent, or the pool is exhausted.

Hard labels only; every query goes through the ledger (spend recorded before a batch is sent,
answers after), so ``--max_queries`` is exact and a killed run resumes: the batch that was in
flight is asked first, nothing answered is asked again, and the rounds continue from the labels
the ledger holds. The launcher process runs the rounds; the pool is read memory-mapped.

Knobs (flags ``--adaptive_*``): ``rounds`` (how many selection rounds share the budget left after
the seed set), ``seed_fraction`` (share of the budget queried at random first), ``quota`` (labels
wanted per class; default budget / classes), ``explore`` (share of each round for uncertain
images), ``input_size`` and ``epochs`` of the interim copycat.
"""

import dataclasses
import logging
import math
import os
import time
import types

import numpy as np

from copycat_tf.adaptive import pool_index, selection
from copycat_tf.config_checks import Rule, check_rules
from copycat_tf.errors import CopycatError

log = logging.getLogger("copycat.adaptive")


ADAPTIVE_RULES = (  # the adaptive knobs as fields of StealLabelsConfig.adaptive
    Rule("adaptive.rounds", "adaptive_rounds", 1, 10_000), Rule("adaptive.seed_fraction", "adaptive_seed_fraction", 0, 1, above=True),
    Rule("adaptive.quota", "adaptive_quota", 1, optional=True), Rule("adaptive.explore", "adaptive_explore", 0, 1),
    Rule("adaptive.input_size", "adaptive_input_size", 8, 512), Rule("adaptive.epochs", "adaptive_epochs", 1, 1000),
    Rule("adaptive.max_train_per_class", "adaptive_max_train_per_class", 1),
)


@dataclasses.dataclass
class AdaptiveConfig:
    rounds: int = 8
    seed_fraction: float = 0.2
    quota: int | None = None  # labels per class; default max_queries // num_classes
    explore: float = 0.2
    input_size: int = 32
    epochs: int = 4
    max_train_per_class: int = 2000  # the interim copycat's training set, per class at most

    def check(self) -> None:
        """The same range checks as StealLabelsConfig.validate (ADAPTIVE_RULES), for callers of the rounds alone."""
        check_rules(types.SimpleNamespace(adaptive=self), ADAPTIVE_RULES)


class _Querier:
    """Sends pool positions to the oracle in batches through the ledger; keeps the labels array current."""

    def __init__(self, index, oracle, ledger, run_id: str, max_queries: int, batch_size: int, labels: np.ndarray,
                 num_classes: int):
        self.index, self.oracle, self.ledger = index, oracle, ledger
        self.run_id, self.max_queries, self.batch_size = run_id, max_queries, batch_size
        self.labels = labels
        self.num_classes = num_classes
        # This process is the only sender: its own cap also holds where the ledger has no lock (gs://).
        self.process_budget = max(0, max_queries - ledger.spent())
        self.sent = 0
        self.exhausted = False

    def ask(self, positions) -> int:
        """Query these positions (in order); stops when the budget is spent. Returns how many were answered."""
        answered = 0
        positions = [int(p) for p in positions if self.labels[p] < 0]
        for start in range(0, len(positions), self.batch_size):
            batch = positions[start:start + self.batch_size]
            ids = [self.index.ids[p] for p in batch]
            allowed = self.ledger.claim(self.run_id, ids, self.max_queries, self.process_budget)  # skips others' ids
            if allowed:
                position = dict(zip(ids, batch))
                sent = [position[i] for i in allowed]
                got = self.oracle.classify([self.index.image(p) for p in sent])  # answers are validated there
                self.ledger.record(allowed, got)
                self.labels[sent] = np.asarray(got, dtype=np.int64)
                answered += len(allowed)
                self.sent += len(allowed)
            if self.sent >= self.process_budget or (len(allowed) < len(batch) and
                                                    self.ledger.spent() >= self.max_queries):
                self.exhausted = True
                break
        return answered


def _training_set(labels: np.ndarray, num_classes: int, cap: int, seed: int) -> np.ndarray:
    """Positions of labeled images, at most ``cap`` per class (a seeded sample of the larger ones)."""
    rng = np.random.default_rng(seed)
    chosen = []
    for c in range(num_classes):
        members = np.flatnonzero(labels == c)
        chosen.append(members if len(members) <= cap else rng.choice(members, cap, replace=False))
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)


def steal_adaptively(pool, oracle, ledger, run_id: str, max_queries: int, num_classes: int, batch_size: int,
                     seed: int, config: AdaptiveConfig, work: str) -> dict:
    """Run the rounds; returns what the manifest records (quota, seed set, one entry per round)."""
    config.check()
    os.makedirs(work, exist_ok=True)
    index = pool_index.open_or_build(pool, work, config.input_size)
    try:
        return _rounds(index, oracle, ledger, run_id, max_queries, num_classes, batch_size, seed, config)
    finally:
        index.close()


def _rounds(index, oracle, ledger, run_id, max_queries, num_classes, batch_size, seed, config) -> dict:
    from copycat_tf.adaptive import interim  # Keras, only when rounds run
    answers = ledger.read_answers()
    labels = np.array([answers.get(i, -1) for i in index.ids], dtype=np.int64)
    if labels.max(initial=-1) >= num_classes:
        raise CopycatError(f"the ledger holds class {labels.max()} but the oracle has {num_classes} classes; "
                           "pass the right --num_classes")
    quota = config.quota or max(1, max_queries // num_classes)
    querier = _Querier(index, oracle, ledger, run_id, max_queries, batch_size, labels, num_classes)
    position = {image_id: p for p, image_id in enumerate(index.ids)}
    log_rounds = []

    def budget_left() -> int:
        return max(0, max_queries - ledger.spent())

    pending = [position[i] for i in ledger.pending_ids() if i in position]
    if pending and budget_left():
        log.info("adaptive: asking again for %d images that were in flight when the last run stopped", len(pending))
        querier.ask(pending)

    seed_size = max(1, min(max_queries, math.ceil(max_queries * config.seed_fraction)))
    seed_set = selection.random_order(index.ids, seed)[:seed_size]
    if budget_left():
        asked = querier.ask(seed_set)
        log.info("adaptive: seed set of %d random images (%d asked now)", len(seed_set), asked)
    round_size = max(batch_size, math.ceil((max_queries - seed_size) / config.rounds))
    model = None
    number = 0
    stop = "budget spent"
    while budget_left() and not querier.exhausted:
        histogram = np.bincount(labels[labels >= 0], minlength=num_classes)
        if (histogram >= quota).all():
            stop = "every class has its quota"
            break
        candidates = np.flatnonzero(labels < 0)
        if not len(candidates):
            stop = "the pool is exhausted"
            break
        number += 1
        started = time.monotonic()
        if model is None:
            model = interim.build_interim(num_classes, config.input_size, seed=seed)
        train = _training_set(labels, num_classes, config.max_train_per_class, seed + number)
        loss = interim.fit(model, np.asarray(index.thumbs[train]), labels[train], config.epochs, seed=seed + number)
        allocation = selection.allocate(histogram, quota, min(round_size, budget_left()), config.explore)
        picker = selection.Picker(allocation)
        for start in range(0, len(candidates), 8192):
            chunk = candidates[start:start + 8192]
            picker.add(interim.scores(model, np.asarray(index.thumbs[chunk])), chunk)
        picks, made = picker.picks()
        asked = querier.ask(picks)
        after = np.bincount(labels[labels >= 0], minlength=num_classes)
        gained = (after - histogram).tolist()
        entry = {"round": number, "asked": asked, "interim_loss": round(loss, 4), "picks": made,
                 "new_labels_per_class": gained, "histogram": after.tolist(),
                 "seconds": round(time.monotonic() - started, 1)}
        log_rounds.append(entry)
        below = int((after < quota).sum())
        log.info("adaptive round %d: asked %d, new labels per class %s, %d classes below quota %d, %d queries left",
                 number, asked, gained, below, quota, budget_left())
        if not asked:
            stop = "no image could be chosen"
            break
    histogram = np.bincount(labels[labels >= 0], minlength=num_classes)
    if stop == "budget spent" and (histogram >= quota).all():
        stop = "every class has its quota"
    log.info("adaptive: stopped (%s) after %d rounds; labels per class %s", stop, number, histogram.tolist())
    return {"quota": quota, "seed_set": int(seed_size), "round_size": int(round_size), "rounds_run": number,
            "stopped": stop, "rounds": log_rounds, "queries_this_run": querier.sent,
            "config": dataclasses.asdict(config)}


__all__ = ["AdaptiveConfig", "steal_adaptively"]
