"""The options of copycat-steal-labels, each written once with its default and help text.

``bin/steal_labels.py`` generates every flag from these fields and from the nested ``OracleSpec``
(``--oracle*``, ``--num_classes``) and ``AdaptiveConfig`` (``--adaptive_*``). No Beam and no
TensorFlow here, so ``--help`` and a bad value cost no start-up; ``beam_pipelines.steal_labels`` runs it.
"""

import dataclasses
import posixpath

from copycat_tf.adaptive.config import ADAPTIVE_RULES, AdaptiveConfig
from copycat_tf.config_checks import Rule, check_rules, option, required
from copycat_tf.oracles import OracleSpec


@dataclasses.dataclass
class StealLabelsConfig:
    images: str = required("Lake folder of images to label (an NPDD, or a PDD whose own labels are ignored).")
    oracle: OracleSpec = required("The oracle (its flags: --oracle, --oracle_*, --num_classes).", nested=True)
    output: str = required("Folder (local path or gs://...) this stage writes.", common=True)
    batch_size: int = option(32, "Images per oracle request.")
    max_queries: int | None = option(None, "Never send more than this many images to the oracle, counted over every "
                                           "run.")
    price_per_1000: float | None = option(None, "Price of 1000 queries, to report the cost.")
    ledger: str | None = option(None, "Ledger folder (default OUTPUT/ledger); share it between runs and machines.")
    seed: int = option(0, "Seed of every random choice the stage makes.", common=True)
    num_shards: int = option(0, "Output shards (0: as many as the images folder has).")
    strategy: str = option("random", "Which images to ask, a name in copycat_tf/query_strategies.py: random (the "
                                     "paper: the budget's worth by seeded hash) or adaptive (rounds that steer the "
                                     "budget to the classes furthest below quota; needs --max_queries).")
    adaptive: AdaptiveConfig = dataclasses.field(default_factory=AdaptiveConfig, metadata={
        "help": "The adaptive strategy's knobs (--adaptive_*).", "nested": True})
    pool_transforms: list[str] = dataclasses.field(default_factory=list, metadata={"help": (
        "Variants derived from every pool image before querying, each a +chain of grayscale, invert, contrast, "
        "zoom, rotate, lowres, plain (e.g. grayscale+contrast,grayscale+invert+contrast). Off by default.")})
    pool: str | None = option(None, "Folder for the transformed pool (default OUTPUT/pool); runs with the same "
                                    "input, transforms and seed reuse it.")
    adaptive_cache: str | None = option(None, "Adaptive: local folder for the pool's thumbnail index (default "
                                              "OUTPUT/adaptive); runs over the same pool can share it.")

    RULES = (
        Rule("batch_size", "batch_size", 1, 100_000), Rule("max_queries", "max_queries", 0, optional=True),
        Rule("price_per_1000", "price_per_1000", 0, optional=True), Rule("seed", "seed", 0),
        Rule("num_shards", "num_shards", 0, 100_000),
        Rule("oracle.input_size", "oracle_input_size", 1, 100_000, optional=True),
        Rule("oracle.num_classes", "num_classes", 2, 1_000_000, optional=True),
        Rule("oracle.timeout_s", "oracle_timeout", 0, 86_400, above=True),
        Rule("oracle.max_retries", "oracle_retries", 0, 100), Rule("oracle.concurrency", "oracle_concurrency", 1, 1024),
        Rule("oracle.queries_per_second", "oracle_qps", 0, above=True, optional=True),
        *ADAPTIVE_RULES,
    )

    def validate(self) -> None:
        """Refuse out-of-range numbers (one line naming the flag) before any work."""
        check_rules(self, self.RULES)
        self.adaptive.check()  # and the adaptive knobs' checks that span two fields

    @property
    def ledger_root(self) -> str:
        return self.ledger or posixpath.join(str(self.output), "ledger")


__all__ = ["StealLabelsConfig"]
