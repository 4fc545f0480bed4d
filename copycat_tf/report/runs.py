"""Finding runs and what they hold: names in the paper's scheme, evaluations, metrics, stolen-label lineage.

A run is a folder named ``[BL|CC]-[Arch]-[Dataset]-[OL|SL]`` (an optional ``.VARIANT`` names how the
labels were stolen, e.g. ``.adaptive+transforms``; an optional ``@N`` suffix gives the number of
queries, for data curves; ``copycat_tf.run_dir.RunName`` reads and writes these names), holding
``metrics.json`` (copycat-train) and ``evaluation.json`` (copycat-evaluate). Its problem is read from the
evaluation's test-folder manifest.
"""

import dataclasses
import json
import os

from copycat_tf.errors import CopycatError
from copycat_tf.run_dir import RunDir, RunName
from tfrecords_schema import read_manifest
from tfrecords_schema.errors import LakeError
from tfrecords_schema.extras import ProblemExtra


@dataclasses.dataclass
class Run:
    path: str
    name: str
    kind: str  # BL or CC
    arch: str  # VGG, Alex
    data: str  # ODD, PDD, NPDD, NPDD+PDD
    labels: str  # OL or SL
    variant: str | None  # how the labels were stolen, when not the paper's way (e.g. adaptive)
    queries: int | None
    evaluation: dict | None
    metrics: dict | None
    problem: str | None

    @property
    def run_name(self) -> RunName:
        return RunName.parse(self.name)

    @property
    def base_name(self) -> str:
        """The name without its budget (``@N``): the name a data curve's points share."""
        return str(self.run_name.base)

    @property
    def macro_f1(self) -> float | None:
        return self.evaluation.get("macro_f1") if self.evaluation else None


def _load(path: str) -> dict | None:
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return json.load(handle)


def _problem(evaluation: dict | None) -> str | None:
    if not evaluation or not evaluation.get("test"):
        return None
    try:
        return ProblemExtra.from_dict(read_manifest(evaluation["test"]).extra).problem or None
    except (LakeError, OSError):
        return None


def read_run(path: str) -> Run | None:
    name = os.path.basename(os.path.normpath(path))
    try:
        parsed = RunName.parse(name)
    except CopycatError:
        return None
    files = RunDir(path)
    evaluation = _load(files.evaluation)
    return Run(path=path, name=name, kind=parsed.kind, arch=parsed.arch, data=parsed.data, labels=parsed.labels,
               variant=parsed.recipe, queries=parsed.budget, evaluation=evaluation, metrics=_load(files.metrics),
               problem=_problem(evaluation))


def find_runs(folders: list[str]) -> list[Run]:
    """Runs in the given folders: each folder is a run, or holds runs (one level down, or a problem level more)."""
    runs = []
    for folder in folders:
        candidates = [folder]
        for root, dirs, _ in os.walk(folder):
            if root.count(os.sep) - folder.rstrip(os.sep).count(os.sep) < 2:
                candidates += [os.path.join(root, d) for d in sorted(dirs)]
        for candidate in candidates:
            run = read_run(candidate)
            if run and all(r.path != run.path for r in runs):
                runs.append(run)
    return runs


def lineage(run: Run, stage: str) -> list[tuple[str, dict]]:
    """(folder, manifest) of each output of ``stage`` somewhere in this run's training lineage."""
    found = []

    def walk(folder: str, manifest: dict):
        if manifest.get("stage") == stage and all(f != folder for f, _ in found):
            found.append((folder, manifest))
        for entry in manifest.get("inputs", []):
            walk(entry.get("folder", ""), entry.get("manifest", {}))

    for folder in (run.metrics or {}).get("options", {}).get("train", []):
        try:
            walk(folder, read_manifest(folder).to_dict())
        except (LakeError, OSError):
            continue
    return found


def stolen_folders(run: Run) -> list[tuple[str, dict]]:
    """(folder, manifest) of each steal_labels output somewhere in this run's training lineage."""
    return lineage(run, "steal_labels")


def from_npdd(manifest: dict) -> bool:
    """Whether a steal_labels folder labeled natural images (build_npdd upstream, maybe via pool_transforms)."""
    return any(entry.get("manifest", {}).get("stage") == "build_npdd" or from_npdd(entry.get("manifest", {}))
               for entry in manifest.get("inputs", []))
