"""Benchmark: copycat-build-npdd vs imagededup's PHash on the same JPEG files, at several sizes.

Baseline: imagededup's PHash.encode_images + find_duplicates (brute_force_cython search, the
library's default), with one encode and one search worker per core; its search alone is timed too,
because it grows with the square of the image count. copycat: the whole build_npdd pipeline on
DirectRunner (decode, validate, content id, normalize + re-encode, pHash, exact and banded near
dedupe, sharded TFRecord writing, reports, manifest, TFDS metadata), once in one process
(--workers=1) and once on every core (the default). Both see the same files; the baseline does far
less work per image. Every size is measured in the same run, so the ratios compare like with like.

    make bench-venv
    .bench-venv/bin/python benchmarks/build_npdd_vs_imagededup.py --n=1000      # N and 4N images
    .bench-venv/bin/python benchmarks/build_npdd_vs_imagededup.py --scale       # 4k, 16k, 64k (~30 min)
    .bench-venv/bin/python benchmarks/build_npdd_vs_imagededup.py --floor --n=4000 --repeats=3

``--floor``: how fast copycat could possibly be. The per-image work alone (``stored_image``: read, decode,
content id, downscale, re-encode, pHash, encoded record), on every core in a plain process pool, with no
Beam, no dedupe and no writing, beside imagededup on the same files: an upper bound on copycat's
throughput, and so on its ratio to imagededup.

The files are ~500x375 JPEGs (quality 90) cut from the bundled photos at random scales and
positions, with 10% planted copies (byte copies and resized, re-encoded ones).
"""

import argparse
import io
import os
import random
import shutil
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402


def make_jpegs(folder: str, count: int, seed: int) -> None:
    """``count`` photo-sized JPEGs; one in ten is a copy (identical bytes or resized) of an earlier one."""
    from beam_pipelines.sources import bundled_photo_paths

    photos = [np.asarray(PIL.Image.open(p).convert("RGB")) for p in bundled_photo_paths()]
    rng = random.Random(seed)
    written: list[bytes] = []
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        if written and rng.random() < 0.1:
            original = rng.choice(written)
            if rng.random() < 0.5:
                data = original
            else:
                image = PIL.Image.open(io.BytesIO(original)).resize((rng.randint(200, 400), rng.randint(150, 300)))
                buffer = io.BytesIO()
                image.save(buffer, "JPEG", quality=rng.randint(40, 85))
                data = buffer.getvalue()
        else:
            photo = rng.choice(photos)
            height, width = photo.shape[:2]
            crop_h = rng.randint(min(height, 120), height)
            crop_w = min(width, int(crop_h * 4 / 3))
            top, left = rng.randint(0, height - crop_h), rng.randint(0, width - crop_w)
            image = PIL.Image.fromarray(photo[top:top + crop_h, left:left + crop_w]).resize((500, 375))
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=90)
            data = buffer.getvalue()
            written.append(data)
        with open(os.path.join(folder, f"img{i:06d}.jpg"), "wb") as handle:
            handle.write(data)


def time_imagededup(folder: str, bits: int, workers: int) -> tuple[float, float, int]:
    """(total seconds, seconds of the duplicate search alone, images flagged)."""
    from imagededup.methods import PHash

    start = time.perf_counter()
    hasher = PHash(verbose=False)
    encodings = hasher.encode_images(image_dir=folder, num_enc_workers=workers)
    searched = time.perf_counter()
    duplicates = hasher.find_duplicates(encoding_map=encodings, max_distance_threshold=bits, num_dist_workers=workers)
    end = time.perf_counter()
    return end - start, end - searched, sum(1 for v in duplicates.values() if v)


def time_copycat(folder: str, output: str, bits: int, workers: int) -> tuple[float, dict]:
    """Seconds of the whole build with ``workers`` local processes (0: every core), and its counts."""
    from beam_pipelines.build_npdd import BuildNpddConfig, run

    shutil.rmtree(output, ignore_errors=True)
    start = time.perf_counter()
    manifest = run(BuildNpddConfig(sources=[f"dir:{folder}"], output=output, near_dup_bits=bits, workers=workers))
    elapsed = time.perf_counter() - start
    shutil.rmtree(output, ignore_errors=True)
    return elapsed, manifest.counts


def _stored(path: str) -> bool:
    from beam_pipelines.build_npdd_config import BuildNpddConfig
    from beam_pipelines.image_decode import Rejected, stored_image

    config = BuildNpddConfig(sources=["bundled"], output="unused")
    with open(path, "rb") as handle:
        data = handle.read()
    result = stored_image("dir:bench", path, data, config.max_side, config.jpeg_quality, config.max_pixels)
    return not isinstance(result, Rejected)


def time_floor(folder: str, cores: int) -> float:
    """Seconds of the per-image work alone over every file of ``folder``, on ``cores`` forked processes."""
    import multiprocessing

    paths = sorted(os.path.join(folder, name) for name in os.listdir(folder))
    with multiprocessing.get_context("fork").Pool(cores) as pool:
        pool.map(_stored, paths[:cores * 4])  # the workers' first-use costs outside the clock
        start = time.perf_counter()
        accepted = sum(pool.map(_stored, paths, chunksize=16))
        elapsed = time.perf_counter() - start
    assert accepted == len(paths), (accepted, len(paths))
    return elapsed


def floor(count: int, repeats: int, bits: int, seed: int, cores: int) -> None:
    """imagededup beside copycat's bare per-image work on every core, ``repeats`` times on the same files."""
    work = tempfile.mkdtemp(prefix="bench_floor_")
    try:
        folder = os.path.join(work, "jpegs")
        make_jpegs(folder, count, seed)
        ratios = []
        for repeat in range(repeats):
            baseline, search, _ = time_imagededup(folder, bits, cores)
            bare = time_floor(folder, cores)
            ratios.append(baseline / bare)
            print(f"repeat {repeat}: {count} images: imagededup {count / baseline:.0f}/s (search {search:.1f} s); "
                  f"copycat's per-image work alone on {cores} cores {count / bare:.0f}/s: at most "
                  f"{baseline / bare:.2f}x imagededup", flush=True)
        mean = sum(ratios) / len(ratios)
        spread = (sum((r - mean) ** 2 for r in ratios) / (len(ratios) - 1)) ** 0.5 if len(ratios) > 1 else 0.0
        print(f"\nupper bound of copycat / imagededup at {count} images: {mean:.2f} ± {spread:.2f} over {repeats} repeats")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _row(count: int, folder: str, work: str, bits: int, cores: int) -> dict:
    baseline, search, groups = time_imagededup(folder, bits, cores)
    single, counts = time_copycat(folder, os.path.join(work, "npdd1"), bits, workers=1)
    every, every_counts = time_copycat(folder, os.path.join(work, "npddN"), bits, workers=0)
    assert every_counts == counts, (every_counts, counts)  # the same job, only faster
    print(f"{count} images: imagededup {count / baseline:.0f}/s (search {search:.1f} s), copycat 1 process "
          f"{count / single:.0f}/s, {cores} cores {count / every:.0f}/s; copycat kept {counts['kept']}, removed "
          f"{counts['exact_duplicates']}+{counts['near_duplicates']}; imagededup flagged {groups} images", flush=True)
    return {"count": count, "baseline": baseline, "search": search, "single": single, "every": every}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="the smaller size; the larger is 4N")
    parser.add_argument("--scale", action="store_true", help="4,000, 16,000 and 64,000 images instead of N and 4N")
    parser.add_argument("--bits", type=int, default=8, help="near-duplicate threshold for both tools")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--floor", action="store_true",
                        help="imagededup beside copycat's per-image work alone (no Beam): an upper bound, at --n images")
    parser.add_argument("--repeats", type=int, default=3, help="with --floor: repeats on the same files")
    args = parser.parse_args()
    import logging

    logging.disable(logging.INFO)
    # Import both tools before any clock starts; torch (imagededup) must come before TensorFlow,
    # the other order crashes the process.
    import imagededup.methods  # noqa: F401
    import beam_pipelines.build_npdd  # noqa: F401
    from beam_pipelines.local_workers import available_cores

    cores = available_cores()
    if args.floor:
        floor(args.n, args.repeats, args.bits, args.seed, cores)
        return
    sizes = (4000, 16000, 64000) if args.scale else (args.n, 4 * args.n)
    work = tempfile.mkdtemp(prefix="bench_npdd_")
    rows = []
    try:
        warm = os.path.join(work, "warm")
        make_jpegs(warm, 20, args.seed + 1)
        for workers in (1, 0):  # first-use costs (TFDS metadata, worker start) are paid outside the clock
            time_copycat(warm, os.path.join(work, "npdd_warm"), args.bits, workers)
        for count in sizes:
            folder = os.path.join(work, f"jpegs{count}")
            make_jpegs(folder, count, args.seed)
            rows.append(_row(count, folder, work, args.bits, cores))
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n| images | imagededup img/s | its search s | copycat 1 process img/s | copycat {cores} cores img/s "
          f"| cores / 1 process | copycat {cores} cores / imagededup |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        n = r["count"]
        print(f"| {n} | {n / r['baseline']:.0f} | {r['search']:.1f} | {n / r['single']:.0f} | {n / r['every']:.0f} | "
              f"{r['single'] / r['every']:.2f} | {r['baseline'] / r['every']:.2f} |")
    first, last = rows[0], rows[-1]
    factor = last["count"] / first["count"]
    print(f"\ngrowth of wall time from {first['count']} to {last['count']} images ({factor:.2f} is linear): "
          f"imagededup {last['baseline'] / first['baseline']:.2f} (its search {last['search'] / first['search']:.2f}), "
          f"copycat 1 process {last['single'] / first['single']:.2f}, {cores} cores {last['every'] / first['every']:.2f}")


if __name__ == "__main__":
    main()
