"""Opening an oracle from ``--oracle=PATH_OR_URL`` and its options (a picklable spec for Beam workers).

A URL may carry credentials (``https://user:pass@host/...``, ``?api_key=...``). The spec keeps them
out of sight: ``target`` is the scrubbed URL (``***`` for every secret), which is what manifests,
logs, ``repr`` and ``dataclasses.asdict`` see; the URL as given travels in ``credentials``, a value
that shows itself as ``***`` everywhere (str, repr, JSON via ``default=str``) and is only revealed to
open the client. Prefer the API key in the environment (``--oracle_api_key_env``) all the same.
"""

import dataclasses

from copycat_tf.config_checks import option, required
from copycat_tf.oracles.base import HIDDEN, Oracle, OracleError, scrub_url

_MODEL_FILESYSTEMS = ("gs", "s3", "hdfs", "file")  # where TensorFlow can read a SavedModel from


class Secret:
    """A string that never shows itself (``***``); ``reveal()`` gives it back."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return HIDDEN

    __str__ = __repr__

    def __eq__(self, other) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __deepcopy__(self, memo):
        return self

    def __copy__(self):
        return self

    def __reduce__(self):  # pickled as is: a Beam worker needs it to reach the oracle
        return (Secret, (self._value,))


@dataclasses.dataclass(frozen=True)
class OracleSpec:
    """Everything needed to open the same oracle again in another process."""

    # Each field's help and flag name: copycat-steal-labels generates its --oracle* flags from them.
    target: str = required("The target: a SavedModel folder, or the URL of a TF-Serving-style :predict endpoint.",
                           flag="oracle")  # scrubbed: secrets read ***
    output: str | None = option(None, "Which output of the oracle to read when it has several.", flag="oracle_output")
    signature: str = option("serving_default", "SavedModel signature to call.", flag="oracle_signature")
    value_range: str = option("0-255", "Value range of float32 image inputs of a tensor-input SavedModel (uint8 "
                                       "inputs are always 0-255).", flag="oracle_value_range",
                              choices=("0-255", "0-1", "-1-1"))
    input_size: int | None = option(None, "Side in pixels for a tensor-input SavedModel that accepts any size.",
                                    flag="oracle_input_size")
    num_classes: int | None = option(None, "Number of classes, when the oracle's output does not tell (class ids "
                                           "only).", flag="num_classes")
    timeout_s: float = option(30.0, "REST: seconds before a request is given up and retried.", flag="oracle_timeout")
    max_retries: int = option(5, "REST: retries after 429, 5xx, timeouts and connection errors.",
                              flag="oracle_retries")
    concurrency: int = option(4, "REST: requests in flight at most, per worker process.", flag="oracle_concurrency")
    queries_per_second: float | None = option(None, "REST: images sent per second at most, per worker process.",
                                              flag="oracle_qps")
    api_key_env: str = option("COPYCAT_ORACLE_API_KEY", "REST: environment variable holding the API key.",
                              flag="oracle_api_key_env")
    verify_tls: bool = option(True, "REST: verify the server's TLS certificate.", flag="oracle_verify_tls")
    credentials: Secret | None = dataclasses.field(default=None, repr=False, compare=False,
                                                   metadata={"flag": None})  # the URL as given; no flag

    def __post_init__(self):
        target = str(self.target)
        shown = scrub_url(target)
        if shown != target:  # the URL carries credentials: keep it hidden, show the scrubbed one
            object.__setattr__(self, "credentials", Secret(target))
            object.__setattr__(self, "target", shown)
        elif not (isinstance(self.credentials, Secret) and scrub_url(self.credentials.reveal()) == target):
            object.__setattr__(self, "credentials", None)  # none, or for another URL (e.g. "***" from a manifest)

    @property
    def url(self) -> str:
        """The target as given, credentials included: only for opening the client."""
        return self.credentials.reveal() if self.credentials else self.target

    @property
    def is_rest(self) -> bool:
        return self.target.startswith(("http://", "https://"))


def open_oracle(spec: OracleSpec) -> Oracle:
    """A SavedModel oracle for a folder, a REST oracle for an http(s) URL."""
    if spec.is_rest:
        from copycat_tf.oracles.rest import RestOracle

        return RestOracle(
            spec.url, output=spec.output, timeout_s=spec.timeout_s, max_retries=spec.max_retries,
            concurrency=spec.concurrency, queries_per_second=spec.queries_per_second,
            api_key_env=spec.api_key_env, verify_tls=spec.verify_tls, num_classes=spec.num_classes,
        )
    scheme = spec.target.split("://")[0] if "://" in spec.target else ""
    if scheme and scheme not in _MODEL_FILESYSTEMS:
        raise OracleError(f"--oracle={spec.target!r} is neither a SavedModel folder nor an http(s) URL")
    from copycat_tf.oracles.saved_model import SavedModelOracle

    oracle = SavedModelOracle(
        spec.url, signature=spec.signature, output=spec.output, value_range=spec.value_range,
        input_size=spec.input_size,
    )
    if oracle.num_classes is None:
        oracle.num_classes = spec.num_classes
    return oracle
