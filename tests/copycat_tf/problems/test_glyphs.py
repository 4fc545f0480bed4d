"""glyphs: the second offline problem (issue #14), registered beside digits."""

import io

import numpy as np
import PIL.Image

from copycat_tf.problems import NAMES, get_problem
from copycat_tf.problems.glyphs import CLASSES, PER_CLASS, SIZE, render


def test_glyphs_is_a_registered_problem_with_disjoint_splits():
    assert "glyphs" in NAMES
    problem = get_problem("glyphs", seed=0)
    assert problem.num_classes == 16 and list(problem.class_names) == list(CLASSES)
    indices = {split: [i for _, part in problem.parts[split] for i in part] for split in ("odd", "pdd", "tdd")}
    assert [len(indices[s]) for s in ("odd", "pdd", "tdd")] == [2560, 1920, 1920]
    every = sorted(i for part in indices.values() for i in part)
    assert every == list(range(PER_CLASS * len(CLASSES)))  # disjoint and complete
    assert indices != {s: [i for _, part in get_problem("glyphs", seed=1).parts[s] for i in part] for s in indices}


def test_a_rendering_is_a_dark_letter_on_a_light_plain_background_and_repeats():
    first = next(iter(get_problem("glyphs").read_part(("tdd", [17]))))
    pixels = np.asarray(PIL.Image.open(io.BytesIO(first.image)))
    assert pixels.shape == (SIZE, SIZE) and first.label == 17 % 16 and first.key == "glyphs/17"
    assert np.median(pixels) > 150 and pixels.min() < 110  # mostly background, some ink
    again, label = render(17)
    np.testing.assert_array_equal(again, pixels)
    assert label == first.label
    # Two renderings of one class differ (font, size, place, angle), renderings of different classes too.
    assert not np.array_equal(render(17)[0], render(17 + 16)[0])
    assert not np.array_equal(render(17)[0], render(18)[0])
