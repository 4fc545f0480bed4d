"""The problems registry: an explicit name → definition map (unknown names fail with the list).

    digits       scikit-learn's handwritten digits, offline (the embedded default)
    glyphs       16 uppercase letters rendered from matplotlib's fonts, offline (a second look)
    DIG10        MNIST (ODD, TDD) and EMNIST digits (PDD, derived from NIST SD19 as in the paper)
    SHN10        SVHN cropped digits: train (ODD), extra (PDD), test (TDD)
    GOC9         CIFAR-10 (ODD train, TDD test) and STL-10 (PDD), their 9 shared classes
    ACT101       UCF101 middle frames: train halves (ODD, PDD), test (TDD)
    FER7, PED2, SIG30   image folders under --data_dir/NAME/{odd,pdd,tdd}/CLASS/ (datasets not on TFDS)
    folder:PATH  any folder laid out as PATH/{odd,pdd,tdd}/CLASS/
    tfds:NAME    any TFDS dataset with image and label: train halves (ODD, PDD), test (TDD)
"""

import os

from copycat_tf.errors import CopycatError
from copycat_tf.problems.base import SPLITS, SPLIT_WORDS, Example, Problem
from copycat_tf.problems.digits import digits_problem
from copycat_tf.problems.folder import folder_problem
from copycat_tf.problems.glyphs import glyphs_problem
from copycat_tf.problems.tfds_problems import TfdsSource, generic_tfds_problem, tfds_problem

DIGITS = tuple(str(d) for d in range(10))
GOC9_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "horse", "ship", "truck")

_TFDS = {
    "DIG10": ("handwritten digits: MNIST as ODD and TDD, EMNIST digits as PDD", DIGITS, {
        "odd": TfdsSource("mnist", "train"), "pdd": TfdsSource("emnist/digits", "train"), "tdd": TfdsSource("mnist", "test")}),
    "SHN10": ("street-view house numbers (SVHN cropped)", DIGITS, {
        "odd": TfdsSource("svhn_cropped", "train"), "pdd": TfdsSource("svhn_cropped", "extra"),
        "tdd": TfdsSource("svhn_cropped", "test")}),
    "GOC9": ("general objects: CIFAR-10 and STL-10, 9 shared classes", GOC9_CLASSES, {
        "odd": TfdsSource("cifar10", "train"), "pdd": TfdsSource("stl10", "train", aliases=(("car", "automobile"),)),
        "tdd": TfdsSource("cifar10", "test")}),
    "ACT101": ("human actions: UCF101 middle frames", None, {
        "odd": TfdsSource("ucf101", "train", keep_half=0), "pdd": TfdsSource("ucf101", "train", keep_half=1),
        "tdd": TfdsSource("ucf101", "test")}),
}
_FOLDERS = {  # image-folder problems under --data_dir/NAME
    "FER7": "facial expressions, 7 classes (e.g. angry, disgust, fear, happy, neutral, sad, surprise)",
    "PED2": "pedestrian or not, 2 classes",
    "SIG30": "traffic signs, 30 classes",
}
FOLDER_PROBLEMS = tuple(_FOLDERS)
NAMES = ("digits", "glyphs", *_TFDS, *_FOLDERS, "folder:PATH", "tfds:NAME")


def get_problem(name: str, data_dir: str = "data", tfds_data_dir: str | None = None, seed: int = 0) -> Problem:
    """The problem called ``name``; unknown names are refused with the list of known ones."""
    if name == "digits":
        return digits_problem(seed)
    if name == "glyphs":
        return glyphs_problem(seed)
    if name.startswith("folder:") and len(name) > len("folder:"):
        return folder_problem(name[len("folder:"):])
    if name.startswith("tfds:") and len(name) > len("tfds:"):
        return generic_tfds_problem(name[len("tfds:"):], tfds_data_dir)
    if name in _TFDS:
        description, classes, sources = _TFDS[name]
        if classes is None:  # the dataset's own class names
            from copycat_tf.problems.tfds_problems import _builder, _features

            builder = _builder(sources["odd"], tfds_data_dir)
            classes = tuple(builder.info.features[_features(builder)[1]].names)
        return tfds_problem(name, description, classes, sources, tfds_data_dir)
    if name in _FOLDERS:
        return folder_problem(os.path.join(data_dir, name), name=name, description=_FOLDERS[name])
    raise CopycatError(f"unknown problem {name!r}; known problems: {', '.join(NAMES)}")


__all__ = ["NAMES", "SPLITS", "SPLIT_WORDS", "Example", "Problem", "get_problem"]
