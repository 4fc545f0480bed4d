"""copycat-serve under load on loopback: requests/s and p99 latency at 1, 8 and 32 concurrent clients (issue #17).

The served model is a demo-sized copycat (VGG16-BN, width 0.25, 32 px, random weights) exported with
copycat's export contract; the server runs as the `copycat-serve` binary in its own process. Each
client (asyncio, aiohttp) sends one 32×32 PNG per request, back to back, for ``--seconds``; every
request is counted and must be answered 200, and the server's query log must hold one line per
answered image (the script stops otherwise). Repeated ``--repeats`` times; mean ± std.

    .venv/bin/python benchmarks/serve_load.py --clients=1,8,32 --seconds=10 --repeats=3
    .venv/bin/python benchmarks/serve_load.py --defended="--prada_delta=0.9 --misinformation=0.5"  # + the cost
"""

import argparse
import asyncio
import base64
import io
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _export(path: str) -> str:
    from copycat_tf.export import export_classifier
    from copycat_tf.models import build_model

    export_classifier(build_model("vgg16_bn", 10, 32, width=0.25), path)
    return path


def _images(count: int) -> list[str]:
    import PIL.Image

    rng = np.random.default_rng(0)
    out = []
    for _ in range(count):
        buffer = io.BytesIO()
        PIL.Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buffer, "PNG")
        out.append(base64.b64encode(buffer.getvalue()).decode())
    return out


async def _load(url: str, clients: int, seconds: float, images: list[str]) -> dict:
    import aiohttp

    latencies, failures = [], []
    deadline = time.monotonic() + seconds

    async def client(number: int, session) -> None:
        index = number
        while time.monotonic() < deadline:
            body = {"instances": [{"b64": images[index % len(images)]}]}
            started = time.monotonic()
            async with session.post(url, json=body) as response:
                answer = await response.json()
                if response.status != 200 or len(answer.get("predictions", [])) != 1:
                    failures.append(response.status)
            latencies.append(time.monotonic() - started)
            index += clients

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.monotonic()
        await asyncio.gather(*(client(n, session) for n in range(clients)))
        elapsed = time.monotonic() - started
    return {"requests": len(latencies), "failures": len(failures), "rps": len(latencies) / elapsed,
            "p50_ms": 1000 * float(np.percentile(latencies, 50)), "p99_ms": 1000 * float(np.percentile(latencies, 99))}


def _sweep(args, model: str, images: list[str], scratch: str, options: list[str]) -> dict:
    """One server with ``options``; every client count ``--repeats`` times; the query log checked."""
    rows = {}
    log = os.path.join(scratch, f"queries-{len(os.listdir(scratch))}.jsonl")
    server = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "copycat-serve"), f"--model={model}",
                               "--port=0", f"--query_log={log}", f"--max_batch={args.max_batch}",
                               f"--max_wait_ms={args.max_wait_ms}", *options],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        line = server.stdout.readline()
        if " at " not in line:
            raise SystemExit(f"copycat-serve did not start: {line!r}")
        url = line.split(" at ", 1)[1].split(" ", 1)[0]
        warmup = asyncio.run(_load(url, 4, 2.0, images))["requests"]  # the first calls trace the graph
        for repeat in range(args.repeats):
            for clients in [int(c) for c in args.clients.split(",")]:
                result = asyncio.run(_load(url, clients, args.seconds, images))
                if result["failures"]:
                    raise SystemExit(f"{result['failures']} requests failed at {clients} clients")
                rows.setdefault(clients, []).append(result)
                print(json.dumps({"options": options, "clients": clients, "repeat": repeat, **result}), flush=True)
        answered = sum(r["requests"] for results in rows.values() for r in results)
    finally:
        server.terminate()
        server.wait(30)
    logged = sum(1 for _ in open(log))
    print(f"query log: {logged} lines for {answered} measured + {warmup} warm-up requests", flush=True)
    if logged != answered + warmup:
        raise SystemExit("the query log does not account for every answer")
    return rows


def _table(rows: dict, baseline: dict | None = None) -> None:
    extra = " requests/s vs bare |" if baseline else ""
    print("\n| clients | requests/s | p50 latency ms | p99 latency ms | requests per run |" + extra)
    print("| --- | --- | --- | --- | --- |" + (" --- |" if baseline else ""))
    for clients, results in rows.items():
        column = {k: [r[k] for r in results] for k in results[0]}
        ratio = ""
        if baseline:
            ratio = f" {np.mean(column['rps']) / np.mean([r['rps'] for r in baseline[clients]]):.2f} |"
        print(f"| {clients} | {np.mean(column['rps']):.0f} ± {np.std(column['rps']):.0f} | "
              f"{np.mean(column['p50_ms']):.1f} ± {np.std(column['p50_ms']):.1f} | "
              f"{np.mean(column['p99_ms']):.1f} ± {np.std(column['p99_ms']):.1f} | {np.mean(column['requests']):.0f} |"
              + ratio)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max_batch", type=int, default=64)
    parser.add_argument("--max_wait_ms", type=float, default=5.0)
    parser.add_argument("--defended", default="",
                        help="copycat-serve options of a second sweep in the same run (e.g. '--prada_delta=0.9 "
                             "--misinformation=0.5'), reported beside the bare one as a ratio")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        model = _export(os.path.join(scratch, "export"))
        images = _images(256)
        bare = _sweep(args, model, images, scratch, [])
        defended = _sweep(args, model, images, scratch, args.defended.split()) if args.defended else None
    _table(bare)
    if defended:
        print(f"\nwith {args.defended}:")
        _table(defended, bare)


if __name__ == "__main__":
    main()
