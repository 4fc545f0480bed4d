"""The common entry of every copycat binary: flags in, library call, exit code out.

User errors (CopycatError, LakeError) end in one line on stderr naming the problem and the fix,
with exit status 2, instead of a traceback. Anything else is a bug and keeps its traceback.
Beam stages pass the flags they do not define on to Beam, but only real Beam pipeline options: a
misspelt flag (``--max_querie``) is refused with one line and exit 2, never silently ignored.
"""

import dataclasses
import difflib
import logging
import os
import sys
import types
import typing
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of the output

from absl import app, flags  # noqa: E402

USER_ERROR_EXIT = 2
FLAGS = flags.FLAGS


def define_common_flags(beam_stage: bool = False) -> None:
    """``--output`` and ``--seed`` for every stage; ``--runner`` for Beam stages (DESIGN.md's common flags)."""
    flags.DEFINE_string("output", None, "Folder (local path or gs://...) this stage writes.")
    flags.DEFINE_integer("seed", 0, "Seed of every random choice the stage makes.")
    if beam_stage:
        flags.DEFINE_string(
            "runner", "DirectRunner",
            "Beam runner (DirectRunner, DataflowRunner, FlinkRunner, ...). Any flag this binary does not "
            "define is passed to Beam as a pipeline option (e.g. --project, --region, --temp_location).",
        )


def config_flags(config_class) -> list[tuple[str, dataclasses.Field]]:
    """(flag name, field) for every flag a stage's Config asks for, nested configs included (their fields'
    ``flag`` metadata names them: OracleSpec.timeout_s is --oracle_timeout); a field whose ``flag`` is None
    has none. The binaries define exactly these (``define_config_flags``); tests compare against them."""
    found = []
    for field in dataclasses.fields(config_class):
        name = field.metadata.get("flag", field.name)
        if name is None:
            continue
        if field.metadata.get("nested"):
            found += config_flags(field.type)
        else:
            found.append((name, field))
    return found


def _default(field: dataclasses.Field):
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def define_config_flags(config_class, skip: tuple[str, ...] = ()) -> None:
    """One absl flag per field of a stage's Config (and of the configs nested in it), with the field's
    default and help text (its ``help`` metadata), so a knob is written once. Fields marked ``common``
    (--output, --seed) come from :func:`define_common_flags`; ``skip`` names flags the binary defines itself.
    Metadata: ``flag`` (the flag's name when it differs from the field's), ``choices`` (an enum flag),
    ``repeatable`` (a list field given as ``--x=a --x=b`` instead of ``--x=a,b``)."""
    for name, field in config_flags(config_class):
        if field.metadata.get("common") or name in skip:
            continue
        help_text = field.metadata.get("help")
        if not help_text:
            raise TypeError(f"{config_class.__name__}: field {field.name} has no help text (metadata 'help')")
        default = _default(field)
        kind = field.type
        if typing.get_origin(kind) in (typing.Union, types.UnionType):  # X | None: a flag of type X
            kinds = set(typing.get_args(kind)) - {type(None)}
            kind = kinds.pop() if len(kinds) == 1 else None
        if field.metadata.get("choices"):
            flags.DEFINE_enum(name, default, list(field.metadata["choices"]), help_text)
        elif kind is bool:
            flags.DEFINE_bool(name, default, help_text)
        elif kind is int:
            flags.DEFINE_integer(name, default, help_text)
        elif kind is float:
            flags.DEFINE_float(name, default, help_text)
        elif kind is str:
            flags.DEFINE_string(name, default, help_text)
        elif typing.get_origin(kind) is list:
            define = flags.DEFINE_multi_string if field.metadata.get("repeatable") else flags.DEFINE_list
            define(name, default, help_text)
        else:
            raise TypeError(f"{config_class.__name__}.{field.name}: no flag type for {field.type}")


def config_from_flags(config_class, **values):
    """The Config from the parsed flags of its fields, nested configs built the same way (``values``: fields
    the binary sets itself)."""
    built = {}
    for field in dataclasses.fields(config_class):
        name = field.metadata.get("flag", field.name)
        if field.name in values or name is None:
            continue
        built[field.name] = config_from_flags(field.type) if field.metadata.get("nested") else getattr(FLAGS, name)
    return config_class(**built, **values)


def require(*names: str, positional: list[str] | None = None) -> None:
    """Stop with one message when a required flag is missing, or (``positional``) when stray arguments remain."""
    from copycat_tf.errors import CopycatError

    if positional and positional[1:]:
        raise CopycatError(f"unknown arguments {' '.join(positional[1:])} (see --help)")
    missing = [f"--{name}" for name in names if not FLAGS[name].value]
    if missing:
        raise CopycatError(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} required (see --help)")


def _user_errors() -> tuple[type[BaseException], ...]:
    from copycat_tf.errors import CopycatError
    from tfrecords_schema.errors import LakeError

    return CopycatError, LakeError


def _flag_error(argv: list[str], message: str) -> None:
    """A bad command line: one line on stderr, exit 2 (the contract for every user error)."""
    print(f"{os.path.basename(argv[0])}: error: {message} (see --help)", file=sys.stderr)
    sys.exit(USER_ERROR_EXIT)


def _parse_strict(argv: list[str]) -> list[str]:
    """Every flag must be one of the binary's own."""
    try:
        return FLAGS(argv)
    except flags.Error as error:
        _flag_error(argv, str(error).splitlines()[0])


def _parse_keeping_beam_options(argv: list[str]) -> list[str]:
    """absl parses the binary's flags; what remains must be real Beam pipeline options (program name first)."""
    try:
        rest = FLAGS(argv, known_only=True)
    except flags.Error as error:
        _flag_error(argv, str(error).splitlines()[0])
    if len(rest) == 1:  # nothing left for Beam to check: a bad value of the stage's own flag is refused without it
        return rest
    from beam_pipelines.runner import beam_option_errors

    unknown = beam_option_errors(rest[1:])
    if unknown:
        words = [a.split("=", 1)[0].lstrip("-") for a in unknown if a.startswith("-")]
        close = difflib.get_close_matches(words[0], list(FLAGS), n=1) if words else []
        hint = f"; did you mean --{close[0]}?" if close else ""
        _flag_error(argv, f"unknown flag {unknown[0]}: not a flag of this stage nor a Beam pipeline option{hint}")
    return rest


def run(main: Callable[[list[str]], int | None], argv: list[str] | None = None, pass_through: bool = False) -> None:
    """Parse absl flags and call ``main``; map user errors to one message and a non-zero exit."""
    name = os.path.basename((argv or sys.argv)[0])

    def guarded(args: list[str]) -> int | None:
        logging.getLogger().setLevel(logging.INFO)
        try:
            return main(args)
        except _user_errors() as error:
            print(f"{name}: error: {error}", file=sys.stderr)
            return USER_ERROR_EXIT

    app.run(guarded, argv=argv, flags_parser=_parse_keeping_beam_options if pass_through else _parse_strict)
