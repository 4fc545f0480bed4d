"""Extraction defenses an API owner can put in front of a model, as a chain, each recorded in the fingerprint.

Two kinds:
  * **admission** per API key, before the model runs: a quota per time window and a rate limit (a
    token bucket). A refused request gets HTTP 429 and a Retry-After of the seconds until it would pass.
  * **answer** defenses, applied in order to the model's probabilities and class ids of a batch:
    ``Watermark`` (a keyed hash of the image picks a small share of queries, which get a keyed wrong
    label, in the style of DAWN: repeatable, so a copy that trained on them can be recognized),
    ``Rounding`` of the probabilities and ``TopOne`` (class ids only). Rounding and top-1 never change
    the argmax: controls that should not stop a hard-label attacker. ``Misinformation`` (in the style
    of Kariyappa and Qureshi's adaptive misinformation) answers a misleading label to the queries the
    model is unsure of (out-of-distribution score 1 - max softmax above a threshold), which natural
    images sent by a copycat mostly are and the problem's own images mostly are not.
  * **detection** per API key (copycat_tf.serving.detection): the PRADA-style monitor of the distances
    between a key's successive queries.

Each defense describes itself (``spec``: no secrets, a digest of a key at most) and the chain's
fingerprint covers the model's identity and every spec, so a ledger of answers from a defended model
is never mixed with one of the bare model.
"""

import dataclasses
import hashlib
import hmac
import json
import math
import threading
import time

import numpy as np


@dataclasses.dataclass
class Answers:
    """One batch's answers as the caller will see them; ``notes[i]`` names what changed image i's answer."""

    class_ids: np.ndarray  # int64 [N]
    probabilities: np.ndarray | None  # float32 [N, K], or None once a defense withholds them
    notes: list[list[str]]
    model_ids: np.ndarray | None = None  # int64 [N]: the model's own argmax, before any defense changed it


class Watermark:
    """A keyed share of the queries gets a keyed wrong label (and the probabilities of its true and wrong
    classes swapped, so the answer stays a consistent distribution)."""

    name = "watermark"

    def __init__(self, secret: bytes, share: float):
        if not secret:
            raise ValueError("the watermark needs a non-empty secret")
        self._secret = secret
        self.share = share

    def _draw(self, purpose: bytes, image: bytes) -> int:
        return int.from_bytes(hmac.new(self._secret, purpose + image, hashlib.sha256).digest()[:8], "big")

    def chosen(self, image: bytes) -> bool:
        """Whether this image's answer carries the watermark (a keyed, repeatable choice)."""
        return self._draw(b"pick:", image) < self.share * 2.0**64

    def label(self, image: bytes, true_label: int, num_classes: int) -> int:
        """The keyed wrong label of a chosen image: never its true label (for two or more classes)."""
        if num_classes < 2:
            return true_label
        return (true_label + 1 + self._draw(b"label:", image) % (num_classes - 1)) % num_classes

    def spec(self) -> dict:
        return {"name": self.name, "share": self.share,
                "key_digest": hashlib.sha256(b"copycat-watermark:" + self._secret).hexdigest()[:16]}

    def apply(self, images: list[bytes], answers: Answers, num_classes: int) -> Answers:
        for index, image in enumerate(images):
            if not self.chosen(image):
                continue
            # Keyed on the model's own class, whatever a defense before it answered (misinformation), so that
            # copycat-verify-ownership, which asks the bare model, finds the same watermark label.
            model_ids = answers.model_ids if answers.model_ids is not None else answers.class_ids
            true_label = int(model_ids[index])
            wrong = self.label(image, true_label, num_classes)
            if answers.probabilities is not None:
                row = answers.probabilities[index]
                shown = int(answers.class_ids[index])
                row[[shown, wrong]] = row[[wrong, shown]]
            answers.class_ids[index] = wrong
            answers.notes[index].append(self.name)
        return answers


class Misinformation:
    """Queries whose out-of-distribution score (1 - the largest probability) is above ``threshold`` get the
    model's least likely class. Their probabilities are a fixed form, 1 - threshold + threshold/K on that
    class and threshold/K on each other one: consistent with the label, and nothing in them can be turned
    back into the model's own probabilities. In-distribution queries (a sure model) are answered as they
    are. A client that sees probabilities can tell a flipped answer by its form (and its largest value at
    most 1 - threshold + threshold/K) and drop it; serve with ``--top1`` to hide that too."""

    name = "misinformation"

    def __init__(self, threshold: float):
        if not 0 <= threshold < 1:
            raise ValueError("the misinformation threshold is an out-of-distribution score in [0, 1)")
        self.threshold = threshold

    def spec(self) -> dict:
        return {"name": self.name, "score": "1-max_softmax", "threshold": self.threshold}

    def scores(self, probabilities: np.ndarray) -> np.ndarray:
        """The out-of-distribution score of each row: 1 - its largest probability."""
        return 1.0 - np.asarray(probabilities, np.float64).max(axis=1)

    def apply(self, images: list[bytes], answers: Answers, num_classes: int) -> Answers:
        if answers.probabilities is None:
            raise ValueError("misinformation needs the model's probabilities: put it before top-1 in the chain")
        flipped = np.flatnonzero(self.scores(answers.probabilities) > self.threshold)
        width = answers.probabilities.shape[1]
        for index in flipped:
            misleading = int(np.argmin(answers.probabilities[index]))
            shown = np.full(width, self.threshold / width, np.float64)
            shown[misleading] += 1.0 - self.threshold
            answers.probabilities[index] = shown.astype(np.float32)
            answers.class_ids[index] = misleading
            answers.notes[index].append(self.name)
        return answers


class Rounding:
    """Probabilities rounded to ``decimals`` places (the class id is the model's argmax, as before)."""

    name = "round"

    def __init__(self, decimals: int):
        self.decimals = decimals

    def spec(self) -> dict:
        return {"name": self.name, "decimals": self.decimals}

    def apply(self, images: list[bytes], answers: Answers, num_classes: int) -> Answers:
        if answers.probabilities is not None:
            answers.probabilities = np.round(answers.probabilities, self.decimals).astype(np.float32)
        return answers


class TopOne:
    """Only the class id is answered; the probabilities are withheld."""

    name = "top1"

    def spec(self) -> dict:
        return {"name": self.name}

    def apply(self, images: list[bytes], answers: Answers, num_classes: int) -> Answers:
        answers.probabilities = None
        return answers


class KeyLimits:
    """Admission per API key: at most ``quota`` images per window of ``window_s`` seconds (windows counted
    from the key's first query) and at most ``rate`` images per second (a token bucket holding one
    second's worth, and at least one image). Thread-safe; ``clock`` is injectable for tests."""

    name = "limits"

    def __init__(self, quota: int | None = None, window_s: float = 86400.0, rate: float | None = None,
                 clock=time.monotonic):
        self.quota, self.window_s, self.rate = quota, window_s, rate
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int]] = {}  # key → (window start, images used in it)
        self._buckets: dict[str, tuple[float, float]] = {}  # key → (last refill time, tokens)

    @property
    def active(self) -> bool:
        return self.quota is not None or self.rate is not None

    def spec(self) -> dict:
        return {"name": self.name, "quota": self.quota, "window_s": self.window_s, "rate": self.rate}

    @property
    def _bucket(self) -> float:
        return max(1.0, self.rate)  # below one image per second, one image at a time

    def largest_request(self) -> int:
        """The most images one request may hold and still be admitted some time."""
        sizes = ([self.quota] if self.quota is not None else []) + (
            [int(self._bucket)] if self.rate is not None else [])
        return min(sizes) if sizes else 0

    def admit(self, key: str, images: int) -> float | None:
        """Take ``images`` from the key's allowance; None when admitted, else the seconds to wait (nothing taken)."""
        now = self._clock()
        with self._lock:
            waits = []
            if self.quota is not None:
                start, used = self._windows.get(key, (now, 0))
                if now - start >= self.window_s:
                    start, used = now, 0
                if images > self.quota:
                    waits.append(math.inf)  # never fits: the request is larger than a whole window's quota
                elif used + images > self.quota:
                    waits.append(start + self.window_s - now)
            if self.rate is not None:
                last, tokens = self._buckets.get(key, (now, self._bucket))
                tokens = min(self._bucket, tokens + (now - last) * self.rate)
                if images > self._bucket:
                    waits.append(math.inf)
                elif tokens < images:
                    waits.append((images - tokens) / self.rate)
            if waits:
                return max(waits)
            if self.quota is not None:
                self._windows[key] = (start, used + images)
            if self.rate is not None:
                self._buckets[key] = (now, tokens - images)
            return None

    def give_back(self, key: str, images: int) -> None:
        """Return ``images`` to the key's quota after the model could not answer them: a quota counts answers,
        so a request that got none costs none. The rate's tokens stay spent (the server did the work)."""
        with self._lock:
            if self.quota is not None and key in self._windows:
                start, used = self._windows[key]
                self._windows[key] = (start, max(0, used - images))


def answer_chain(watermark: Watermark | None = None, round_to: int | None = None, top1: bool = False,
                 misinformation: float | None = None) -> list:
    """The answer defenses in the order they apply: misinformation, watermark, rounding, top-1."""
    chain = []
    if misinformation is not None:
        chain.append(Misinformation(misinformation))
    if watermark is not None:
        chain.append(watermark)
    if round_to is not None:
        chain.append(Rounding(round_to))
    if top1:
        chain.append(TopOne())
    return chain


def defend(chain: list, images: list[bytes], probabilities: np.ndarray) -> Answers:
    """The model's probabilities of a batch through the chain: what the callers will be answered."""
    probabilities = np.asarray(probabilities, np.float32).copy()
    model_ids = probabilities.argmax(axis=1).astype(np.int64)
    answers = Answers(model_ids.copy(), probabilities, [[] for _ in images], model_ids)
    for defense in chain:
        answers = defense.apply(images, answers, probabilities.shape[1])
    return answers


def fingerprint(model_identity: str, limits: KeyLimits, chain: list, monitors: tuple = ()) -> str:
    """The served model's identity: the model and every defense's spec (a defended model is another oracle)."""
    specs = [d.spec() for d in chain] + ([limits.spec()] if limits.active else []) + [m.spec() for m in monitors]
    if not specs:
        return model_identity
    digest = hashlib.sha256(json.dumps({"model": model_identity, "defenses": specs}, sort_keys=True).encode())
    return f"{model_identity}+{digest.hexdigest()[:12]}"
