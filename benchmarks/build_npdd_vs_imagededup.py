"""Benchmark: copycat-build-npdd vs imagededup's PHash on the same JPEG files, at N and 4N images.

Baseline: imagededup's PHash.encode_images + find_duplicates (brute_force_cython search, the
library's default), with 2 encode and 2 search workers. copycat: the whole build_npdd pipeline on
DirectRunner (decode, validate, content id, normalize + re-encode, pHash, exact and banded near
dedupe, sharded TFRecord writing, reports, manifest, TFDS metadata), once in one process and once
with 2 worker processes. Both see the same files; the baseline does far less work per image.

    make bench-venv
    .bench-venv/bin/python benchmarks/build_npdd_vs_imagededup.py --n=1000

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


def time_imagededup(folder: str, bits: int) -> tuple[float, int]:
    from imagededup.methods import PHash

    start = time.perf_counter()
    hasher = PHash(verbose=False)
    encodings = hasher.encode_images(image_dir=folder, num_enc_workers=2)
    duplicates = hasher.find_duplicates(encoding_map=encodings, max_distance_threshold=bits, num_dist_workers=2)
    elapsed = time.perf_counter() - start
    return elapsed, sum(1 for v in duplicates.values() if v)


def time_copycat(folder: str, output: str, bits: int, workers: int) -> tuple[float, dict]:
    from beam_pipelines.build_npdd import BuildNpddConfig, run

    args = [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"] if workers > 1 else []
    shutil.rmtree(output, ignore_errors=True)
    start = time.perf_counter()
    manifest = run(BuildNpddConfig(sources=[f"dir:{folder}"], output=output, near_dup_bits=bits), pipeline_args=args)
    return time.perf_counter() - start, manifest.counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="the smaller size; the larger is 4N")
    parser.add_argument("--bits", type=int, default=8, help="near-duplicate threshold for both tools")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import logging

    logging.disable(logging.INFO)
    # Import both tools before any clock starts; torch (imagededup) must come before TensorFlow,
    # the other order crashes the process.
    import imagededup.methods  # noqa: F401
    import beam_pipelines.build_npdd  # noqa: F401

    work = tempfile.mkdtemp(prefix="bench_npdd_")
    rows = []
    try:
        for count in (args.n, 4 * args.n):
            folder = os.path.join(work, f"jpegs{count}")
            make_jpegs(folder, count, args.seed)
            baseline, groups = time_imagededup(folder, args.bits)
            single, counts = time_copycat(folder, os.path.join(work, "npdd1"), args.bits, workers=1)
            double, _ = time_copycat(folder, os.path.join(work, "npdd2"), args.bits, workers=2)
            rows.append((count, baseline, single, double, counts, groups))
            print(f"{count} images: imagededup {count / baseline:.0f}/s, copycat 1 process {count / single:.0f}/s, "
                  f"2 processes {count / double:.0f}/s; copycat kept {counts['kept']}, removed "
                  f"{counts['exact_duplicates']}+{counts['near_duplicates']}; imagededup flagged {groups} images", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n| images | imagededup img/s | copycat 1 proc img/s | ratio | copycat 2 procs img/s | ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    for count, baseline, single, double, _, _ in rows:
        print(f"| {count} | {count / baseline:.0f} | {count / single:.0f} | {baseline / single:.2f} | "
              f"{count / double:.0f} | {baseline / double:.2f} |")
    (n, b1, s1, d1, _, _), (n4, b4, s4, d4, _, _) = rows
    print(f"\ngrowth of wall time from N={n} to 4N={n4} (4.00 is linear): imagededup {b4 / b1:.2f}, "
          f"copycat 1 proc {s4 / s1:.2f}, copycat 2 procs {d4 / d1:.2f}")


if __name__ == "__main__":
    main()
