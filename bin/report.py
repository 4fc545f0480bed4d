"""copycat-report: the paper's tables and figures for whatever runs exist (Markdown, HTML and PNGs).

    copycat-report --runs=runs --output=runs/report
"""

from absl import flags

from copycat_bin import app
from copycat_tf.report_config import ReportConfig  # nothing heavy: flags stay fast

app.define_config_flags(ReportConfig)  # every flag: a ReportConfig field, its default and its help text
FLAGS = flags.FLAGS


def main(argv: list[str]) -> int:
    app.require("runs", "output", positional=argv)
    from copycat_tf.report import build_report

    produced = build_report(app.config_from_flags(ReportConfig))
    print(f"report of {len(produced['runs'])} runs ({', '.join(produced['figures']) or 'no figures'}) in {FLAGS.output}")
    return 0


def run() -> None:
    app.run(main)


if __name__ == "__main__":
    run()
