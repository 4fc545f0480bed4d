"""The options of copycat-prepare-problem, each knob written once with its default and help text.

``bin/prepare_problem.py`` generates its flags from these fields; this module imports no Beam and no
TensorFlow, so ``--help`` and a bad value cost no start-up. ``beam_pipelines.prepare_problem`` runs it.
"""

import dataclasses

from copycat_tf.config_checks import Rule, check_rules, option, required


@dataclasses.dataclass
class PrepareProblemConfig:
    output: str = required("Folder (local path or gs://...) this stage writes.", common=True)
    problem: str = option("digits", "digits, glyphs, DIG10, SHN10, GOC9, ACT101, FER7, PED2, SIG30, folder:PATH or "
                                    "tfds:NAME.")
    data_dir: str = option("data", "Where the image-folder problems (FER7, PED2, SIG30) live: "
                                   "DATA_DIR/NAME/{odd,pdd,tdd}/CLASS/.")
    tfds_data_dir: str | None = option(None, "TFDS data_dir of the prepared datasets of TFDS problems.")
    seed: int = option(0, "Seed of every random choice the stage makes.", common=True)

    RULES = (Rule("seed", "seed", 0),)

    def validate(self) -> None:
        """Refuse out-of-range numbers (one line naming the flag) before any work."""
        check_rules(self, self.RULES)


__all__ = ["PrepareProblemConfig"]
