"""The whole attack on the embedded default, offline: the config ``configs/demo.json`` run as a plan.

Problem ``digits`` (scikit-learn's handwritten digits); NPDD from the bundled photos. The plan
(``copycat_tf.experiment.plan``, experiment ``same_architecture`` plus relevance maps) prepares the
problem; trains the target (BL-VGG-ODD-OL) and the baseline (BL-VGG-PDD-OL); builds the NPDD; steals
labels of the NPDD and of the PDD from the target's *exported SavedModel* (the black box); balances the
NPDD labels; trains CC-VGG-NPDD-SL and CC-VGG-PDD-SL and fine-tunes the first on PDD-SL
(CC-VGG-NPDD+PDD-SL); evaluates every run against the target; draws relevance maps; writes the report.
The demo adds only ``summary.json`` and the printed Table 3 row. Each step runs its binary in a process
of its own and is skipped when its output is complete, so a rerun reuses finished stages.
"""

import dataclasses
import json
import logging
import os

from copycat_tf.config_checks import Rule, check_rules, option
from copycat_tf.errors import CopycatError
from copycat_tf.experiment import plan, run_experiment
from copycat_tf.run_dir import RunDir, RunName, lake_manifest
from tfrecords_schema.extras import StolenExtra

log = logging.getLogger("copycat.demo")
TARGET = str(RunName("BL", "VGG", "ODD", "OL"))
BASELINE = str(RunName("BL", "VGG", "PDD", "OL"))
PAPER_COPYCAT = RunName("CC", "VGG", "NPDD", "SL")  # the paper's recipe
COPYCATS = (str(PAPER_COPYCAT), str(RunName("CC", "VGG", "PDD", "SL")), str(RunName("CC", "VGG", "NPDD+PDD", "SL")))
CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "demo.json")


@dataclasses.dataclass
class DemoConfig:
    """The demo's knobs; ``bin/demo.py`` generates its flags from these fields (this module is light)."""

    output: str = option("demo_output", "Folder for the lake, the runs, the report and summary.json.")
    crops: int = option(6000, "Random crops of the bundled photos queried as the NPDD.")
    per_class: int = option(400, "Balanced NPDD-SL images per class.")
    epochs: int = option(8, "Training epochs of each run (fine-tuning takes half).")
    width: float = option(0.25, "Width multiplier of the VGG16-BN models.")
    input_size: int = option(32, "Input side in pixels of every model.")
    seed: int = option(0, "Seed of every step.")
    seeds: int = option(3, "Seeds of the NPDD copycats (seed, seed+1, ...), each against a target of its own; "
                           "their copy performance is reported as mean ± std.")
    config: str = option(CONFIG, "The recipe (default: configs/demo.json of this checkout); the flags above "
                                 "override it.")
    jobs: int = option(2, "Steps run at once where the plan allows (another seed's target while this seed's "
                          "copycat trains); every step computes the same numbers as alone.")

    RULES = (Rule("crops", "crops", 1, 10_000_000), Rule("per_class", "per_class", 1, 10_000_000),
             Rule("epochs", "epochs", 1, 10_000), Rule("width", "width", 0, 4, above=True),
             Rule("input_size", "input_size", 32, 1024), Rule("seed", "seed", 0), Rule("seeds", "seeds", 1, 100),
             Rule("jobs", "jobs", 1, 64))

    def validate(self) -> None:
        """Refuse out-of-range numbers (one line naming the flag) before any work."""
        check_rules(self, self.RULES)


def experiment_config(config: DemoConfig) -> dict:
    """The demo's recipe: configs/demo.json with the demo's flags applied."""
    try:
        with open(config.config) as handle:
            recipe = json.load(handle)
    except (OSError, ValueError) as error:
        raise CopycatError(f"cannot read the demo recipe {config.config} ({error}); run the demo from a copycat "
                           "checkout, or pass --config") from None
    models = {key: {**recipe[key], "epochs": config.epochs, "width": config.width, "input_size": config.input_size}
              for key in ("target", "copycat")}
    return {**recipe, **models, "bundled_crops": config.crops, "per_class": config.per_class, "seed": config.seed,
            "seeds": list(range(config.seed, config.seed + config.seeds))}


def run_demo(config: DemoConfig) -> dict:
    config.validate()
    recipe = experiment_config(config)
    out = os.path.abspath(config.output)
    results = run_experiment(recipe, out, prefix="demo", jobs=config.jobs)
    return _summary(out, plan(recipe, out), results, recipe["problem"])


def _summary(out: str, result, results: dict, problem: str = "digits") -> dict:
    """summary.json: seed 0's Table 3 runs, and every copycat's copy performance as mean ± std over the seeds."""
    runs = os.path.join(out, "runs")
    names = [os.path.basename(r) for r in result.evaluated]
    scores = {}
    for name in names:
        with open(RunDir(os.path.join(runs, name)).evaluation) as handle:
            scores[name] = json.load(handle)
    target_name = os.path.basename(result.target)
    baselines = [n for n in names if _is_baseline(RunName.parse(n))]
    target = scores[target_name]["macro_f1"]
    baseline = scores[baselines[0]]["macro_f1"] if baselines else None
    with open(lake_manifest(os.path.join(out, "lake", "stolen", target_name, "NPDD-SL"))) as handle:
        stolen = StolenExtra.from_dict(json.load(handle)["extra"])
    seeds = results.get("seeds", {})
    copycats = {}
    for name in (n for n in names if RunName.parse(n).kind == "CC"):
        over_seeds = seeds.get(name)
        first = scores[name]["macro_f1"] / target
        copycats[name] = {
            "copy_performance": over_seeds["copy_performance"]["mean"] if over_seeds else first,
            "copy_performance_std": over_seeds["copy_performance"]["std"] if over_seeds else 0.0,
            "copy_performance_per_seed": over_seeds["copy_performance"]["values"] if over_seeds else [first],
            "seeds": over_seeds["seeds"] if over_seeds else [result.replicates[0][0]],
            "agreement": over_seeds["agreement"]["mean"] if over_seeds else scores[name]["agreement"]["overall"],
            "agreement_std": over_seeds["agreement"]["std"] if over_seeds else 0.0,
            "over_baseline": scores[name]["macro_f1"] / baseline if baseline else None,
            "copy_performance_95": scores[name].get("intervals_95", {}).get("copy_performance"),
        }
    summary = {
        "problem": problem,
        "seeds": [seed for seed, _, _ in result.replicates],
        "runs": {name: {"macro_f1": s["macro_f1"], "balanced_accuracy": s["balanced_accuracy"],
                        "accuracy": s["accuracy"], "macro_f1_95": s.get("intervals_95", {}).get("macro_f1")}
                 for name, s in scores.items()},
        "copycats": copycats,
        "npdd_sl_label_histogram": stolen.label_histogram,
        "report": os.path.join(result.report, "index.html"),
    }
    with open(os.path.join(out, "summary.json"), "w") as handle:
        json.dump(summary, handle, indent=2)
    return summary


def _is_baseline(name: RunName) -> bool:
    """BL-ARCH-PDD-OL: trained on the problem-domain images with their original labels."""
    return (name.kind, name.data, name.labels, name.recipe, name.budget) == ("BL", "PDD", "OL", None, None)


def _is_recipe_of(name: RunName, paper: RunName) -> bool:
    """CC-VGG-NPDD-SL.RECIPE (any budget): the paper's copycat with labels stolen another way."""
    return name.recipe is not None and dataclasses.replace(name, recipe=None, budget=None) == paper


def _cell(name: str, copy: dict) -> str:
    low, high = copy["copy_performance_95"] or (float("nan"), float("nan"))
    spread = (f" ± {100 * copy['copy_performance_std']:.1f}" if len(copy["seeds"]) > 1 else "")
    return (f"{name} {100 * copy['copy_performance']:.1f}%{spread} of target over {len(copy['seeds'])} seed(s) "
            f"(agreement {100 * copy['agreement']:.1f}%; seed {copy['seeds'][0]}'s 95% interval "
            f"[{100 * low:.1f}, {100 * high:.1f}])")


def table3_row(summary: dict) -> str:
    runs, copies = summary["runs"], summary["copycats"]
    cells = [f"target {TARGET} {runs[TARGET]['macro_f1']:.3f}", f"baseline {BASELINE} {runs[BASELINE]['macro_f1']:.3f}"]
    cells += [_cell(name, copy) for name, copy in copies.items()]
    return "Table 3, digits (copy performance = copycat macro F1 / target macro F1): " + "; ".join(cells)


def paper_vs_best(summary: dict) -> str:
    """The paper's recipe beside the project's best strategy, each as mean ± std over the seeds."""
    copies = summary["copycats"]
    best = [name for name in copies if _is_recipe_of(RunName.parse(name), PAPER_COPYCAT)]
    paper = str(PAPER_COPYCAT)
    lines = [f"paper recipe   {_cell(paper, copies[paper])}"]
    lines += [f"best strategy  {_cell(name, copies[name])}" for name in best]
    return "\n".join(lines)
