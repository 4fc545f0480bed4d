"""copycat-demo: the whole attack, offline, on the embedded default (digits + bundled photos).

    copycat-demo --output=demo_output          (make demo)
"""

from absl import flags

from copycat_bin import app

flags.DEFINE_string("output", "demo_output", "Folder for the lake, the runs, the report and summary.json.")
flags.DEFINE_integer("crops", 6000, "Random crops of the bundled photos queried as the NPDD.")
flags.DEFINE_integer("per_class", 400, "Balanced NPDD-SL images per class.")
flags.DEFINE_integer("epochs", 8, "Training epochs of each run (fine-tuning takes half).")
flags.DEFINE_float("width", 0.25, "Width multiplier of the VGG16-BN models.")
flags.DEFINE_integer("input_size", 32, "Input side in pixels of every model.")
flags.DEFINE_integer("seed", 0, "Seed of every step.")
flags.DEFINE_integer("seeds", 3, "Seeds of the NPDD copycats (seed, seed+1, ...), each against a target of its own; "
                     "their copy performance is reported as mean ± std.")
flags.DEFINE_string("config", None, "The recipe (default: configs/demo.json of this checkout); the flags above override it.")
FLAGS = flags.FLAGS


def main(argv: list[str]) -> int:
    app.require("output", positional=argv)
    from copycat_tf.demo import DemoConfig, paper_vs_best, run_demo, table3_row

    summary = run_demo(DemoConfig(output=FLAGS.output, crops=FLAGS.crops, per_class=FLAGS.per_class,
                                  epochs=FLAGS.epochs, width=FLAGS.width, input_size=FLAGS.input_size,
                                  seed=FLAGS.seed, seeds=FLAGS.seeds, **({"config": FLAGS.config} if FLAGS.config else {})))
    print(table3_row(summary))
    print(paper_vs_best(summary))
    print(f"stolen-label histogram of the NPDD: {summary['npdd_sl_label_histogram']}")
    print(f"report: {summary['report']}; summary: {FLAGS.output}/summary.json")
    return 0


def run() -> None:
    app.run(main)


if __name__ == "__main__":
    run()
