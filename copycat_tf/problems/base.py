"""What a problem is: class names and, for each of ODD, PDD and TDD, where its labeled images come from.

A split is read as *parts* (small, picklable descriptions such as "TFDS shard 3" or "files 0-499"),
so a Beam pipeline can read the parts of a large dataset in parallel. Each part yields examples:
(encoded image bytes, class id, key).
"""

import dataclasses
from typing import Any, Callable, Iterator

SPLITS = ("odd", "pdd", "tdd")
SPLIT_WORDS = {
    "odd": "original domain data (the target owner's training set)",
    "pdd": "problem domain data (in-domain images an attacker could collect)",
    "tdd": "test domain data (evaluation only)",
}


@dataclasses.dataclass(frozen=True)
class Example:
    image: bytes
    label: int
    key: str


@dataclasses.dataclass(frozen=True)
class Problem:
    """A classification problem of the paper (or the user's), ready to be written to the lake."""

    name: str
    description: str
    class_names: tuple[str, ...]
    #: split → list of parts (picklable); a missing split has no entry
    parts: dict[str, list[Any]]
    #: reads one part → examples
    read_part: Callable[[Any], Iterator[Example]]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)
