"""Declarative experiments of the paper on any registered problem: a config becomes a plan of stage calls.

A config (JSON, see ``configs/``) names the problem, the NPDD sources, the models and the experiments:

  same_architecture   Table 3: target, PDD baseline, CC-*-NPDD-SL, CC-*-PDD-SL, CC-*-NPDD+PDD-SL
  cross_architecture  Table 4: AlexNet baseline and AlexNet copycat of the VGG target
  data_curve          Fig. 5: copycats from the first N stolen labels (nested subsets: the same
                      seeded-hash order; the points share one ledger, so the curve pays for its
                      largest point only), with and without PDD fine-tuning; runs named NAME@N
  robustness          three targets with different seeds, each copied; mean ± std of copy performance
  defenses            for API owners: the target served behind each defense (copycat-serve), the same attack
                      (random and adaptive, equal budget, over seeds) against each; per defense the copy's
                      performance and agreement, the honest users' macro F1 on the TDD, the detector's flags,
                      and the watermark's ownership p-values (see _plan_defenses)
  coverage            beyond the paper: stealing strategies (random, adaptive, each with or without pool
                      transforms) at equal budgets, one ledger per random strategy (a budget is a
                      prefix of the next: the curve pays its largest budget); per point the classes covered, copy performance and
                      agreement; runs named CC-VGG-NPDD-SL.STRATEGY@N (see copycat_tf.adaptive)

:func:`plan` turns a config into the list of stage calls (nothing runs; tests compare call lists);
:func:`run_experiment` executes it (each step skipped when its output is complete, so an interrupted
experiment resumes) and gathers the results from the run folders. The demo is the config
``configs/demo.json`` through the same plan. ``--small`` applies the config's ``small`` overrides, like
big_vision's runlocal.
"""

import dataclasses
import json
import statistics

from copycat_tf.errors import CopycatError
from copycat_tf.plan import StageCall, execute, join, unique
from copycat_tf.run_dir import RunDir, RunName, lake_manifest
from copycat_tf.training.config import TrainConfig
from tfrecords_schema.extras import StolenExtra

EXPERIMENTS = ("same_architecture", "cross_architecture", "data_curve", "robustness", "coverage", "defenses")
STRATEGIES = ("random", "adaptive", "random+transforms", "adaptive+transforms", "adaptive+transforms+variants",
              "adaptive+transforms+mixture", "adaptive+transforms+mixture+variants")
PER_CLASS = 1000  # images per class after copycat-balance, unless the config's "per_class" says otherwise
VARIANTS_SHARE = 0.5  # the share of each adaptive round's queries that are variants, unless coverage.variants says
ARCH = {"vgg16": "VGG", "vgg16_bn": "VGG", "alexnet": "Alex", "alexnet_bn": "Alex"}
# The one recipe of CC-*-NPDD+PDD-SL: the NPDD copycat fine-tuned on PDD-SL for half its epochs, with augmentation.
FINE_TUNE_AUGMENT = "intensity,contrast,rotate,shear,translate"


def load_config(path: str, small: bool) -> dict:
    try:
        with open(path) as handle:
            config = json.load(handle)
    except (OSError, json.JSONDecodeError) as error:
        raise CopycatError(f"--config={path}: cannot read it as JSON ({error})") from None
    if small:
        for key, value in config.get("small", {}).items():
            if isinstance(value, dict):
                config[key] = {**config.get(key, {}), **value}
            else:
                config[key] = value
    unknown = set(config.get("experiments", [])) - set(EXPERIMENTS)
    if unknown:
        raise CopycatError(f"--config={path}: unknown experiment(s) {sorted(unknown)}; known: {', '.join(EXPERIMENTS)}")
    for key in ("problem", "target", "copycat", "experiments"):
        if key not in config:
            raise CopycatError(f"--config={path} lacks {key!r}")
    return config


@dataclasses.dataclass
class Plan:
    """The calls of an experiment and where its results will be, once the calls have run."""

    calls: list[StageCall]
    out: str
    target: str  # the target's run folder
    evaluated: list[str] = dataclasses.field(default_factory=list)  # run folders evaluated against the target
    robustness: list[tuple[int, str, str]] = dataclasses.field(default_factory=list)  # (seed, target run, copy run)
    replicates: list[tuple[int, str, list[str]]] = dataclasses.field(default_factory=list)  # (seed, target, NPDD copycats)
    coverage: list[dict] = dataclasses.field(default_factory=list)  # strategy, budget, stolen folder, run folder
    defenses: list[dict] = dataclasses.field(default_factory=list)  # one per defense: its server, attacks, checks
    api_keys: dict = dataclasses.field(default_factory=dict)  # defenses: key name → env variable the client reads
    report: str = ""


class _Planner:
    """Builds the stage calls of one experiment; each method appends its calls and returns the output it names."""

    def __init__(self, config: dict, output: str):
        self.c = config
        self.out = str(output).rstrip("/")
        self.lake = join(self.out, "lake")
        self.problem = join(self.lake, "problems", config["problem"].replace(":", "_").replace("/", "_"))
        self.tdd = join(self.problem, "tdd")
        self.seed = int(config.get("seed", 0))
        self.calls: list[StageCall] = []

    def add(self, stage: str, args: list[str], done: str) -> None:
        self.calls.append(StageCall(stage, tuple(args), done))

    def prepare(self) -> str:
        args = [f"--problem={self.c['problem']}", f"--output={self.problem}", *_given(self.c, "data_dir"),
                f"--seed={self.seed}"]
        if self.c.get("tfds_data_dir"):
            args.append(f"--tfds_data_dir={self.c['tfds_data_dir']}")
        self.add("prepare-problem", args, lake_manifest(self.tdd))
        npdd = join(self.lake, "npdd")
        args = [f"--source={s}" for s in self.c.get("sources", ["bundled"])]
        args += [*_given(self.c, "bundled_crops", "max_side"), f"--seed={self.seed}", f"--output={npdd}"]
        if self.c.get("tfds_data_dir"):
            args.append(f"--tfds_data_dir={self.c['tfds_data_dir']}")
        self.add("build-npdd", args + self.c.get("beam_options", []), lake_manifest(npdd))
        return npdd

    def train(self, run: str, model: dict, data: str, *extra: str, seed: int | None = None,
              epochs: int | None = None) -> str:
        args = [f"--model={model['model']}", *_given(model, "width", "input_size"),
                *([f"--epochs={epochs}"] if epochs else _given(model, "epochs")), *_given(model, "lr", "batch_size"),
                f"--seed={self.seed if seed is None else seed}", f"--train={data}", f"--output={run}", *extra]
        self.add("train", args + model.get("train_options", []), RunDir(run).metrics)
        return run

    def ensemble(self, members: list[str], run: str) -> str:
        self.add("ensemble", [f"--members={','.join(members)}", f"--output={run}"], RunDir(run).metrics)
        return run

    def steal(self, images: str, target_run: str, output: str, *extra: str, oracle: str | None = None) -> str:
        args = [f"--images={images}", f"--oracle={oracle or RunDir(target_run).export}", "--batch_size=64",
                f"--output={output}",
                *_given(self.c, "price_per_1000"), *extra]
        self.add("steal-labels", args + self.c.get("beam_options", []), lake_manifest(output))
        return output

    def balance(self, stolen: str, seed: int | None = None, per_class: int | None = None, total: int | None = None) -> str:
        if total:
            output, size = f"{stolen}-balanced-total-{total}", f"--total={total}"
        else:
            per_class = per_class or self.c.get("per_class", PER_CLASS)
            output, size = f"{stolen}-balanced-{per_class}", f"--per_class={per_class}"
        self.add("balance", [f"--input={stolen}", size, "--allow_missing_classes",
                             f"--seed={self.seed if seed is None else seed}", f"--output={output}",
                             *self.c.get("beam_options", [])], lake_manifest(output))
        return output

    def evaluate(self, run: str, target_run: str) -> str:
        output = RunDir(run).evaluation
        self.add("evaluate", [f"--model={RunDir(run).export}", f"--reference={RunDir(target_run).export}",
                              f"--test={self.tdd}", *_given(self.c, "bootstrap"), f"--output={output}"],
                 output)
        return output

    def copy_runs(self, runs: str, target_run: str, npdd: str, pdd_sl: str | None, model: dict, seed: int | None = None,
                  fine_tune: bool = True, budget: int | None = None, *steal_extra: str) -> list[str]:
        """Steal NPDD labels from the target, balance, train the copycat (and its PDD fine-tuned version)."""
        arch = ARCH.get(model["model"], model["model"])
        stolen_root = join(self.lake_of(runs), "stolen", _name(target_run))  # DESIGN: LAKE/stolen/ORACLE/
        suffix = f"@{budget}" if budget is not None else ""
        stolen = self.steal(npdd, target_run, join(stolen_root, f"NPDD-SL{suffix}"), *steal_extra)
        made = [self.train(_run(runs, "CC", arch, "NPDD", "SL", budget=budget), model, self.balance(stolen, seed),
                           seed=seed)]
        if fine_tune and pdd_sl:
            made.append(self.train(_run(runs, "CC", arch, "NPDD+PDD", "SL", budget=budget), model, pdd_sl,
                                   f"--init={made[0]}",
                                   f"--augment={FINE_TUNE_AUGMENT}", seed=seed,
                                   epochs=max(1, model.get("epochs", TrainConfig.epochs) // 2)))
        return made

    def recipe_run(self, runs: str, target_run: str, npdd: str, model: dict, name: str, recipe: dict,
                   seed: int | None = None) -> str:
        """A copycat by a named recipe (its own steal options, balancing and training options): CC-*-NPDD-SL.NAME."""
        arch = ARCH.get(model["model"], model["model"])
        stolen_root = join(self.lake_of(runs), "stolen", _name(target_run))
        shared = []  # one transformed pool and one adaptive index for every seed's run of this recipe
        options = recipe.get("steal_options", [])
        if any(o.startswith("--pool_transforms=") for o in options):
            shared.append(f"--pool={join(self.lake, 'npdd-pool')}")
        if "--strategy=adaptive" in options:
            shared.append(f"--adaptive_cache={join(self.lake, 'adaptive-cache')}")
        stolen = self.steal(npdd, target_run, join(stolen_root, f"NPDD-SL.{name}"), *options, *shared)
        balance = recipe.get("balance", {"per_class": self.c.get("per_class", PER_CLASS)})
        data = self.balance(stolen, seed, **balance) if balance else stolen
        model = {**model, **recipe.get("model", {}),
                 "train_options": [*model.get("train_options", []), *recipe.get("train_options", [])]}
        return self.train(_run(runs, "CC", arch, "NPDD", "SL", recipe=name), model, data, seed=seed)

    def lake_of(self, runs: str) -> str:
        """The lake beside a runs folder (OUT/runs → OUT/lake; OUT/robustness/seedS/runs → .../seedS/lake)."""
        return runs[: -len("/runs")] + "/lake" if runs.endswith("/runs") else self.lake


def _given(settings: dict, *names: str) -> list[str]:
    """``--name=value`` for each name the config sets; a name it leaves out is left to the stage's own
    default (its Config dataclass), so every default is written once."""
    return [f"--{name}={settings[name]}" for name in names if settings.get(name) is not None]


def _name(folder: str) -> str:
    return RunDir(folder).name


def _run(runs: str, kind: str, arch: str, data: str, labels: str, recipe: str | None = None,
         budget: int | None = None) -> str:
    """The folder of a run under ``runs``, named in the paper's scheme (CopycatError for a name it cannot spell)."""
    return join(runs, str(RunName(kind, arch, data, labels, recipe=recipe, budget=budget)))


def plan(config: dict, output: str) -> Plan:
    """Every stage call of the experiments in ``config``, in order, writing under ``output``. Runs nothing."""
    p = _Planner(config, output)
    npdd = p.prepare()
    runs = join(p.out, "runs")
    target_model, copy_model = config["target"], config["copycat"]
    arch = ARCH.get(target_model["model"], target_model["model"])
    target = p.train(_run(runs, "BL", arch, "ODD", "OL"), target_model, join(p.problem, "odd"), f"--val={p.tdd}")
    pdd = join(p.problem, "pdd")
    pdd_sl = p.steal(pdd, target, join(p.lake, "stolen", _name(target), "PDD-SL"))
    result = Plan(calls=[], out=p.out, target=target, evaluated=[target])
    experiments = config["experiments"]
    recipes = config.get("recipes", {})
    if "same_architecture" in experiments:
        copy_arch = ARCH.get(copy_model["model"], copy_model["model"])
        result.evaluated.append(p.train(_run(runs, "BL", copy_arch, "PDD", "OL"), copy_model, pdd))
        copies = p.copy_runs(runs, target, npdd, pdd_sl, copy_model)
        copies += [p.recipe_run(runs, target, npdd, copy_model, name, recipe) for name, recipe in recipes.items()]
        result.evaluated += copies
        result.evaluated.append(p.train(_run(runs, "CC", copy_arch, "PDD", "SL"), copy_model, pdd_sl))
        result.replicates.append((p.seed, target, [r for r in copies if RunDir(r).run_name.data != "NPDD+PDD"]))
        for seed in [s for s in config.get("seeds", [p.seed]) if s != p.seed]:
            _plan_replicate(p, config, npdd, seed, result)
    if "cross_architecture" in experiments:
        alex = config.get("alexnet", {**copy_model, "model": "alexnet_bn"})
        result.evaluated.append(p.train(_run(runs, "BL", "Alex", "PDD", "OL"), alex, pdd))
        result.evaluated += p.copy_runs(runs, target, npdd, pdd_sl, alex, fine_tune=False)
    if "data_curve" in experiments:
        # The points share one ledger: the first N of one seeded-hash order, so the curve pays its largest point.
        ledger = join(p.lake_of(runs), "ledgers", _name(target), "data_curve")
        for queries in sorted(config.get("data_curve", [])):
            result.evaluated += p.copy_runs(runs, target, npdd, pdd_sl, copy_model, None, True, queries,
                                            f"--max_queries={queries}", f"--ledger={ledger}")
    for run in result.evaluated:
        p.evaluate(run, target)
    if "robustness" in experiments:
        _plan_robustness(p, config, npdd, result)
    if "coverage" in experiments:
        _plan_coverage(p, config, npdd, target, runs, result)
    if "defenses" in experiments:
        from copycat_tf.defenses_plan import plan_defenses

        plan_defenses(p, config, npdd, target, runs, result)
    if config.get("relevance"):
        relevance = join(runs, "relevance")
        copycats = [r for r in result.evaluated if RunDir(r).run_name.kind == "CC"]
        p.add("relevance", [f"--target={target}", *(f"--copycat={r}" for r in copycats), f"--images={p.tdd}",
                            *_given(config["relevance"], "count"), f"--output={relevance}"],
              join(relevance, "relevance.json"))
    result.report = join(p.out, "report")
    report_extra = []
    if result.defenses:
        from copycat_tf.defenses_plan import plan_file

        report_extra.append(f"--defenses={plan_file(p.out)}")
    p.add("report", [f"--runs={runs}", f"--output={result.report}", *report_extra], join(result.report, "index.html"))
    result.calls = unique(p.calls)
    return result


def _plan_replicate(p: _Planner, config: dict, npdd: str, seed: int, result: Plan) -> None:
    """Another seed of the NPDD copycats (paper recipe and every named recipe), against a target of that seed."""
    runs = join(p.out, "seeds", f"seed{seed}", "runs")
    target_model, copy_model = config["target"], config["copycat"]
    arch = ARCH.get(target_model["model"], target_model["model"])
    target = p.train(_run(runs, "BL", arch, "ODD", "OL"), target_model, join(p.problem, "odd"), f"--val={p.tdd}",
                     seed=seed)
    copies = p.copy_runs(runs, target, npdd, None, copy_model, seed=seed, fine_tune=False)
    copies += [p.recipe_run(runs, target, npdd, copy_model, name, recipe, seed=seed)
               for name, recipe in config.get("recipes", {}).items()]
    for run in (target, *copies):
        p.evaluate(run, target)
    result.replicates.append((seed, target, copies))


def _plan_robustness(p: _Planner, config: dict, npdd: str, result: Plan) -> None:
    """Targets trained with different seeds, each copied the same way: how stable is the copy performance?"""
    for seed in config.get("robustness_seeds", [0, 1, 2]):
        runs = join(p.out, "robustness", f"seed{seed}", "runs")
        arch = ARCH.get(config["target"]["model"], config["target"]["model"])
        target = p.train(_run(runs, "BL", arch, "ODD", "OL"), config["target"], join(p.problem, "odd"), seed=seed)
        copy_run = p.copy_runs(runs, target, npdd, None, config["copycat"], seed=seed, fine_tune=False)[0]
        p.evaluate(target, target)
        p.evaluate(copy_run, target)
        result.robustness.append((seed, target, copy_run))


def _plan_coverage(p: _Planner, config: dict, npdd: str, target: str, runs: str, result: Plan) -> None:
    """Each strategy at each budget: steal, then balance to the budget in all and train (``train``: balance),
    and/or train on every stolen label re-drawn balanced each epoch (``resample``: runs named STRATEGY+resample).
    ``train`` is one list for every strategy, or a mapping from each strategy to its own list.
    A strategy is ``random`` or ``adaptive``, with ``+transforms`` (the pool transforms) and, for adaptive,
    ``+variants`` (``--adaptive_variants``: the ``variants`` share of each round, 0.5 unless given) and
    ``+mixture`` (``--adaptive_mixture``: the seed set drawn per pool family by the oracle's answers).
    With ``ensemble``: N > 1, each such copycat is N trainings on the same labels (seeds s, s+10, ...; runs
    named LABEL+mI) averaged by copycat-ensemble (run LABEL+ensembleN, the one evaluated)."""
    options = config.get("coverage", {})
    strategies = options.get("strategies", ["random", "adaptive"])
    unknown = set(strategies) - set(STRATEGIES)
    if unknown:
        raise CopycatError(f"coverage: unknown strategies {sorted(unknown)}; known: {', '.join(STRATEGIES)}")
    trainings_of = _trainings_of(strategies, options.get("train", ["balance"]))
    members = options.get("ensemble", 1)
    if isinstance(members, bool) or not isinstance(members, int) or not 1 <= members <= 10:
        raise CopycatError(f"coverage: ensemble={members!r}: give the number of copycats to average, 1 (none) to 10")
    model = config["copycat"]
    arch = ARCH.get(model["model"], model["model"])
    stolen_root = join(p.lake, "stolen", _name(target))
    pool, cache = join(p.lake, "npdd-pool"), join(p.lake, "adaptive-cache")
    for budget in sorted(options.get("budgets", [2000, 5000, 10000])):
        for strategy in strategies:
            how, *levers = strategy.split("+")
            extra = [f"--max_queries={budget}", f"--strategy={how}", f"--adaptive_cache={cache}",
                     *options.get("steal_options", [])]
            if "transforms" in levers:
                extra += [f"--pool_transforms={options.get('pool_transforms', 'grayscale+contrast')}", f"--pool={pool}"]
            if "variants" in levers:  # variant queries of the labeled images of rare classes, in each round
                extra.append(f"--adaptive_variants={options.get('variants', VARIANTS_SHARE)}")
            if "mixture" in levers:  # the seed set per pool family, weighted by what the oracle's probe answers reveal
                extra.append("--adaptive_mixture=true")
            if how == "random":  # one ledger per strategy: a budget is a prefix of the next, the curve pays its largest
                extra.append(f"--ledger={join(p.lake, 'ledgers', _name(target), strategy)}")
            stolen = p.steal(npdd, target, join(stolen_root, f"NPDD-SL.{strategy}@{budget}"), *extra)
            for how_trained in trainings_of[strategy]:  # the same labels balanced once, or re-drawn each epoch
                if how_trained == "balance":
                    label, data, trained = strategy, p.balance(stolen, total=budget), model
                else:  # resample or sqrt: every stolen label, a fresh draw each epoch (copycat-train --class_balance)
                    label, data = f"{strategy}+{how_trained}", stolen
                    trained = {**model, "train_options": [*model.get("train_options", []),
                                                          f"--class_balance={how_trained}"]}
                if members > 1:  # copycat-ensemble of copycats trained on the same labels with seeds s, s+10, ...
                    trained_runs = [p.train(_run(runs, "CC", arch, "NPDD", "SL", recipe=f"{label}+m{m}", budget=budget),
                                            trained, data, seed=p.seed + 10 * m) for m in range(members)]
                    label = f"{label}+ensemble{members}"
                    run = p.ensemble(trained_runs, _run(runs, "CC", arch, "NPDD", "SL", recipe=label, budget=budget))
                else:
                    run = p.train(_run(runs, "CC", arch, "NPDD", "SL", recipe=label, budget=budget), trained, data)
                p.evaluate(run, target)
                result.coverage.append({"strategy": label, "budget": budget, "stolen": stolen, "run": run})


TRAININGS = ("balance", "resample", "sqrt")


def _trainings_of(strategies: list[str], train) -> dict[str, list[str]]:
    """``coverage.train``: one list of trainings for every strategy, or a mapping from each strategy to its own
    (an ablation's rows: the paper's strategy balanced once, the later levers trained on every label)."""
    if isinstance(train, dict):
        if set(train) != set(strategies):
            raise CopycatError(f"coverage: train names strategies {sorted(train)} but the strategies are "
                               f"{sorted(strategies)}; give every strategy its trainings, or one list for all")
        of = {strategy: train[strategy] for strategy in strategies}
    else:
        of = {strategy: train for strategy in strategies}
    for strategy, trainings in of.items():
        if not isinstance(trainings, list) or not trainings or set(trainings) - set(TRAININGS):
            raise CopycatError(f"coverage: train={trainings}: give balance (copycat-balance --total=BUDGET), "
                               "resample (copycat-train --class_balance=resample on every stolen label) and/or sqrt "
                               "(--class_balance=sqrt: the same, classes weighted by the root of their label counts)"
                               + (f" for {strategy}" if isinstance(train, dict) else ""))
    return of


def _read_json(path: str) -> dict:
    from tfrecords_schema import fileio

    return json.loads(fileio.read_text(path))


def gather(result: Plan) -> dict:
    """The experiment's numbers, read from the run folders once the plan has run."""
    def scores(run):
        return _read_json(RunDir(run).evaluation)

    out = {"runs": {_name(run): scores(run)["macro_f1"] for run in result.evaluated}, "robustness": None}
    if result.robustness:
        performances = []
        for seed, target, copy_run in result.robustness:
            target_f1, copy_f1 = scores(target)["macro_f1"], scores(copy_run)["macro_f1"]
            performances.append({"seed": seed, "target_macro_f1": target_f1, "copycat_macro_f1": copy_f1,
                                 "copy_performance": copy_f1 / target_f1 if target_f1 else None})
        values = [p["copy_performance"] for p in performances if p["copy_performance"] is not None]
        out["robustness"] = {"per_seed": performances,
                             "copy_performance_mean": statistics.mean(values) if values else None,
                             "copy_performance_std": statistics.stdev(values) if len(values) > 1 else 0.0}
    if result.coverage:
        points = []
        for point in result.coverage:
            evaluation = scores(point["run"])
            coverage = StolenExtra.from_dict(_read_json(lake_manifest(point["stolen"]))["extra"]).coverage
            points.append({"strategy": point["strategy"], "budget": point["budget"],
                           "classes_seen": coverage["classes_seen"], "classes_never_seen": coverage["classes_never_seen"],
                           "largest_class_share": coverage["largest_class_share"], "macro_f1": evaluation["macro_f1"],
                           "copy_performance": evaluation.get("copy_performance"),
                           "copy_performance_95": evaluation.get("intervals_95", {}).get("copy_performance"),
                           "agreement": (evaluation.get("agreement") or {}).get("overall")})
        out["coverage"] = points
    if result.defenses:
        from copycat_tf.defenses_plan import gather_defenses

        out["defenses"] = gather_defenses(result.target, result.defenses, _read_json)
    if len(result.replicates) > 1:
        out["seeds"] = seed_statistics(result, scores)
    out["report"] = join(result.report, "index.html")
    return out


def _mean_std(values: list[float]) -> dict:
    return {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": values}


def seed_statistics(result: Plan, scores) -> dict:
    """Each NPDD copycat's copy performance and agreement over the seeds: mean ± std (sample std), per seed."""
    per_name: dict[str, dict[str, list]] = {}
    for seed, target, copies in result.replicates:
        target_f1 = scores(target)["macro_f1"]
        for run in copies:
            evaluation = scores(run)
            row = per_name.setdefault(_name(run), {"seeds": [], "copy_performance": [], "agreement": [],
                                                   "copy_performance_95": []})
            row["seeds"].append(seed)
            row["copy_performance"].append(evaluation["macro_f1"] / target_f1 if target_f1 else 0.0)
            row["agreement"].append((evaluation.get("agreement") or {}).get("overall"))
            row["copy_performance_95"].append(evaluation.get("intervals_95", {}).get("copy_performance"))
    return {name: {"seeds": row["seeds"], "copy_performance": _mean_std(row["copy_performance"]),
                   "agreement": _mean_std([a for a in row["agreement"] if a is not None]),
                   "copy_performance_95_per_seed": row["copy_performance_95"]}
            for name, row in per_name.items()}


def run_experiment(config: dict, output: str, prefix: str = "experiment", jobs: int = 1) -> dict:
    """Execute the plan of ``config`` under ``output`` (resuming finished steps; up to ``jobs`` steps at once,
    each computing what it computes alone) and write experiment.json."""
    from copycat_tf.stage_output import claim_output
    from tfrecords_schema import fileio

    import os

    from copycat_tf.defenses_plan import prepare_keys

    result = plan(config, output)
    claim_output(result.out, "experiment", clear=False)
    prepare_keys(result, os.environ)  # the defenses experiment's API keys, read by its clients from the environment
    execute(result.calls, prefix=prefix, jobs=jobs)
    results = gather(result)
    fileio.write_text_atomically(join(result.out, "experiment.json"), json.dumps({"config": config, **results}, indent=2))
    return results


__all__ = ["EXPERIMENTS", "STRATEGIES", "Plan", "gather", "load_config", "plan", "run_experiment"]
