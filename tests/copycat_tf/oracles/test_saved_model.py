"""SavedModel oracles: every signature form and output kind gives the classes of the model itself."""

import io
import shutil

import numpy as np
import PIL.Image
import pytest
import tensorflow as tf

from copycat_tf.oracles import OracleError, OracleSpec, open_oracle
from tests.conftest import make_pixels
from tests.tiny_oracles import (NUM_CLASSES, SIZE, expected_classes, save_bytes_oracle, save_gray_float_ids_oracle,
                                save_uint8_logits_oracle)


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    PIL.Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def oracles(tmp_path_factory):
    root = tmp_path_factory.mktemp("oracles")
    return {
        "bytes": save_bytes_oracle(str(root / "bytes")),
        "uint8": save_uint8_logits_oracle(str(root / "uint8")),
        "gray": save_gray_float_ids_oracle(str(root / "gray")),
        "other": save_bytes_oracle(str(root / "other"), seed=1),
    }


@pytest.fixture(scope="module")
def images():
    pixels = np.stack([make_pixels(i, SIZE, SIZE) for i in range(40)])
    return pixels, [_png(p) for p in pixels]


def test_encoded_image_signature(oracles, images):
    pixels, encoded = images
    oracle = open_oracle(OracleSpec(oracles["bytes"]))
    np.testing.assert_array_equal(oracle.classify(encoded), expected_classes(pixels))
    assert oracle.num_classes == NUM_CLASSES  # read from the probabilities output beside class_id


def test_each_output_of_a_multi_output_model_gives_the_same_classes(oracles, images):
    _, encoded = images
    by_id = open_oracle(OracleSpec(oracles["bytes"], output="class_id")).classify(encoded)
    by_probabilities = open_oracle(OracleSpec(oracles["bytes"], output="probabilities")).classify(encoded)
    np.testing.assert_array_equal(by_id, by_probabilities)


def test_uint8_tensor_signature_with_logits(oracles, images):
    pixels, encoded = images
    oracle = open_oracle(OracleSpec(oracles["uint8"]))
    np.testing.assert_array_equal(oracle.classify(encoded), expected_classes(pixels))


def test_float_grayscale_any_size_signature_with_class_ids(oracles, images):
    pixels, encoded = images
    oracle = open_oracle(OracleSpec(oracles["gray"], value_range="0-1", input_size=SIZE, num_classes=NUM_CLASSES))
    gray = tf.image.rgb_to_grayscale(tf.constant(pixels, tf.float32))
    expected = expected_classes(tf.image.grayscale_to_rgb(gray).numpy())
    np.testing.assert_array_equal(oracle.classify(encoded), expected)
    assert oracle.num_classes == NUM_CLASSES


def test_resizing_and_other_formats_are_the_clients_job(oracles):
    large = np.repeat(np.repeat(make_pixels(7, SIZE, SIZE), 4, axis=0), 4, axis=1)  # 64 x 64
    buffer = io.BytesIO()
    PIL.Image.fromarray(large).save(buffer, "JPEG", quality=95)
    labels = open_oracle(OracleSpec(oracles["uint8"])).classify([buffer.getvalue()])
    assert labels.shape == (1,) and 0 <= labels[0] < NUM_CLASSES


def test_fingerprint_follows_the_model_not_its_path(oracles, tmp_path):
    first = open_oracle(OracleSpec(oracles["bytes"])).fingerprint
    copy = shutil.copytree(oracles["bytes"], tmp_path / "moved")
    assert open_oracle(OracleSpec(str(copy))).fingerprint == first
    assert open_oracle(OracleSpec(oracles["other"])).fingerprint != first
    assert open_oracle(OracleSpec(oracles["bytes"], output="probabilities")).fingerprint != first


def test_unknown_output_lists_the_outputs(oracles):
    with pytest.raises(OracleError, match="class_id, probabilities"):
        open_oracle(OracleSpec(oracles["bytes"], output="scores"))


def test_unknown_signature_lists_the_signatures(oracles):
    with pytest.raises(OracleError, match="no signature 'predict'.*serving_default"):
        open_oracle(OracleSpec(oracles["bytes"], signature="predict"))


def test_open_size_needs_input_size(oracles):
    with pytest.raises(OracleError, match="--oracle_input_size"):
        open_oracle(OracleSpec(oracles["gray"], value_range="0-1"))


def test_not_a_saved_model(tmp_path):
    with pytest.raises(OracleError, match="no SavedModel there"):
        open_oracle(OracleSpec(str(tmp_path)))


def test_not_a_url_nor_folder():
    with pytest.raises(OracleError, match="neither a SavedModel folder nor an http"):
        open_oracle(OracleSpec("ftp://example/model"))


def _save_constant_oracle(path: str, probabilities, class_id=None) -> str:
    """tf.string [N] → the same probabilities (and class id) for every image."""
    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve(image_bytes):
        count = tf.shape(image_bytes)[0]
        outputs = {"probabilities": tf.tile(tf.constant([probabilities], tf.float32), [count, 1])}
        if class_id is not None:
            outputs["class_id"] = tf.fill([count], tf.constant(class_id, tf.int64))
        return outputs

    tf.saved_model.save(module, path, signatures={"serving_default": serve})
    return path


@pytest.mark.parametrize("probabilities, class_id, message", [
    ([float("nan"), 0.5, 0.2], None, "non-finite scores \\(NaN or inf\\) for 3 of 3 images"),
    ([0.2, float("inf"), 0.1], None, "non-finite"),
    ([0.2, 0.5, 0.3], 7, "answered class 7, but the width of its score output is 3"),
    ([0.2, 0.5, 0.3], -1, "answered class -1"),
])
def test_invalid_outputs_are_one_clear_error(tmp_path, images, probabilities, class_id, message):
    """NaN probabilities used to label every image 0; an id beyond the score width was stored as is."""
    _, encoded = images
    path = _save_constant_oracle(str(tmp_path / "model"), probabilities, class_id)
    with pytest.raises(OracleError, match=message) as error:
        open_oracle(OracleSpec(path)).classify(encoded[:3])
    assert f"oracle {path}, batch 1 of this client (3 images)" in str(error.value) and "\n" not in str(error.value)
