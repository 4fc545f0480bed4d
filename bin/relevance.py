"""copycat-relevance: where target and copycats look (LRP or tf-keras-vis maps), as image grids and similarities.

    copycat-relevance --target=runs/BL-VGG-ODD-OL --copycat=runs/CC-VGG-NPDD-SL \
        --images=lake/problems/digits/tdd --output=runs/relevance --method=lrp-composite --count=4
"""

from absl import flags

from copycat_bin import app

flags.DEFINE_string("target", None, "The target's copycat-train output folder (or .keras file).")
flags.DEFINE_multi_string("copycat", None, "A copycat's output folder (or .keras file); repeatable (shown side by side).")
flags.DEFINE_string("images", None, "Lake folder of labeled images (e.g. the TDD).")
flags.DEFINE_string("output", None, "Folder for the PNG grids and relevance.json.")
flags.DEFINE_string("method", "lrp-composite", "lrp-composite, lrp-lrp0, lrp-epsilon, lrp-gamma, lrp-zb, saliency, "
                    "smoothgrad, gradcam, gradcam++ or scorecam.")
flags.DEFINE_integer("count", 4, "Images per group (correct/correct, correct/wrong, wrong/correct).")
flags.DEFINE_integer("max_images", 500, "Images read to find members of each group.")
FLAGS = flags.FLAGS


def main(argv: list[str]) -> int:
    app.require("target", "copycat", "images", "output", positional=argv)
    from copycat_tf.relevance.figures import RelevanceConfig, relevance_figures

    report = relevance_figures(RelevanceConfig(target=FLAGS.target, copycats=FLAGS.copycat, images=FLAGS.images,
                                               output=FLAGS.output, method=FLAGS.method, count=FLAGS.count,
                                               max_images=FLAGS.max_images))
    for name, result in report["similarity"].items():
        means = ", ".join(f"{k} {v:.3f}" for k, v in result["mean"].items())
        print(f"{name} vs target ({report['method']}): {means}")
    print(f"grids and relevance.json in {FLAGS.output}")
    return 0


def run() -> None:
    app.run(main)


if __name__ == "__main__":
    run()
