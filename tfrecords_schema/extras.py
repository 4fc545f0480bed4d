"""The stage-specific part of ``manifest.json`` (its ``extra`` object), one typed class per stage.

Each stage builds its extras as one of these classes and every reader reads them through the same class, so
a key is spelled once: a misspelt attribute fails where it is written, not as a silent ``None`` in a report
three stages later. The JSON layout is unchanged (``to_dict`` writes the keys the lake has always had), and
reading is lenient: a key an older manifest lacks takes its default (so writing such a view back adds the
defaults), and a key this copycat does not know is kept as it was (``other``).
"""

import dataclasses
from typing import Any, ClassVar


@dataclasses.dataclass(kw_only=True)
class Extra:
    """What every folder of shards records: the number of records in each shard, in shard order."""

    shard_lengths: list[int] = dataclasses.field(default_factory=list)
    other: dict[str, Any] = dataclasses.field(default_factory=dict)  # keys this class does not name, kept as read
    OPTIONAL: ClassVar[tuple[str, ...]] = ()  # written only when set (not None)

    def to_dict(self) -> dict[str, Any]:
        """The ``extra`` object as the lake stores it."""
        out = dict(self.other)
        for field in dataclasses.fields(self):
            if field.name == "other":
                continue
            value = getattr(self, field.name)
            if value is None and field.name in self.OPTIONAL:
                continue
            out[field.name] = value
        return out

    @classmethod
    def from_dict(cls, extra: dict[str, Any] | None) -> "Extra":
        """The typed view of a manifest's ``extra`` (missing keys take their defaults)."""
        extra = dict(extra or {})
        names = {f.name for f in dataclasses.fields(cls)} - {"other"}
        known = {name: extra.pop(name) for name in list(extra) if name in names}
        return cls(**known, other=extra)


@dataclasses.dataclass(kw_only=True)
class NpddExtra(Extra):
    """copycat-build-npdd: why files were rejected, what each source gave, and how the pHash was computed."""

    rejected_by_reason: dict[str, int] = dataclasses.field(default_factory=dict)
    per_source: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    num_shards: int | None = None
    phash: str = ""
    OPTIONAL: ClassVar[tuple[str, ...]] = ("num_shards",)


@dataclasses.dataclass(kw_only=True)
class LabeledExtra(Extra):
    """A folder of labeled images: the class count, the class names and how many records each class has."""

    num_classes: int | None = None
    class_names: list[str] = dataclasses.field(default_factory=list)
    label_histogram: list[int] = dataclasses.field(default_factory=list)
    OPTIONAL: ClassVar[tuple[str, ...]] = ("num_classes",)

    def names(self) -> list[str]:
        """The class names, or the class ids as strings where the folder does not name them."""
        count = self.num_classes if self.num_classes is not None else len(self.label_histogram)
        return list(self.class_names or []) or [str(c) for c in range(count or 0)]


@dataclasses.dataclass(kw_only=True)
class ProblemExtra(LabeledExtra):
    """copycat-prepare-problem: one split (odd, pdd or tdd) of a problem."""

    problem: str = ""
    description: str = ""
    split: str = ""
    split_meaning: str = ""
    rejected_by_reason: dict[str, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(kw_only=True)
class StolenExtra(LabeledExtra):
    """copycat-steal-labels: what the oracle answered, what it cost, and what the attacker knew.

    ``strategy_report`` is stored under the strategy's own name (``"adaptive": {...}``), as strategies have always
    written it; ``pool`` and ``cost`` only when the run used pool transforms or a price."""

    classes_never_seen: list[int] = dataclasses.field(default_factory=list)
    coverage: dict[str, Any] = dataclasses.field(default_factory=dict)
    strategy: str = "random"
    oracle: Any = None
    ledger: str = ""
    queries_total: int = 0
    knowledge: dict[str, Any] = dataclasses.field(default_factory=dict)
    strategy_report: dict[str, Any] | None = None
    pool: dict[str, Any] | None = None
    cost: dict[str, Any] | None = None
    OPTIONAL: ClassVar[tuple[str, ...]] = ("num_classes", "pool", "cost")

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        report = out.pop("strategy_report")
        if report is not None:
            out[self.strategy] = report
        return out

    @classmethod
    def from_dict(cls, extra: dict[str, Any] | None) -> "StolenExtra":
        extra = dict(extra or {})
        strategy = extra.get("strategy", "random")
        report = extra.pop(strategy, None) if isinstance(extra.get(strategy), dict) else None
        typed = super().from_dict(extra)
        typed.strategy_report = report
        return typed


@dataclasses.dataclass(kw_only=True)
class BalancedExtra(LabeledExtra):
    """copycat-balance: the class histogram before and after, and how often each class was replicated."""

    label_histogram_before: list[int] = dataclasses.field(default_factory=list)
    replication_factor: list[float] = dataclasses.field(default_factory=list)
    oracle: Any = None  # carried over from the stolen folder, when it names its oracle
    OPTIONAL: ClassVar[tuple[str, ...]] = ("num_classes", "oracle")


# The extras class of each stage that writes a manifest (pool_transforms and the adaptive variant folders write
# shard lengths only).
BY_STAGE: dict[str, type[Extra]] = {
    "build_npdd": NpddExtra,
    "prepare_problem": ProblemExtra,
    "pool_transforms": Extra,
    "adaptive_variants": Extra,
    "steal_labels": StolenExtra,
    "balance": BalancedExtra,
}


def extra_of(stage: str, extra: dict[str, Any] | None) -> Extra:
    """The typed extras of a manifest written by ``stage`` (the plain ``Extra`` for a stage not listed)."""
    return BY_STAGE.get(stage, Extra).from_dict(extra)


def labeled_extra(extra: dict[str, Any] | None) -> LabeledExtra:
    """The class facts of any labeled folder (a problem split, stolen or balanced labels)."""
    return LabeledExtra.from_dict(extra)
