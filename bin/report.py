"""copycat-report: the paper's tables and figures for whatever runs exist (Markdown, HTML and PNGs).

    copycat-report --runs=runs --output=runs/report
"""

from absl import flags

from copycat_bin import app

flags.DEFINE_multi_string("runs", None, "A run folder, or a folder of run folders; repeatable.")
flags.DEFINE_string("output", None, "Folder for report.md, index.html and the figures.")
flags.DEFINE_float("label_cost_per_image", 0.05, "What labeling one ODD image by hand costs (Table 5).")
flags.DEFINE_float("price_per_1000", 1.0, "Query price per 1000 when a stealing run recorded none.")
flags.DEFINE_integer("tsne_samples", 300, "Images of each set in the t-SNE figure.")
flags.DEFINE_integer("seed", 0, "Seed of the t-SNE.")
FLAGS = flags.FLAGS


def main(argv: list[str]) -> int:
    app.require("runs", "output", positional=argv)
    from copycat_tf.report import ReportConfig, build_report

    produced = build_report(ReportConfig(runs=FLAGS.runs, output=FLAGS.output, label_cost_per_image=FLAGS.label_cost_per_image,
                                         price_per_1000=FLAGS.price_per_1000, tsne_samples=FLAGS.tsne_samples, seed=FLAGS.seed))
    print(f"report of {len(produced['runs'])} runs ({', '.join(produced['figures']) or 'no figures'}) in {FLAGS.output}")
    return 0


def run() -> None:
    app.run(main)


if __name__ == "__main__":
    run()
