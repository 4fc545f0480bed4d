"""The options of copycat-evaluate, each written once with its default and help text.

``bin/evaluate.py`` generates its flags from these fields; this module imports no TensorFlow, so
``--help`` and a bad value cost no start-up. ``copycat_tf.evaluation`` runs it.
"""

import dataclasses

from copycat_tf.config_checks import Rule, check_rules, option, required


@dataclasses.dataclass
class EvaluateConfig:
    models: list[str] = required("Model to evaluate (any oracle: SavedModel folder or :predict URL); repeatable.",
                                 flag="model", repeatable=True)
    test: str = required("Lake folder of labeled test images (a TDD).")
    reference: str | None = option(None, "The target, for agreement, Cohen's kappa and copy performance.")
    batch_size: int = option(64, "Images per request.")
    bootstrap: int = option(1000, "Paired bootstrap resamples for the 95% intervals (0: none).")
    seed: int = option(0, "Seed of the bootstrap.")
    num_classes: int | None = option(None, "Number of classes when the test folder's manifest does not say.")

    RULES = (Rule("batch_size", "batch_size", 1, 100_000), Rule("bootstrap", "bootstrap", 0, 1_000_000),
             Rule("seed", "seed", 0), Rule("num_classes", "num_classes", 2, 1_000_000, optional=True))

    def validate(self) -> None:
        """Refuse out-of-range numbers (one line naming the flag) before any work."""
        check_rules(self, self.RULES)


__all__ = ["EvaluateConfig"]
