"""copycat-prepare-problem: write a problem's ODD, PDD and TDD to the lake as labeled images (OL).

    copycat-prepare-problem --problem=digits --output=lake/problems/digits
    copycat-prepare-problem --problem=DIG10 --tfds_data_dir=~/tensorflow_datasets --output=lake/problems/DIG10
    copycat-prepare-problem --problem=folder:/data/signs --output=lake/problems/signs
"""

from absl import flags

from copycat_bin import app

app.define_common_flags(beam_stage=True)
flags.DEFINE_string("problem", "digits", "digits, DIG10, SHN10, GOC9, ACT101, FER7, PED2, SIG30, folder:PATH or tfds:NAME.")
flags.DEFINE_string("data_dir", "data", "Where the image-folder problems (FER7, PED2, SIG30) live: DATA_DIR/NAME/{odd,pdd,tdd}/CLASS/.")
flags.DEFINE_string("tfds_data_dir", None, "TFDS data_dir of the prepared datasets of TFDS problems.")
FLAGS = flags.FLAGS


def main(argv: list[str]) -> int:
    app.require("output")
    from beam_pipelines import prepare_problem

    config = prepare_problem.PrepareProblemConfig(problem=FLAGS.problem, output=FLAGS.output, data_dir=FLAGS.data_dir,
                                                  tfds_data_dir=FLAGS.tfds_data_dir, seed=FLAGS.seed)
    manifests = prepare_problem.run(config, runner=FLAGS.runner, pipeline_args=argv[1:])
    for split, manifest in manifests.items():
        print(f"{split}: {manifest.counts['kept']} images, per class {manifest.extra['label_histogram']}")
    print(f"problem {FLAGS.problem} written to {FLAGS.output}")
    return 0


def run() -> None:
    app.run(main, pass_through=True)


if __name__ == "__main__":
    run()
