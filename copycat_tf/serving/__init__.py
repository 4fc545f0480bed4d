"""copycat-serve: a model behind extraction defenses, as a REST endpoint an API owner could deploy.

The server speaks TensorFlow Serving's predict protocol (so copycat's own REST oracle client attacks
it unchanged), batches concurrent requests into one model call, takes API keys from a file, logs
every query per key, and puts a chain of defenses between the model and the caller
(``copycat_tf.serving.defenses``).
"""
