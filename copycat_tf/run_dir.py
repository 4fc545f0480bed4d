"""Typed contracts of a run: the files of a run folder (:class:`RunDir`) and run names (:class:`RunName`).

A run folder is what ``copycat-train --output=RUN`` writes and ``copycat-evaluate`` adds to:

  RUN/.copycat-stage.json  the stage marker (``copycat_tf.stage_output.MARKER``), written first
  RUN/run_options.json     the options that define the run, written before training
  RUN/checkpoints/         tf.train checkpoints, so a killed run resumes
  RUN/tensorboard/         TensorBoard logs
  RUN/model.keras          the Keras model (for relevance maps and ``--init``)
  RUN/export/              the SavedModel (export contract, itself an oracle); complete once
                           ``export/saved_model.pb`` exists
  RUN/metrics.json         written last by copycat-train: the run is finished
  RUN/evaluation.json      copycat-evaluate's report, which copycat-report reads

A run folder is named in the paper's scheme, ``[BL|CC]-ARCH-DATA-[OL|SL]``, with an optional recipe
after ``.`` (how the labels were stolen, e.g. ``adaptive+transforms``) and an optional query budget
after ``@``: ``CC-VGG-NPDD+PDD-SL@600``, ``CC-VGG-NPDD-SL.random@2000``. Both work for local paths
and ``gs://`` URLs alike, and import no TensorFlow.
"""

import dataclasses
import re

from copycat_tf.errors import CopycatError
from copycat_tf.plan import join
from copycat_tf.stage_output import MARKER

# The file names of a run folder, here and nowhere else.
METRICS = "metrics.json"
EVALUATION = "evaluation.json"
MODEL = "model.keras"
EXPORT = "export"
SAVED_MODEL = "saved_model.pb"  # the file that makes a folder a SavedModel (and an export complete)
RUN_OPTIONS = "run_options.json"
CHECKPOINTS = "checkpoints"
TENSORBOARD = "tensorboard"


MANIFEST = "manifest.json"  # the lake contract's name (tfrecords_schema.manifest.MANIFEST_NAME; a test keeps them
# equal): spelled here because importing tfrecords_schema imports TensorFlow, and building a plan must not


def lake_manifest(folder: str) -> str:
    """``FOLDER/manifest.json``: the manifest of a lake (stage output) folder."""
    return join(folder, MANIFEST)


@dataclasses.dataclass(frozen=True)
class RunDir:
    """A run folder (local path or URL) and the full path of each file it holds; touches no filesystem."""

    path: str

    def __post_init__(self):
        object.__setattr__(self, "path", str(self.path))

    def __str__(self) -> str:
        return self.path

    @property
    def name(self) -> str:
        """The folder's own name (the run name, for folders that copycat plans name)."""
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def run_name(self) -> "RunName":
        """The folder's name parsed; CopycatError when it is not a run name."""
        return RunName.parse(self.name)

    @property
    def marker(self) -> str:
        return join(self.path, MARKER)

    @property
    def run_options(self) -> str:
        return join(self.path, RUN_OPTIONS)

    @property
    def checkpoints(self) -> str:
        return join(self.path, CHECKPOINTS)

    @property
    def tensorboard(self) -> str:
        return join(self.path, TENSORBOARD)

    @property
    def model(self) -> str:
        return join(self.path, MODEL)

    @property
    def export(self) -> str:
        return join(self.path, EXPORT)

    @property
    def saved_model(self) -> str:
        """``export/saved_model.pb``: present once the export is complete."""
        return join(self.path, EXPORT, SAVED_MODEL)

    @property
    def metrics(self) -> str:
        return join(self.path, METRICS)

    @property
    def evaluation(self) -> str:
        return join(self.path, EVALUATION)


KINDS = ("BL", "CC")  # baseline (trained on original labels: the target, the PDD baseline) or copycat
LABELS = ("OL", "SL")  # original or stolen labels
_PARTS = {"arch": r"[A-Za-z0-9]+", "data": r"[A-Za-z0-9+]+", "recipe": r"[a-z0-9+_-]+"}
_NAME = re.compile(rf"(?P<kind>BL|CC)-(?P<arch>{_PARTS['arch']})-(?P<data>{_PARTS['data']})-(?P<labels>OL|SL)"
                   rf"(?:\.(?P<recipe>{_PARTS['recipe']}))?(?:@(?P<budget>\d+))?")
_FORM = "[BL|CC]-ARCH-DATA-[OL|SL][.RECIPE][@BUDGET], e.g. CC-VGG-NPDD+PDD-SL or CC-VGG-NPDD-SL.adaptive+transforms@10000"


@dataclasses.dataclass(frozen=True)
class RunName:
    """A run name in the paper's scheme; ``str()`` formats it, :meth:`parse` reads it back."""

    kind: str  # BL or CC
    arch: str  # VGG, Alex
    data: str  # ODD, PDD, NPDD, NPDD+PDD
    labels: str  # OL or SL
    recipe: str | None = None  # how the labels were stolen, when not the paper's way (e.g. adaptive+transforms)
    budget: int | None = None  # the number of queries (data curves, coverage)

    def __post_init__(self):
        problems = []
        if self.kind not in KINDS:
            problems.append(f"kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.labels not in LABELS:
            problems.append(f"labels {self.labels!r} are not one of {', '.join(LABELS)}")
        for part, pattern in _PARTS.items():
            value = getattr(self, part)
            if (value is not None or part != "recipe") and not (isinstance(value, str) and re.fullmatch(pattern, value)):
                problems.append(f"{part} {value!r} is not {pattern}")
        if self.budget is not None and (isinstance(self.budget, bool) or not isinstance(self.budget, int)
                                        or self.budget < 0):
            problems.append(f"budget {self.budget!r} is not a whole number >= 0")
        if problems:
            raise CopycatError(f"{self._text()!r} is not a run name ({'; '.join(problems)}); a run name is {_FORM}")

    def _text(self) -> str:
        recipe = f".{self.recipe}" if self.recipe is not None else ""
        budget = f"@{self.budget}" if self.budget is not None else ""
        return f"{self.kind}-{self.arch}-{self.data}-{self.labels}{recipe}{budget}"

    def format(self) -> str:
        return self._text()

    def __str__(self) -> str:
        return self._text()

    @classmethod
    def parse(cls, text: str) -> "RunName":
        """The name ``text`` spells; CopycatError naming it when it is not a run name."""
        match = _NAME.fullmatch(text) if isinstance(text, str) else None
        if not match:
            raise CopycatError(f"{text!r} is not a run name; a run name is {_FORM}")
        budget = match["budget"]
        return cls(kind=match["kind"], arch=match["arch"], data=match["data"], labels=match["labels"],
                   recipe=match["recipe"], budget=int(budget) if budget is not None else None)

    @classmethod
    def is_valid(cls, text: str) -> bool:
        try:
            cls.parse(text)
        except CopycatError:
            return False
        return True

    @property
    def base(self) -> "RunName":
        """The same run without its budget (the name a data curve's points share)."""
        return dataclasses.replace(self, budget=None)

    def with_budget(self, budget: int | None) -> "RunName":
        return dataclasses.replace(self, budget=budget)


__all__ = ["CHECKPOINTS", "EVALUATION", "EXPORT", "KINDS", "LABELS", "METRICS", "MODEL", "RUN_OPTIONS", "SAVED_MODEL",
           "TENSORBOARD", "RunDir", "RunName", "lake_manifest"]
