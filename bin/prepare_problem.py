"""copycat-prepare-problem: write a problem's ODD, PDD and TDD to the lake as labeled images (OL).

    copycat-prepare-problem --problem=digits --output=lake/problems/digits
    copycat-prepare-problem --problem=DIG10 --tfds_data_dir=~/tensorflow_datasets --output=lake/problems/DIG10
    copycat-prepare-problem --problem=folder:/data/signs --output=lake/problems/signs
"""

from absl import flags

from beam_pipelines.prepare_problem_config import PrepareProblemConfig  # no Beam: flags stay fast
from copycat_bin import app

app.define_common_flags(beam_stage=True)
app.define_config_flags(PrepareProblemConfig)  # every other flag: a PrepareProblemConfig field, default and help
FLAGS = flags.FLAGS


def main(argv: list[str]) -> int:
    app.require("output")
    config = app.config_from_flags(PrepareProblemConfig)
    config.validate()  # a bad option is refused before Beam starts (prepare_problem.run checks again for library callers)
    from beam_pipelines import prepare_problem

    manifests = prepare_problem.run(config, runner=FLAGS.runner, pipeline_args=argv[1:])
    for split, manifest in manifests.items():
        print(f"{split}: {manifest.counts['kept']} images, per class {manifest.typed_extra().label_histogram}")
    print(f"problem {FLAGS.problem} written to {FLAGS.output}")
    return 0


def run() -> None:
    app.run(main, pass_through=True)


if __name__ == "__main__":
    run()
