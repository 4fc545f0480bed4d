"""copycat-train: train a target, baseline or copycat on lake folders and export it as an oracle.

    copycat-train --model=vgg16_bn --train=lake/problems/digits/odd --val=lake/problems/digits/tdd \
        --input_size=32 --width=0.25 --epochs=5 --output=runs/BL-VGG-ODD-OL
    copycat-train --model=vgg16 --init=imagenet --train=lake/stolen/t/NPDD-SL-balanced-1000 --strategy=mirrored \
        --mixed_precision --input_size=224 --batch_size=256 --output=runs/CC-VGG-NPDD-SL
"""

from absl import flags

from copycat_bin import app

app.define_common_flags()
flags.DEFINE_string("model", "vgg16_bn", "vgg16, vgg16_bn, alexnet or alexnet_bn.")
flags.DEFINE_list("train", None, "Lake folder(s) of labeled images to train on (comma-separated to combine).")
flags.DEFINE_string("val", None, "Lake folder to validate on after each epoch.")
flags.DEFINE_integer("input_size", 32, "Side in pixels the images are resized to (32 to 1024).")
flags.DEFINE_integer("epochs", 5, "Passes over the training images (1 to 100000).")
flags.DEFINE_integer("batch_size", 32, "Global batch size, split over the replicas (1 to 65536).")
flags.DEFINE_float("lr", 1e-3, "Initial learning rate, in (0, 10] (divided by 10 at 1/3 and 2/3 of the steps).")
flags.DEFINE_string("init", None, "imagenet, a .keras file, or a copycat-train output folder to fine-tune from.")
flags.DEFINE_enum("strategy", "auto", ["auto", "one_device", "mirrored", "multi_worker", "tpu"], "tf.distribute strategy.")
flags.DEFINE_bool("mixed_precision", False, "float16 (GPU) or bfloat16 (CPU/TPU) compute with float32 weights.")
flags.DEFINE_string("augment", "none", "none, paper, or a comma-separated list of intensity, contrast, crop, flip, "
                    "blur, noise, rotate, scale, shear, translate.")
flags.DEFINE_enum("class_balance", "none", ["none", "resample"], "resample: every epoch a fresh balanced draw of the "
                  "training labels (rare classes repeated, common ones taking turns), so every stolen label is used "
                  "without copycat-balance throwing any away.")
flags.DEFINE_float("width", 1.0, "Multiplier of every layer's size, in (0, 4] (e.g. 0.25 for a small-scale run).")
flags.DEFINE_float("dropout", 0.5, "Dropout rate of the fully connected layers (0 to 0.99).")
flags.DEFINE_float("momentum", 0.9, "SGD momentum (0 to 0.999; the paper's 0.9).")
flags.DEFINE_float("weight_decay", 5e-4, "SGD weight decay (0 to 1; the paper's 5e-4).")
flags.DEFINE_integer("checkpoint_every", 0, "Steps between checkpoints (0: once per epoch; at most the run's steps).")
flags.DEFINE_bool("deterministic", True, "The same --seed gives the same weights and metrics on the same hardware and "
                  "software (op determinism, ordered input); --nodeterministic reads input as it arrives (faster).")
flags.DEFINE_integer("verbose", 1, "Keras progress output: 0 none, 1 a progress bar, 2 a line per chunk.")
FLAGS = flags.FLAGS


def main(argv: list[str]) -> int:
    app.require("train", "output", positional=argv)
    from copycat_tf.run_dir import RunDir
    from copycat_tf.training import TrainConfig, train

    config = TrainConfig(
        model=FLAGS.model, train=FLAGS.train, output=FLAGS.output, val=FLAGS.val, input_size=FLAGS.input_size,
        epochs=FLAGS.epochs, batch_size=FLAGS.batch_size, lr=FLAGS.lr, init=FLAGS.init, strategy=FLAGS.strategy,
        mixed_precision=FLAGS.mixed_precision, augment=FLAGS.augment, class_balance=FLAGS.class_balance, seed=FLAGS.seed, width=FLAGS.width,
        dropout=FLAGS.dropout, checkpoint_every=FLAGS.checkpoint_every, deterministic=FLAGS.deterministic,
        momentum=FLAGS.momentum, weight_decay=FLAGS.weight_decay, verbose=FLAGS.verbose,
    )
    config.validate()  # every number range-checked before any work (train checks again for library callers)
    metrics = train(config)
    line = f"trained {metrics['model']} for {metrics['steps']} steps -> {RunDir(FLAGS.output).export}"
    if "final_val_accuracy" in metrics:
        line += f" (validation accuracy {metrics['final_val_accuracy']:.3f})"
    print(line)
    return 0


def run() -> None:
    app.run(main)


if __name__ == "__main__":
    run()
