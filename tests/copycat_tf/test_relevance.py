"""Relevance maps: an exact copy looks where the original looks; an unrelated model does not."""

import keras
import numpy as np
import pytest

from copycat_tf.models import build_model
from copycat_tf.relevance import ALL_METHODS, explain, similarity
from copycat_tf.relevance.similarity import top_overlap

IMAGES = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def models():
    keras.utils.set_random_seed(0)
    original = build_model("vgg16_bn", 4, 32, width=1 / 8)
    copy = keras.models.clone_model(original)
    copy.set_weights(original.get_weights())
    keras.utils.set_random_seed(7)
    unrelated = build_model("vgg16_bn", 4, 32, width=1 / 8)
    return original, copy, unrelated


CLEAR = ["lrp-composite", "lrp-epsilon", "saliency"]


@pytest.mark.parametrize("method", CLEAR)
def test_copy_scores_one_and_an_unrelated_model_lower(models, method):
    original, copy, unrelated = models
    classes = [0, 1]
    maps = {name: explain(model, IMAGES, classes, method) for name, model in
            (("original", original), ("copy", copy), ("unrelated", unrelated))}
    for i in range(len(IMAGES)):
        same = similarity(maps["original"][i], maps["copy"][i])
        other = similarity(maps["original"][i], maps["unrelated"][i])
        assert same == pytest.approx({key: 1.0 for key in same}, abs=1e-6)
        assert other["spearman"] < 0.9 and other["ssim"] < 0.9


@pytest.mark.parametrize("method", [m for m in ALL_METHODS if m not in CLEAR])
def test_every_method_gives_maps_of_the_input_size_and_a_copy_scores_one(models, method):
    """(Class activation maps of a 2x2 last convolution are too coarse to tell models apart at 32 px.)"""
    original, copy, _ = models
    maps = explain(original, IMAGES, [0, 1], method)
    assert maps.shape == (2, 32, 32) and np.all(np.isfinite(maps))
    copied = explain(copy, IMAGES, [0, 1], method)
    if method not in ("smoothgrad", "scorecam"):  # these draw random noise / masks per call
        for i in range(2):
            assert similarity(maps[i], copied[i])["spearman"] == pytest.approx(1.0, abs=1e-6)


def test_top_overlap_by_hand():
    a = np.array([[9, 1], [1, 1]], float)
    b = np.array([[1, 9], [1, 1]], float)
    assert top_overlap(a, a, 0.25) == 1.0 and top_overlap(a, b, 0.25) == 0.0
    assert top_overlap(np.array([[9, 5], [1, 1]], float), np.array([[9, 1], [5, 1]], float), 0.5) == pytest.approx(1 / 3)


def test_figures_and_similarity_report(tmp_path):
    import json

    import PIL.Image

    from copycat_tf.relevance.figures import GROUPS, RelevanceConfig, relevance_figures
    from tests.copycat_tf.training.digits import digits_folder as _folder

    keras.utils.set_random_seed(0)
    target = build_model("alexnet_bn", 10, 32, width=1 / 8)
    target.save(tmp_path / "target.keras")
    keras.utils.set_random_seed(3)
    build_model("alexnet_bn", 10, 32, width=1 / 8).save(tmp_path / "copycat.keras")
    images = _folder(tmp_path / "tdd", range(0, 120))
    report = relevance_figures(RelevanceConfig(
        target=str(tmp_path / "target.keras"), copycats=[str(tmp_path / "target.keras"), str(tmp_path / "copycat.keras")],
        images=images, output=str(tmp_path / "out"), count=2))
    shown = [g for g in GROUPS if report["groups"][g]["shown"]]
    assert shown
    for group in shown:
        with PIL.Image.open(tmp_path / "out" / f"relevance-{group}.png") as png:
            assert png.size[0] > 100 and png.size[1] > 100
    written = json.loads((tmp_path / "out" / "relevance.json").read_text())
    assert written["similarity"]["target.keras"]["mean"]["spearman"] == pytest.approx(1.0)
    assert written["similarity"]["copycat.keras"]["mean"]["spearman"] < 0.9
