"""ablation_table: the copy-fidelity ablation over seeds, from the experiment.json of one output per seed.

Issue #14 asks for the paper's recipe, then each lever added, at 2k/5k/10k queries, as mean ± std over
seeds. ``copycat-experiment --config=configs/digits_ablation.json --seed=S --output=OUT_S`` runs one seed
(one target of its own); this reads ``OUT_S/experiment.json`` for each seed given, checks that they ran the
same config but for the seed, and prints the table (copy performance and agreement, in the config's row
order), with each seed's value and 95% bootstrap interval. ``--json`` also writes the numbers.

    .venv/bin/python benchmarks/ablation_table.py OUT_0 OUT_1 OUT_2 --json=benchmarks/results/ablation_digits.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

# The lever each row adds, by its run label (strategy, then training).
LEVERS = {
    "random": "paper: random crops, balanced once to the budget",
    "random+sqrt": "+ every stolen label, square-root class shares",
    "random+transforms+sqrt": "+ twenty pool looks (photos, line drawings, scribbles), drawn at random",
    "adaptive+transforms+mixture+sqrt": "+ looks mixed per oracle from a probe, adaptive rounds",
    "adaptive+transforms+mixture+variants+sqrt": "+ variant queries of the rare classes (the bold setting)",
}


def _read(path: str) -> dict:
    with open(path) as handle:
        return json.load(handle)


def _load(folder: str, partial: bool) -> dict:
    path = os.path.join(folder, "experiment.json")
    if os.path.exists(path):
        return _read(path)
    if not partial:
        sys.exit(f"ablation_table: {path} does not exist; run copycat-experiment --output={folder} to the end "
                 "first, or pass --partial to read the copycats evaluated so far")
    return _evaluated_so_far(folder)


def _evaluated_so_far(folder: str) -> dict:
    """An experiment still running: the coverage points whose copycat is evaluated (runs/CC-*-NPDD-SL.LABEL@N),
    the seed read from the target's metrics.json; the config is unknown until the plan ends."""
    runs = os.path.join(folder, "runs")
    target = _read(os.path.join(runs, "BL-VGG-ODD-OL", "metrics.json"))
    points = []
    for name in sorted(os.listdir(runs)):
        evaluation = os.path.join(runs, name, "evaluation.json")
        if "-NPDD-SL." not in name or "@" not in name or not os.path.exists(evaluation):
            continue
        label, budget = name.split("-NPDD-SL.", 1)[1].rsplit("@", 1)
        scores = _read(evaluation)
        points.append({"strategy": label, "budget": int(budget), "copy_performance": scores["copy_performance"],
                       "agreement": scores["agreement"]["overall"],
                       "copy_performance_95": scores["intervals_95"]["copy_performance"]})
    order = {label: index for index, label in enumerate(LEVERS)}
    points.sort(key=lambda p: (order.get(p["strategy"], len(order)), p["budget"]))
    return {"config": {"seed": target["options"]["seed"], "partial": True}, "coverage": points}


def _same_but_seed(configs: list[dict]) -> None:
    def without_seed(config):
        return {k: v for k, v in config.items() if k != "seed"}

    first = without_seed(configs[0])
    for index, config in enumerate(configs[1:], start=1):
        if without_seed(config) != first:
            sys.exit(f"ablation_table: output {index + 1} ran another config than output 1 (beyond the seed)")


def rows(experiments: list[dict]) -> list[dict]:
    """One row per (label, budget): copy performance and agreement over the seeds (sample std)."""
    order, table = [], {}
    for experiment in experiments:
        for point in experiment["coverage"]:
            key = (point["strategy"], point["budget"])
            if key not in table:
                order.append(key)
                table[key] = {"seeds": [], "copy_performance": [], "agreement": [], "copy_performance_95": []}
            row = table[key]
            row["seeds"].append(experiment["config"]["seed"])
            row["copy_performance"].append(point["copy_performance"])
            row["agreement"].append(point["agreement"])
            row["copy_performance_95"].append(point.get("copy_performance_95"))
    labels = list(dict.fromkeys(label for label, _ in order))
    out = []
    for label in labels:
        for budget in sorted(b for lab, b in order if lab == label):
            row = table[label, budget]
            out.append({"label": label, "lever": LEVERS.get(label, label), "budget": budget, **row,
                        **{f"{k}_mean": statistics.mean(row[k]) for k in ("copy_performance", "agreement")},
                        **{f"{k}_std": statistics.stdev(row[k]) if len(row[k]) > 1 else 0.0
                           for k in ("copy_performance", "agreement")}})
    return out


def _cell(row: dict, key: str) -> str:
    values = ", ".join(f"{100 * v:.1f}" for v in row[key])
    return f"{100 * row[key + '_mean']:.1f}% ± {100 * row[key + '_std']:.1f} ({values})"


def markdown(table: list[dict]) -> str:
    budgets = sorted({row["budget"] for row in table})
    by = {(row["label"], row["budget"]): row for row in table}
    labels = list(dict.fromkeys(row["label"] for row in table))
    lines = []
    for key, title in (("copy_performance", "copy performance"), ("agreement", "agreement with the target")):
        lines += [f"| lever ({title}, mean ± std over seeds) | " + " | ".join(f"{b:,} queries" for b in budgets) + " |",
                  "| --- |" + " --- |" * len(budgets)]
        for label in labels:
            cells = [_cell(by[label, b], key) if (label, b) in by else "–" for b in budgets]
            lines.append(f"| {LEVERS.get(label, label)} (`{label}`) | " + " | ".join(cells) + " |")
        lines.append("")
    intervals = []
    for row in table:
        spans = [f"[{100 * i[0]:.1f}, {100 * i[1]:.1f}]" if i else "–" for i in row["copy_performance_95"]]
        intervals.append(f"- `{row['label']}` at {row['budget']:,}: " + ", ".join(
            f"seed {s} {s_i}" for s, s_i in zip(row["seeds"], spans)))
    return "\n".join(lines + ["95% bootstrap intervals of the copy performance, per seed:", *intervals])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outputs", nargs="+", help="copycat-experiment output folders, one per seed")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--partial", action="store_true",
                        help="read outputs whose plan has not ended from their evaluated copycats (no config check)")
    args = parser.parse_args(argv)
    experiments = [_load(folder, args.partial) for folder in args.outputs]
    if not any(e["config"].get("partial") for e in experiments):
        _same_but_seed([e["config"] for e in experiments])
    table = rows(experiments)
    print(markdown(table))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"outputs": args.outputs, "config": {k: v for k, v in experiments[0]["config"].items()
                                                           if k != "seed"}, "rows": table}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
