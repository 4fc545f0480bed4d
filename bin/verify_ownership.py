"""copycat-verify-ownership: test whether a suspect model learned copycat-serve's keyed watermark (a p-value).

    copycat-verify-ownership --suspect=runs/CC-VGG-NPDD-SL/export --reference=runs/BL-VGG-ODD-OL/export \
        --key=watermark.key --evidence=evidence/mallory --controls=runs/independent/export --output=ownership.json
"""

from absl import flags

from copycat_bin import app
from copycat_tf.serving.ownership import OwnershipConfig  # no TensorFlow: defining and checking flags stays fast

app.define_config_flags(OwnershipConfig)
FLAGS = flags.FLAGS


def main(argv: list[str]) -> int:
    app.require("suspect", "reference", "key", "evidence", positional=argv)
    from copycat_tf.serving.ownership import verify

    config = app.config_from_flags(OwnershipConfig)
    report = verify(config)
    for role, result in report["models"].items():
        print(f"{role}: the watermark label on {result['watermark_label']} of {result['evidence']} evidence images "
              f"(an independent model: about {result['expected_if_independent']:g}); p = {result['p_value']:.3g}")
    verdict = "carries the watermark (a copy)" if report["copied"] else "does not show the watermark"
    print(f"the suspect {verdict} at alpha {report['alpha']:g} ({report['chosen_by_key']} images chosen by the key)")
    return 0


def run() -> None:
    app.run(main)


if __name__ == "__main__":
    run()
