"""copycat-verify-ownership: the binomial test by hand, then a served model's watermark found in a copy only."""

import json
import os

import pytest

from copycat_tf.errors import CopycatError
from copycat_tf.serving.config import ServeConfig
from copycat_tf.serving.model import load_predict
from copycat_tf.serving.ownership import OwnershipConfig, binomial_tail, verify, watermark_test
from copycat_tf.serving.server import ServedModel, start_in_thread
from tests import binaries
from tests.conftest import image_record
from tests.tiny_oracles import save_bytes_oracle


def test_the_binomial_tail_by_hand():
    assert binomial_tail(2, 3, 0.5) == pytest.approx(0.5)  # P(X >= 2) = (3 + 1) / 8
    assert binomial_tail(4, 4, 0.25) == pytest.approx(0.25 ** 4)
    assert binomial_tail(0, 10, 0.3) == 1.0


def test_the_test_counts_only_images_where_the_model_leaves_the_true_label():
    true, marks = [0, 1, 2, 3, 0, 1], [1, 2, 3, 0, 2, 3]
    copy = watermark_test([1, 2, 3, 0, 0, 1], true, marks, num_classes=4)  # 4 wrong answers, all the watermark's
    assert (copy["not_true_label"], copy["watermark_label"]) == (4, 4)
    assert copy["p_value"] == pytest.approx((1 / 3) ** 4) and copy["expected_if_independent"] == pytest.approx(4 / 3, abs=1e-3)
    honest = watermark_test(true, true, marks, num_classes=4)  # never leaves the true label: no evidence against it
    assert honest["p_value"] == 1.0 and honest["watermark_label"] == 0


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A tiny model served with a 30% watermark; 300 queries answered; the evidence kept."""
    root = tmp_path_factory.mktemp("owner")
    path = save_bytes_oracle(str(root / "export"), seed=0)
    (root / "key").write_bytes(b"owner secret\n")
    config = ServeConfig(model=path, port=0, query_log=str(root / "log.jsonl"), watermark_key=str(root / "key"),
                         watermark_share=0.3, watermark_keep=str(root / "evidence"))
    predict, identity = load_predict(path)
    model = ServedModel(predict, identity, config, None, b"owner secret")
    url, stop = start_in_thread(model)
    from copycat_tf.oracles import OracleSpec, open_oracle

    client = open_oracle(OracleSpec(url))
    for start in range(0, 300, 100):
        client.classify([image_record(i, 16, 16)["image"] for i in range(start, start + 100)])
    independent = save_bytes_oracle(str(root / "independent"), seed=1)
    yield root, path, url, independent
    stop()


def test_the_served_answers_carry_the_watermark_and_independent_models_do_not(served, tmp_path):
    root, reference, url, independent = served
    # The suspect answers like the defended API (a perfect copy); the reference and another model are controls.
    out = tmp_path / "reports" / "ownership.json"  # its folder is made
    # The binary's work, forked warm as a plan step is (its console script is checked in tests/bin/test_flags.py).
    process = binaries.run(
        "copycat_bin.verify_ownership",
        [f"--suspect={url}", f"--reference={reference}", f"--key={root / 'key'}", f"--evidence={root / 'evidence'}",
         "--watermark_share=0.3", f"--controls={reference},{independent}", f"--output={out}"],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300)
    assert process.returncode == 0, process.stderr[-2000:]
    report = json.loads(out.read_text())
    kept = len(os.listdir(root / "evidence" / "anonymous"))
    assert report["chosen_by_key"] == report["evidence_files"] == kept and 60 <= kept <= 120
    suspect = report["models"]["suspect"]
    assert suspect["watermark_label"] == suspect["not_true_label"] == kept and suspect["p_value"] < 1e-20
    assert report["copied"] is True and "carries the watermark" in process.stdout
    assert report["models"][f"control:{reference}"]["p_value"] == 1.0
    other = report["models"][f"control:{independent}"]
    assert other["p_value"] > 1e-3 and other["watermark_label"] < other["not_true_label"]


def test_a_wrong_key_or_empty_evidence_is_one_clear_error(served, tmp_path):
    root, reference, url, _ = served
    (tmp_path / "other.key").write_bytes(b"not the owner's")
    with pytest.raises(CopycatError, match="none of the .* evidence images was chosen"):
        verify(OwnershipConfig(suspect=url, reference=reference, key=str(tmp_path / "other.key"),
                               evidence=[str(root / "evidence")], watermark_share=1e-6))
    with pytest.raises(CopycatError, match="--evidence=.* is not a folder"):
        verify(OwnershipConfig(suspect=url, reference=reference, key=str(root / "key"),
                               evidence=[str(tmp_path / "missing")]))


def test_repeated_evidence_counts_once_and_missing_evidence_can_be_no_evidence(tmp_path):
    from copycat_tf.serving.ownership import read_evidence

    for folder, names in (("a", ["x", "y"]), ("b", ["x-again"])):
        (tmp_path / folder).mkdir()
        for name in names:
            (tmp_path / folder / name).write_bytes(b"same" if name.startswith("x") else b"other")
    (tmp_path / "a" / "cut.img.tmp").write_bytes(b"cut")  # a write the server did not finish
    assert sorted(read_evidence([str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "a")])) == [b"other", b"same"]
    assert read_evidence([str(tmp_path / "missing")], missing_ok=True) == []
    with pytest.raises(CopycatError, match="is not a folder"):
        read_evidence([str(tmp_path / "missing")])


def test_no_evidence_is_no_finding_and_two_classes_are_refused(served, tmp_path):
    root, reference, url, _ = served
    report = verify(OwnershipConfig(suspect=url, reference=reference, key=str(root / "key"),
                                    evidence=[str(tmp_path / "none")], missing_evidence_ok=True, num_classes=4))
    assert report["chosen_by_key"] == 0 and report["models"]["suspect"]["p_value"] == 1.0 and not report["copied"]
    with pytest.raises(CopycatError, match="--num_classes=2 is out of range"):
        verify(OwnershipConfig(suspect=url, reference=reference, key=str(root / "key"), evidence=[str(root / "evidence")],
                               watermark_share=0.3, num_classes=2))
