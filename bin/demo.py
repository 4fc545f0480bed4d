"""copycat-demo: the whole attack, offline, on the embedded default (digits + bundled photos).

    copycat-demo --output=demo_output          (make demo)
"""

from absl import flags

from copycat_bin import app
from copycat_tf.demo import DemoConfig  # light: no TensorFlow, no Beam

app.define_config_flags(DemoConfig)  # every flag: a DemoConfig field, its default and its help text
FLAGS = flags.FLAGS


def main(argv: list[str]) -> int:
    app.require("output", positional=argv)
    from copycat_tf.demo import paper_vs_best, run_demo, table3_row

    summary = run_demo(app.config_from_flags(DemoConfig))
    print(table3_row(summary))
    print(paper_vs_best(summary))
    print(f"stolen-label histogram of the NPDD: {summary['npdd_sl_label_histogram']}")
    print(f"report: {summary['report']}; summary: {FLAGS.output}/summary.json")
    return 0


def run() -> None:
    app.run(main)


if __name__ == "__main__":
    run()
