"""Image files for pipeline tests: real photo crops, planted duplicates and every hostile kind."""

import io
import struct
import zlib

import numpy as np
import PIL.Image
import pytest

from beam_pipelines.sources import bundled_photo_paths

# Photos whose crops are far apart in pHash (checked by the tests that rely on it).
DISTINCT = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "hubble_deep_field.jpg", "retina.jpg",
            "camera.png", "coins.png", "moon.png", "grass.png", "page.png", "china.jpg", "flower.jpg", "cell.png",
            "gravel.png", "clock_motion.png")


def photo(name: str, box=(0, 0, 400, 300)) -> PIL.Image.Image:
    """An RGB crop of a bundled photo."""
    path = next(p for p in bundled_photo_paths() if p.endswith("/" + name))
    image = PIL.Image.open(path).convert("RGB")
    return image.crop((box[0], box[1], min(box[2], image.size[0]), min(box[3], image.size[1])))


def encode(image: PIL.Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny file whose header claims billions of pixels (a decompression bomb)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _png_chunk(b"IEND", b"")


def hostile_files() -> dict[str, tuple[bytes, str]]:
    """file name → (bytes, the reject reason) for inputs that must be rejected."""
    jpeg = encode(photo("coffee.png"), "JPEG", quality=90)
    return {
        "empty.jpg": (b"", "empty_file"),
        "notes.jpg": (b"these are meeting notes, not a picture\n" * 20, "not_an_image"),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "truncated"),
        "bomb.png": (bomb_png(), "too_many_pixels"),
    }


def awkward_files() -> dict[str, tuple[bytes, tuple[int, int]]]:
    """file name → (bytes, expected upright (height, width)) for valid but awkward images."""
    rgba = photo("astronaut.png").convert("RGBA")
    rgba.putalpha(128)
    cmyk = photo("chelsea.png").convert("CMYK")
    gray16 = np.asarray(photo("camera.png").convert("L"), dtype=np.uint16) * 257
    palette = photo("rocket.jpg").convert("P", palette=PIL.Image.Palette.ADAPTIVE, colors=64)
    frames = [photo("hubble_deep_field.jpg"), photo("retina.jpg")]
    animated = io.BytesIO()
    frames[0].save(animated, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    rotated = photo("china.jpg", (0, 0, 400, 200))  # stored 400 wide, 200 high
    exif = rotated.getexif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to view
    return {
        "alpha.png": (encode(rgba), (300, 400)),
        "cmyk.jpg": (encode(cmyk, "JPEG", quality=92), (300, 400)),
        "gray16.png": (encode(PIL.Image.fromarray(gray16)), (300, 400)),
        "palette.png": (encode(palette), (300, 400)),
        "animated.gif": (animated.getvalue(), (300, 400)),
        "exif_rotated.jpg": (encode(rotated, "JPEG", quality=92, exif=exif.tobytes()), (400, 200)),
        "png_named.jpg": (encode(photo("flower.jpg")), (300, 400)),
    }


@pytest.fixture
def write_files(tmp_path):
    """Write {name: bytes} into a fresh folder and return its path."""

    def write(files: dict[str, bytes], folder: str = "images"):
        target = tmp_path / folder
        target.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (target / name).write_bytes(data)
        return target

    return write
