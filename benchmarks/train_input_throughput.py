"""Benchmark: training steps per second reading lake shards vs the same model fed in-memory tensors.

Both feed the same model (vgg16_bn, --width, at --input_size) with the same images in one run:

  lake:      copycat's training input (tf.data over the TFRecord shards: parallel reads, parse,
             decode, resize, shuffle, prefetch), as copycat-train uses it;
  in-memory: the images decoded and resized once beforehand, fed from tensors (the limit).

    .venv/bin/python benchmarks/train_input_throughput.py --steps=60
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--input_size", type=int, default=32)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--repeats", type=int, default=2, help="alternate the two inputs this many times")
    args = parser.parse_args()
    import logging

    logging.disable(logging.WARNING)
    import keras
    import tensorflow as tf

    from beam_pipelines.prepare_problem import PrepareProblemConfig, run
    from copycat_tf.models import build_model
    from copycat_tf.training.input import decode_resize, lake_dataset
    from tfrecords_schema import LABELED_IMAGE, open_folder

    work = tempfile.mkdtemp(prefix="bench_train_")
    run(PrepareProblemConfig(problem="digits", output=work))
    folder = open_folder(os.path.join(work, "odd"), LABELED_IMAGE)
    lake = lake_dataset([folder], args.input_size, args.batch_size, training=True)
    images, labels = [], []
    for image, label in tf.data.TFRecordDataset(list(folder.shards)).map(decode_resize(args.input_size)):
        images.append(image)
        labels.append(label)
    # The limit: every batch already decoded, resized, shuffled and batched in memory, cycled forever.
    pixels, classes = tf.stack(images), tf.stack(labels)
    order = tf.random.shuffle(tf.range(len(images)), seed=0)
    batches = len(images) // args.batch_size
    order = order[: batches * args.batch_size]
    memory = (tf.data.Dataset.from_tensor_slices((tf.reshape(tf.gather(pixels, order), (batches, args.batch_size, *pixels.shape[1:])),
                                                   tf.reshape(tf.gather(classes, order), (batches, args.batch_size))))
              .cache().repeat().prefetch(tf.data.AUTOTUNE))

    keras.utils.set_random_seed(0)
    model = build_model("vgg16_bn", 10, args.input_size, width=args.width)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy")
    model.fit(memory, epochs=1, steps_per_epoch=5, verbose=0)  # build and trace once
    model.fit(lake, epochs=1, steps_per_epoch=5, verbose=0)
    rates = {"lake": [], "in-memory": []}
    for _ in range(args.repeats):
        for name, dataset in (("in-memory", memory), ("lake", lake)):
            start = time.perf_counter()
            model.fit(dataset, epochs=1, steps_per_epoch=args.steps, verbose=0)
            rates[name].append(args.steps / (time.perf_counter() - start))
    best = {name: max(values) for name, values in rates.items()}
    print(f"\nvgg16_bn width {args.width} at {args.input_size} px, batch {args.batch_size}, {args.steps} steps x "
          f"{args.repeats}, {os.cpu_count()} CPU cores (best of the repeats)")
    print("| input | steps/s | ratio |")
    print("| --- | --- | --- |")
    print(f"| in-memory tensors (the limit) | {best['in-memory']:.2f} | |")
    print(f"| lake shards (copycat-train) | {best['lake']:.2f} | {best['lake'] / best['in-memory']:.0%} |")


if __name__ == "__main__":
    main()
