"""The options of copycat-balance, each knob written once with its default and help text.

``bin/balance.py`` generates its flags from these fields; this module imports no Beam and no
TensorFlow, so ``--help`` and a bad value cost no start-up. ``beam_pipelines.balance`` runs it.
"""

import dataclasses

from copycat_tf.config_checks import Rule, check_rules, option, required


@dataclasses.dataclass
class BalanceConfig:
    input: str = required("Lake folder of labeled images (from copycat-steal-labels or copycat-prepare-problem).")
    output: str = required("Folder (local path or gs://...) this stage writes.", common=True)
    per_class: int | None = option(None, "Images per class after balancing (give this or --total).")
    total: int | None = option(None, "Images in all after balancing, split evenly over the classes (give this or "
                                     "--per_class).")
    seed: int = option(0, "Seed of every random choice the stage makes.", common=True)
    allow_missing_classes: bool = option(False, "Leave classes without any image empty instead of failing.")
    num_shards: int = option(0, "Output shards (0: sized from the input's bytes per record).")

    RULES = (Rule("per_class", "per_class", 1, optional=True), Rule("total", "total", 1, optional=True),
             Rule("seed", "seed", 0), Rule("num_shards", "num_shards", 0, 100_000))

    def validate(self) -> None:
        """Refuse out-of-range numbers (one line naming the flag) before any work."""
        check_rules(self, self.RULES)


__all__ = ["BalanceConfig"]
