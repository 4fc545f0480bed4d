"""Creating a Beam pipeline for a stage from ``--runner`` and the pass-through pipeline options.

``DirectRunner`` (the default) runs on Beam's in-process FnApiRunner directly: Beam's own
DirectRunner would first try to download the Prism runner binary, which offline machines cannot
do. ``--direct_num_workers=N --direct_running_mode=multi_processing`` use N local processes. Any
other runner (DataflowRunner, FlinkRunner, SparkRunner, ...) is passed to Beam unchanged together
with its options (``--project``, ``--region``, ``--temp_location``, ...). ``DaskRunner`` (or Beam's full
name for it) runs on a Dask cluster through :mod:`beam_pipelines.dask_runner` (``--dask_client_address``
names the scheduler; without it a local cluster is started).
"""

from typing import Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from copycat_tf.errors import CopycatError

DIRECT = "DirectRunner"
DASK_NAMES = ("DaskRunner", "apache_beam.runners.dask.dask_runner.DaskRunner")


def make_pipeline(runner: str, pipeline_args: Sequence[str] = ()) -> beam.Pipeline:
    """A pipeline on ``runner`` with the given Beam options (use it as a context manager)."""
    args = [a for a in pipeline_args if not a.startswith("--runner")]
    if runner == DIRECT:
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        return beam.Pipeline(runner=FnApiRunner(), options=PipelineOptions(args))
    if runner in DASK_NAMES:
        return beam.Pipeline(runner=_dask_runner(), options=PipelineOptions(args))
    return beam.Pipeline(options=PipelineOptions([f"--runner={runner}", *args]))


def beam_option_errors(args: list[str]) -> list[str]:
    """The arguments that are not Beam pipeline options, checked against Beam's own option classes."""
    from apache_beam.options.pipeline_options import _BeamArgumentParser

    try:  # registers --dask_client_address and the other Dask options, where Dask is installed
        import apache_beam.runners.dask.dask_runner  # noqa: F401
    except ImportError:
        pass
    parser = _BeamArgumentParser(allow_abbrev=False)
    classes: dict[str, type] = {}
    pending = list(PipelineOptions.__subclasses__())
    while pending:  # options classes may subclass each other
        cls = pending.pop()
        classes.setdefault(f"{cls.__module__}.{cls.__qualname__}", cls)
        pending.extend(cls.__subclasses__())
    for cls in classes.values():
        try:
            cls._add_argparse_args(parser)  # noqa: SLF001 (Beam's own way to list its options)
        except Exception:  # an option declared twice by two classes
            continue
    try:
        _, unknown = parser.parse_known_args(args)
    except SystemExit:
        return [" ".join(args)]
    return unknown


def _dask_runner():
    try:
        import dask.distributed  # noqa: F401
    except ImportError:
        raise CopycatError("--runner=DaskRunner needs Dask: pip install 'apache-beam[dask]' "
                           "(the versions in constraints.txt)") from None
    from beam_pipelines.dask_runner import DaskRunner

    return DaskRunner()
