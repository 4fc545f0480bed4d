"""Decoding, validation and normalization of single images (no Beam)."""

import io

import imagehash
import numpy as np
import PIL.Image
import pytest

from beam_pipelines.image_decode import NormalizedImage, Rejected, normalize_image, perceptual_hash, plain_jpeg
from tests.beam_pipelines.conftest import awkward_files, encode, hostile_files, photo
from tfrecords_schema import content_id

HOSTILE = hostile_files()
AWKWARD = awkward_files()


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_input_is_rejected_with_its_reason(name):
    data, reason = HOSTILE[name]
    result = normalize_image(data)
    assert isinstance(result, Rejected)
    assert result.reason == reason


def test_pixel_limit_is_an_option():
    data = encode(photo("coffee.png"))  # 400 x 300 = 120,000 pixels
    assert normalize_image(data, max_pixels=120_000).id
    assert normalize_image(data, max_pixels=119_999).reason == "too_many_pixels"


@pytest.mark.parametrize("name", sorted(AWKWARD))
def test_awkward_input_becomes_upright_rgb(name, pixels_of):
    data, (height, width) = AWKWARD[name]
    result = normalize_image(data, max_side=1000)
    assert isinstance(result, NormalizedImage), result
    assert (result.original_height, result.original_width) == (height, width)
    stored = pixels_of(result.encoded)
    assert stored.shape == (height, width, 3)
    assert result.format == "jpeg"


def test_exif_rotation_is_applied_to_the_pixels(pixels_of):
    upright = np.asarray(photo("china.jpg", (0, 0, 400, 200)).transpose(PIL.Image.Transpose.ROTATE_270))
    stored = pixels_of(normalize_image(AWKWARD["exif_rotated.jpg"][0], max_side=1000).encoded)
    assert np.abs(stored.astype(int) - upright.astype(int)).mean() < 6  # same picture, JPEG twice


def test_alpha_is_flattened_on_white(pixels_of):
    clear = PIL.Image.new("RGBA", (40, 30), (255, 0, 0, 0))
    assert pixels_of(normalize_image(encode(clear)).encoded).min() > 245


def test_sixteen_bit_keeps_its_tones(pixels_of):
    ramp = (np.arange(256 * 64, dtype=np.uint16).reshape(64, 256) * 4).astype(np.uint16)
    stored = pixels_of(normalize_image(encode(PIL.Image.fromarray(ramp)), max_side=1000).encoded)
    assert stored[..., 0].min() < 10 and stored[..., 0].max() > 245  # not clipped to white


def test_downscale_keeps_aspect_and_never_enlarges():
    big = normalize_image(encode(photo("astronaut.png", (0, 0, 512, 384))), max_side=128)
    assert (big.height, big.width) == (128, 171)
    assert (big.original_height, big.original_width) == (384, 512)
    small = normalize_image(encode(photo("astronaut.png", (0, 0, 60, 40))), max_side=128)
    assert (small.height, small.width) == (40, 60)


def test_id_is_the_hash_of_the_decoded_pixels():
    image = photo("coffee.png")
    from_png = normalize_image(encode(image))
    from_other_png = normalize_image(encode(image, compress_level=1))
    assert from_png.id == from_other_png.id == content_id(np.asarray(image))


def test_perceptual_hash_is_imagehash_phash():
    image = photo("rocket.jpg")
    assert perceptual_hash(image) == int(str(imagehash.phash(image)), 16)


def test_large_jpeg_is_decoded_reduced_but_keeps_its_original_size(pixels_of):
    large = photo("astronaut.png", (0, 0, 512, 512)).resize((2048, 1536))
    data = encode(large, "JPEG", quality=90)
    result = normalize_image(data, max_side=256)
    assert (result.original_height, result.original_width) == (1536, 2048)
    assert (result.height, result.width) == (256, 341)
    assert normalize_image(data, max_side=256).id == result.id  # same bytes, same id
    reference = np.asarray(large.resize((341, 256), PIL.Image.Resampling.LANCZOS)).astype(int)
    assert np.abs(pixels_of(result.encoded).astype(int) - reference).mean() < 8


# Issue #15: a JPEG that needs nothing keeps its own bytes; every other input is re-encoded.


def test_small_upright_rgb_jpeg_keeps_its_bytes_exactly():
    data = encode(photo("coffee.png", (0, 0, 200, 150)), "JPEG", quality=97)
    result = normalize_image(data, max_side=256, jpeg_quality=60)
    assert result.encoded == data  # neither re-encoded at quality 60 nor touched
    assert (result.height, result.width) == (150, 200)
    decoded = np.asarray(PIL.Image.open(io.BytesIO(data)).convert("RGB"))
    assert result.id == content_id(decoded)


@pytest.mark.parametrize("case", ["needs_resizing", "exif_rotated.jpg", "cmyk.jpg", "grayscale", "png"])
def test_jpeg_pass_through_never_applies_when_the_image_needs_work(case):
    if case == "needs_resizing":
        data = encode(photo("coffee.png", (0, 0, 400, 300)), "JPEG", quality=90)
    elif case == "grayscale":
        data = encode(photo("coffee.png", (0, 0, 200, 150)).convert("L"), "JPEG", quality=90)
    elif case == "png":
        data = encode(photo("coffee.png", (0, 0, 200, 150)))
    else:
        data = AWKWARD[case][0]
    result = normalize_image(data, max_side=256 if case == "needs_resizing" else 1000)
    assert result.encoded != data
    assert PIL.Image.open(io.BytesIO(result.encoded)).mode == "RGB"  # what the lake promises
    assert min(result.height, result.width) <= (256 if case == "needs_resizing" else 1000)


def test_only_plain_jpegs_keep_their_bytes():
    small = photo("coffee.png", (0, 0, 200, 150))
    baseline = encode(small, "JPEG", quality=90)
    progressive = encode(small, "JPEG", quality=90, progressive=True)
    assert normalize_image(progressive).encoded == progressive  # every reader decodes progressive JPEGs
    import tensorflow as tf

    assert tuple(tf.io.decode_image(progressive, channels=3).shape) == (150, 200, 3)  # the lake's own reader
    appended = baseline + b"PK\x03\x04 a zip archive riding along"
    assert normalize_image(appended).encoded != appended  # nothing after the end marker is kept
    sof = baseline.index(b"\xff\xc0")
    arithmetic = baseline[:sof] + b"\xff\xc9" + baseline[sof + 2:]  # the same frame declared arithmetic-coded
    assert plain_jpeg(baseline, 200 * 150) and plain_jpeg(progressive, 200 * 150)
    assert not plain_jpeg(arithmetic, 200 * 150)
    assert not plain_jpeg(baseline, 100)  # larger than the raw pixels: padded with something else
    assert not plain_jpeg(b"\xff\xd8\xff\xda\x00\x02\xff\xd9", 10)  # a scan before any frame
