"""Creating a Beam pipeline for a stage from ``--runner`` and the pass-through pipeline options.

``DirectRunner`` (the default) runs on Beam's in-process FnApiRunner directly: Beam's own
DirectRunner would first try to download the Prism runner binary, which offline machines cannot
do. ``--direct_num_workers=N --direct_running_mode=multi_processing`` use N local processes. Any
other runner (DataflowRunner, FlinkRunner, SparkRunner, ...) is passed to Beam unchanged together
with its options (``--project``, ``--region``, ``--temp_location``, ...).
"""

from typing import Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

DIRECT = "DirectRunner"


def make_pipeline(runner: str, pipeline_args: Sequence[str] = ()) -> beam.Pipeline:
    """A pipeline on ``runner`` with the given Beam options (use it as a context manager)."""
    args = [a for a in pipeline_args if not a.startswith("--runner")]
    if runner == DIRECT:
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        return beam.Pipeline(runner=FnApiRunner(), options=PipelineOptions(args))
    return beam.Pipeline(options=PipelineOptions([f"--runner={runner}", *args]))
