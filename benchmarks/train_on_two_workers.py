"""copycat-train on two workers on loopback against one device with the same global batch (issue #16).

For each seed: a tiny AlexNet on 320 digits (one shard: the workers split the input by data, so a
step's two half-batches hold exactly the one-device batch; and four shards: by file, other batches)
trains 3 epochs as a 2-worker cluster and on one device. Prints, per input split, the final loss
and accuracy of both (mean ± std over seeds), the largest per-chunk relative loss difference and
the wall times with their ratio (the same machine, the same run).

    .venv/bin/python benchmarks/train_on_two_workers.py --seeds=0,1,2
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.copycat_tf.training.digits import SIZE, digits_folder  # noqa: E402
from tests.copycat_tf.training.test_multi_worker import TINY, _finish, _start_cluster  # noqa: E402


def _one_device(train, output, flags):
    command = [sys.executable, "-m", "copycat_bin.train", f"--train={train}", f"--output={output}",
               "--strategy=one_device", f"--input_size={SIZE}", "--verbose=0", *flags]
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as scratch_dir:
        root = pathlib.Path(scratch_dir)
        scratch = root / "tmp"
        scratch.mkdir()
        folders = {"by data (1 shard)": digits_folder(root / "one", range(0, 320), num_shards=1),
                   "by file (4 shards)": digits_folder(root / "four", range(0, 320), num_shards=4)}
        for seed in [int(s) for s in args.seeds.split(",")]:
            flags = TINY + [f"--epochs={args.epochs}", f"--seed={seed}"]
            for split, train in folders.items():
                out = root / f"{split[:7].replace(' ', '')}-s{seed}"
                started = time.time()
                results = _finish(_start_cluster(train, [out / "two", out / "two"], scratch, flags))
                two_seconds = time.time() - started
                if any(code for code, _ in results):
                    raise SystemExit("\n".join(text[-2000:] for _, text in results))
                started = time.time()
                _one_device(train, out / "one", flags)
                one_seconds = time.time() - started
                two = json.loads((out / "two" / "metrics.json").read_text())
                one = json.loads((out / "one" / "metrics.json").read_text())
                gap = np.max(np.abs(np.subtract(two["history"]["loss"], one["history"]["loss"]))
                             / np.array(one["history"]["loss"]))
                row = dict(two_loss=two["final_loss"], one_loss=one["final_loss"], two_acc=two["final_accuracy"],
                           one_acc=one["final_accuracy"], gap=float(gap), two_s=two_seconds, one_s=one_seconds)
                rows.setdefault(split, []).append(row)
                print(json.dumps({"split": split, "seed": seed, **row}), flush=True)

    def shown(values, digits=4):
        return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"

    print("\n| input split | final loss, 2 workers | final loss, 1 device | final accuracy, 2 workers | "
          "final accuracy, 1 device | largest per-chunk loss gap | seconds 2 workers / 1 device |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for split, found in rows.items():
        column = {key: [r[key] for r in found] for key in found[0]}
        ratio = np.array(column["two_s"]) / np.array(column["one_s"])
        print(f"| {split} | {shown(column['two_loss'])} | {shown(column['one_loss'])} | {shown(column['two_acc'], 3)} | "
              f"{shown(column['one_acc'], 3)} | {100 * max(column['gap']):.3f}% | "
              f"{shown(column['two_s'], 1)} / {shown(column['one_s'], 1)} = {np.mean(ratio):.2f}× |")


if __name__ == "__main__":
    main()
