"""build_npdd on a local two-worker Dask cluster vs the DirectRunner (issue #16), in one run.

    .venv/bin/python benchmarks/build_npdd_on_dask.py --crops=4000 --repeats=3

Each repeat builds the same NPDD of bundled photo crops three ways: the DirectRunner on every core (the
default), the DirectRunner in one process (``--workers=1``), and ``--runner=DaskRunner`` against a
``distributed.LocalCluster`` of two single-threaded worker processes (started once, outside the timing,
as a user's cluster would already be running). It checks that the three folders hold the same shards and
prints the seconds and the ratios; results are appended to ``benchmarks/results/build_npdd_on_dask.jsonl``.
"""

import argparse
import dataclasses
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def _shard_digest(folder: str) -> str:
    digest = hashlib.sha256()
    for name in sorted(os.listdir(folder)):
        if name.endswith(".tfrecord"):
            digest.update(open(os.path.join(folder, name), "rb").read())
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crops", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dask_workers", type=int, default=2)
    parser.add_argument("--output", default=os.path.join(HERE, "results", "build_npdd_on_dask.jsonl"))
    args = parser.parse_args()

    import distributed

    from beam_pipelines import build_npdd

    cluster = distributed.LocalCluster(n_workers=args.dask_workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    ways = {
        "direct_every_core": ("DirectRunner", [], {}),
        "direct_one_process": ("DirectRunner", [], {"workers": 1}),
        f"dask_{args.dask_workers}_workers": ("DaskRunner", [f"--dask_client_address={cluster.scheduler_address}"], {}),
    }
    seconds = {name: [] for name in ways}
    try:
        for repeat in range(args.repeats):
            digests = {}
            for name, (runner, pipeline_args, options) in ways.items():
                with tempfile.TemporaryDirectory() as root:
                    config = build_npdd.BuildNpddConfig(sources=["bundled"], bundled_crops=args.crops,
                                                        output=os.path.join(root, "npdd"), **options)
                    started = time.perf_counter()
                    manifest = build_npdd.run(config, runner=runner, pipeline_args=pipeline_args)
                    seconds[name].append(time.perf_counter() - started)
                    digests[name] = _shard_digest(config.output)
                print(f"repeat {repeat}: {name}: {seconds[name][-1]:.1f} s, {manifest.counts['kept']} kept", flush=True)
            if len(set(digests.values())) != 1:
                raise SystemExit(f"the runners wrote different shards: {digests}")
    finally:
        cluster.close()
    base = seconds["direct_every_core"]
    row = {"crops": args.crops, "repeats": args.repeats, "cores": os.cpu_count(),
           "seconds": {name: [round(s, 1) for s in values] for name, values in seconds.items()},
           "ratio_to_direct_every_core": {name: round(statistics.mean(v) / statistics.mean(base), 2)
                                          for name, v in seconds.items()},
           "same_shards": True, "date": time.strftime("%Y-%m-%d")}
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "a") as handle:
        handle.write(json.dumps(row) + "\n")
    for name, values in seconds.items():
        mean = statistics.mean(values)
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"{name}: {mean:.1f} ± {spread:.1f} s ({args.crops / mean:.0f} images/s), "
              f"{row['ratio_to_direct_every_core'][name]:.2f}x the DirectRunner's time")


if __name__ == "__main__":
    main()
