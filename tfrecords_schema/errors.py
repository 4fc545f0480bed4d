"""Errors a user can hit when a lake folder or record does not follow the schema.

Each carries one message that names the thing (field, folder, version) and the fix, so the
binaries can print it and exit non-zero instead of showing a traceback.
"""


class LakeError(Exception):
    """Base of every error about the data lake's contents (user-facing, never a bug)."""


class SchemaError(LakeError, ValueError):
    """A record is missing a field, has a field of the wrong type, or a value out of range."""


class SchemaVersionError(LakeError):
    """A lake folder or record was written with a schema version this code does not read."""


class ManifestError(LakeError):
    """A stage output folder has no readable ``manifest.json`` or the manifest is malformed."""
