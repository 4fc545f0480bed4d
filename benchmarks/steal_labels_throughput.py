"""Benchmark: labeled images per second through copycat-steal-labels vs two loops, on a VGG16 oracle.

The oracle is Keras' VGG16 architecture (random weights, 10 classes) at 64x64 px, exported with
copycat's export contract (encoded images in; decoding and resizing inside the SavedModel), so the
forward pass dominates. All three label the same lake folder of JPEGs:

  (a) naive:   one image per oracle call, in a plain loop;
  (b) limit:   a plain in-process loop that reads the same shards and calls the oracle in full
               batches of --batch_size, no Beam, no ledger;
  copycat:     the steal_labels pipeline on DirectRunner (ledger writes, budget, shards, manifest).

    .venv/bin/python benchmarks/steal_labels_throughput.py --images=512
"""

import argparse
import os
import random
import shutil
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def make_lake(folder: str, count: int, seed: int) -> None:
    import io

    import PIL.Image

    from beam_pipelines.sources import bundled_photo_paths
    from tfrecords_schema import IMAGE, Manifest, content_id, write_manifest, write_shards

    photos = [np.asarray(PIL.Image.open(p).convert("RGB")) for p in bundled_photo_paths()]
    rng = random.Random(seed)

    def records():
        for i in range(count):
            photo = rng.choice(photos)
            top, left = rng.randint(0, photo.shape[0] - 96), rng.randint(0, photo.shape[1] - 96)
            pixels = np.ascontiguousarray(photo[top:top + 96, left:left + 96])
            buffer = io.BytesIO()
            PIL.Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
            yield {"image": buffer.getvalue(), "format": "jpeg", "height": 96, "width": 96,
                   "id": content_id(pixels), "phash": 0, "source": "bench", "source_key": f"crop{i}",
                   "original_height": 96, "original_width": 96}

    kept = write_shards(folder, IMAGE, records(), num_shards=4)
    write_manifest(folder, Manifest(stage="build_npdd", record_kind="image", counts={"kept": kept}))


def make_oracle(path: str) -> None:
    import keras

    from copycat_tf.export import export_classifier

    keras.utils.set_random_seed(0)
    model = keras.applications.VGG16(weights=None, input_shape=(64, 64, 3), classes=10)
    export_classifier(model, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--naive_images", type=int, default=128, help="the naive loop labels only this many (it is slow)")
    args = parser.parse_args()
    import logging

    logging.disable(logging.WARNING)
    from beam_pipelines.steal_labels import StealLabelsConfig, run
    from copycat_tf.oracles import OracleSpec, open_oracle
    from tfrecords_schema import IMAGE, read_records

    work = tempfile.mkdtemp(prefix="bench_steal_")
    try:
        lake, model = os.path.join(work, "npdd"), os.path.join(work, "vgg16")
        make_lake(lake, args.images, seed=0)
        make_oracle(model)
        oracle = open_oracle(OracleSpec(model))
        oracle.classify([next(read_records(lake, IMAGE))["image"]] * args.batch_size)  # warm up both batch shapes
        oracle.classify([next(read_records(lake, IMAGE))["image"]])

        start = time.perf_counter()
        naive = []
        for i, record in enumerate(read_records(lake, IMAGE)):
            if i == args.naive_images:
                break
            naive.append(int(oracle.classify([record["image"]])[0]))
        naive_rate = len(naive) / (time.perf_counter() - start)

        start = time.perf_counter()
        batch, limit = [], {}
        for record in read_records(lake, IMAGE):
            batch.append(record)
            if len(batch) == args.batch_size:
                limit.update(zip([r["id"] for r in batch], oracle.classify([r["image"] for r in batch])))
                batch = []
        if batch:
            limit.update(zip([r["id"] for r in batch], oracle.classify([r["image"] for r in batch])))
        limit_rate = len(limit) / (time.perf_counter() - start)

        start = time.perf_counter()
        manifest = run(StealLabelsConfig(images=lake, oracle=OracleSpec(model), output=os.path.join(work, "sl"),
                                         batch_size=args.batch_size))
        copycat_rate = manifest.counts["labeled"] / (time.perf_counter() - start)
        assert manifest.counts["queries"] == args.images
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nVGG16 at 64x64, {args.images} images, batches of {args.batch_size}, {os.cpu_count()} CPU cores")
    print("| loop | labeled images/s | copycat's ratio to it |")
    print("| --- | --- | --- |")
    print(f"| (a) naive, one image per call | {naive_rate:.1f} | {copycat_rate / naive_rate:.2f}x |")
    print(f"| (b) in-process full batches (the limit) | {limit_rate:.1f} | {copycat_rate / limit_rate:.0%} |")
    print(f"| copycat-steal-labels, DirectRunner | {copycat_rate:.1f} | |")


if __name__ == "__main__":
    main()
