"""The options of copycat-report, each knob written once with its default and help text.

``bin/report.py`` generates its flags from these fields; this module imports nothing heavy, so
``--help`` and a bad value cost no start-up. ``copycat_tf.report.build_report`` runs it.
"""

import dataclasses

from copycat_tf.config_checks import Rule, check_rules, option, required


@dataclasses.dataclass
class ReportConfig:
    runs: list[str] = required("A run folder, or a folder of run folders; repeatable.", repeatable=True)
    output: str = required("Folder for report.md, index.html and the figures.")
    label_cost_per_image: float = option(0.05, "What labeling one ODD image by hand costs (Table 5).")
    price_per_1000: float = option(1.0, "Query price per 1000 when a stealing run recorded none (Azure's, in the "
                                        "paper).")
    tsne_samples: int = option(300, "Images of each set in the t-SNE figure.")
    seed: int = option(0, "Seed of the t-SNE.")
    defenses: str | None = option(None, "The defenses experiment's plan file (OUT/defenses/plan.json): adds its table "
                                        "and figure (copy performance and honest users' macro F1 per defense).")

    RULES = (Rule("label_cost_per_image", "label_cost_per_image", 0), Rule("price_per_1000", "price_per_1000", 0),
             Rule("tsne_samples", "tsne_samples", 0, 1_000_000), Rule("seed", "seed", 0))

    def validate(self) -> None:
        """Refuse out-of-range numbers (one line naming the flag) before any work."""
        check_rules(self, self.RULES)


__all__ = ["ReportConfig"]
