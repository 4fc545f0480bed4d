"""The options of copycat-relevance, each knob written once with its default and help text.

``bin/relevance.py`` generates its flags from these fields; this module imports no TensorFlow (the
relevance package does), so ``--help`` and a bad value cost no start-up.
"""

import dataclasses

from copycat_tf.config_checks import Rule, check_rules, option, required


@dataclasses.dataclass
class RelevanceConfig:
    target: str = required("The target's copycat-train output folder (or .keras file).")
    copycats: list[str] = required("A copycat's output folder (or .keras file); repeatable (shown side by side).",
                                   flag="copycat", repeatable=True)
    images: str = required("Lake folder of labeled images (e.g. the TDD).")
    output: str = required("Folder for the PNG grids and relevance.json.")
    method: str = option("lrp-composite", "lrp-composite, lrp-lrp0, lrp-epsilon, lrp-gamma, lrp-zb, saliency, "
                                          "smoothgrad, gradcam, gradcam++ or scorecam.")
    count: int = option(4, "Images per group (correct/correct, correct/wrong, wrong/correct).")
    max_images: int = option(500, "Images read to find members of each group.")

    RULES = (Rule("count", "count", 1, 10_000), Rule("max_images", "max_images", 1, 10_000_000))

    def validate(self) -> None:
        """Refuse out-of-range numbers (one line naming the flag) before any work."""
        check_rules(self, self.RULES)


__all__ = ["RelevanceConfig"]
