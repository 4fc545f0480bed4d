"""The registry of stages: every step a plan may call, with its summary, binary and options.

A stage is one entry: a name (``build-npdd``), a one-line summary, the module of its binary
(``copycat_bin.build_npdd``, run as ``python -m``) and the Config dataclass that holds its knobs (each
field with its default and help text; the binary generates its flags from it). Plans
(``copycat_tf.plan``) accept exactly the registered names and build each call's command from here,
so a new stage is one :func:`register` call: no plan, executor or binary list to edit. Entries name
their modules as text and import nothing, so planning stays free of TensorFlow and Beam.
"""

import dataclasses
import importlib

from copycat_tf.errors import CopycatError


# Seconds per process, imported once per plan by the process that steps fork from (Beam through beam_pipelines,
# the one package that imports it).
HEAVY_IMPORTS = ("numpy", "tensorflow", "keras", "beam_pipelines.runner")


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str
    summary: str
    binary: str  # module run as ``python -m BINARY ARGS``
    config: str | None = None  # "module:Class" of the options; None: the binary's knobs are a config file
    writes: tuple[str, ...] = ("output",)  # the flags naming what a call writes (plans run in parallel by them)
    after_all: bool = False  # reads more than its flags name: in a parallel plan it waits for every earlier step
    imports: tuple[str, ...] = HEAVY_IMPORTS  # what the warm process that plan steps fork from imports for it
    # Folders (flag, the flags that decide their content) that a call builds if missing and then only reads: in a
    # parallel plan, later calls that name one with the same content wait for its first builder, not for each other.
    shares: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def config_class(self) -> type | None:
        """The Config dataclass (imported now: its module is light by rule)."""
        if self.config is None:
            return None
        module, name = self.config.split(":")
        return getattr(importlib.import_module(module), name)


_REGISTRY: dict[str, Stage] = {}


def register(stage: Stage) -> Stage:
    """Add ``stage``; a name registered twice is refused (one name, one stage)."""
    if stage.name in _REGISTRY and _REGISTRY[stage.name] != stage:
        raise CopycatError(f"stage {stage.name!r} is already registered")
    _REGISTRY[stage.name] = stage
    return stage


def unregister(name: str) -> None:
    """Remove a stage (tests that register a toy stage clean up with this)."""
    _REGISTRY.pop(name, None)


def get(name: str) -> Stage:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise CopycatError(f"unknown stage {name!r}; known: {', '.join(names())}") from None


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


for _stage in (
    Stage("prepare-problem", "a problem's ODD, PDD and TDD as labeled lake folders", "copycat_bin.prepare_problem",
          "beam_pipelines.prepare_problem_config:PrepareProblemConfig"),
    Stage("build-npdd", "natural random images, deduplicated and sharded into the NPDD", "copycat_bin.build_npdd",
          "beam_pipelines.build_npdd_config:BuildNpddConfig"),
    Stage("steal-labels", "images labeled by the black-box oracle (hard labels), within a query budget",
          "copycat_bin.steal_labels", "beam_pipelines.steal_labels_config:StealLabelsConfig",
          writes=("output", "ledger", "pool", "adaptive_cache"),  # the last three may be shared between runs
          shares=(("pool", ("images", "pool_transforms", "seed")),  # the transformed pool, and its adaptive index
                  ("adaptive_cache", ("images", "pool_transforms", "seed", "adaptive_input_size")))),
    Stage("balance", "the same number of labeled images per class", "copycat_bin.balance",
          "beam_pipelines.balance_config:BalanceConfig"),
    Stage("train", "a target or a copycat trained and exported", "copycat_bin.train",
          "copycat_tf.training.config:TrainConfig"),
    Stage("ensemble", "copycats trained on the same labels averaged into one exported model", "copycat_bin.ensemble",
          "copycat_tf.ensemble:EnsembleConfig"),
    Stage("evaluate", "macro scores of models on a test folder, and their agreement with the target",
          "copycat_bin.evaluate", "copycat_tf.evaluation_config:EvaluateConfig"),
    Stage("relevance", "relevance maps of target and copycats, as grids and similarities", "copycat_bin.relevance",
          "copycat_tf.relevance_config:RelevanceConfig"),
    Stage("report", "the paper's tables and figures for whatever runs exist", "copycat_bin.report",
          "copycat_tf.report_config:ReportConfig", after_all=True),  # e.g. the defenses' ownership files
    Stage("demo", "the whole attack on the embedded default, offline", "copycat_bin.demo", "copycat_tf.demo:DemoConfig"),
    Stage("serve", "a model behind extraction defenses, served over HTTP until stopped (for API owners)",
          "copycat_bin.serve", "copycat_tf.serving.config:ServeConfig"),
    Stage("verify-ownership", "whether a suspect model learned a served model's keyed watermark, as a p-value",
          "copycat_bin.verify_ownership", "copycat_tf.serving.ownership:OwnershipConfig"),
    Stage("experiment", "a paper experiment (or coverage) from a JSON config, as a resumable plan",
          "copycat_bin.experiment"),
):
    register(_stage)
