"""The common entry of every copycat binary: flags in, library call, exit code out.

User errors (CopycatError, LakeError) end in one line on stderr naming the problem and the fix,
with exit status 2, instead of a traceback. Anything else is a bug and keeps its traceback.
"""

import os
import sys
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of the output

from absl import app  # noqa: E402

USER_ERROR_EXIT = 2


def _user_errors() -> tuple[type[BaseException], ...]:
    from copycat_tf.errors import CopycatError
    from tfrecords_schema.errors import LakeError

    return CopycatError, LakeError


def run(main: Callable[[list[str]], int | None], argv: list[str] | None = None) -> None:
    """Parse absl flags and call ``main``; map user errors to one message and a non-zero exit."""
    name = os.path.basename((argv or sys.argv)[0])

    def guarded(argv: list[str]) -> int | None:
        try:
            return main(argv)
        except _user_errors() as error:
            print(f"{name}: error: {error}", file=sys.stderr)
            return USER_ERROR_EXIT

    app.run(guarded, argv=argv)
