"""Opening an oracle from ``--oracle=PATH_OR_URL`` and its options (a picklable spec for Beam workers)."""

import dataclasses

from copycat_tf.oracles.base import Oracle, OracleError

_MODEL_FILESYSTEMS = ("gs", "s3", "hdfs", "file")  # where TensorFlow can read a SavedModel from


@dataclasses.dataclass(frozen=True)
class OracleSpec:
    """Everything needed to open the same oracle again in another process."""

    target: str  # SavedModel folder or http(s) URL
    output: str | None = None
    signature: str = "serving_default"
    value_range: str = "0-255"
    input_size: int | None = None
    num_classes: int | None = None
    timeout_s: float = 30.0
    max_retries: int = 5
    concurrency: int = 4
    queries_per_second: float | None = None
    api_key_env: str = "COPYCAT_ORACLE_API_KEY"
    verify_tls: bool = True

    @property
    def is_rest(self) -> bool:
        return self.target.startswith(("http://", "https://"))


def open_oracle(spec: OracleSpec) -> Oracle:
    """A SavedModel oracle for a folder, a REST oracle for an http(s) URL."""
    if spec.is_rest:
        from copycat_tf.oracles.rest import RestOracle

        return RestOracle(
            spec.target, output=spec.output, timeout_s=spec.timeout_s, max_retries=spec.max_retries,
            concurrency=spec.concurrency, queries_per_second=spec.queries_per_second,
            api_key_env=spec.api_key_env, verify_tls=spec.verify_tls, num_classes=spec.num_classes,
        )
    scheme = spec.target.split("://")[0] if "://" in spec.target else ""
    if scheme and scheme not in _MODEL_FILESYSTEMS:
        raise OracleError(f"--oracle={spec.target!r} is neither a SavedModel folder nor an http(s) URL")
    from copycat_tf.oracles.saved_model import SavedModelOracle

    oracle = SavedModelOracle(
        spec.target, signature=spec.signature, output=spec.output, value_range=spec.value_range,
        input_size=spec.input_size,
    )
    if oracle.num_classes is None:
        oracle.num_classes = spec.num_classes
    return oracle
