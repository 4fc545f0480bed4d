"""The one schema version of the data lake.

Bump it whenever a record kind gains, loses or changes a field, or the manifest layout changes;
every stage refuses folders and records written with another version.
"""

SCHEMA_VERSION = 1
