"""The whole attack on the embedded default, offline: the stage binaries composed, nothing reimplemented.

Problem ``digits`` (scikit-learn's handwritten digits); NPDD from the bundled photos. Steps:
prepare the problem; train the target (BL-VGG-ODD-OL) and the baseline (BL-VGG-PDD-OL); build the
NPDD; steal labels of the NPDD and of the PDD from the target's *exported SavedModel* (the black
box); balance the NPDD labels; train CC-VGG-NPDD-SL and CC-VGG-PDD-SL, and fine-tune the first on
PDD-SL (CC-VGG-NPDD+PDD-SL); evaluate every run against the target; draw relevance maps; write the
report and ``summary.json``. Each step runs its binary in a process of its own and is skipped when
its output is already complete, so a rerun reuses finished stages.
"""

import dataclasses
import json
import logging
import os

from copycat_tf.stages import run_stage

log = logging.getLogger("copycat.demo")
TARGET = "BL-VGG-ODD-OL"
COPYCATS = ("CC-VGG-NPDD-SL", "CC-VGG-PDD-SL", "CC-VGG-NPDD+PDD-SL")


@dataclasses.dataclass
class DemoConfig:
    output: str
    crops: int = 6000  # bundled random crops queried as the NPDD
    per_class: int = 400  # balanced NPDD-SL images per class
    epochs: int = 8
    width: float = 0.25
    input_size: int = 32
    seed: int = 0


def _stage(name: str, args: list[str], done: str) -> None:
    run_stage(name, args, done, prefix="demo")


def run_demo(config: DemoConfig) -> dict:
    out = os.path.abspath(config.output)
    lake, runs = os.path.join(out, "lake"), os.path.join(out, "runs")
    problem = os.path.join(lake, "problems", "digits")
    stolen = os.path.join(lake, "stolen", TARGET)
    npdd_sl, pdd_sl = os.path.join(stolen, "NPDD-SL"), os.path.join(stolen, "PDD-SL")
    balanced = os.path.join(stolen, f"NPDD-SL-balanced-{config.per_class}")
    train = [f"--input_size={config.input_size}", f"--width={config.width}", "--model=vgg16_bn", "--lr=0.01",
             f"--seed={config.seed}"]

    def run_dir(name):
        return os.path.join(runs, name)

    def trained(name, data, *extra, epochs=config.epochs):
        _stage("train", [*train, f"--train={data}", f"--epochs={epochs}", f"--output={run_dir(name)}", *extra],
               os.path.join(run_dir(name), "metrics.json"))

    _stage("prepare-problem", ["--problem=digits", f"--output={problem}", f"--seed={config.seed}"],
           os.path.join(problem, "tdd", "manifest.json"))
    trained(TARGET, os.path.join(problem, "odd"), f"--val={os.path.join(problem, 'tdd')}")
    trained("BL-VGG-PDD-OL", os.path.join(problem, "pdd"))
    _stage("build-npdd", ["--source=bundled", f"--bundled_crops={config.crops}", "--max_side=64",
                          f"--seed={config.seed}", f"--output={os.path.join(lake, 'npdd')}"],
           os.path.join(lake, "npdd", "manifest.json"))
    oracle = os.path.join(run_dir(TARGET), "export")
    for images, output in ((os.path.join(lake, "npdd"), npdd_sl), (os.path.join(problem, "pdd"), pdd_sl)):
        _stage("steal-labels", [f"--images={images}", f"--oracle={oracle}", "--batch_size=64", "--price_per_1000=1.0",
                                f"--output={output}"], os.path.join(output, "manifest.json"))
    _stage("balance", [f"--input={npdd_sl}", f"--per_class={config.per_class}", "--allow_missing_classes",
                       f"--seed={config.seed}", f"--output={balanced}"], os.path.join(balanced, "manifest.json"))
    trained("CC-VGG-NPDD-SL", balanced)
    trained("CC-VGG-PDD-SL", pdd_sl)
    trained("CC-VGG-NPDD+PDD-SL", pdd_sl, f"--init={run_dir('CC-VGG-NPDD-SL')}", "--augment=intensity,contrast,rotate,shear,translate",
            epochs=max(1, config.epochs // 2))
    for name in (TARGET, "BL-VGG-PDD-OL", *COPYCATS):
        _stage("evaluate", [f"--model={os.path.join(run_dir(name), 'export')}", f"--reference={oracle}",
                            f"--test={os.path.join(problem, 'tdd')}", "--bootstrap=500",
                            f"--output={os.path.join(run_dir(name), 'evaluation.json')}"],
               os.path.join(run_dir(name), "evaluation.json"))
    relevance = os.path.join(runs, "relevance")
    _stage("relevance", [f"--target={run_dir(TARGET)}", *(f"--copycat={run_dir(n)}" for n in COPYCATS),
                         f"--images={os.path.join(problem, 'tdd')}", "--count=4", f"--output={relevance}"],
           os.path.join(relevance, "relevance.json"))
    report = os.path.join(out, "report")
    _stage("report", [f"--runs={runs}", f"--output={report}"], os.path.join(report, "index.html"))
    return _summary(out, runs, report, npdd_sl)


def _summary(out: str, runs: str, report: str, npdd_sl: str) -> dict:
    scores = {}
    for name in (TARGET, "BL-VGG-PDD-OL", *COPYCATS):
        with open(os.path.join(runs, name, "evaluation.json")) as handle:
            scores[name] = json.load(handle)
    target, baseline = scores[TARGET]["macro_f1"], scores["BL-VGG-PDD-OL"]["macro_f1"]
    with open(os.path.join(npdd_sl, "manifest.json")) as handle:
        stolen = json.load(handle)["extra"]
    summary = {
        "problem": "digits",
        "runs": {name: {"macro_f1": s["macro_f1"], "balanced_accuracy": s["balanced_accuracy"],
                        "accuracy": s["accuracy"], "macro_f1_95": s["intervals_95"].get("macro_f1")}
                 for name, s in scores.items()},
        "copycats": {name: {"copy_performance": scores[name]["macro_f1"] / target,
                            "over_baseline": scores[name]["macro_f1"] / baseline,
                            "copy_performance_95": scores[name]["intervals_95"].get("copy_performance"),
                            "agreement": scores[name]["agreement"]["overall"]} for name in COPYCATS},
        "npdd_sl_label_histogram": stolen["label_histogram"],
        "report": os.path.join(report, "index.html"),
    }
    with open(os.path.join(out, "summary.json"), "w") as handle:
        json.dump(summary, handle, indent=2)
    return summary


def table3_row(summary: dict) -> str:
    runs, copies = summary["runs"], summary["copycats"]
    cells = [f"target {TARGET} {runs[TARGET]['macro_f1']:.3f}", f"baseline BL-VGG-PDD-OL {runs['BL-VGG-PDD-OL']['macro_f1']:.3f}"]
    cells += [f"{name} {runs[name]['macro_f1']:.3f} ({100 * copies[name]['copy_performance']:.1f}% of target, "
              f"{100 * copies[name]['over_baseline']:.1f}% of baseline)" for name in COPYCATS]
    return "Table 3, digits: " + "; ".join(cells)
