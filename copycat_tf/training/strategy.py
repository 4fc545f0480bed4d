"""Choosing the tf.distribute strategy: the same training code on one CPU, 8 GPUs, many workers or a TPU.

``auto`` picks a TPU when one is configured (TPU_NAME or a Cloud TPU VM), multi-worker when TF_CONFIG
describes a cluster, mirrored when more than one GPU is visible, and one device otherwise.
"""

import json
import logging
import os

import tensorflow as tf

from copycat_tf.errors import CopycatError
from copycat_tf.training.config import STRATEGIES as CHOICES  # the names live with the knob

log = logging.getLogger("copycat.train")


def _tpu():
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=os.environ.get("TPU_NAME", ""))
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def coordination_options(cluster_spec: dict, task_type: str, peer_timeout: int) -> dict | None:
    """The coordination service a worker of ``cluster_spec`` joins: the one MultiWorkerMirroredStrategy would
    configure, with peers declared dead after ``peer_timeout`` seconds without a heartbeat (TensorFlow's own
    default is 10 s). None for a task the service does not coordinate (an evaluator, a parameter server)."""
    from tensorflow.python.distribute import multi_worker_util  # the leader the strategy itself would name

    jobs = [job for job in ("chief", "worker") if job in cluster_spec]
    if task_type not in jobs:
        return None
    return {"service_type": "standalone",
            "service_leader": multi_worker_util.coordination_leader(tf.train.ClusterSpec(cluster_spec)),
            "heartbeat_timeout_in_ms": int(peer_timeout * 1000),
            "coordinated_jobs": [(job, len(cluster_spec[job])) for job in jobs]}


def _multi_worker(peer_timeout: int) -> tf.distribute.Strategy:
    # Configured before the strategy starts the service; the strategy then keeps this configuration. TensorFlow
    # has no public setter for the heartbeat timeout, hence the eager context's own method.
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.eager import context

    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    options = coordination_options(resolver.cluster_spec().as_dict(), resolver.task_type, peer_timeout)
    if options is not None and context.context().coordination_service is None:
        jobs = [coordination_config_pb2.CoordinatedJob(name=job, num_tasks=count)
                for job, count in options.pop("coordinated_jobs")]
        context.context().configure_coordination_service(coordinated_jobs=jobs, **options)
    strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    service = context.context().coordination_service
    if service is not None:
        log.info("a worker silent for %g s counts as stopped", service.heartbeat_timeout_in_ms / 1000)
    return strategy


def choose_strategy(name: str, peer_timeout: int = 10) -> tf.distribute.Strategy:
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
        return _multi_worker(peer_timeout)
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
