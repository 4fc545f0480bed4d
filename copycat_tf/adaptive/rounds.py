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
images), ``variants`` (share of each class's picks made as variants of its labeled images),
``input_size`` and ``epochs`` of the interim copycat, and ``mixture`` (draw the seed set per pool family by
the oracle's answers to an equal probe: copycat_tf.adaptive.mixture).
"""

import dataclasses
import logging
import math
import os
import time

import numpy as np

from copycat_tf.adaptive import mixture, pool_index, selection, variants
from copycat_tf.adaptive.config import ADAPTIVE_RULES, AdaptiveConfig  # noqa: F401 (ADAPTIVE_RULES: re-exported)
from copycat_tf.errors import CopycatError

log = logging.getLogger("copycat.adaptive")


class _Catalog:
    """Every image the rounds may ask about: the pool's (positions 0..N-1), then the variants made so far."""

    def __init__(self, index, store: variants.VariantStore):
        self.index, self.store = index, store

    def __len__(self) -> int:
        return len(self.index) + len(self.store)

    def id(self, position: int) -> str:
        n = len(self.index)
        return self.index.ids[position] if position < n else self.store.ids[position - n]

    def images(self, positions) -> list[bytes]:
        """The encoded images at these positions (the variants' read together, from their round files)."""
        n = len(self.index)
        made = self.store.images([p - n for p in positions if p >= n])
        made.reverse()
        return [self.index.image(p) if p < n else made.pop() for p in positions]

    def thumbs(self, positions: np.ndarray) -> np.ndarray:
        positions = np.asarray(positions, np.int64)
        n = len(self.index)
        out = np.empty((len(positions), *self.index.thumbs.shape[1:]), np.uint8)
        pooled = positions < n
        out[pooled] = self.index.thumbs[positions[pooled]]
        out[~pooled] = self.store.thumbs[positions[~pooled] - n]
        return out


class _Querier:
    """Sends catalog positions to the oracle in batches through the ledger; keeps the labels array current."""

    def __init__(self, index: _Catalog, oracle, ledger, run_id: str, max_queries: int, batch_size: int,
                 labels: np.ndarray, num_classes: int):
        self.index, self.oracle, self.ledger = index, oracle, ledger
        self.run_id, self.max_queries, self.batch_size = run_id, max_queries, batch_size
        self.labels = labels
        self.num_classes = num_classes
        # This process is the only sender: its own cap also holds where the ledger has no lock (gs://).
        self.process_budget = max(0, max_queries - ledger.spent())
        self.sent = 0
        self.exhausted = False

    def grow(self, count: int) -> None:
        """``count`` more catalog positions (new variants), none answered yet."""
        self.labels = np.concatenate([self.labels, np.full(count, -1, np.int64)])

    def ask(self, positions) -> int:
        """Query these positions (in order); stops when the budget is spent. Returns how many were answered."""
        answered = 0
        positions = [int(p) for p in positions if self.labels[p] < 0]
        for start in range(0, len(positions), self.batch_size):
            batch = positions[start:start + self.batch_size]
            ids = [self.index.id(p) for p in batch]
            allowed = self.ledger.claim(self.run_id, ids, self.max_queries, self.process_budget)  # skips others' ids
            if allowed:
                position = dict(zip(ids, batch))
                sent = [position[i] for i in allowed]
                got = self.oracle.classify(self.index.images(sent))  # answers are validated there
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
                     seed: int, config: AdaptiveConfig, work: str, variants_folder: str | None = None) -> dict:
    """Run the rounds; returns what the manifest records (quota, seed set, one entry per round).

    ``variants_folder`` keeps the variant queries (required when ``config.variants`` > 0).
    """
    config.check()
    if config.variants and not variants_folder:
        raise CopycatError("--adaptive_variants needs a folder to keep the variants in")
    # Without variants_folder, no variant is made or read; with it, the variants made by earlier runs are
    # loaded (their answers count, and those in flight are asked again) even when config.variants is 0.
    os.makedirs(work, exist_ok=True)
    index = pool_index.open_or_build(pool, work, config.input_size)
    try:
        return _rounds(_Catalog(index, variants.VariantStore(variants_folder, config.input_size)), oracle, ledger,
                       run_id, max_queries, num_classes, batch_size, seed, config)
    finally:
        index.close()


def _rounds(catalog: _Catalog, oracle, ledger, run_id, max_queries, num_classes, batch_size, seed, config) -> dict:
    answers = ledger.read_answers()
    labels = np.array([answers.get(catalog.id(p), -1) for p in range(len(catalog))], dtype=np.int64)
    if labels.max(initial=-1) >= num_classes:
        raise CopycatError(f"the ledger holds class {labels.max()} but the oracle has {num_classes} classes; "
                           "pass the right --num_classes")
    quota = config.quota or max(1, max_queries // num_classes)
    querier = _Querier(catalog, oracle, ledger, run_id, max_queries, batch_size, labels, num_classes)
    seed_size, family_mixture = _resume_and_seed(catalog, querier, ledger, max_queries, seed, config)
    round_size = max(batch_size, math.ceil((max_queries - seed_size) / config.rounds))
    models: dict = {}  # the interim copycat, built when a round first scores the pool
    log_rounds, stop = [], "budget spent"
    while _budget_left(ledger, max_queries) and not querier.exhausted:
        labels = querier.labels
        histogram = np.bincount(labels[labels >= 0], minlength=num_classes)
        if (histogram >= quota).all():
            stop = "every class has its quota"
            break
        candidates = np.flatnonzero(labels[:len(catalog.index)] < 0)
        allocation = selection.allocate(histogram, quota, min(round_size, _budget_left(ledger, max_queries)),
                                        config.explore)
        made_here = selection.apportion(int(round(allocation.per_class.sum() * config.variants)),
                                        allocation.per_class)
        from_pool = selection.Allocation(allocation.per_class - made_here, allocation.uncertain)
        if not len(candidates):
            if not made_here.sum():
                stop = "the pool is exhausted"
                break
            from_pool = selection.Allocation(np.zeros_like(made_here), 0)
        entry = _ask_round(len(log_rounds) + 1, catalog, querier, candidates, from_pool, made_here, histogram,
                           models, seed, config, answers)
        log_rounds.append(entry)
        log.info("adaptive round %d: asked %d, new labels per class %s, %d classes below quota %d, %d queries left",
                 entry["round"], entry["asked"], entry["new_labels_per_class"],
                 int((np.asarray(entry["histogram"]) < quota).sum()), quota, _budget_left(ledger, max_queries))
        if not entry["asked"]:
            stop = "no image could be chosen"
            break
    labels = querier.labels
    histogram = np.bincount(labels[labels >= 0], minlength=num_classes)
    if stop == "budget spent" and (histogram >= quota).all():
        stop = "every class has its quota"
    log.info("adaptive: stopped (%s) after %d rounds; labels per class %s", stop, len(log_rounds), histogram.tolist())
    variants_labeled = int((labels[len(catalog.index):] >= 0).sum())
    return {"quota": quota, "seed_set": int(seed_size), "round_size": int(round_size), "rounds_run": len(log_rounds),
            "stopped": stop, "rounds": log_rounds, "queries_this_run": querier.sent,
            "variants_labeled": variants_labeled, "config": dataclasses.asdict(config),
            "family_mixture": family_mixture,
            # the folder the labeled output reads the variants from
            "variants_folder": catalog.store.finish() if variants_labeled else None}


def _budget_left(ledger, max_queries: int) -> int:
    return max(0, max_queries - ledger.spent())


def _resume_and_seed(catalog: _Catalog, querier: _Querier, ledger, max_queries: int, seed: int, config) -> tuple:
    """Ask again what was in flight when a run was killed, then the seed set; returns its size and, with
    ``config.mixture``, the family mixture's report (None without)."""
    position = {catalog.id(p): p for p in range(len(catalog))}
    pending = [position[i] for i in ledger.pending_ids() if i in position]
    if pending and _budget_left(ledger, max_queries):
        log.info("adaptive: asking again for %d images that were in flight when the last run stopped", len(pending))
        querier.ask(pending)
    seed_size = max(1, min(max_queries, math.ceil(max_queries * config.seed_fraction)))
    order = selection.random_order(catalog.index.ids, seed)
    if config.mixture:
        return seed_size, _mixture_seed(catalog, querier, ledger, order, seed_size, max_queries, config)
    seed_set = order[:seed_size]
    if _budget_left(ledger, max_queries):
        asked = querier.ask(seed_set)
        log.info("adaptive: seed set of %d random images (%d asked now)", len(seed_set), asked)
    return seed_size, None


def _mixture_seed(catalog: _Catalog, querier: _Querier, ledger, order: np.ndarray, seed_size: int,
                  max_queries: int, config) -> dict:
    """The seed set by families: an equal probe of each, then the max-entropy mixture of their answers.

    Each family is taken in the pool's seeded order, so a resumed run asks the same probe, reads the same
    answers from the ledger, computes the same weights and continues the same seed set.
    """
    families = np.array([mixture.family_of(s) for s in catalog.index.sources])
    names = sorted(set(families.tolist()))
    in_order = {name: order[families[order] == name] for name in names}
    probe = selection.apportion(min(seed_size, max(len(names), math.ceil(max_queries * config.probe_fraction))),
                                np.ones(len(names)))
    probe = np.minimum(probe, [len(in_order[name]) for name in names])
    querier.ask(np.concatenate([in_order[name][:n] for name, n in zip(names, probe)]))
    labels = querier.labels
    histograms = np.stack([np.bincount(labels[in_order[name][:n]][labels[in_order[name][:n]] >= 0],
                                       minlength=querier.num_classes) for name, n in zip(names, probe)])
    weights = np.round(mixture.max_entropy_mixture(histograms), 9)  # rounded: the same shares on any machine
    extra = selection.apportion(max(0, seed_size - int(probe.sum())), weights)
    taken = [min(len(in_order[name]), int(n + e)) for name, n, e in zip(names, probe, extra)]
    if _budget_left(ledger, max_queries):
        querier.ask(np.concatenate([in_order[name][n:t] for name, n, t in zip(names, probe, taken)]))
    report = {name: {"probe": int(n), "probe_histogram": h.tolist(), "entropy": round(mixture.entropy(h), 3),
                     "weight": round(float(w), 4), "seed_set": t}
              for name, n, h, w, t in zip(names, probe, histograms, weights, taken)}
    log.info("adaptive: family mixture over %d families (probe %d): %s", len(names), int(probe.sum()),
             ", ".join(f"{name} {w:.2f}" for name, w in zip(names, weights)))
    return report


def _ask_round(number: int, catalog: _Catalog, querier: _Querier, candidates, from_pool, made_here, histogram,
               models: dict, seed: int, config, answers: dict) -> dict:
    """One round: the pool picks the interim copycat scores best, then the variant queries; its log entry."""
    started = time.monotonic()
    entry = {"round": number}
    asked = 0
    num_classes = len(histogram)
    if from_pool.per_class.sum() + from_pool.uncertain:
        if "interim" not in models:
            from copycat_tf.adaptive import interim  # Keras, only when a round scores the pool

            models["interim"] = interim.build_interim(num_classes, config.input_size, seed=seed)
        picks, made, loss = _pool_picks(models["interim"], catalog, querier.labels, candidates, from_pool,
                                        num_classes, config, seed + number)
        asked += querier.ask(picks)
        entry.update(interim_loss=round(loss, 4), picks=made)
    if made_here.sum() and not querier.exhausted:
        asked_variants, kept = _variant_queries(catalog, querier, made_here, seed, number, answers)
        asked += asked_variants
        entry.update(variants_asked=asked_variants, variants_kept_class=kept)
    after = np.bincount(querier.labels[querier.labels >= 0], minlength=num_classes)
    entry.update(asked=asked, new_labels_per_class=(after - histogram).tolist(), histogram=after.tolist(),
                 seconds=round(time.monotonic() - started, 1))
    return entry


def _pool_picks(model, catalog: _Catalog, labels, candidates, allocation, num_classes, config, seed):
    """Train the interim copycat on what is labeled, score the unqueried pool, pick per the allocation."""
    from copycat_tf.adaptive import interim

    train = _training_set(labels, num_classes, config.max_train_per_class, seed)
    loss = interim.fit(model, catalog.thumbs(train), labels[train], config.epochs, seed=seed)
    picker = selection.Picker(allocation)
    for start in range(0, len(candidates), 8192):
        chunk = candidates[start:start + 8192]
        picker.add(interim.scores(model, np.asarray(catalog.index.thumbs[chunk])), chunk)
    picks, made = picker.picks()
    return picks, made, loss


def _variant_queries(catalog: _Catalog, querier: _Querier, per_class: np.ndarray, seed: int, number: int,
                     answers: dict) -> tuple[int, float]:
    """Make ``per_class[c]`` variants of labeled images of each class c, keep them, ask the oracle about them.

    A variant the ledger has answered already (``answers``: another output's run on the same ledger)
    takes that answer instead of a query. Returns how many were asked and the share of the answered
    ones the oracle put in their parent's class.
    """
    rng = variants.seeded(seed, number)
    labels = querier.labels
    pairs, parent_class = [], {}
    for c in np.flatnonzero(per_class):
        members = np.flatnonzero(labels == c)
        for _ in range(int(per_class[c])):
            pairs.append((int(members[rng.randrange(len(members))]), int(members[rng.randrange(len(members))])))
    wanted = sorted({p for pair in pairs for p in pair})
    data = dict(zip(wanted, catalog.images(wanted)))
    parents = [(catalog.id(parent), data[parent]) for parent, _ in pairs]
    for parent, _ in pairs:
        parent_class[catalog.id(parent)] = int(labels[parent])
    taken = set(catalog.index.ids) | set(catalog.store.ids)
    records = variants.make_round(parents, [data[partner] for _, partner in pairs], rng, taken)
    first = len(catalog)
    catalog.store.add(records)  # kept before any is asked: a killed run finds them again
    querier.grow(len(records))
    new = np.arange(first, first + len(records))
    for position, record in zip(new, records):
        querier.labels[position] = answers.get(record["id"], -1)
    asked = querier.ask(new)
    answered = [(p, r) for p, r in zip(new, records) if querier.labels[p] >= 0]
    kept = float(np.mean([querier.labels[p] == parent_class[r["source_key"]] for p, r in answered])) if answered else 0.0
    return asked, round(kept, 3)


__all__ = ["AdaptiveConfig", "steal_adaptively"]
