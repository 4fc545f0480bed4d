"""Training copycats, targets and baselines from lake folders (tf.data input, tf.distribute, resume, export).

``TrainConfig`` comes without TensorFlow (``copycat_tf.training.config``); ``train`` and
``paper_schedule`` load it on first use, so a binary can define its flags and refuse a bad one fast.
"""

from copycat_tf.training.config import TrainConfig


def __getattr__(name: str):
    if name in ("train", "paper_schedule"):
        from copycat_tf.training import loop

        return getattr(loop, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["TrainConfig", "paper_schedule", "train"]
