"""copycat-verify-ownership: does a suspect model carry the owner's watermark? A p-value against independent models.

copycat-serve's watermark (``--watermark_key``) gives a keyed share of the queries a keyed wrong label
and keeps those images (``--watermark_keep``). A copy trained on the answers learns some of those wrong
labels; a model made without them has no reason to. For each evidence image the key chose, the owner's
model gives the true label t and the key gives the watermark label w ≠ t, drawn by a keyed hash that
no one without the key can predict. A model independent of the key answers w only by chance: among
the images where it does not answer t, each of the K - 1 other classes is equally likely to be w. So
under the null hypothesis (the suspect is independent of the watermark) the number of images on which
the suspect answers w is Binomial(m, 1 / (K - 1)), with m the images where it does not answer t. The
p-value is that binomial's upper tail at the observed count; ``--controls`` (models known to be
independent) get the same test, as a check of the null.

    copycat-verify-ownership --suspect=runs/CC-VGG-NPDD-SL/export --reference=runs/BL-VGG-ODD-OL/export \
        --key=watermark.key --evidence=evidence/mallory --output=ownership.json
"""

import dataclasses
import json
import logging
import os

from copycat_tf.config_checks import Rule, check_rules, option, required
from copycat_tf.errors import CopycatError

STAGE = "verify-ownership"
log = logging.getLogger("copycat.ownership")


@dataclasses.dataclass
class OwnershipConfig:
    suspect: str = required("The suspect model: a SavedModel folder or the URL of a :predict endpoint.")
    reference: str = required("The owner's model, undefended (its answers are the true labels): a SavedModel "
                              "folder or URL.")
    key: str = required("File holding the watermark secret (copycat-serve --watermark_key).")
    evidence: list[str] = required("Folders of evidence images (copycat-serve --watermark_keep=FOLDER keeps "
                                   "FOLDER/KEY/*.img); every file in them is read, the key chooses which count.")
    watermark_share: float = option(0.005, "The share copycat-serve's watermark was given (--watermark_share).")
    controls: list[str] = dataclasses.field(default_factory=list, metadata={"help": "Models known to be independent of the watermark (SavedModel folders or URLs), "
                                     "tested the same way as a check."})
    alpha: float = option(1e-3, "Significance level: the suspect is called a copy when its p-value is below this.")
    num_classes: int | None = option(None, "The served model's number of classes, when the reference's output does "
                                           "not tell it (class ids only).")
    missing_evidence_ok: bool = option(False, "An evidence folder that does not exist counts as no evidence (the key "
                                              "got no watermarked answer) instead of an error: for experiment plans.")
    output: str | None = option(None, "Where to write the report (JSON); unset: printed only.")

    RULES = (Rule("watermark_share", "watermark_share", 0, 0.5, above=True), Rule("alpha", "alpha", 0, 1, above=True),
             Rule("num_classes", "num_classes", 3, 10**6, optional=True))

    def validate(self) -> None:
        check_rules(self, self.RULES)
        if not self.evidence:
            raise CopycatError("--evidence is required: the folders of watermarked images copycat-serve kept")


def binomial_tail(successes: int, trials: int, p: float) -> float:
    """P(X >= successes) for X ~ Binomial(trials, p)."""
    from scipy.stats import binom

    if successes <= 0:
        return 1.0
    return float(binom.sf(successes - 1, trials, p))


def watermark_test(answers, true_labels, watermark_labels, num_classes: int) -> dict:
    """The test of one model's answers on the evidence (see the module docstring)."""
    answers, true_labels, watermark_labels = (list(map(int, a)) for a in (answers, true_labels, watermark_labels))
    other = sum(a != t for a, t in zip(answers, true_labels))
    hits = sum(a == w for a, w in zip(answers, watermark_labels))
    chance = 1.0 / (num_classes - 1)
    return {"evidence": len(answers), "not_true_label": other, "watermark_label": hits,
            "expected_if_independent": round(other * chance, 3), "p_value": binomial_tail(hits, other, chance)}


def read_evidence(folders: list[str], missing_ok: bool = False) -> list[bytes]:
    """Every distinct image under the evidence folders (the same bytes counted once, whatever folders hold
    them: a repeated image is not a second trial), in a fixed order (sorted paths)."""
    import hashlib

    paths = []
    for folder in folders:
        if not os.path.isdir(folder):
            if missing_ok:
                continue
            raise CopycatError(f"--evidence={folder} is not a folder; give the folder copycat-serve "
                               "--watermark_keep wrote (or one key's folder in it)")
        for root, _, files in os.walk(folder):
            # a .tmp is an image copycat-serve was still writing (it renames it when whole): not evidence
            paths.extend(os.path.join(root, name) for name in files if not name.endswith(".tmp"))
    images, seen = [], set()
    for path in sorted(set(paths)):
        with open(path, "rb") as handle:
            data = handle.read()
        digest = hashlib.sha256(data).digest()
        if digest not in seen:
            seen.add(digest)
            images.append(data)
    return images


def _classify(model, images: list[bytes], batch: int = 64):
    """The model's class ids of the images, asked in batches (a served model caps the images per request)."""
    import numpy as np

    return np.concatenate([np.asarray(model.classify(images[i:i + batch]), np.int64)
                           for i in range(0, len(images), batch)])


def _secret(path: str) -> bytes:
    try:
        secret = open(path, "rb").read().strip()
    except OSError as error:
        raise CopycatError(f"--key={path}: cannot read it ({error.strerror})") from None
    if not secret:
        raise CopycatError(f"--key={path} is empty; give the file copycat-serve's --watermark_key read")
    return secret


def verify(config: OwnershipConfig) -> dict:
    """Ask the reference, the suspect and the controls about the evidence the key chose; the tests' report."""
    from copycat_tf.oracles import OracleSpec, open_oracle
    from copycat_tf.serving.defenses import Watermark

    config.validate()
    watermark = Watermark(_secret(config.key), config.watermark_share)
    images = read_evidence(config.evidence, config.missing_evidence_ok)
    chosen = [image for image in images if watermark.chosen(image)]
    if not chosen and not (config.missing_evidence_ok and not images):
        raise CopycatError(f"none of the {len(images)} evidence images was chosen by this key at share "
                           f"{config.watermark_share}: check --key and --watermark_share")
    reference = open_oracle(OracleSpec(config.reference, num_classes=config.num_classes))
    try:
        true_labels = _classify(reference, chosen) if chosen else []
        num_classes = config.num_classes or reference.num_classes
    finally:
        reference.close()
    if num_classes is None:
        raise CopycatError(f"--reference={config.reference} does not tell its number of classes; pass --num_classes")
    if num_classes < 3:
        raise CopycatError(f"the served model has {num_classes} classes: with fewer than 3 the watermark label is the "
                           "only wrong one, so any error looks like the watermark and the test has no power")
    marks = [watermark.label(image, int(t), num_classes) for image, t in zip(chosen, true_labels)]
    report = {"evidence_files": len(images), "chosen_by_key": len(chosen), "num_classes": num_classes,
              "alpha": config.alpha, "models": {}}
    for role, target in [("suspect", config.suspect)] + [(f"control:{c}", c) for c in config.controls]:
        model = open_oracle(OracleSpec(target, num_classes=num_classes))
        try:
            result = watermark_test(_classify(model, chosen) if chosen else [], true_labels, marks, num_classes)
        finally:
            model.close()
        result["model"] = target
        report["models"][role] = result
        log.info("%s: the watermark label on %d of %d images (chance: %.1f), p = %.3g", role,
                 result["watermark_label"], result["evidence"], result["expected_if_independent"], result["p_value"])
    report["copied"] = report["models"]["suspect"]["p_value"] < config.alpha
    if config.output:
        import posixpath

        from tfrecords_schema import fileio

        if posixpath.dirname(config.output):
            fileio.makedirs(posixpath.dirname(config.output))
        fileio.write_text_atomically(config.output, json.dumps(report, indent=2) + "\n")
    return report


__all__ = ["OwnershipConfig", "binomial_tail", "read_evidence", "verify", "watermark_test"]
