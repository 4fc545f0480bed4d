"""The docs stay true to the code: every record field and the schema version appear in docs/LAKE.md."""

import pathlib
import re

from tfrecords_schema import KINDS, SCHEMA_VERSION

LAKE_DOC = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "LAKE.md").read_text()


def test_every_field_is_documented():
    missing = {
        f"{kind.name}.{field.name}"
        for kind in KINDS.values()
        for field in kind.fields
        if f"`{field.name}`" not in LAKE_DOC
    }
    assert not missing, f"document these fields in docs/LAKE.md: {sorted(missing)}"


def test_documented_version_is_the_code_version():
    assert re.search(r"now \*\*(\d+)\*\*", LAKE_DOC).group(1) == str(SCHEMA_VERSION)
