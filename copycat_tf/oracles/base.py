"""The oracle interface: encoded images in, top-1 class ids out. Nothing else is ever read.

An oracle is the black box under attack: a local TensorFlow SavedModel or a REST endpoint speaking
TensorFlow Serving's predict protocol. Clients keep only the argmax of whatever the model returns
(probabilities, logits or class ids), so the attack sees hard labels only.

Two things every client shares live here, so that they are decided in one place:
  * :func:`class_ids` validates an answer before anything records it: one finite score row or one
    integer class in ``[0, num_classes)`` per image sent, else an :class:`OracleError` that names the
    oracle and the batch (nothing of that batch is recorded);
  * :func:`scrub_url` / :func:`scrub_text` keep credentials (URL userinfo, ``api_key=``-style query
    parameters, the API key) out of everything shown: descriptions, manifests, logs, errors.
"""

import abc
import re
import urllib.parse
from typing import Iterable, Sequence

import numpy as np

from copycat_tf.errors import CopycatError

HIDDEN = "***"
# query parameters that carry credentials: the last word of the name (api_key, X-Amz-Signature, accessToken)
# or the whole name (apikey, sessionid) is one of these; "signature_name" or "key_id" are not secrets
_SECRET_WORDS = {"key", "apikey", "token", "secret", "sig", "signature", "password", "passwd", "pwd", "auth",
                 "authorization", "credential", "credentials", "jwt", "bearer", "sid", "session", "sessionid",
                 "accesstoken", "authtoken", "apitoken", "secretkey", "privatekey", "clientsecret"}
_WORD_BREAK = re.compile(r"[_\-.\s]+|(?<=[a-z0-9])(?=[A-Z])")


class OracleError(CopycatError):
    """The oracle could not be loaded, reached or understood; the message names the fix."""


class Oracle(abc.ABC):
    """Images in, class ids out."""

    #: stable identity of the model behind the oracle: ledgers only reuse answers of the same one
    fingerprint: str
    #: number of classes when the oracle tells it (a probabilities/logits output), else None
    num_classes: int | None = None

    @abc.abstractmethod
    def classify(self, images: Sequence[bytes]) -> np.ndarray:
        """Top-1 class id (int64) of each encoded image, in order; an OracleError for an invalid answer."""

    def describe(self) -> dict:
        """What the manifest records about this oracle (never secrets)."""
        return {"fingerprint": self.fingerprint, "num_classes": self.num_classes}

    def close(self) -> None:
        """Release what the oracle holds (connections, the loaded model)."""


# -- secrets --------------------------------------------------------------------------------------


def is_secret_parameter(name: str) -> bool:
    words = [w.lower() for w in _WORD_BREAK.split(name.strip()) if w]
    return bool(words) and (words[-1] in _SECRET_WORDS or "".join(words) in _SECRET_WORDS)


def scrub_url(url: str) -> str:
    """``url`` as it may be shown: userinfo and the values of credential query parameters become ``***``.

    Anything that is not a URL with a host (a local path, ``gs://bucket/model``) is returned unchanged
    apart from userinfo; the fragment is dropped.
    """
    url = str(url)
    if "://" not in url:
        return url
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # e.g. an invalid IPv6 literal: show nothing of it
        return f"{url.split('://', 1)[0]}://{HIDDEN}"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{HIDDEN}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = []
        for pair in query.split("&"):
            name, sep, _ = pair.partition("=")
            shown_name = urllib.parse.unquote_plus(name)
            pairs.append(f"{name}={HIDDEN}" if sep and is_secret_parameter(shown_name) else pair)
        query = "&".join(pairs)
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def url_secrets(url: str) -> list[str]:
    """The credential values inside ``url`` (userinfo, secret query parameters), raw and as sent."""
    secrets: list[str] = []
    if "://" not in str(url):
        return secrets
    try:
        parts = urllib.parse.urlsplit(str(url))
    except ValueError:
        return secrets
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        secrets += [userinfo, *userinfo.split(":", 1)]
    for pair in parts.query.split("&") if parts.query else []:
        name, sep, value = pair.partition("=")
        if sep and value and is_secret_parameter(urllib.parse.unquote_plus(name)):
            secrets += [value, urllib.parse.unquote_plus(value)]
    return secrets


def scrub_text(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (raw, URL-quoted or base64-free as given) replaced by ``***``."""
    variants = set()
    for secret in secrets:
        if secret and len(secret) >= 3:  # a one- or two-letter "secret" would blank out ordinary text
            variants |= {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}
    for secret in sorted(variants, key=len, reverse=True):
        text = text.replace(secret, HIDDEN)
    return text


# -- answers --------------------------------------------------------------------------------------


def batch_name(oracle: str, number: int, count: int) -> str:
    """How errors name a batch: the oracle, the client's batch number, its size and (in a ledger) first id."""
    from copycat_tf.ledger import open_batch_ids  # the batch this thread reserved, if any

    ids = open_batch_ids()
    return f"{oracle}, batch {number} of this client ({count} images" + (f", first image id {ids[0]})" if ids else ")")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _from_json(predictions: list, fail) -> np.ndarray:
    """Predictions decoded from JSON (ints, or lists of numbers of one length) as an array."""
    if all(_is_int(p) for p in predictions):
        try:
            return np.array(predictions, dtype=np.int64)
        except OverflowError:
            fail("a class id does not fit in 64 bits")
    if all(isinstance(p, list) for p in predictions):
        widths = sorted({len(p) for p in predictions})
        if len(widths) > 1:
            fail(f"ragged score rows (lengths {widths[0]}..{widths[-1]}); every image needs a row of the same length")
        if not all(_is_number(x) for row in predictions for x in row):
            fail("a score row holds something that is not a number")
        if widths == [1] and all(_is_int(row[0]) for row in predictions):
            return np.array(predictions, dtype=np.int64)
        try:
            return np.array(predictions, dtype=np.float64)
        except OverflowError:
            fail("a score does not fit in a 64-bit float")
    kinds = sorted({type(p).__name__ for p in predictions})
    fail(f"each prediction must be a class id or a list of scores, not {'/'.join(kinds)}")
    raise AssertionError("unreachable")


def class_ids(outputs, expected: int, num_classes: int | None, where: str,
              classes_from: str = "--num_classes") -> tuple[np.ndarray, int | None]:
    """Validate one batch's answer and read its top-1 classes: ``(class ids int64 [expected], score width)``.

    ``outputs`` is a model output (array) or decoded JSON predictions (a list). Accepted: scores
    ``[N, K]`` (K > 1: argmax; K = 1: a binary sigmoid or logit), all finite; or class ids ``[N]`` /
    ``[N, 1]`` of an integer type, each in ``[0, num_classes)`` (``>= 0`` when the class count is not
    known; ``classes_from`` says where the count came from). ``N`` must equal ``expected``. Anything
    else raises an :class:`OracleError` that starts with ``where`` (the oracle and the batch) and says
    that nothing of the batch was recorded. The score width is returned so that a client can learn
    the class count from its first answer.
    """

    def fail(problem: str, fix: str = "check what the oracle returns (--oracle_output picks one of several outputs)"):
        raise OracleError(f"{where}: {problem}; nothing of this batch was recorded. Fix: {fix}")

    if isinstance(outputs, (list, tuple)):
        values = _from_json(list(outputs), fail) if len(outputs) else np.zeros([0], np.int64)
    else:
        values = np.asarray(outputs)
    if values.dtype == object or not (np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)):
        fail(f"the output has type {values.dtype}, neither scores nor integer class ids")
    count = values.shape[0] if values.ndim else None
    if count != expected:
        fail(f"{count if count is not None else 'a scalar instead of'} predictions for {expected} images sent",
             "the oracle must answer one prediction per image, in order")
    width = None
    if values.ndim == 2 and values.shape[1] > 1:  # scores: probabilities or logits
        width = int(values.shape[1])
        if num_classes is not None and width != num_classes:
            fail(f"{width} scores per image, but {classes_from} is {num_classes}",
                 "pass the right --num_classes (or none: the score width tells it)")
        if np.issubdtype(values.dtype, np.floating):
            bad = ~np.isfinite(values).all(axis=1)
            if bad.any():
                fail(f"non-finite scores (NaN or inf) for {int(bad.sum())} of {expected} images "
                     f"(first: image {int(np.argmax(bad))} of the batch)", "check the model behind the oracle")
        return np.argmax(values, axis=1).astype(np.int64), width
    if values.ndim == 2 and values.shape[1] == 1 and np.issubdtype(values.dtype, np.floating):  # a binary sigmoid/logit
        column = values[:, 0]
        if not np.isfinite(column).all():
            fail(f"non-finite scores (NaN or inf) for {int((~np.isfinite(column)).sum())} of {expected} images",
                 "check the model behind the oracle")
        if num_classes not in (None, 2):
            fail(f"one score per image (a binary classifier), but the oracle has {num_classes} classes",
                 "pass --num_classes=2 or pick a class-id output with --oracle_output")
        threshold = 0.5 if column.size and column.min() >= 0 and column.max() <= 1 else 0.0
        return (column > threshold).astype(np.int64), 2
    if values.ndim in (1, 2) and (values.ndim == 1 or values.shape[1] == 1) and np.issubdtype(values.dtype, np.integer):
        ids = values.reshape(-1).astype(np.int64)
        if values.dtype == np.uint64 and (values.reshape(-1) > np.iinfo(np.int64).max).any():
            fail("a class id does not fit in 64 bits")
        low = int(ids.min()) if ids.size else 0
        high = int(ids.max()) if ids.size else 0
        if low < 0:
            fail(f"the oracle answered class {low}, which is not a class id (ids start at 0)",
                 "check what the oracle returns (--oracle_output picks one of several outputs)")
        if num_classes is not None and high >= num_classes:
            fail(f"the oracle answered class {high}, but {classes_from} is {num_classes}",
                 "rerun with the right --num_classes" if classes_from == "--num_classes" else
                 "pick the output that matches with --oracle_output")
        return ids, None
    fail(f"cannot read a class from an output of shape {tuple(values.shape)} and type {values.dtype}")
    raise AssertionError("unreachable")


def top1(outputs: np.ndarray) -> np.ndarray:
    """Class ids from a model output: scores [N, K] → argmax; ids [N] or [N, 1] → as they are (validated)."""
    outputs = np.asarray(outputs)
    return class_ids(outputs, outputs.shape[0] if outputs.ndim else -1, None, "the oracle's output")[0]
