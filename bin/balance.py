"""copycat-balance: uniform classes by seeded replication (minority) and elimination (majority).

    copycat-balance --input=lake/stolen/target/NPDD-SL --per_class=1000 --output=lake/stolen/target/NPDD-SL-balanced-1000
"""

from absl import flags

from beam_pipelines.balance_config import BalanceConfig  # no Beam: defining and checking flags stays fast
from copycat_bin import app

app.define_common_flags(beam_stage=True)
app.define_config_flags(BalanceConfig)  # every other flag: a BalanceConfig field, its default and its help text
FLAGS = flags.FLAGS


def main(argv: list[str]) -> int:
    app.require("input", "output")
    config = app.config_from_flags(BalanceConfig)
    config.validate()  # a bad option is refused before Beam starts (balance.run checks again for library callers)
    from beam_pipelines import balance

    manifest = balance.run(config, runner=FLAGS.runner, pipeline_args=argv[1:])
    extra = manifest.typed_extra()
    print(f"balanced {manifest.counts['records_before']} records into {manifest.counts['records']} "
          f"({extra.label_histogram} per class, from {extra.label_histogram_before}) -> {FLAGS.output}")
    return 0


def run() -> None:
    app.run(main, pass_through=True)


if __name__ == "__main__":
    run()
