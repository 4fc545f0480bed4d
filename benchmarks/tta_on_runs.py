"""tta_on_runs: does averaging a copycat's answers over shifted views of each test image raise its copy performance?

Test-time augmentation costs no query and no training, so it is measured on copycats that already exist: the
10,000-query rows of the ablation outputs (``copycat-experiment --config=configs/digits_ablation.json`` or
``glyphs_ablation.json``, one output per seed). For each output it reads the TDD as training reads it (32 px),
scores the target once, then each copycat with its plain answer (``none``, which repeats the ablation's number), the
mean of 5 views (``shift1``: the image and its 1-pixel shifts) and of 9 views (``shift2``: 2-pixel and diagonal
shifts), edges mirrored. Copy performance is the copycat's macro F1 (scikit-learn's) over the target's; agreement is
the share of TDD images where copycat and target give the same class. One JSON line per copycat, then the table.

    .venv/bin/python benchmarks/tta_on_runs.py ablation/digits_s0 ablation/digits_s1 ablation/digits_s2 \
        ablation/glyphs_s0 ablation/glyphs_s1 ablation/glyphs_s2 --output=benchmarks/results/tta_on_runs.jsonl
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics

RUNS = ("CC-VGG-NPDD-SL.random+transforms+sqrt@10000", "CC-VGG-NPDD-SL.adaptive+transforms+mixture+sqrt@10000",
        "CC-VGG-NPDD-SL.adaptive+transforms+mixture+variants+sqrt@10000")
SHIFTS = {"none": [], "shift1": [(1, 0), (-1, 0), (0, 1), (0, -1)],
          "shift2": [(2, 0), (-2, 0), (0, 2), (0, -2), (1, 1), (-1, -1), (1, -1), (-1, 1)]}


def views(images, kind: str) -> list:
    """The image batch and its shifted copies (mirrored edges, same size)."""
    import tensorflow as tf

    side = images.shape[1]
    padded = tf.pad(images, [[0, 0], [2, 2], [2, 2], [0, 0]], mode="SYMMETRIC")
    return [images] + [padded[:, 2 + dy:2 + dy + side, 2 + dx:2 + dx + side, :] for dy, dx in SHIFTS[kind]]


def measure(root: str) -> list[dict]:
    import keras
    import numpy as np
    import tensorflow as tf
    from sklearn.metrics import f1_score

    from copycat_tf.training.input import lake_dataset
    from tfrecords_schema import LABELED_IMAGE, open_folder

    problem = json.load(open(os.path.join(root, "experiment.json")))["config"]["problem"]
    test = lake_dataset([open_folder(os.path.join(root, "lake", "problems", problem, "tdd"), LABELED_IMAGE)], 32, 256,
                        training=False)
    batches = [(x.numpy(), y.numpy()) for x, y in test]
    images, labels = tf.constant(np.concatenate([x for x, _ in batches])), np.concatenate([y for _, y in batches])
    target = keras.models.load_model(os.path.join(root, "runs", "BL-VGG-ODD-OL", "model.keras"))
    target_answers = target.predict(images, verbose=0).argmax(1)
    target_f1 = f1_score(labels, target_answers, average="macro")
    rows = []
    for run in RUNS:
        model = keras.models.load_model(os.path.join(root, "runs", run, "model.keras"))
        row = {"output": root, "problem": problem, "run": run, "target_macro_f1": round(target_f1, 4)}
        for kind in SHIFTS:
            answers = np.mean([model.predict(v, verbose=0) for v in views(images, kind)], axis=0).argmax(1)
            row[kind] = round(f1_score(labels, answers, average="macro") / target_f1, 4)
            row[f"{kind}_agreement"] = round(float((answers == target_answers).mean()), 4)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    groups = collections.defaultdict(list)
    for row in rows:
        groups[row["problem"], row["run"]].append(row)
    lines = ["| problem | copycat (10,000 queries) | plain | 5 views (shift1) | 9 views (shift2) | shift1 − plain per seed |",
             "| --- | --- | --- | --- | --- | --- |"]
    for (problem, run), group in groups.items():
        cells = []
        for kind in SHIFTS:
            values = [100 * r[kind] for r in group]
            spread = f" ± {statistics.stdev(values):.1f}" if len(values) > 1 else ""
            cells.append(f"{statistics.mean(values):.1f}%{spread}")
        deltas = ", ".join(f"{100 * (r['shift1'] - r['none']):+.1f}" for r in group)
        lines.append(f"| {problem} | `{run.split('.', 1)[1].split('@')[0]}` | {' | '.join(cells)} | {deltas} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outputs", nargs="+", help="ablation outputs (one per seed and problem)")
    parser.add_argument("--output", help="JSON lines file to append the rows to")
    args = parser.parse_args()
    rows = [row for root in args.outputs for row in measure(root)]
    if args.output:
        with open(args.output, "a") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in rows)
    print(table(rows))


if __name__ == "__main__":
    main()
