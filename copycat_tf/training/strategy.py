"""Choosing the tf.distribute strategy: the same training code on one CPU, 8 GPUs, many workers or a TPU.

``auto`` picks a TPU when one is configured (TPU_NAME or a Cloud TPU VM), multi-worker when TF_CONFIG
describes a cluster, mirrored when more than one GPU is visible, and one device otherwise.
"""

import json
import os

import tensorflow as tf

from copycat_tf.errors import CopycatError
from copycat_tf.training.config import STRATEGIES as CHOICES  # the names live with the knob


def _tpu():
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=os.environ.get("TPU_NAME", ""))
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def choose_strategy(name: str) -> tf.distribute.Strategy:
    if name not in CHOICES:
        raise CopycatError(f"--strategy={name!r} is unknown; use one of {', '.join(CHOICES)}")
    if name == "auto":
        if os.environ.get("TPU_NAME"):
            name = "tpu"
        elif os.environ.get("TF_CONFIG") and json.loads(os.environ["TF_CONFIG"]).get("cluster"):
            name = "multi_worker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "one_device"
    if name == "tpu":
        try:
            return _tpu()
        except Exception as error:
            raise CopycatError(f"--strategy=tpu: no TPU could be reached ({error}); set TPU_NAME or run on a TPU VM") from None
    if name == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise CopycatError("--strategy=multi_worker needs TF_CONFIG describing the cluster and this worker's task")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes checkpoints, logs and exports (only one worker of a cluster does)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    """Whether the strategy spans a cluster of workers (trained by copycat's own step loop, not Keras's fit)."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
