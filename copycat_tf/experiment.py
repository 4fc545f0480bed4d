"""Declarative experiments of the paper on any registered problem, composed from the stage binaries.

A config (JSON, see ``configs/``) names the problem, the NPDD sources, the models and the experiments:

  same_architecture   Table 3: target, PDD baseline, CC-*-NPDD-SL, CC-*-PDD-SL, CC-*-NPDD+PDD-SL
  cross_architecture  Table 4: AlexNet baseline and AlexNet copycat of the VGG target
  data_curve          Fig. 5: copycats from the first N stolen labels (nested subsets: the same
                      seeded-hash order), with and without PDD fine-tuning; runs named NAME@N
  robustness          three targets with different seeds, each copied; mean ± std of copy performance
  coverage            beyond the paper: stealing strategies (random, adaptive, each with or without pool
                      transforms) at equal budgets; per point the classes covered, copy performance and
                      agreement; runs named CC-VGG-NPDD-SL.STRATEGY@N (see copycat_tf.adaptive)

``--small`` applies the config's ``small`` overrides (fewer crops, epochs and queries) for a quick
local run, like big_vision's runlocal. Every step is skipped when its output is complete, so an
interrupted experiment resumes; it ends with copycat-report over the runs.
"""


import json
import os
import statistics

from copycat_tf.errors import CopycatError
from copycat_tf.stages import run_stage

EXPERIMENTS = ("same_architecture", "cross_architecture", "data_curve", "robustness", "coverage")
STRATEGIES = ("random", "adaptive", "random+transforms", "adaptive+transforms")
ARCH = {"vgg16": "VGG", "vgg16_bn": "VGG", "alexnet": "Alex", "alexnet_bn": "Alex"}


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


class _Experiment:
    def __init__(self, config: dict, output: str):
        self.c = config
        self.out = os.path.abspath(output)
        self.lake = os.path.join(self.out, "lake")
        self.problem = os.path.join(self.lake, "problems", config["problem"].replace(":", "_").replace("/", "_"))
        self.tdd = os.path.join(self.problem, "tdd")

    def prepare(self):
        args = [f"--problem={self.c['problem']}", f"--output={self.problem}", f"--data_dir={self.c.get('data_dir', 'data')}"]
        if self.c.get("tfds_data_dir"):
            args.append(f"--tfds_data_dir={self.c['tfds_data_dir']}")
        run_stage("prepare-problem", args, os.path.join(self.tdd, "manifest.json"), "experiment")
        npdd = os.path.join(self.lake, "npdd")
        args = [f"--source={s}" for s in self.c.get("sources", ["bundled"])]
        args += [f"--bundled_crops={self.c.get('bundled_crops', 2000)}", f"--max_side={self.c.get('max_side', 256)}",
                 f"--output={npdd}"]
        if self.c.get("tfds_data_dir"):
            args.append(f"--tfds_data_dir={self.c['tfds_data_dir']}")
        run_stage("build-npdd", args + self.c.get("beam_options", []), os.path.join(npdd, "manifest.json"), "experiment")
        return npdd

    def train(self, run: str, model: dict, data: str, *extra: str, seed: int = 0, epochs: int | None = None):
        args = [f"--model={model['model']}", f"--width={model.get('width', 1.0)}", f"--input_size={model.get('input_size', 32)}",
                f"--epochs={epochs or model.get('epochs', 5)}", f"--lr={model.get('lr', 0.01)}",
                f"--batch_size={model.get('batch_size', 32)}", f"--seed={seed}", f"--train={data}", f"--output={run}", *extra]
        run_stage("train", args + model.get("train_options", []), os.path.join(run, "metrics.json"), "experiment")
        return run

    def steal(self, images: str, target_run: str, output: str, *extra: str):
        args = [f"--images={images}", f"--oracle={os.path.join(target_run, 'export')}", "--batch_size=64", f"--output={output}",
                f"--price_per_1000={self.c.get('price_per_1000', 1.0)}", *extra]
        run_stage("steal-labels", args + self.c.get("beam_options", []), os.path.join(output, "manifest.json"), "experiment")
        return output

    def balance(self, stolen: str, seed: int = 0, per_class: int | None = None):
        per_class = per_class or self.c.get("per_class", 1000)
        output = f"{stolen}-balanced-{per_class}"
        run_stage("balance", [f"--input={stolen}", f"--per_class={per_class}", "--allow_missing_classes",
                              f"--seed={seed}", f"--output={output}", *self.c.get("beam_options", [])],
                  os.path.join(output, "manifest.json"), "experiment")
        return output

    def evaluate(self, run: str, target_run: str):
        output = os.path.join(run, "evaluation.json")
        run_stage("evaluate", [f"--model={os.path.join(run, 'export')}", f"--reference={os.path.join(target_run, 'export')}",
                               f"--test={self.tdd}", f"--bootstrap={self.c.get('bootstrap', 500)}", f"--output={output}"],
                  output, "experiment")
        with open(output) as handle:
            return json.load(handle)

    def copy_runs(self, runs: str, target_run: str, npdd: str, pdd_sl: str, model: dict, seed: int = 0,
                  fine_tune: bool = True, suffix: str = "", *steal_extra: str) -> list[str]:
        """Steal NPDD labels from the target, balance, train the copycat (and its PDD fine-tuned version)."""
        arch = ARCH.get(model["model"], model["model"])
        target_name = os.path.basename(target_run)
        stolen_root = os.path.join(os.path.dirname(runs), "lake", "stolen", target_name)  # DESIGN: LAKE/stolen/ORACLE/
        stolen = self.steal(npdd, target_run, os.path.join(stolen_root, f"NPDD-SL{suffix}"), *steal_extra)
        made = [self.train(os.path.join(runs, f"CC-{arch}-NPDD-SL{suffix}"), model, self.balance(stolen, seed), seed=seed)]
        if fine_tune:
            made.append(self.train(os.path.join(runs, f"CC-{arch}-NPDD+PDD-SL{suffix}"), model, pdd_sl,
                                   f"--init={made[0]}", seed=seed, epochs=max(1, model.get("epochs", 5) // 2)))
        return made


def run_experiment(config: dict, output: str) -> dict:
    e = _Experiment(config, output)
    npdd = e.prepare()
    runs = os.path.join(e.out, "runs")
    target_model, copy_model = config["target"], config["copycat"]
    arch = ARCH.get(target_model["model"], target_model["model"])
    target = e.train(os.path.join(runs, f"BL-{arch}-ODD-OL"), target_model, os.path.join(e.problem, "odd"),
                     f"--val={e.tdd}")
    pdd = os.path.join(e.problem, "pdd")
    pdd_sl = e.steal(pdd, target, os.path.join(e.lake, "stolen", os.path.basename(target), "PDD-SL"))
    evaluated = [target]
    experiments = config["experiments"]
    if "same_architecture" in experiments:
        copy_arch = ARCH.get(copy_model["model"], copy_model["model"])
        evaluated.append(e.train(os.path.join(runs, f"BL-{copy_arch}-PDD-OL"), copy_model, pdd))
        evaluated += e.copy_runs(runs, target, npdd, pdd_sl, copy_model)
        evaluated.append(e.train(os.path.join(runs, f"CC-{copy_arch}-PDD-SL"), copy_model, pdd_sl))
    if "cross_architecture" in experiments:
        alex = config.get("alexnet", {**copy_model, "model": "alexnet_bn"})
        evaluated.append(e.train(os.path.join(runs, "BL-Alex-PDD-OL"), alex, pdd))
        evaluated += e.copy_runs(runs, target, npdd, pdd_sl, alex, fine_tune=False)
    if "data_curve" in experiments:
        for queries in config.get("data_curve", []):
            evaluated += e.copy_runs(runs, target, npdd, pdd_sl, copy_model, 0, True, f"@{queries}",
                                     f"--max_queries={queries}")
    results = {"runs": {}, "robustness": None}
    for run in evaluated:
        results["runs"][os.path.basename(run)] = e.evaluate(run, target)["macro_f1"]
    if "robustness" in experiments:
        results["robustness"] = _robustness(e, config, npdd)
    if "coverage" in experiments:
        results["coverage"] = _coverage(e, config, npdd, target, runs)
    report = os.path.join(e.out, "report")
    run_stage("report", [f"--runs={runs}", f"--output={report}"], os.path.join(report, "index.html"), "experiment")
    results["report"] = os.path.join(report, "index.html")
    with open(os.path.join(e.out, "experiment.json"), "w") as handle:
        json.dump({"config": config, **results}, handle, indent=2)
    return results


def _robustness(e: _Experiment, config: dict, npdd: str) -> dict:
    """Targets trained with different seeds, each copied the same way: how stable is the copy performance?"""
    performances = []
    for seed in config.get("robustness_seeds", [0, 1, 2]):
        runs = os.path.join(e.out, "robustness", f"seed{seed}", "runs")
        arch = ARCH.get(config["target"]["model"], config["target"]["model"])
        target = e.train(os.path.join(runs, f"BL-{arch}-ODD-OL"), config["target"], os.path.join(e.problem, "odd"), seed=seed)
        copy_run = e.copy_runs(runs, target, npdd, None, config["copycat"], seed=seed, fine_tune=False)[0]
        target_f1 = e.evaluate(target, target)["macro_f1"]
        copy_f1 = e.evaluate(copy_run, target)["macro_f1"]
        performances.append({"seed": seed, "target_macro_f1": target_f1, "copycat_macro_f1": copy_f1,
                             "copy_performance": copy_f1 / target_f1 if target_f1 else None})
    values = [p["copy_performance"] for p in performances if p["copy_performance"] is not None]
    return {"per_seed": performances, "copy_performance_mean": statistics.mean(values) if values else None,
            "copy_performance_std": statistics.stdev(values) if len(values) > 1 else 0.0}


def _coverage(e: _Experiment, config: dict, npdd: str, target: str, runs: str) -> list[dict]:
    """Each strategy at each budget: steal, balance to budget / classes per class, train, evaluate."""
    options = config.get("coverage", {})
    strategies = options.get("strategies", ["random", "adaptive"])
    unknown = set(strategies) - set(STRATEGIES)
    if unknown:
        raise CopycatError(f"coverage: unknown strategies {sorted(unknown)}; known: {', '.join(STRATEGIES)}")
    model = config["copycat"]
    arch = ARCH.get(model["model"], model["model"])
    stolen_root = os.path.join(e.lake, "stolen", os.path.basename(target))
    pool = os.path.join(e.lake, "npdd-pool")
    cache = os.path.join(e.lake, "adaptive-cache")
    with open(os.path.join(e.problem, "tdd", "manifest.json")) as handle:
        num_classes = len(json.load(handle)["extra"]["class_names"])
    points = []
    for budget in options.get("budgets", [2000, 5000, 10000]):
        for strategy in strategies:
            how, _, transforms = strategy.partition("+")
            extra = [f"--max_queries={budget}", f"--strategy={how}", f"--num_classes={num_classes}",
                     f"--adaptive_cache={cache}", *options.get("steal_options", [])]
            if transforms:
                extra += [f"--pool_transforms={options.get('pool_transforms', 'grayscale+contrast')}", f"--pool={pool}"]
            stolen = e.steal(npdd, target, os.path.join(stolen_root, f"NPDD-SL.{strategy}@{budget}"), *extra)
            run = e.train(os.path.join(runs, f"CC-{arch}-NPDD-SL.{strategy}@{budget}"), model,
                          e.balance(stolen, per_class=max(1, budget // num_classes)))
            scores = e.evaluate(run, target)
            with open(os.path.join(stolen, "manifest.json")) as handle:
                coverage = json.load(handle)["extra"]["coverage"]
            points.append({"strategy": strategy, "budget": budget, "classes_seen": coverage["classes_seen"],
                           "classes_never_seen": coverage["classes_never_seen"],
                           "largest_class_share": coverage["largest_class_share"], "macro_f1": scores["macro_f1"],
                           "copy_performance": scores.get("copy_performance"),
                           "agreement": (scores.get("agreement") or {}).get("overall")})
    return points


__all__ = ["EXPERIMENTS", "STRATEGIES", "load_config", "run_experiment"]
