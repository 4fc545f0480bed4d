"""The record kinds the lake holds, field by field.

One table per kind is the single source of truth: Python validation, tf.train.Example encoding,
the tf.data feature spec and the TFDS feature description are all derived from it.

Kinds:
  image          a natural or problem image after normalization (NPDD, or the image part of
                 any labeled record).
  labeled_image  an image plus a class id, its label kind (OL: original label, SL: stolen
                 label) and, for SL, the fingerprint of the oracle that answered.

A labeled_image record can always be read as an image record (its extra fields are ignored).
"""

import dataclasses
import re
from typing import Any, Callable

from tfrecords_schema.errors import SchemaError

BYTES, STRING, INT64 = "bytes", "string", "int64"

IMAGE_FORMATS = ("jpeg", "png")
LABEL_KINDS = ("OL", "SL")
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_HEX_ID = re.compile(r"^[0-9a-f]{32}$")

Check = Callable[[Any], "str | None"]  # returns what is wrong with a value, or None


@dataclasses.dataclass(frozen=True)
class Field:
    """One feature of a record: its key, storage type, meaning and value check."""

    name: str
    dtype: str  # BYTES, STRING or INT64
    doc: str
    check: Check | None = None


@dataclasses.dataclass(frozen=True)
class RecordKind:
    """A named, ordered set of fields plus checks that span several fields."""

    name: str
    fields: tuple[Field, ...]
    record_checks: tuple[Check, ...] = ()

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def can_be_read_as(self, other: "RecordKind") -> bool:
        """True when every field of ``other`` is a field of this kind with the same type."""
        mine = {f.name: f.dtype for f in self.fields}
        return all(mine.get(f.name) == f.dtype for f in other.fields)


def _positive(value: int) -> str | None:
    return None if value > 0 else f"must be positive, got {value}"


def _non_negative(value: int) -> str | None:
    return None if value >= 0 else f"must be 0 or more, got {value}"


def _not_empty(value: Any) -> str | None:
    return None if len(value) else "must not be empty"


def _one_of(choices: tuple[str, ...]) -> Check:
    def check(value: str) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}; got {value!r}"

    return check


def _hex_id(value: str) -> str | None:
    return None if _HEX_ID.match(value) else f"must be 32 lowercase hex digits, got {value!r}"


def _unsigned64(value: int) -> str | None:
    ok = 0 <= value < (1 << 64)
    return None if ok else f"must be an unsigned 64-bit value, got {value}"


def _fingerprint_matches_kind(record: dict) -> str | None:
    kind, fingerprint = record["label_kind"], record["oracle_fingerprint"]
    if kind == "SL" and not fingerprint:
        return "field 'oracle_fingerprint' must name the oracle for a stolen (SL) label"
    if kind == "OL" and fingerprint:
        return "field 'oracle_fingerprint' must be empty for an original (OL) label"
    return None


IMAGE_FIELDS = (
    Field("image", BYTES, "encoded image bytes (JPEG or PNG)", _not_empty),
    Field("format", STRING, "encoding of 'image': jpeg or png", _one_of(IMAGE_FORMATS)),
    Field("height", INT64, "height in pixels of the stored (normalized) image", _positive),
    Field("width", INT64, "width in pixels of the stored (normalized) image", _positive),
    Field("id", STRING, "content id: hash of the decoded pixels (tfrecords_schema.content_id)", _hex_id),
    Field("phash", INT64, "64-bit perceptual hash (unsigned in Python, stored as int64 bits)", _unsigned64),
    Field("source", STRING, "name of the source the image came from (e.g. tfds:coco/2017:train)", _not_empty),
    Field("source_key", STRING, "the image's key within its source (e.g. the original path)", _not_empty),
    Field("original_height", INT64, "height in pixels before normalization", _positive),
    Field("original_width", INT64, "width in pixels before normalization", _positive),
)

LABEL_FIELDS = (
    Field("label", INT64, "class id (0-based)", _non_negative),
    Field("label_kind", STRING, "OL (original label) or SL (stolen from an oracle)", _one_of(LABEL_KINDS)),
    Field("oracle_fingerprint", STRING, "for SL: fingerprint of the oracle that answered; empty for OL"),
)

IMAGE = RecordKind("image", IMAGE_FIELDS)
LABELED_IMAGE = RecordKind("labeled_image", IMAGE_FIELDS + LABEL_FIELDS, (_fingerprint_matches_kind,))

KINDS = {kind.name: kind for kind in (IMAGE, LABELED_IMAGE)}


def kind_by_name(name: str) -> RecordKind:
    """The record kind called ``name``; an unknown name is refused with the list of known ones."""
    try:
        return KINDS[name]
    except KeyError:
        raise SchemaError(f"unknown record kind {name!r}; known kinds: {', '.join(sorted(KINDS))}") from None


INT64_RANGE = (_INT64_MIN, _INT64_MAX)
