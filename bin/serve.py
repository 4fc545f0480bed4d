"""copycat-serve: serve a model behind extraction defenses, as a TF-Serving-style REST endpoint.

    copycat-serve --model=runs/BL-VGG-ODD-OL/export --api_keys=keys.txt --quota=10000 --top1
    copycat-steal-labels --oracle=http://127.0.0.1:8501/v1/models/model:predict ...   # the attack, unchanged
"""

from absl import flags

from copycat_bin import app
from copycat_tf.serving.config import ServeConfig  # no TensorFlow: defining and checking flags stays fast

app.define_config_flags(ServeConfig)
FLAGS = flags.FLAGS


def main(argv: list[str]) -> int:
    app.require("model", positional=argv)
    config = app.config_from_flags(ServeConfig)
    config.validate()
    config.check_model_folder()  # both before TensorFlow starts: a bad option costs no start-up
    from copycat_tf.serving.server import serve

    serve(config, ready=lambda url: print(f"serving {config.model} at {url} (query log: {config.query_log})",
                                          flush=True))
    return 0


def run() -> None:
    app.run(main)


if __name__ == "__main__":
    run()
