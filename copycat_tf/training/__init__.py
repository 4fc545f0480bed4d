"""Training copycats, targets and baselines from lake folders (tf.data input, tf.distribute, resume, export)."""

from copycat_tf.training.loop import TrainConfig, paper_schedule, train

__all__ = ["TrainConfig", "paper_schedule", "train"]
