"""Who owns an output folder: a stage writes only into an empty folder or into an output of its own kind.

``claim_output`` runs before a stage does anything. It refuses an output that is, contains or lies
inside one of the stage's inputs, and a folder that holds anything but an earlier output of the same
stage. A claimed folder carries a marker file (``.copycat-stage.json``, written first), so a later run
of the same stage may clear what it wrote there, and only that: its own file patterns and the
temporary files it left (``*.tmp``, ``beam-temp-*``). Works for local paths and ``gs://`` URLs alike.
"""

import json
import os
import posixpath
from typing import Iterable, Sequence

from copycat_tf.errors import CopycatError

MARKER = ".copycat-stage.json"
TEMPORARY_PATTERNS = ("*.tmp", "beam-temp-*")  # files only, except Beam's temporary folders
# What identifies an output written before markers existed, per stage: its manifest's stage, or these files.
LEGACY_SIGNS = {
    "train": ("run_options.json", "metrics.json", "checkpoints"),
    "prepare_problem": ("odd/manifest.json", "pdd/manifest.json", "tdd/manifest.json"),
    "experiment": ("experiment.json", "summary.json"),
    "report": ("index.html", "report.md"),
    "relevance": ("relevance.json",),
}


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def normalized(path: str) -> str:
    """A comparable form of a folder: absolute and symlink-free for local paths, no trailing slash for URLs."""
    path = str(path)
    if "://" in path:
        scheme, rest = path.split("://", 1)
        return f"{scheme}://{posixpath.normpath(rest).rstrip('/')}"
    return os.path.realpath(os.path.abspath(os.path.expanduser(path)))


def overlaps(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` are the same folder or one lies inside the other."""
    a, b = normalized(a), normalized(b)
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")


def glob_root(pattern: str) -> str:
    """The folder a file pattern reads below: everything before its first wildcard, up to a separator."""
    cut = min([pattern.index(c) for c in "*?[" if c in pattern] or [len(pattern)])
    head = pattern[:cut]
    if cut == len(pattern):
        return pattern
    return head.rsplit("/", 1)[0] or "/"


def refuse_overlap(output: str, inputs: Iterable[tuple[str, str]]) -> None:
    """Stop when the output is one of the inputs, or nested with one (flag name, folder) pairs."""
    for flag, folder in inputs:
        if folder and overlaps(output, folder):
            raise CopycatError(f"--output={output} overlaps the input {flag} ({folder}): a stage never writes into "
                               "its own input; choose an output folder outside it")


def _marker_stage(output: str) -> str | None:
    gfile = _gfile()
    path = posixpath.join(output, MARKER)
    if not gfile.exists(path):
        return None
    try:
        with gfile.GFile(path, "r") as handle:
            return json.load(handle).get("stage")
    except (ValueError, AttributeError):
        return "(unreadable marker)"


def _legacy_stage(output: str, stage: str) -> str | None:
    """Folders written before markers existed: the stage named by their copycat manifest, or the stage's own files."""
    from tfrecords_schema.manifest import MANIFEST_NAME

    gfile = _gfile()
    if any(gfile.exists(posixpath.join(output, sign)) for sign in LEGACY_SIGNS.get(stage, ())):
        return stage
    path = posixpath.join(output, MANIFEST_NAME)
    if not gfile.exists(path):
        return None
    try:
        with gfile.GFile(path, "r") as handle:
            data = json.load(handle)
        return data.get("stage") if isinstance(data, dict) and "schema_version" in data else None
    except ValueError:
        return None


def claim_output(output: str, stage: str, inputs: Iterable[tuple[str, str]] = (),
                 own_patterns: Sequence[str] = (), clear: bool = True) -> None:
    """Make ``output`` this stage's folder, or refuse; then (``clear``) remove what an earlier run of it left there."""
    refuse_overlap(output, inputs)
    gfile = _gfile()
    if gfile.exists(output) and not gfile.isdir(output):
        raise CopycatError(f"--output={output} is a file, not a folder; choose a folder")
    entries = gfile.listdir(output) if gfile.exists(output) else []
    owner = _marker_stage(output) if entries else None
    if entries and owner is None:
        owner = _legacy_stage(output, stage)
    if entries and owner != stage:
        what = f"an output of {owner}" if owner else "files copycat did not write"
        raise CopycatError(f"--output={output} holds {what} ({len(entries)} entries); {stage} writes only into an "
                           "empty folder or one of its own outputs: choose a new folder")
    gfile.makedirs(output)
    marker = posixpath.join(output, MARKER)
    if not gfile.exists(marker):
        with gfile.GFile(marker, "w") as handle:
            handle.write(json.dumps({"stage": stage}) + "\n")
    if clear:
        clear_own_files(output, own_patterns)


def clear_own_files(output: str, patterns: Sequence[str]) -> None:
    """Delete the stage's own files (manifest first, so a crash never leaves a folder that looks finished)."""
    gfile = _gfile()
    for pattern in [*patterns, *TEMPORARY_PATTERNS]:
        for path in sorted(gfile.glob(posixpath.join(output, pattern))):
            if not gfile.isdir(path):
                gfile.remove(path)
            elif posixpath.basename(path).startswith("beam-temp-"):
                gfile.rmtree(path)


def is_claimed_by(output: str, stage: str) -> bool:
    gfile = _gfile()
    return gfile.exists(output) and _marker_stage(output) == stage
