"""The binaries' common entry: user errors end in one message and exit 2, bugs keep their traceback."""

import pytest

from copycat_bin.app import USER_ERROR_EXIT, run
from copycat_tf.errors import CopycatError
from tfrecords_schema import SchemaVersionError


def _exit_code(main, argv=("copycat-test",)):
    with pytest.raises(SystemExit) as stopped:
        run(main, argv=list(argv))
    return stopped.value.code


@pytest.mark.parametrize(
    "error",
    [CopycatError("unknown model 'vgg99'; known: alexnet, vgg16"), SchemaVersionError("LAKE/npdd: version 9 vs 1")],
)
def test_user_error_prints_one_line_and_exits_2(capsys, error):
    def main(argv):
        raise error

    assert _exit_code(main) == USER_ERROR_EXIT
    err = capsys.readouterr().err
    assert err == f"copycat-test: error: {error}\n"
    assert "Traceback" not in err


def test_success_exits_0():
    assert _exit_code(lambda argv: 0) in (0, None)


def test_a_bug_is_not_hidden():
    def main(argv):
        raise RuntimeError("a real bug")

    with pytest.raises(RuntimeError, match="a real bug"):
        run(main, argv=["copycat-test"])


def test_require_names_missing_flags_and_stray_arguments():
    from absl import flags

    from copycat_bin.app import require

    flags.DEFINE_string("test_only_images", None, "a flag for this test")
    flags.DEFINE_string("test_only_oracle", None, "a flag for this test")
    flags.FLAGS(["program", "--test_only_images=lake/npdd"])
    with pytest.raises(CopycatError, match="^--test_only_oracle is required"):
        require("test_only_images", "test_only_oracle")
    with pytest.raises(CopycatError, match="unknown arguments extra"):
        require("test_only_images", positional=["program", "extra"])
    require("test_only_images", positional=["program"])  # nothing missing: no error
