"""The options of ``copycat-serve``: each knob written once, with its default and help (no TensorFlow here)."""

import dataclasses
import os

from copycat_tf.config_checks import Rule, check_rules, required
from copycat_tf.config_checks import option as _option
from copycat_tf.errors import CopycatError
from copycat_tf.run_dir import SAVED_MODEL


def not_a_saved_model(path: str) -> CopycatError:
    """The one refusal of a --model folder that holds no SavedModel (before TensorFlow, or on load)."""
    return CopycatError(f"--model={path} is not a SavedModel (no {SAVED_MODEL}): give the export folder of a "
                        "copycat-train run (RUN/export)")


@dataclasses.dataclass
class ServeConfig:
    model: str = required("The SavedModel to serve (a copycat-train export, or any model meeting the oracle "
                          "contract: encoded images in, probabilities and class_id out).")
    model_name: str = _option("model", "The name in the URL: POST /v1/models/NAME:predict.")
    host: str = _option("127.0.0.1", "Address to listen on (loopback by default; 0.0.0.0 for every interface).")
    port: int = _option(8501, "Port to listen on (TF Serving's REST port by default; 0: any free port).")
    api_keys: str | None = _option(None, "File of API keys, one 'name:secret' per line (# comments); a request must "
                                         "send 'Authorization: Bearer SECRET'. Unset: no key needed (logged as "
                                         "'anonymous').")
    query_log: str = _option("serve_queries.jsonl", "Where every answered query is appended, one JSON line per "
                                                    "image (time, key, image digest, answer, what the defenses did).")
    ready_file: str | None = _option(None, "Once listening, write the predict URL to this file (for scripts and "
                                           "experiment plans that start the server and wait for it).")
    max_batch: int = _option(64, "Images the model answers in one call at most (concurrent requests are batched).")
    max_wait_ms: float = _option(5.0, "Milliseconds a batch waits for more requests before the model runs.")
    max_images: int = _option(256, "Images one request may carry at most (more: HTTP 413).")
    quota: int | None = _option(None, "Defense: images each key may send per --quota_window_s (more: HTTP 429 "
                                      "with Retry-After until the window ends).")
    quota_window_s: float = _option(86400.0, "Length of a quota window, in seconds.")
    rate: float | None = _option(None, "Defense: images per second each key may send (a token bucket holding one "
                                       "second's worth; more: HTTP 429 with Retry-After).")
    top1: bool = _option(False, "Defense: answer only the class id, never the probabilities.")
    round_to: int | None = _option(None, "Defense: round the probabilities to this many decimals.")
    watermark_key: str | None = _option(None, "Defense: file holding a secret; a keyed hash of each image picks "
                                              "--watermark_share of the queries, which get a keyed wrong label (a "
                                              "DAWN-style watermark that a copy learns).")
    watermark_share: float = _option(0.005, "Share of queries the watermark answers wrongly.")
    watermark_keep: str | None = _option(None, "Folder where the images the watermark answered wrongly are kept "
                                               "(KEY/SHA256.img), the evidence copycat-verify-ownership tests a "
                                               "suspect model on.")
    misinformation: float | None = _option(None, "Defense (adaptive misinformation): queries whose "
                                                 "out-of-distribution score, 1 - the largest probability, is above "
                                                 "this get the least likely class instead.")
    prada_delta: float | None = _option(None, "Defense (PRADA-style detection): flag a key once the Shapiro-Wilk W "
                                              "of the distances between its successive queries falls below this "
                                              "(e.g. 0.9).")
    prada_min_queries: int = _option(100, "Distances a key's record holds before the detection tests it.")
    prada_block: bool = _option(False, "Refuse a flagged key's later requests (HTTP 403); off: flag and log only.")

    RULES = (
        Rule("port", "port", 0, 65535), Rule("max_batch", "max_batch", 1, 65536),
        Rule("max_wait_ms", "max_wait_ms", 0, 60_000), Rule("max_images", "max_images", 1, 1_000_000),
        Rule("quota", "quota", 1, 10**12, optional=True), Rule("quota_window_s", "quota_window_s", 0, 10**9, above=True),
        Rule("rate", "rate", 0, 10**9, above=True, optional=True), Rule("round_to", "round_to", 0, 8, optional=True),
        Rule("watermark_share", "watermark_share", 0, 0.5, above=True),
        Rule("misinformation", "misinformation", 0, 0.999, optional=True),
        Rule("prada_delta", "prada_delta", 0, 0.9999, above=True, optional=True),
        Rule("prada_min_queries", "prada_min_queries", 3, 10**9),
    )

    def validate(self) -> None:
        """Refuse a bad option (one line naming the flag) before the model is loaded."""
        if not self.model:
            raise CopycatError("--model is required: the SavedModel folder to serve")
        if not self.model_name or any(c in self.model_name for c in "/:? "):
            raise CopycatError(f"--model_name={self.model_name!r}: give a name without '/', ':', '?' or spaces")
        for name in ("port", "max_batch", "max_images", "prada_min_queries"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise CopycatError(f"--{name}={value} is out of range: use a whole number")
        check_rules(self, self.RULES)

    def check_model_folder(self) -> None:
        """Refuse a local --model folder without a SavedModel before TensorFlow starts (a remote one, and the
        model's signature, are checked when it loads)."""
        if "://" not in self.model and not os.path.exists(os.path.join(self.model, SAVED_MODEL)):
            raise not_a_saved_model(self.model)
