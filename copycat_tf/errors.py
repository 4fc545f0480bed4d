"""The user-facing error of the library: something the user can fix (a flag, a path, a name).

Binaries print its message and exit non-zero; anything else that escapes is a bug and keeps its
traceback.
"""


class CopycatError(Exception):
    """A problem with the user's input, named together with the fix."""
