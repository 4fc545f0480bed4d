"""The knobs of adaptive querying (``copycat-steal-labels --adaptive_*``), each written once with its help.

No NumPy, no TensorFlow: the binary generates its flags from these fields at import.
"""

import dataclasses
import types

from copycat_tf.config_checks import Rule, check_rules, option
from copycat_tf.errors import CopycatError

ADAPTIVE_RULES = (  # the adaptive knobs as fields of StealLabelsConfig.adaptive
    Rule("adaptive.rounds", "adaptive_rounds", 1, 10_000), Rule("adaptive.seed_fraction", "adaptive_seed_fraction", 0, 1, above=True),
    Rule("adaptive.quota", "adaptive_quota", 1, optional=True), Rule("adaptive.explore", "adaptive_explore", 0, 1),
    Rule("adaptive.input_size", "adaptive_input_size", 8, 512), Rule("adaptive.epochs", "adaptive_epochs", 1, 1000),
    Rule("adaptive.max_train_per_class", "adaptive_max_train_per_class", 1),
    Rule("adaptive.variants", "adaptive_variants", 0, 1),
    Rule("adaptive.probe_fraction", "adaptive_probe_fraction", 0, 1, above=True),
)


def _knob(default, help_text: str, name: str):
    return option(default, "Adaptive: " + help_text, flag=f"adaptive_{name}")


@dataclasses.dataclass
class AdaptiveConfig:
    rounds: int = _knob(8, "selection rounds sharing the budget left after the seed set.", "rounds")
    seed_fraction: float = _knob(0.2, "share of the budget first queried at random.", "seed_fraction")
    quota: int | None = _knob(None, "labels wanted per class (default max_queries / classes).", "quota")
    explore: float = _knob(0.2, "share of each round spent on the images the interim copycat is least sure of "
                                "(never-seen classes' shares go there too).", "explore")
    input_size: int = _knob(32, "thumbnail side of the interim copycat.", "input_size")
    epochs: int = _knob(4, "interim copycat epochs per round.", "epochs")
    max_train_per_class: int = _knob(2000, "the interim copycat's training images per class at most.",
                                     "max_train_per_class")
    variants: float = _knob(0.0, "share of each class's picks spent on variants (near copies: same-class blends, "
                                 "small turns, shifts and zooms) of images the oracle already put in that class; "
                                 "kept in OUTPUT/variants and labeled like pool images. 0: pool images only.",
                            "variants")
    mixture: bool = _knob(False, "draw the seed set per family of the pool (the originals and each "
                                 "--pool_transforms variant) by the oracle's answers: a probe asks an equal share of "
                                 "every family, then the rest of the seed set follows the family weights that make "
                                 "the expected label histogram most even (20% spread over all families). Off: "
                                 "one random order over the whole pool.", "mixture")
    probe_fraction: float = _knob(0.1, "with --adaptive_mixture, the share of the budget the probe spends (at most "
                                       "--adaptive_seed_fraction).", "probe_fraction")

    def check(self) -> None:
        """The same range checks as StealLabelsConfig.validate (ADAPTIVE_RULES), for callers of the rounds alone."""
        check_rules(types.SimpleNamespace(adaptive=self), ADAPTIVE_RULES)
        if self.mixture and self.probe_fraction > self.seed_fraction:
            raise CopycatError(f"--adaptive_probe_fraction={self.probe_fraction} is larger than "
                               f"--adaptive_seed_fraction={self.seed_fraction}: the probe is part of the seed set")


__all__ = ["ADAPTIVE_RULES", "AdaptiveConfig"]
