"""Oracle clients: the black box under attack, as "encoded images in, top-1 class ids out"."""

from copycat_tf.oracles.base import Oracle, OracleError, top1
from copycat_tf.oracles.factory import OracleSpec, open_oracle

__all__ = ["Oracle", "OracleError", "OracleSpec", "open_oracle", "top1"]
