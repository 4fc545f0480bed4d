"""Range checks of a stage's numeric options, declared once beside its Config and run before any work.

A stage's Config lists a :class:`Rule` per numeric field (``RULES``); ``check_rules`` refuses the first
value out of range with one :class:`CopycatError` that names the flag, the value and the allowed range.
Tests generate out-of-range values from the same rules, so every declared bound is exercised.
"""

import dataclasses
import math
from typing import Any, Iterable

from copycat_tf.errors import CopycatError


def option(default: Any, help_text: str, **extra: Any) -> Any:
    """A Config field with its default and its help text: binaries generate their absl flags from these
    (``copycat_bin.app.define_config_flags``), so a knob is written once. ``common=True`` marks the
    fields every binary defines itself (--output, --seed)."""
    return dataclasses.field(default=default, metadata={"help": help_text, **extra})


def required(help_text: str, **extra: Any) -> Any:
    """A Config field without a default (the binary refuses to run without its flag)."""
    return dataclasses.field(metadata={"help": help_text, **extra})


@dataclasses.dataclass(frozen=True)
class Rule:
    """``field`` (dotted for nested configs) must lie in [low, high]; ``above`` makes the low bound exclusive."""

    field: str
    flag: str
    low: float | None = None
    high: float | None = None
    above: bool = False  # low is exclusive: value > low
    optional: bool = False  # None is allowed (the option is unset)

    def allowed(self) -> str:
        if self.low is None and self.high is None:
            return "a finite number"
        if self.high is None:
            return f"{'>' if self.above else '≥'} {self.low:g}"
        if self.low is None:
            return f"≤ {self.high:g}"
        return f"in {'(' if self.above else '['}{self.low:g}, {self.high:g}]"

    def violated_by(self, value: Any) -> bool:
        if value is None:
            return not self.optional
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return True
        if isinstance(value, float) and not math.isfinite(value):
            return True
        if self.low is not None and (value <= self.low if self.above else value < self.low):
            return True
        return self.high is not None and value > self.high


def value_of(config: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        config = getattr(config, part)
    return config


def check_rules(config: Any, rules: Iterable[Rule]) -> None:
    """Raise CopycatError for the first field of ``config`` that breaks its rule."""
    for rule in rules:
        value = value_of(config, rule.field)
        if rule.violated_by(value):
            raise CopycatError(f"--{rule.flag}={value} is out of range: use a number {rule.allowed()}")
