"""fidelity_lab: an in-process lever study for the Copycat attack (issue #14), measured at equal query budgets.

No Beam and no lake: every array lives in memory. For each (problem, seed) the lab trains a target
exactly like ``copycat-train`` (VGG16-BN, width 0.25, 32 px, 8 epochs, SGD 0.01 momentum 0.9, weight
decay 5e-4, learning rate / 10 at 1/3 and 2/3 of the steps, batch 32) on the ODD split, cuts its own
seeded pool of bundled photo crops (``beam_pipelines.sources._CutCrop``, short side 64 as
``configs/digits_coverage.json``'s ``max_side``), derives pool-transform families from it
(``beam_pipelines.pool_transforms``), runs one attack per *lever stack* and query budget, trains the
copycat and scores it on the TDD against the target. The oracle is the target behind a function that
takes 32 px RGB pixels (what the oracle client / the exported signature feed it: decode RGB, resize to
32 with antialiasing) and answers the top-1 class only; every call is counted against the budget.

The attacker never sees an ODD/PDD/TDD image: it knows the class count and the coarse look only
(grayscale, object on a plain background), which is what the pool transform families encode.

Lever stacks (cumulative; one name per stack, ``--stacks``):

    L0      paper recipe: random raw crops, balance by replication/elimination to budget/K per class, 8 epochs
    L1u     + every transform family in equal shares (random within each family) [no per-oracle choice]
    L1      + per-oracle query distribution: a probe (6% of the budget) split evenly over the families, then
            the family mixture that maximizes the entropy of the expected label histogram gets the rest
    L2      + every paid label used: class-weighted loss (inverse frequency, capped 50x) instead of balancing
    L3      + free signal: augmentation while training (translate, rotate, zoom, contrast) and pseudo-labels
            on unqueried pool images (confidence >= 0.95, each class capped), a second training on both
    L4      + better queries: rounds of an interim copycat; each round: per-class deficits (labels wanted per
            class), uncertainty (smallest margin) with k-center diversity on the interim embeddings, and
            synthetic mixes of two pool images of different (interim) classes near the decision boundary
    L4-L3   L4 without L3 (the ablation)
    L5      L4 with a 16-epoch copycat schedule
    L2plain L2 with ten more families: objects on a plain background (``plain``: the darkest 50-80% of the
            pixels black), light on black or (a last ``invert``) dark on white, blurred or not
    L2e16   L2 with a 16-epoch copycat schedule
    L2x     L2 with half the budget random from the mixture, then four rounds of variants (same-class blends,
            small shifts, turns and zooms) of the labeled images of the classes below budget / K
    L2plainx  L2x over the plain-background families too
    L2xe16  L2x with a 16-epoch copycat schedule
    L2xE3   L2x with three copycats trained on the same labels (seeds s, s+1, s+2; their softmax averaged):
            no query, three times the training
    L2xr    L2x with a copycat that starts from self-supervised weights: the same network trained on 24,000
            unqueried pool images to tell which of four turns (0, 90, 180, 270 degrees) each was given
            (2 epochs; no query; stands in for the paper's ImageNet start)
    L2xp    L2x with L3's pseudo-labels (unqueried pool images the copycat is sure of, a second training), no
            augmentation
    L2xm    L2x with mixup of the copycat's training batches (Beta(0.4, 0.4), the larger weight on the image
            itself; soft labels mixed the same way): no query, smoother boundaries between the stolen classes

    L2xg    L2x with half of each variant round spent on labeled images of any class pushed toward a class
            below quota by an interim copycat (signed-gradient steps on its log probability, within 96 grey
            levels of the parent): Jacobian-style synthetic queries
    L2xk    L2x where each class's share of an epoch is split over look-alike groups (k-means on 8x8 grey
            thumbnails) by the square root of their sizes, so the rare looks of a large class are seen more
    L2xs    L2x where each class's share of an epoch is ∝ its label count ** 0.5 instead of equal
            (square-root sampling): the oracle's catch-all class keeps more of its weight
    (+E3: the same with three copycats averaged)
    L2xC    L2x over the photo, line-drawing (strokes) and handwritten-looking (scribble) families
    L2xCb   L2xC with ``--augment=lowres`` while training (interim and final copycats): half of each batch
            shrunk to 6-12 px and enlarged back, label kept; no query
    L2xCB   L2xC with four more families: the scribbles drawn with a broad pen (``scribble+bold``, sharp or
            blurred, light on black or dark on white)
    L2xCBe  L2xCB whose final copycat keeps an exponential moving average of its weights (momentum 0.998, about
            the last 500 steps; Keras's ``use_ema``), batch-norm statistics re-estimated under the averaged
            weights: no query, one training
    L2xCBd  L2xCB with half of each variant round spent on degraded copies (blur, broad pen, low resolution)
            of the rare classes' labeled images, each labeled by the oracle: how the target's classes move
            when a mark gets thicker or blurrier, the look of tiny problem images
    L2xCB16 L2xCB with a 16-epoch copycat schedule (the same labels; twice the training)
    L2xCBE3D L2xCB's three copycats (seeds s, s+1, s+2) distilled into one student: each epoch the paid labels'
            balanced draw (one-hot) plus 20,000 unqueried pool images answered with the three's mean
            probabilities (no query; four trainings)
    L2xCBp  L2xCB whose final copycat starts from contrastive weights: its convolutions trained on 15,000
            unqueried pool images with SimCLR's loss (two views of an image, crops, grey, jitter and blur,
            must find each other in the batch; 8 epochs, batch 256): no query, the NPDD itself as the
            paper's ImageNet start

Each row also records ``info.tdd_confusion`` (target's class × copycat's class on the TDD) and
``info.pool_agreement`` (agreement with the target on 2,000 crops of another seed's pool).

Results: one JSON line per run in ``benchmarks/results/fidelity_lab.jsonl``.

    .venv/bin/python benchmarks/fidelity_lab.py --problems=digits,glyphs --stacks=L0,L1,L2,L3,L4 \
        --budgets=10000 --seeds=0,1,2
"""

import argparse
import dataclasses
import hashlib
import io
import json
import math
import os
import random
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import PIL.Image
import PIL.ImageFilter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(int(os.environ.get("LAB_THREADS", "2")))
tf.config.threading.set_inter_op_parallelism_threads(1)

from sklearn.metrics import f1_score  # noqa: E402

from beam_pipelines import pool_transforms  # noqa: E402
from beam_pipelines.balance import copies_of, targets  # noqa: E402
from beam_pipelines.image_decode import downscale  # noqa: E402
from beam_pipelines.sources import _CutCrop, bundled_photo_paths  # noqa: E402
from copycat_tf.adaptive import interim, selection  # noqa: E402
from copycat_tf.adaptive.mixture import entropy, max_entropy_mixture  # noqa: E402
from copycat_tf.models import build_model  # noqa: E402
from copycat_tf.training.augment import build_augmentation  # noqa: E402
from copycat_tf.training.loop import paper_schedule  # noqa: E402

SIZE = 32
MAX_SIDE = 64
RESULTS = os.path.join(HERE, "results", "fidelity_lab.jsonl")

# The query families: pool transform variants (the library's, chained with +) that turn natural photos into
# grayscale images of either polarity, sharp or blurred, whole or zoomed. Nothing here names a problem.
FAMILIES = (
    "none",
    "grayscale+contrast",
    "grayscale+invert+contrast",
    "grayscale+contrast+lowres",
    "grayscale+invert+contrast+lowres",
    "zoom+grayscale+contrast",
    "zoom+grayscale+invert+contrast",
    "zoom+grayscale+contrast+lowres",
    "zoom+grayscale+invert+contrast+lowres",
)

# Objects on a plain background (light on black, or with a last invert dark on white), blurred or not.
PLAIN = (
    "grayscale+contrast+plain",
    "grayscale+invert+contrast+plain",
    "grayscale+contrast+plain+lowres",
    "grayscale+invert+contrast+plain+lowres",
    "zoom+grayscale+contrast+plain",
    "zoom+grayscale+invert+contrast+plain",
    "grayscale+contrast+plain+invert",
    "grayscale+invert+contrast+plain+invert",
    "grayscale+contrast+plain+lowres+invert",
    "grayscale+invert+contrast+plain+lowres+invert",
)
# Procedural line drawings: random pen strokes (curves, lines, arcs) on a plain background, drawn from the
# seed alone (the photo crop only gives the size): free, unlimited, and a prior of "marks on a plain
# background" that names no problem. Light on black, or dark on white, sharp or blurred.
STROKES = (
    "strokes",
    "strokes+invert",
    "strokes+lowres",
    "strokes+invert+lowres",
)
# Handwritten-looking marks: one pen path of joined curves and loops (connected shapes, as characters are written).
SCRIBBLE = (
    "scribble",
    "scribble+invert",
    "scribble+lowres",
    "scribble+invert+lowres",
)
# The same marks drawn with a broad pen (thickened by a maximum filter).
BOLD = (
    "scribble+bold",
    "scribble+bold+invert",
    "scribble+bold+lowres",
    "scribble+bold+invert+lowres",
)
FAMILY_SETS = {"base": FAMILIES, "plain": FAMILIES + PLAIN, "strokes": FAMILIES + STROKES,
               "scribble": FAMILIES + STROKES + SCRIBBLE, "bold": FAMILIES + STROKES + SCRIBBLE + BOLD}


def log(*parts):
    print(time.strftime("%H:%M:%S"), *parts, flush=True)


# ----------------------------------------------------------------------------------------------------------------
# Problems: the ODD and TDD splits as 32 px RGB uint8 (the target's input), as the lake input pipeline makes them.

def load_problem(name: str, seed: int) -> dict:
    if name == "digits":
        from copycat_tf.problems.digits import digits_problem
        problem = digits_problem(seed)
    elif name == "glyphs":
        from copycat_tf.problems.glyphs import glyphs_problem
        problem = glyphs_problem(seed)
    else:
        raise SystemExit(f"unknown problem {name!r}: digits or glyphs")
    out = {"num_classes": problem.num_classes}
    for split in ("odd", "tdd"):
        images, labels = [], []
        for part in problem.parts[split]:
            for example in problem.read_part(part):
                images.append(tf.io.decode_image(example.image, channels=3, expand_animations=False))
                labels.append(example.label)
        resized = tf.image.resize(tf.stack(images), (SIZE, SIZE), antialias=True)
        out[split] = (np.clip(np.round(resized.numpy()), 0, 255).astype(np.uint8), np.array(labels, np.int64))
    return out


# ----------------------------------------------------------------------------------------------------------------
# Training: copycat-train's recipe on in-memory arrays.

def _dataset(x, y, w, batch_size, seed, augment, mixup=0.0, num_classes=0):
    soft = y.ndim == 2
    data = tf.data.Dataset.from_tensor_slices((x, y, w)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    data = data.repeat().batch(batch_size, drop_remainder=True).enumerate()

    @tf.autograph.experimental.do_not_convert
    def prepare(step, batch):
        images, labels, weights = batch
        images = tf.cast(images, tf.float32)
        if augment is not None:  # copycat_tf.training.augment: stateless, keyed by (seed, step)
            images = augment(images, step)
        if soft:  # rows of class probabilities (a teacher's), not class ids
            return images, labels, weights
        if mixup:  # each image mixed with another of the batch, weight max(l, 1 - l), l ~ Beta(mixup, mixup)
            key = tf.stack([tf.cast(seed, tf.int64), step])
            g1 = tf.random.stateless_gamma([batch_size], key, alpha=mixup)
            g2 = tf.random.stateless_gamma([batch_size], key + [0, 1 << 40], alpha=mixup)
            lam = g1 / (g1 + g2)
            lam = tf.maximum(lam, 1 - lam)
            order = tf.argsort(tf.random.stateless_uniform([batch_size], key + [0, 1 << 41]))
            hot = tf.one_hot(labels, num_classes)
            images = lam[:, None, None, None] * images + (1 - lam[:, None, None, None]) * tf.gather(images, order)
            labels = lam[:, None] * hot + (1 - lam[:, None]) * tf.gather(hot, order)
        return images, labels, weights

    return data.map(prepare, num_parallel_calls=2).prefetch(2)


def train_classifier(x, y, num_classes, epochs=8, seed=0, weights=None, augment=None, lr=0.01, batch_size=32,
                     model=None, mixup=0.0, width=0.25, ema=0.0):
    keras.utils.set_random_seed(seed)
    if model is None:
        model = build_model("vgg16_bn", num_classes, SIZE, width=width)
    steps_epoch = max(1, math.ceil(len(x) / batch_size))
    total = steps_epoch * epochs
    optimizer = keras.optimizers.SGD(learning_rate=paper_schedule(lr, total), momentum=0.9, weight_decay=5e-4,
                                     use_ema=bool(ema), ema_momentum=ema or 0.99)
    soft = y.ndim == 2
    model.compile(optimizer=optimizer,
                  loss="categorical_crossentropy" if mixup or soft else "sparse_categorical_crossentropy")
    w = np.ones(len(x), np.float32) if weights is None else weights.astype(np.float32)
    aug = build_augmentation(augment, seed) if augment else None
    y = y.astype(np.float32) if soft else y.astype(np.int64)
    model.fit(_dataset(x, y, w, batch_size, seed, aug, mixup, num_classes), epochs=epochs,
              steps_per_epoch=steps_epoch, verbose=0)
    if ema:  # fit swapped in the averaged weights; the batch-norm statistics still belong to the last weights
        recalibrate_batch_norm(model, x, batch_size, seed)
    return model


def recalibrate_batch_norm(model, x, batch_size, seed, batches=200):
    """Re-estimate every batch-norm layer's moving statistics under the model's current weights (no gradient)."""
    rows = np.random.default_rng(seed + 77).permutation(len(x))[:batches * batch_size]
    for start in range(0, len(rows), batch_size):
        model(tf.constant(x[rows[start:start + batch_size]], tf.float32), training=True)


def predict(model, x, batch_size=512):
    return model.predict(x.astype(np.float32), batch_size=batch_size, verbose=0)


# ----------------------------------------------------------------------------------------------------------------
# The pool: seeded random crops of the bundled photos, and one derived image per (crop, family).

def _edges(image, rng):
    """Lab-only transform kept for experiments: gradient magnitude (light strokes on dark)."""
    import PIL.ImageFilter
    return image.convert("L").filter(PIL.ImageFilter.FIND_EDGES).convert("RGB")


pool_transforms.TRANSFORMS.setdefault("edges", _edges)


def build_pool(seed: int, count: int, families, cache: str) -> dict:
    path = os.path.join(cache, f"pool-s{seed}-n{count}-{hashlib.sha1(','.join(families).encode()).hexdigest()[:8]}.npz")
    if os.path.exists(path):
        with np.load(path) as data:
            return {f: data[f] for f in families}
    started = time.time()
    cutter = _CutCrop(seed, bundled_photo_paths())
    cutter.setup()
    out = {f: np.zeros((count, SIZE, SIZE, 3), np.uint8) for f in families}
    for i in range(count):
        raw = next(iter(cutter.process(i)))
        image = PIL.Image.open(io.BytesIO(raw.data))
        image.draft("RGB", (MAX_SIDE, MAX_SIDE))
        image = downscale(image.convert("RGB"), MAX_SIDE)
        for family in families:
            derived = image if family == "none" else pool_transforms.apply_variant(
                image, family, random.Random(f"{seed}/{i}/{family}"))
            out[family][i] = np.asarray(derived.resize((SIZE, SIZE), PIL.Image.Resampling.BILINEAR))
    os.makedirs(cache, exist_ok=True)
    np.savez(path, **out)
    log(f"pool seed {seed}: {count} crops x {len(families)} families in {time.time() - started:.0f}s")
    return out


# ----------------------------------------------------------------------------------------------------------------
# The oracle: top-1 class only, every image counted.

class Oracle:
    def __init__(self, model, budget):
        self.model, self.budget, self.spent = model, budget, 0

    def __call__(self, x):
        if self.spent + len(x) > self.budget:
            raise RuntimeError(f"budget exceeded: {self.spent} + {len(x)} > {self.budget}")
        self.spent += len(x)
        if not len(x):
            return np.zeros(0, np.int64)
        return np.argmax(predict(self.model, x), axis=1)


class Stolen:
    """The queried images and their labels (and which family each came from)."""

    def __init__(self):
        self.x, self.y, self.family = [], [], []

    def add(self, x, y, family):
        self.x.append(x)
        self.y.append(np.asarray(y, np.int64))
        self.family.extend([family] * len(x) if isinstance(family, str) else list(family))

    def arrays(self):
        return np.concatenate(self.x), np.concatenate(self.y)


# ----------------------------------------------------------------------------------------------------------------
# L1: the per-oracle query distribution.

def _apportion(total, weights):
    return selection.apportion(int(total), np.asarray(weights, np.float64))


# ----------------------------------------------------------------------------------------------------------------
# L4: rounds of an interim copycat choosing queries.

def embedder(model):
    """The interim copycat's penultimate features (global-average-pooled conv features)."""
    layer = [l for l in model.layers if isinstance(l, keras.layers.GlobalAveragePooling2D)][0]
    return keras.Model(model.inputs, [layer.output, model.outputs[0]])


def embed(model, x, batch_size=1024):
    features, probabilities = model.predict(x.astype(np.float32), batch_size=batch_size, verbose=0)
    return features, probabilities


def rounds_of(oracle: Oracle, budget: int, rounds: int):
    """(round number, queries for it): what is left of the budget shared evenly over the rounds left."""
    for number in range(rounds):
        left = budget - oracle.spent
        if left <= 0:
            return
        yield number, math.ceil(left / (rounds - number))


def k_center(features: np.ndarray, centers: np.ndarray, k: int) -> list[int]:
    """Greedy k-center: k rows of ``features`` each farthest from the centers chosen so far (and ``centers``)."""
    features = features / (np.linalg.norm(features, axis=1, keepdims=True) + 1e-8)
    if len(centers):
        centers = centers / (np.linalg.norm(centers, axis=1, keepdims=True) + 1e-8)
        nearest = np.full(len(features), np.inf)
        for i in range(0, len(centers), 2048):
            d = 2 - 2 * features @ centers[i:i + 2048].T
            nearest = np.minimum(nearest, d.min(axis=1))
    else:
        nearest = np.full(len(features), np.inf)
    chosen = []
    for _ in range(min(k, len(features))):
        j = int(np.argmax(nearest))
        chosen.append(j)
        nearest = np.minimum(nearest, 2 - 2 * features @ features[j])
        nearest[j] = -1
    return chosen


# ----------------------------------------------------------------------------------------------------------------
# One attack.

@dataclasses.dataclass
class Stack:
    families: str = "none"  # none | uniform | mixture
    family_set: str = "base"  # FAMILY_SETS: which derived families the pool offers
    rounds: int = 0  # L4 rounds (0: random within the family mixture)
    train: str = "balance"  # balance (once) | resample (a fresh balanced draw each epoch) | weighted (loss weights)
    augment: str = ""  # copycat-train --augment spec
    pseudo: bool = False
    epochs: int = 8
    probe_fraction: float = 0.1
    seed_fraction: float = 0.3
    mix_fraction: float = 0.2
    explore: float = 0.4
    expand_rounds: int = 0  # L2x: rounds that query variants of images already labeled in classes below quota
    mixup: float = 0.0  # Beta(mixup, mixup) mixup of the copycat's training batches (0: off)
    pretrain: str = ""  # start the copycat from a network trained on the pool without labels (no query):
    # "rotation" (tell the turn of an image) or "contrastive" (two views of one image, SimCLR's loss)
    ensemble: int = 1  # copycats trained on the same labels (seeds seed, seed+1, ...), softmax averaged
    temper: float = 0.0  # resample: class shares of an epoch ∝ (labels of the class) ** temper (0: equal shares)
    modes: int = 0  # resample: split each class into up to this many look-alike groups, drawn by sqrt(group size)
    guide: float = 0.0  # share of each expand round spent on images an interim copycat pushed toward the class
    width: float = 0.25  # the copycat's VGG16-BN width multiplier (the target's is 0.25)
    uncertain: float = 0.0  # share of each expand round spent on unqueried pool images (drawn by the mixture)
    ema: float = 0.0  # the final copycat keeps an exponential moving average of its weights (this momentum; 0: off)
    distill: int = 0  # unqueried pool images the ensemble answers with its mean probabilities for one student
    degrade: float = 0.0  # share of each expand round spent on degraded copies (blur, broad pen, low resolution)
    # of labeled images of the classes below quota, each labeled by the oracle (not assumed to keep its class)
    # that an interim copycat (refit each round) is least sure of, spread out by k-center on its features


AUG = "translate,rotate,scale,contrast"
STACKS = {
    "L0": Stack(),
    "L1u": Stack(families="uniform"),
    "L1": Stack(families="mixture"),
    "L2w": Stack(families="mixture", train="weighted"),
    "L2": Stack(families="mixture", train="resample"),
    "L3": Stack(families="mixture", train="resample", augment=AUG),
    "L3p": Stack(families="mixture", train="resample", augment=AUG, pseudo=True),
    "L4": Stack(families="mixture", train="resample", rounds=4),
    "L4+L3": Stack(families="mixture", train="resample", augment=AUG, rounds=4),
    "L5": Stack(families="mixture", train="resample", rounds=4, epochs=16),
    "L2plain": Stack(families="mixture", family_set="plain", train="resample"),
    "L2e16": Stack(families="mixture", train="resample", epochs=16),
    "L2x": Stack(families="mixture", train="resample", expand_rounds=4, seed_fraction=0.5),
    "L2xe16": Stack(families="mixture", train="resample", expand_rounds=4, seed_fraction=0.5, epochs=16),
    "L2xm": Stack(families="mixture", train="resample", expand_rounds=4, seed_fraction=0.5, mixup=0.4),
    "L2xE3": Stack(families="mixture", train="resample", expand_rounds=4, seed_fraction=0.5, ensemble=3),
    "L2xr": Stack(families="mixture", train="resample", expand_rounds=4, seed_fraction=0.5, pretrain="rotation"),
    "L2xp": Stack(families="mixture", train="resample", expand_rounds=4, seed_fraction=0.5, pseudo=True),
    "L2plainx": Stack(families="mixture", family_set="plain", train="resample", expand_rounds=4, seed_fraction=0.5),
    "L2xs": Stack(families="mixture", train="resample", expand_rounds=4, seed_fraction=0.5, temper=0.5),
    "L2xS": Stack(families="mixture", family_set="strokes", train="resample", expand_rounds=4, seed_fraction=0.5),
    "L2xSs": Stack(families="mixture", family_set="strokes", train="resample", expand_rounds=4, seed_fraction=0.5,
                   temper=0.5),
    "L2xsE3": Stack(families="mixture", train="resample", expand_rounds=4, seed_fraction=0.5, temper=0.5, ensemble=3),
    "L2xsW": Stack(families="mixture", train="resample", expand_rounds=4, seed_fraction=0.5, temper=0.5, width=0.5),
    "L2xSW": Stack(families="mixture", family_set="strokes", train="resample", expand_rounds=4, seed_fraction=0.5,
                   width=0.5),
    "L2xC": Stack(families="mixture", family_set="scribble", train="resample", expand_rounds=4, seed_fraction=0.5),
    "L2xCs": Stack(families="mixture", family_set="scribble", train="resample", expand_rounds=4, seed_fraction=0.5,
                   temper=0.5),
    "L2xCE3": Stack(families="mixture", family_set="scribble", train="resample", expand_rounds=4, seed_fraction=0.5,
                    ensemble=3),
    "L2xCsE3": Stack(families="mixture", family_set="scribble", train="resample", expand_rounds=4, seed_fraction=0.5,
                     temper=0.5, ensemble=3),
    "L2xCb": Stack(families="mixture", family_set="scribble", train="resample", expand_rounds=4, seed_fraction=0.5,
                   augment="lowres"),
    "L2xCB": Stack(families="mixture", family_set="bold", train="resample", expand_rounds=4, seed_fraction=0.5),
    "L2xCu": Stack(families="mixture", family_set="scribble", train="resample", expand_rounds=4, seed_fraction=0.5,
                   uncertain=0.5),
    "L2xCBp": Stack(families="mixture", family_set="bold", train="resample", expand_rounds=4, seed_fraction=0.5,
                    pretrain="contrastive"),
    "L2xCB16": Stack(families="mixture", family_set="bold", train="resample", expand_rounds=4, seed_fraction=0.5,
                     epochs=16),
    "L2xCBE3D": Stack(families="mixture", family_set="bold", train="resample", expand_rounds=4, seed_fraction=0.5,
                      ensemble=3, distill=20000),
    "L2xCBe": Stack(families="mixture", family_set="bold", train="resample", expand_rounds=4, seed_fraction=0.5,
                    ema=0.998),
    "L2xCBd": Stack(families="mixture", family_set="bold", train="resample", expand_rounds=4, seed_fraction=0.5,
                    degrade=0.5),
    "L2xk": Stack(families="mixture", train="resample", expand_rounds=4, seed_fraction=0.5, modes=16),
    "L2xkE3": Stack(families="mixture", train="resample", expand_rounds=4, seed_fraction=0.5, modes=16, ensemble=3),
    "L2xg": Stack(families="mixture", train="resample", expand_rounds=4, seed_fraction=0.5, guide=0.5),
    "L2xgE3": Stack(families="mixture", train="resample", expand_rounds=4, seed_fraction=0.5, guide=0.5, ensemble=3),
}


def steal(stack: Stack, pool: dict, oracle: Oracle, budget: int, num_classes: int, seed: int, info: dict):
    rng = np.random.default_rng(seed + 7919 * budget)
    families = ["none"] if stack.families == "none" else [f for f in pool if f != "none"]
    used = {f: np.zeros(len(pool[f]), bool) for f in pool}
    stolen = Stolen()

    def take_random(family, n):
        free = np.flatnonzero(~used[family])
        pick = rng.choice(free, min(n, len(free)), replace=False)
        used[family][pick] = True
        if len(pick):
            stolen.add(pool[family][pick], oracle(pool[family][pick]), family)
        return pick

    if stack.families == "mixture":  # the probe: an equal share per family, then the max-entropy mixture
        probe = int(budget * stack.probe_fraction)
        for family, n in zip(families, _apportion(probe, np.ones(len(families)))):
            take_random(family, n)
        x, y = stolen.arrays()
        fam = np.array(stolen.family)
        histograms = np.stack([np.bincount(y[fam == f], minlength=num_classes) for f in families])
        weights = max_entropy_mixture(histograms)
        info["probe"] = {f: {"histogram": h.tolist(), "entropy": round(entropy(h), 3), "weight": round(float(w), 3)}
                         for f, h, w in zip(families, histograms, weights)}
    else:
        weights = np.ones(len(families)) / len(families)
    info["weights"] = {f: round(float(w), 3) for f, w in zip(families, weights)}

    def candidates(n):  # unqueried pool images drawn by the mixture: (images, [(family, row)])
        picks, refs = [], []
        for family, k in zip(families, _apportion(n, weights)):
            free = np.flatnonzero(~used[family])
            pick = rng.choice(free, min(k, len(free)), replace=False)
            picks.append(pool[family][pick])
            refs.extend((family, int(p)) for p in pick)
        return np.concatenate(picks), refs

    if stack.expand_rounds:
        for family, n in zip(families, _apportion(int(budget * stack.seed_fraction) - oracle.spent, weights)):
            take_random(family, n)

        def take(refs):
            for family, row in refs:
                used[family][row] = True

        expand(stack, stolen, oracle, budget, num_classes, rng, info, (candidates, take))
    if stack.rounds == 0:
        for family, n in zip(families, _apportion(budget - oracle.spent, weights)):
            take_random(family, n)
        return stolen

    # L4: a random seed set from the mixture, then rounds of interim copycat → choose → query.
    seed_n = max(0, int(budget * stack.seed_fraction) - oracle.spent)
    for family, n in zip(families, _apportion(seed_n, weights)):
        take_random(family, n)
    quota = budget // num_classes
    candidates_per_round = 12000
    info["rounds"] = []
    model = None
    for number, round_n in rounds_of(oracle, budget, stack.rounds):
        x, y = stolen.arrays()
        if model is None:
            model = interim.build_interim(num_classes, SIZE, filters=24, seed=seed)
            features_model = embedder(model)
        interim.fit(model, x, y, epochs=4 if number == 0 else 2, seed=seed + number)
        # Candidates: unqueried pool images drawn by the mixture, plus synthetic mixes of two of them.
        cand_x, cand_ref = candidates(candidates_per_round)
        features, probs = embed(features_model, cand_x)
        histogram = np.bincount(y, minlength=num_classes)
        mix_n = int(round_n * stack.mix_fraction)
        # Per-class deficits (the library's allocation), the rest to uncertain + diverse images.
        allocation = selection.allocate(histogram, quota, round_n - mix_n, stack.explore)
        picker = selection.Picker(selection.Allocation(allocation.per_class, 0))
        picker.add(probs, np.arange(len(cand_x)))
        picks, made = picker.picks()
        taken = set(picks)
        uncertain_n = round_n - mix_n - len(picks)
        top2 = -np.sort(-probs, axis=1)[:, :2]
        margin = top2[:, 0] - top2[:, 1]
        order = [i for i in np.argsort(margin, kind="stable") if i not in taken][: 4 * uncertain_n]
        order = np.array(order, np.int64)
        labeled_features = embed(features_model, x[rng.choice(len(x), min(len(x), 4000), replace=False)])[0]
        diverse = order[k_center(features[order], labeled_features, uncertain_n)] if uncertain_n > 0 else []
        chosen = list(picks) + [int(i) for i in diverse]
        for i in chosen:
            family, p = cand_ref[i]
            used[family][p] = True
        chosen_x = cand_x[chosen]
        stolen.add(chosen_x, oracle(chosen_x), [cand_ref[i][0] for i in chosen])
        # Synthetic boundary queries: mixes of two candidates the interim copycat puts in different classes.
        if mix_n > 0:
            predicted = np.argmax(probs, axis=1)
            a = rng.integers(0, len(cand_x), 8 * mix_n)
            b = rng.integers(0, len(cand_x), 8 * mix_n)
            keep = predicted[a] != predicted[b]
            a, b = a[keep], b[keep]
            if not len(a):  # the interim copycat puts every candidate in one class: nothing to mix
                mix_n = 0
        if mix_n > 0:
            alpha = rng.uniform(0.3, 0.7, len(a))[:, None, None, None]
            mixes = np.clip(np.round(alpha * cand_x[a] + (1 - alpha) * cand_x[b]), 0, 255).astype(np.uint8)
            mix_probs = predict(model, mixes)
            top2 = -np.sort(-mix_probs, axis=1)[:, :2]
            best = np.argsort(top2[:, 0] - top2[:, 1], kind="stable")[: min(mix_n, budget - oracle.spent)]
            stolen.add(mixes[best], oracle(mixes[best]), "mix")
        info["rounds"].append({"round": number + 1, "asked": len(chosen) + (len(best) if mix_n else 0),
                               "class_picks": int(len(picks)), "histogram": np.bincount(stolen.arrays()[1],
                                                                                        minlength=num_classes).tolist()})
    if budget - oracle.spent > 0:  # whatever the rounds left (pool exhausted, rounding): random from the mixture
        for family, n in zip(families, _apportion(budget - oracle.spent, weights)):
            take_random(family, n)
    return stolen


def variants(parents: np.ndarray, partners: np.ndarray, rng) -> np.ndarray:
    """Near copies of labeled images: half blended with another image of the same class, then a small random
    affine move (shift up to 3 px, turn up to 15 degrees, scale 0.9-1.1), edges filled with the corner colour."""
    out = np.empty_like(parents)
    for i, (a, b) in enumerate(zip(parents, partners)):
        image = a.astype(np.float32)
        if rng.random() < 0.5:
            alpha = rng.uniform(0.5, 0.8)
            image = alpha * image + (1 - alpha) * b.astype(np.float32)
        picture = PIL.Image.fromarray(np.clip(np.round(image), 0, 255).astype(np.uint8))
        angle, scale = rng.uniform(-15, 15), rng.uniform(0.9, 1.1)
        shift = rng.uniform(-3, 3, 2)
        fill = tuple(int(v) for v in np.asarray(picture)[0, 0])
        moved = picture.rotate(angle, resample=PIL.Image.Resampling.BILINEAR, translate=tuple(shift), fillcolor=fill)
        side = max(1, round(SIZE * scale))
        moved = moved.resize((side, side), PIL.Image.Resampling.BILINEAR)
        canvas = PIL.Image.new("RGB", (SIZE, SIZE), fill)
        canvas.paste(moved, ((SIZE - side) // 2, (SIZE - side) // 2))
        out[i] = np.asarray(canvas)
    return out


def degraded(parents: np.ndarray, rng) -> np.ndarray:
    """Labeled images made thicker, blurrier or coarser, as a tiny or broad-pen problem image would look: a
    Gaussian blur (sigma 0.5-2 px), a broad pen (the ink, light or dark by the corner colour, spread by a
    1-3 px filter) or a low resolution (shrunk to 6-16 px and enlarged back), or a broad pen then one of the
    other two. The oracle labels each: where the target's class changes under the change is what is learned."""
    out = np.empty_like(parents)
    for i, image in enumerate(parents):
        picture = PIL.Image.fromarray(image)
        light_ink = float(np.asarray(picture.convert("L"))[[0, 0, -1, -1], [0, -1, 0, -1]].mean()) < 128
        kind = rng.integers(0, 5)  # 0 blur, 1 pen, 2 low resolution, 3 pen + blur, 4 pen + low resolution
        if kind in (1, 3, 4):
            size = 2 * int(rng.integers(1, 4)) + 1
            picture = picture.filter(PIL.ImageFilter.MaxFilter(size) if light_ink else PIL.ImageFilter.MinFilter(size))
        if kind in (0, 3):
            picture = picture.filter(PIL.ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0)))
        if kind in (2, 4):
            side = int(rng.integers(6, 17))
            picture = picture.resize((side, side), PIL.Image.Resampling.BOX).resize(
                (SIZE, SIZE), PIL.Image.Resampling.BILINEAR)
        out[i] = np.asarray(picture)
    return out


def pushed(model, parents: np.ndarray, classes: np.ndarray, steps: int = 20, step: float = 6.0,
           radius: float = 96.0) -> np.ndarray:
    """Labeled images moved toward ``classes`` by an interim copycat: signed-gradient steps on the log
    probability of the class (the gradient averaged over the channels, so a gray image stays gray), each pixel
    within ``radius`` grey levels of its parent (Papernot et al.'s Jacobian augmentation, aimed at a class)."""
    start = tf.constant(parents, tf.float32)
    x = start
    index = tf.constant(classes, tf.int32)
    for _ in range(steps):
        with tf.GradientTape() as tape:
            tape.watch(x)
            probabilities = model(x, training=False)
            objective = tf.reduce_sum(tf.math.log(tf.gather(probabilities, index, batch_dims=1) + 1e-8))
        gradient = tf.reduce_mean(tape.gradient(objective, x), axis=-1, keepdims=True)
        x = x + step * tf.sign(gradient)
        x = tf.clip_by_value(tf.clip_by_value(x, start - radius, start + radius), 0.0, 255.0)
    return np.clip(np.round(x.numpy()), 0, 255).astype(np.uint8)


def least_sure(model, cand_x: np.ndarray, labeled_x: np.ndarray, n: int, rng) -> np.ndarray:
    """Rows of ``cand_x`` to ask: the 4n with the smallest top-2 margin of the interim copycat, of which n spread
    out by greedy k-center on its pooled features (away from the labeled images' features too)."""
    features_model = embedder(model)
    features, probs = embed(features_model, cand_x)
    top2 = -np.sort(-probs, axis=1)[:, :2]
    order = np.argsort(top2[:, 0] - top2[:, 1], kind="stable")[: 4 * n]
    labeled = embed(features_model, labeled_x[rng.choice(len(labeled_x), min(len(labeled_x), 4000), replace=False)])[0]
    return order[k_center(features[order], labeled, n)]


def expand(stack: Stack, stolen: Stolen, oracle: Oracle, budget: int, num_classes: int, rng, info: dict,
           pool_access=None) -> None:
    """L2x: rounds that spend the budget on variants of the labeled images of the classes furthest below
    budget / K (the oracle labels every variant; a variant may land in another class). No interim model.
    L2xg: a share of each round goes to labeled images of any class that an interim copycat (refit each round)
    pushed toward a class below quota instead, so rare classes grow from the common classes' images too."""
    quota = budget // num_classes
    info["expand"] = []
    model = None
    for number, round_n in rounds_of(oracle, budget, stack.expand_rounds):
        x, y = stolen.arrays()
        histogram = np.bincount(y, minlength=num_classes)
        deficits = np.where(histogram > 0, np.maximum(0, quota - histogram), 0).astype(np.float64)
        if deficits.sum() == 0:
            break
        guided_n = int(round(round_n * stack.guide))
        uncertain_n = int(round(round_n * stack.uncertain)) if pool_access else 0
        if uncertain_n:  # L2xCu: part of the round on pool images an interim copycat is least sure of
            if model is None:
                model = interim.build_interim(num_classes, SIZE, filters=24, seed=int(rng.integers(1 << 30)))
            interim.fit(model, x, y, epochs=4 if number == 0 else 2, seed=int(rng.integers(1 << 30)))
            draw, take = pool_access
            cand_x, refs = draw(8 * uncertain_n)
            chosen = least_sure(model, cand_x, x, uncertain_n, rng)
            take([refs[i] for i in chosen])
            answers = oracle(cand_x[chosen])
            stolen.add(cand_x[chosen], answers, [refs[i][0] for i in chosen])
            round_n -= len(chosen)
            uncertain_report = {"uncertain": int(len(chosen)),
                                "uncertain_histogram": np.bincount(answers, minlength=num_classes).tolist()}
        degrade_n = int(round(round_n * stack.degrade))
        shares = _apportion(round_n - guided_n - degrade_n, deficits)
        parents, partners = [], []
        for c, n in enumerate(shares):
            if n:
                members = np.flatnonzero(y == c)
                parents.append(x[rng.choice(members, n)])
                partners.append(x[rng.choice(members, n)])
        made = variants(np.concatenate(parents), np.concatenate(partners), rng) if parents else x[:0]
        aimed = np.repeat(np.arange(num_classes), shares)
        if degrade_n:  # L2xCBd: degraded copies of the rare classes' labeled images, labeled by the oracle
            degrade_shares = _apportion(degrade_n, deficits)
            rows = np.concatenate([rng.choice(np.flatnonzero(y == c), n) for c, n in enumerate(degrade_shares) if n])
            made = np.concatenate([made, degraded(x[rows], rng)])
            aimed = np.concatenate([aimed, np.repeat(np.arange(num_classes), degrade_shares)])
        if guided_n:
            if model is None:
                model = interim.build_interim(num_classes, SIZE, filters=24, seed=int(rng.integers(1 << 30)))
            if not uncertain_n:
                interim.fit(model, x, y, epochs=4 if number == 0 else 2, seed=int(rng.integers(1 << 30)))
            toward = np.repeat(np.arange(num_classes), _apportion(guided_n, deficits))
            made = np.concatenate([made, pushed(model, x[rng.choice(len(x), guided_n)], toward)])
            aimed = np.concatenate([aimed, toward])
        labels = oracle(made)
        stolen.add(made, labels, ["variant"] * (len(made) - guided_n) + ["guided"] * guided_n)
        if degrade_n:
            variant_n = len(made) - guided_n - degrade_n
            kept = labels[variant_n:variant_n + degrade_n] == aimed[variant_n:variant_n + degrade_n]
        report = {"round": number + 1, "asked": int(len(made)), "kept_class": round(float(
            np.mean(labels[:len(made) - guided_n] == aimed[:len(made) - guided_n])), 3),
            "histogram": np.bincount(stolen.arrays()[1], minlength=num_classes).tolist()}
        if degrade_n:
            report["degraded"], report["degraded_kept_class"] = int(degrade_n), round(float(np.mean(kept)), 3)
        if uncertain_n:
            report.update(uncertain_report)
        if guided_n:
            report["guided_hit"] = round(float(np.mean(labels[-guided_n:] == aimed[-guided_n:])), 3)
        info["expand"].append(report)


def balance(x, y, num_classes, total, seed):
    """copycat-balance --total: every present class to total // K images by replication or elimination."""
    rng = np.random.default_rng(seed)
    present = [c for c in range(num_classes) if (y == c).any()]
    rows = []
    for c, target in zip(present, targets(len(present), None, total)):
        members = rng.permutation(np.flatnonzero(y == c))
        for rank, row in enumerate(members):
            rows.extend([row] * copies_of(rank, len(members), target))
    rows = np.array(rows)
    return x[rows], y[rows]


def balance_tempered(y: np.ndarray, num_classes: int, total: int, power: float, seed: int) -> np.ndarray:
    """Rows of one draw of ``total`` images where class c gets a share ∝ n_c ** power (power 0: copycat-balance's
    equal shares; 1: the stolen frequencies): the oracle's catch-all class keeps more weight than an equal share
    gives it, so the copycat does not learn to avoid it; each class is replicated or thinned by copies_of."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(y, minlength=num_classes).astype(np.float64)
    present = np.flatnonzero(counts)
    shares = _apportion(total, counts[present] ** power)
    rows = []
    for c, target in zip(present, shares):
        members = rng.permutation(np.flatnonzero(y == c))
        for rank, row in enumerate(members):
            rows.extend([row] * copies_of(rank, len(members), target))
    return np.array(rows)


def look_groups(x: np.ndarray, y: np.ndarray, num_classes: int, groups: int, seed: int) -> np.ndarray:
    """A group id per image: within each class, k-means on 8x8 grey thumbnails normalized for brightness and
    contrast (the shape of the image), at most ``groups`` per class and about 40 images per group."""
    from sklearn.cluster import KMeans
    grey = x.astype(np.float32).mean(axis=-1)
    n, size = len(x), x.shape[1]
    thumbs = grey.reshape(n, 8, size // 8, 8, size // 8).mean(axis=(2, 4)).reshape(n, 64)
    thumbs = (thumbs - thumbs.mean(axis=1, keepdims=True)) / (thumbs.std(axis=1, keepdims=True) + 1.0)
    out = np.zeros(n, np.int64)
    for c in range(num_classes):
        members = np.flatnonzero(y == c)
        k = min(groups, len(members) // 40)
        if k >= 2:
            out[members] = c * groups + KMeans(k, n_init=3, random_state=seed).fit_predict(thumbs[members])
        else:
            out[members] = c * groups
    return out


def balance_modes(y: np.ndarray, groups: np.ndarray, num_classes: int, total: int, seed: int) -> np.ndarray:
    """Rows of one balanced draw (total // K per class) where each class's share is split over its look groups
    in proportion to the square root of their sizes: a common look (the default class's textures) no longer
    crowds out the rare looks of its class. Within a group: a fresh permutation, replicated if too small."""
    rng = np.random.default_rng(seed)
    rows = []
    present = [c for c in range(num_classes) if (y == c).any()]
    for c, target in zip(present, targets(len(present), None, total)):
        ids, sizes = np.unique(groups[y == c], return_counts=True)
        for g, n in zip(ids, _apportion(target, np.sqrt(sizes))):
            members = rng.permutation(np.flatnonzero((y == c) & (groups == g)))
            for rank, row in enumerate(members):
                rows.extend([row] * copies_of(rank, len(members), n))
    return np.array(rows)


def rotation_pretrained(pool: dict, seed: int, cache: str, count: int = 24000, epochs: int = 2) -> str:
    """Weights of the copycat network trained to tell the turn (0/90/180/270) of pool images: no query spent."""
    path = os.path.join(cache, f"rotation-s{seed}-n{count}-e{epochs}-{len(pool)}f.weights.h5")
    if os.path.exists(path):
        return path
    rng = np.random.default_rng(seed + 4242)
    everything = np.concatenate([pool[f] for f in sorted(pool)])
    x = everything[rng.choice(len(everything), min(count, len(everything)), replace=False)]
    turns = rng.integers(0, 4, len(x))
    x = np.stack([np.rot90(image, k) for image, k in zip(x, turns)])
    started = time.time()
    model = train_classifier(x, turns, 4, epochs=epochs, seed=seed + 4242, batch_size=64)
    log(f"rotation pretraining seed {seed}: {time.time() - started:.0f}s, accuracy on its own images "
        f"{float((predict(model, x[:2000]).argmax(axis=1) == turns[:2000]).mean()):.3f}")
    model.save_weights(path)
    return path


def _two_views(images, key):
    """Two random views of each image (SimCLR's recipe for small grey-or-colour pictures, no flips: digits and
    letters are not mirror-symmetric): a crop of 35-100% of the area resized back, grey half the time,
    brightness and contrast jitter, and a blur a third of the time (the problem's images may be blurry)."""
    n = tf.shape(images)[0]
    views = []
    for v in range(2):
        k = key + tf.constant([0, 1000 * (v + 1)], tf.int64)
        area = tf.random.stateless_uniform([n], k, 0.35, 1.0)
        ratio = tf.exp(tf.random.stateless_uniform([n], k + [0, 1], math.log(3 / 4), math.log(4 / 3)))
        h = tf.minimum(tf.sqrt(area / ratio), 1.0)
        w = tf.minimum(tf.sqrt(area * ratio), 1.0)
        y0 = tf.random.stateless_uniform([n], k + [0, 2]) * (1 - h)
        x0 = tf.random.stateless_uniform([n], k + [0, 3]) * (1 - w)
        boxes = tf.stack([y0, x0, y0 + h, x0 + w], axis=1)
        x = tf.image.crop_and_resize(images, boxes, tf.range(n), (SIZE, SIZE))
        grey = tf.image.rgb_to_grayscale(x)
        to_grey = tf.random.stateless_uniform([n, 1, 1, 1], k + [0, 4]) < 0.5
        x = tf.where(to_grey, tf.tile(grey, [1, 1, 1, 3]), x)
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        contrast = tf.random.stateless_uniform([n, 1, 1, 1], k + [0, 5], 0.6, 1.4)
        bright = tf.random.stateless_uniform([n, 1, 1, 1], k + [0, 6], -40.0, 40.0)
        x = (x - mean) * contrast + mean + bright
        blurred = tf.nn.avg_pool2d(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC"), 3, 1, "VALID")
        blur = tf.random.stateless_uniform([n, 1, 1, 1], k + [0, 7]) < 1 / 3
        views.append(tf.clip_by_value(tf.where(blur, blurred, x), 0.0, 255.0))
    return views


def contrastive_pretrained(pool: dict, seed: int, cache: str, count: int = 15000, epochs: int = 8,
                           batch_size: int = 256, temperature: float = 0.2) -> str:
    """Weights of the copycat network trained on pool images with SimCLR's contrastive loss (no label, no
    query): each image's two views must find each other among the batch's 2n views. Stands in for the
    paper's ImageNet start where those weights cannot be had."""
    path = os.path.join(cache, f"contrastive-s{seed}-n{count}-e{epochs}-b{batch_size}-t{temperature}-"
                               f"{len(pool)}f.weights.h5")
    if os.path.exists(path):
        return path
    rng = np.random.default_rng(seed + 5151)
    everything = np.concatenate([pool[f] for f in sorted(pool)])
    x = everything[rng.choice(len(everything), min(count, len(everything)), replace=False)].astype(np.float32)
    keras.utils.set_random_seed(seed + 5151)
    model = build_model("vgg16_bn", 4, SIZE, width=0.25)
    trunk = keras.Model(model.input, keras.layers.Flatten()(model.get_layer("block5_pool").output))
    head = keras.Sequential([keras.layers.Dense(256, activation="relu"), keras.layers.Dense(64)])
    head.build((None, trunk.output.shape[-1]))
    steps_epoch = len(x) // batch_size
    schedule = keras.optimizers.schedules.CosineDecay(1e-3, steps_epoch * epochs)
    optimizer = keras.optimizers.Adam(schedule, weight_decay=1e-5)
    variables = trunk.trainable_variables + head.trainable_variables
    labels = tf.concat([tf.range(batch_size, 2 * batch_size), tf.range(batch_size)], axis=0)
    mask = tf.eye(2 * batch_size) * 1e9

    @tf.function
    def step(batch, key):
        a, b = _two_views(batch, key)
        with tf.GradientTape() as tape:
            z = tf.math.l2_normalize(head(trunk(tf.concat([a, b], 0), training=True), training=True), axis=1)
            logits = tf.matmul(z, z, transpose_b=True) / temperature - mask
            loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        found = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1, output_type=tf.int32), labels), tf.float32))
        return loss, found

    started = time.time()
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        losses, founds = [], []
        for i in range(steps_epoch):
            loss, found = step(tf.constant(x[order[i * batch_size:(i + 1) * batch_size]]),
                               tf.constant([seed, epoch * steps_epoch + i], tf.int64))
            losses.append(float(loss))
            founds.append(float(found))
        log(f"contrastive pretraining seed {seed}, epoch {epoch + 1}/{epochs}: loss {np.mean(losses):.3f}, "
            f"views that find their pair {np.mean(founds):.3f} (chance {1 / (2 * batch_size - 1):.4f}), "
            f"{time.time() - started:.0f}s")
    model.save_weights(path)
    return path


def _start_from(path: str, num_classes: int, seed: int):
    """A fresh copycat network with every layer but the classifier copied from the pretrained one."""
    keras.utils.set_random_seed(seed)
    pretrained = build_model("vgg16_bn", 4, SIZE, width=0.25)
    pretrained.load_weights(path)
    model = build_model("vgg16_bn", num_classes, SIZE, width=0.25)
    for source, target in zip(pretrained.layers, model.layers):
        weights = source.get_weights()
        if weights and [w.shape for w in weights] == [w.shape for w in target.get_weights()]:
            target.set_weights(weights)
    return model


PRETRAINED = {}  # set by main: the cache folder


class Ensemble:
    """Copycats whose softmax outputs are averaged (what ``predict`` needs of a model)."""

    def __init__(self, members):
        self.members = members

    def predict(self, x, batch_size=512, verbose=0):
        return np.mean([m.predict(x, batch_size=batch_size, verbose=verbose) for m in self.members], axis=0)


def distilled(teacher, x, y, rows, stolen: Stolen, pool: dict, num_classes: int, stack: Stack, seed: int, info: dict):
    """One student trained on the paid labels (each epoch's balanced draw, one-hot) and on ``stack.distill``
    unqueried pool images answered by the teacher (its mean probabilities): no query spent, the ensemble's
    knowledge in one network that also saw many more of the pool's images."""
    rng = np.random.default_rng(seed + 9090)
    families = sorted(set(stolen.family) - {"mix", "variant"})
    share = _apportion(stack.distill, np.ones(len(families)))
    free = np.concatenate([pool[f][rng.choice(len(pool[f]), min(n, len(pool[f])), replace=False)]
                           for f, n in zip(families, share)])
    answers = teacher.predict(free.astype(np.float32), batch_size=512)
    info["distill"] = {"images": int(len(free)), "histogram": np.bincount(answers.argmax(1), minlength=num_classes).tolist(),
                       "mean_top1": float(answers.max(1).mean())}
    per_epoch = len(rows) // stack.epochs
    hot = np.eye(num_classes, dtype=np.float32)
    xs, ys = [], []
    for e in range(stack.epochs):  # each epoch: its balanced draw of paid labels, then every free image once
        xs += [x[rows[e * per_epoch:(e + 1) * per_epoch]], free]
        ys += [hot[y[rows[e * per_epoch:(e + 1) * per_epoch]]], answers]
    return train_classifier(np.concatenate(xs), np.concatenate(ys), num_classes, 1, seed + 7, width=stack.width)


def train_copycat(stack: Stack, stolen: Stolen, pool: dict, num_classes: int, budget: int, seed: int, info: dict):
    x, y = stolen.arrays()
    start = None
    if stack.pretrain:
        pretrained = {"rotation": rotation_pretrained, "contrastive": contrastive_pretrained}[stack.pretrain]
        start = _start_from(pretrained(pool, seed, PRETRAINED["cache"]), num_classes, seed)
    if stack.train == "balance":
        xb, yb = balance(x, y, num_classes, budget, seed)
        return train_classifier(xb, yb, num_classes, stack.epochs, seed, augment=stack.augment)
    if stack.train == "resample":
        # Every paid label used: each epoch is its own balanced draw (replication of the rare classes, a
        # different sample of the common ones), so over the epochs every image of a large class is seen.
        if stack.temper:
            rows = np.concatenate([balance_tempered(y, num_classes, budget, stack.temper, seed + 1000 * e)
                                   for e in range(stack.epochs)])
        elif stack.modes:
            groups = look_groups(x, y, num_classes, stack.modes, seed)
            info["look_groups"] = [int(len(np.unique(groups[y == c]))) for c in range(num_classes)]
            rows = np.concatenate([balance_modes(y, groups, num_classes, budget, seed + 1000 * e)
                                   for e in range(stack.epochs)])
        else:
            rows = np.concatenate([balance(np.arange(len(y)), y, num_classes, budget, seed + 1000 * e)[0]
                                   for e in range(stack.epochs)])
        model = train_classifier(x[rows], y[rows], num_classes, 1, seed, augment=stack.augment, mixup=stack.mixup,
                                 model=start, width=stack.width, ema=stack.ema)
        if stack.ensemble > 1:
            members = [model] + [train_classifier(x[rows], y[rows], num_classes, 1, seed + m, augment=stack.augment,
                                                  width=stack.width) for m in range(1, stack.ensemble)]
            model = Ensemble(members)
        if stack.distill:
            model = distilled(model, x, y, rows, stolen, pool, num_classes, stack, seed, info)
    else:
        weights = interim.class_weights(y, num_classes)[y]
        model = train_classifier(x, y, num_classes, stack.epochs, seed, weights=weights, augment=stack.augment)
    if not stack.pseudo:
        return model
    # Pseudo-labels on unqueried pool images of the same families (no query spent), then a second training.
    rng = np.random.default_rng(seed + 1)
    families = sorted(set(stolen.family) - {"mix", "variant"})
    cand = np.concatenate([pool[f][rng.choice(len(pool[f]), min(len(pool[f]), 2 * budget // len(families)),
                                               replace=False)] for f in families])
    probs = predict(model, cand)
    confident = probs.max(axis=1) >= 0.95
    labels = probs.argmax(axis=1)
    cap = max(1, len(y) // num_classes)
    keep = np.concatenate([np.flatnonzero(confident & (labels == c))[:cap] for c in range(num_classes)])
    info["pseudo"] = {"candidates": int(len(cand)), "kept": int(len(keep)),
                      "histogram": np.bincount(labels[keep], minlength=num_classes).tolist()}
    x2, y2 = np.concatenate([x, cand[keep]]), np.concatenate([y, labels[keep]])
    rows = np.concatenate([balance(np.arange(len(y2)), y2, num_classes, len(y2), seed + 1000 * e)[0]
                           for e in range(stack.epochs)])
    return train_classifier(x2[rows], y2[rows], num_classes, 1, seed + 2, augment=stack.augment)


# ----------------------------------------------------------------------------------------------------------------

def summarize(path: str) -> str:
    """Markdown tables: per problem and budget, each stack's copy performance and agreement, mean ± std over seeds."""
    rows = [json.loads(line) for line in open(path) if line.strip()]
    lines = []
    for problem in sorted({r["problem"] for r in rows}):
        lines += [f"\n{problem}", "| budget | stack | seeds | copy performance | min seed | agreement | wall s/run |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        groups = {}
        for r in rows:
            if r["problem"] == problem:
                groups.setdefault((r["budget"], r["stack"], r.get("tag", "")), []).append(r)
        for (budget, stack, tag), group in sorted(groups.items(), key=lambda g: (g[0][0], list(STACKS).index(g[0][1])
                                                                                 if g[0][1] in STACKS else 99, g[0][2])):
            copy = np.array([r["copy_performance"] for r in group])
            agree = np.array([r["agreement"] for r in group])
            ddof = 1 if len(group) > 1 else 0  # the sample standard deviation over seeds
            lines.append(f"| {budget} | {stack}{' ' + tag if tag else ''} | {len(group)} | {100 * copy.mean():.1f} ± "
                         f"{100 * copy.std(ddof=ddof):.1f} | {100 * copy.min():.1f} | {100 * agree.mean():.1f} ± "
                         f"{100 * agree.std(ddof=ddof):.1f} | {np.mean([r['wall_seconds'] for r in group]):.0f} |")
    return "\n".join(lines)


def pool_agreement(copycat, target, seed: int, args) -> float:
    """Agreement with the target on 2,000 crops the attack never queried (another seed's pool, every family):
    beside the TDD agreement it tells a copycat that misses the target everywhere from one that misses it only
    on the problem's images."""
    other = build_pool((seed + 1) % 3 if seed < 3 else seed + 1, args.pool, FAMILY_SETS["base"], args.cache)
    rng = np.random.default_rng(seed + 99)
    x = np.concatenate([other[f][rng.choice(len(other[f]), 2000 // len(other), replace=False)] for f in sorted(other)])
    return round(float((predict(copycat, x).argmax(axis=1) == predict(target, x).argmax(axis=1)).mean()), 4)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", default="digits,glyphs")
    parser.add_argument("--stacks", default="L0,L1,L2,L3,L4")
    parser.add_argument("--budgets", default="2000")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--pool", type=int, default=6000, help="crops per seed (each family derives one per crop)")
    parser.add_argument("--cache", default="/tmp/fidelity_lab_cache")
    parser.add_argument("--output", default=RESULTS)
    parser.add_argument("--tag", default="")
    parser.add_argument("--smoke", action="store_true", help="1-epoch trainings (a check that everything runs)")
    parser.add_argument("--summary", action="store_true", help="print the tables of --output and stop")
    args = parser.parse_args(argv)
    if args.summary:
        print(summarize(args.output))
        return
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    os.makedirs(args.cache, exist_ok=True)  # targets, pools and pretrained weights are kept here between runs
    stacks = args.stacks.split(",")
    for name in stacks:
        if name not in STACKS:
            raise SystemExit(f"unknown stack {name!r}; known: {', '.join(STACKS)}")
    done = set()
    if os.path.exists(args.output):
        done = {(r["problem"], r["stack"], r["budget"], r["seed"], r.get("tag", "")) for r in map(json.loads, open(args.output))}
    for seed in [int(s) for s in args.seeds.split(",")]:
        pools = {}
        PRETRAINED["cache"] = args.cache
        for problem_name in args.problems.split(","):
            problem = load_problem(problem_name, seed)
            k = problem["num_classes"]
            smoke = "-smoke" if args.smoke else ""  # a 1-epoch target must never stand in for a real one
            target_path = os.path.join(args.cache, f"target-{problem_name}-s{seed}{smoke}.keras")
            if os.path.exists(target_path):
                target = keras.models.load_model(target_path, compile=False)
            else:
                started = time.time()
                target = train_classifier(*problem["odd"], k, epochs=1 if args.smoke else 8, seed=seed)
                target.save(target_path)
                log(f"target {problem_name} seed {seed}: {time.time() - started:.0f}s")
            x_tdd, y_tdd = problem["tdd"]
            target_pred = predict(target, x_tdd).argmax(axis=1)
            target_f1 = f1_score(y_tdd, target_pred, average="macro")
            for budget in [int(b) for b in args.budgets.split(",")]:
                for name in stacks:
                    if (problem_name, name, budget, seed, args.tag) in done:
                        continue
                    stack = dataclasses.replace(STACKS[name], epochs=1) if args.smoke else STACKS[name]
                    if stack.family_set not in pools:
                        pools[stack.family_set] = build_pool(seed, args.pool, FAMILY_SETS[stack.family_set], args.cache)
                    pool = pools[stack.family_set]
                    started = time.time()
                    info = {}
                    oracle = Oracle(target, budget)
                    stolen = steal(stack, pool, oracle, budget, k, seed, info)
                    steal_seconds = time.time() - started
                    copycat = train_copycat(stack, stolen, pool, k, budget, seed, info)
                    pred = predict(copycat, x_tdd).argmax(axis=1)
                    f1 = f1_score(y_tdd, pred, average="macro")
                    y = stolen.arrays()[1]
                    info["tdd_confusion"] = np.bincount(target_pred * k + pred, minlength=k * k).reshape(k, k).tolist()
                    info["pool_agreement"] = pool_agreement(copycat, target, seed, args)
                    if isinstance(copycat, Ensemble):  # each member alone: the single copycat's score, paired
                        info["members"] = []
                        for member in copycat.members:
                            alone = predict(member, x_tdd).argmax(axis=1)
                            info["members"].append({
                                "copy_performance": round(f1_score(y_tdd, alone, average="macro") / target_f1, 4),
                                "agreement": round(float((alone == target_pred).mean()), 4)})
                    row = {
                        "problem": problem_name, "stack": name, "budget": budget, "seed": seed, "tag": args.tag,
                        "copy_performance": round(f1 / target_f1, 4), "agreement": round(float((pred == target_pred).mean()), 4),
                        "copycat_macro_f1": round(float(f1), 4), "target_macro_f1": round(float(target_f1), 4),
                        "queries": oracle.spent, "label_histogram": np.bincount(y, minlength=k).tolist(),
                        "steal_seconds": round(steal_seconds, 1), "wall_seconds": round(time.time() - started, 1),
                        "stack_options": dataclasses.asdict(stack), "info": info, "pool": args.pool,
                    }
                    with open(args.output, "a") as handle:
                        handle.write(json.dumps(row) + "\n")
                    log(f"{problem_name} s{seed} {name}@{budget}: copy {row['copy_performance']:.3f} agree "
                        f"{row['agreement']:.3f} (target {target_f1:.3f}) {row['wall_seconds']:.0f}s "
                        f"hist {row['label_histogram']}")


if __name__ == "__main__":
    main()
