"""copycat's Keras/TensorFlow library: problems, models, input, training, oracles, metrics, reports."""

__version__ = "0.1.0"
