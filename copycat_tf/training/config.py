"""The options of a training run (``copycat-train``): each knob written once, with its default and help.

``bin/train.py`` generates its absl flags from these fields (``copycat_bin.app.define_config_flags``),
so a default or a help text lives here only. This module imports no TensorFlow: defining the flags
and checking a bad value cost no TensorFlow start-up.
"""

import dataclasses

from copycat_tf.config_checks import Rule, check_rules, required
from copycat_tf.config_checks import option as _option
from copycat_tf.errors import CopycatError

MAX_SEED = 2**32 - 1  # NumPy's seed range, which keras.utils.set_random_seed passes the seed to
CLASS_BALANCE_MODES = ("none", "resample", "sqrt")
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")  # copycat_tf.training.strategy builds them


@dataclasses.dataclass
class TrainConfig:
    train: list[str] = required("Lake folder(s) of labeled images to train on (comma-separated to combine).")
    output: str = required("The run folder to write.", common=True)
    model: str = _option("vgg16_bn", "vgg16, vgg16_bn, alexnet or alexnet_bn.")
    val: str | None = _option(None, "Lake folder to validate on after each epoch.")
    input_size: int = _option(32, "Side in pixels the images are resized to (32 to 1024).")
    epochs: int = _option(5, "Passes over the training images (1 to 100000).")
    batch_size: int = _option(32, "Global batch size, split over the replicas (1 to 65536).")
    lr: float = _option(1e-3, "Initial learning rate, in (0, 10] (divided by 10 at 1/3 and 2/3 of the steps).")
    momentum: float = _option(0.9, "SGD momentum (0 to 0.999; the paper's 0.9).")
    weight_decay: float = _option(5e-4, "SGD weight decay (0 to 1; the paper's 5e-4).")
    init: str | None = _option(None, "imagenet, a .keras file, or a copycat-train output folder to fine-tune from.")
    strategy: str = _option("auto", "tf.distribute strategy: auto, one_device, mirrored, multi_worker or tpu.")
    peer_timeout: int = _option(10, "--strategy=multi_worker: seconds without a heartbeat from a worker before the "
                                    "others stop the run with how to resume it (1 to 86400; TensorFlow's 10).")
    mixed_precision: bool = _option(False, "float16 (GPU) or bfloat16 (CPU/TPU) compute with float32 weights.")
    augment: str = _option("none", "none, paper, or a comma-separated list of intensity, contrast, crop, flip, blur, "
                                   "noise, rotate, scale, shear, translate (the paper's ten) and lowres (half the "
                                   "images shrunk to 6-12 px and enlarged back).")
    class_balance: str = _option("none", "none, or resample: every epoch a fresh balanced draw of the training labels "
                                         "(rare classes repeated, common ones taking turns), so every stolen label is "
                                         "used without copycat-balance throwing any away; or sqrt: the same with "
                                         "each class's share of an epoch in proportion to the square root of its "
                                         "label count, so the class the oracle gives most answers keeps more weight.")
    seed: int = _option(0, "Seed of every random choice the stage makes.", common=True)
    width: float = _option(1.0, "Multiplier of every layer's size, in (0, 4] (e.g. 0.25 for a small-scale run).")
    dropout: float = _option(0.5, "Dropout rate of the fully connected layers (0 to 0.99).")
    checkpoint_every: int = _option(0, "Steps between checkpoints (0: once per epoch; at most the run's steps).")
    deterministic: bool = _option(True, "The same --seed gives the same weights and metrics on the same hardware and "
                                        "software (op determinism, ordered input); --nodeterministic reads input as it "
                                        "arrives (faster).")
    verbose: int = _option(1, "Keras progress output: 0 none, 1 a progress bar, 2 a line per chunk.")

    RULES = (
        Rule("input_size", "input_size", 32, 1024), Rule("epochs", "epochs", 1, 100_000),
        Rule("batch_size", "batch_size", 1, 65_536), Rule("lr", "lr", 0, 10, above=True),
        Rule("momentum", "momentum", 0, 0.999), Rule("weight_decay", "weight_decay", 0, 1),
        Rule("seed", "seed", 0, MAX_SEED), Rule("width", "width", 0, 4, above=True), Rule("dropout", "dropout", 0, 0.99),
        Rule("checkpoint_every", "checkpoint_every", 0, 10**9), Rule("verbose", "verbose", 0, 2),
        Rule("peer_timeout", "peer_timeout", 1, 86_400),
    )
    WHOLE_NUMBERS = ("input_size", "epochs", "batch_size", "seed", "checkpoint_every", "verbose", "peer_timeout")

    def validate(self) -> None:
        """Refuse a bad option (one line naming the flag, the value and what is allowed) before any work."""
        from copycat_tf.models import MODELS
        from copycat_tf.training.augment_names import parse_augmentation

        if not self.train or not all(isinstance(path, str) and path for path in self.train):
            raise CopycatError(f"--train={self.train}: give one or more lake folders of labeled images")
        if not self.output:
            raise CopycatError("--output is required: the run folder to write")
        if self.model not in MODELS:
            raise CopycatError(f"--model={self.model!r} is unknown; known models: {', '.join(MODELS)}")
        if self.strategy not in STRATEGIES:
            raise CopycatError(f"--strategy={self.strategy!r} is unknown; use one of {', '.join(STRATEGIES)}")
        parse_augmentation(self.augment)
        if self.class_balance not in CLASS_BALANCE_MODES:
            raise CopycatError(f"--class_balance={self.class_balance!r} is unknown; use one of "
                               f"{', '.join(CLASS_BALANCE_MODES)}")
        for name in self.WHOLE_NUMBERS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise CopycatError(f"--{name}={value} is out of range: use a whole number")
        check_rules(self, self.RULES)
