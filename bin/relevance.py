"""copycat-relevance: where target and copycats look (LRP or tf-keras-vis maps), as image grids and similarities.

    copycat-relevance --target=runs/BL-VGG-ODD-OL --copycat=runs/CC-VGG-NPDD-SL \
        --images=lake/problems/digits/tdd --output=runs/relevance --method=lrp-composite --count=4
"""

from absl import flags

from copycat_bin import app
from copycat_tf.relevance_config import RelevanceConfig  # no TensorFlow: flags stay fast

app.define_config_flags(RelevanceConfig)  # every flag: a RelevanceConfig field, its default and its help text
FLAGS = flags.FLAGS


def main(argv: list[str]) -> int:
    app.require("target", "copycat", "images", "output", positional=argv)
    config = app.config_from_flags(RelevanceConfig)
    config.validate()  # a bad option is refused before TensorFlow starts (relevance_figures checks again)
    from copycat_tf.relevance.figures import relevance_figures

    report = relevance_figures(config)
    for name, result in report["similarity"].items():
        means = ", ".join(f"{k} {v:.3f}" for k, v in result["mean"].items())
        print(f"{name} vs target ({report['method']}): {means}")
    print(f"grids and relevance.json in {FLAGS.output}")
    return 0


def run() -> None:
    app.run(main)


if __name__ == "__main__":
    run()
