"""`psearch eval` end to end on a generated tiny PRW dataset: the baseline model on
ground-truth boxes through the same report as eval-results, and its usage errors."""
import json
import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
BINARY = pathlib.Path(os.environ.get("PSEARCH_BINARY", REPO / "build" / "psearch"))


def run(*args):
    return subprocess.run([str(BINARY), *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def prw_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "prw"
    out = run("synth", "--format", "prw", "--size", "tiny", "--seed", "3", "--out", str(root))
    assert out.returncode == 0, out.stderr
    return root


def test_eval_baseline_on_ground_truth_boxes(prw_root, tmp_path):
    out = run("eval", "--dataset", "prw", "--root", str(prw_root), "--gt-boxes", "--min-size", "96",
              "--max-size", "160", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # Ground-truth boxes as detections: detection is perfect by construction.
    assert metrics["detection"]["ap"] == pytest.approx(1.0)
    assert metrics["detection"]["recall"] == pytest.approx(1.0)
    assert 0.0 < metrics["search"]["mAP"] <= 1.0
    assert len(metrics["queries"]) == metrics["search"]["num_queries"] > 0
    assert (tmp_path / "detection_pr.png").stat().st_size > 0
    assert "search mAP" in out.stdout


def test_eval_without_detector_needs_gt_boxes(prw_root, tmp_path):
    out = run("eval", "--dataset", "prw", "--root", str(prw_root), "--out", str(tmp_path))
    assert out.returncode == 1
    assert out.stderr.strip() == "psearch: error: resnet50-roi has no detector: add --gt-boxes to embed the annotated boxes"


def test_eval_option_of_the_other_dataset_is_a_usage_error(prw_root):
    out = run("eval", "--dataset", "prw", "--root", str(prw_root), "--gallery-size", "50", "--gt-boxes")
    assert out.returncode == 2
    assert "applies to cuhk-sysu only" in out.stderr


def test_eval_wrong_root_names_the_missing_file(tmp_path):
    out = run("eval", "--dataset", "prw", "--root", str(tmp_path / "nowhere"), "--gt-boxes")
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and str(tmp_path / "nowhere") in lines[0], out.stderr
