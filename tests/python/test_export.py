"""`psearch export`: a trained model as one TorchScript file that LibTorch runs without
psearch. The oracle is psearch itself: `psearch eval --save-results` runs the model in C++
on every test frame, and the exported file, loaded by torch.jit in Python and by the
LibTorch-only program examples/deploy/run_exported.cpp, must give the same detections
(same count on every frame, boxes/scores/features within 1e-4) and query embeddings."""
import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import OPS_LIB
from test_train_cli import run, write_config, assert_one_line_error

REPO = pathlib.Path(__file__).resolve().parents[2]
BINARY = pathlib.Path(os.environ.get("PSEARCH_BINARY", REPO / "build" / "psearch"))
RUN_EXPORTED = BINARY.parent / "examples" / "deploy" / "psearch_run_exported"
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("export") / "prw"
    out = run("synth", "--format", "prw", "--size", "tiny", "--seed", "5", "--out", str(root))
    assert out.returncode == 0, out.stderr
    return root


def read_rgb(path):
    import cv2
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1])).permute(2, 0, 1).float().div(255.0)


def trained(tmp_path, data, model_type, overrides):
    config = write_config(tmp_path, data, type=model_type, length=2, every=2)
    out = run("train", "--config", str(config), "--out", str(tmp_path / "run"), "--quiet")
    assert out.returncode == 0, out.stderr
    checkpoint = tmp_path / "run" / "final.pt"
    results = tmp_path / "results.pt"
    sets = [arg for o in overrides for arg in ("--set", o)]
    out = run("eval", "--checkpoint", str(checkpoint), "--dataset", "prw", "--root", str(data), "--out",
              str(tmp_path / "eval"), "--save-results", str(results), *sets)
    assert out.returncode == 0, out.stderr
    return checkpoint, torch.load(results, weights_only=False), sets


def max_diff(a, b):
    return 0.0 if a.numel() == 0 else float((a - b).abs().max())


@pytest.mark.parametrize("model_type,overrides", [
    ("nae", ["inference.score_thresh=0.3"]),
    ("oim", ["inference.score_thresh=0.3"]),
    ("pcnet", ["inference.score_thresh=0.0", "inference.detections_per_img=5000"]),
])
def test_exported_file_equals_psearch_on_every_frame(tmp_path, data, model_type, overrides):
    checkpoint, results, sets = trained(tmp_path, data, model_type, overrides)
    frames = data / "frames"
    example = frames / results["gallery"][0]["image"]
    exported = tmp_path / f"{model_type}.pt"
    out = run("export", "--checkpoint", str(checkpoint), "--example", str(example), "--out", str(exported), *sets)
    assert out.returncode == 0, out.stderr
    assert "check: traced vs model" in out.stdout

    module = torch.jit.load(str(exported))
    extra = {"psearch.json": ""}
    torch.jit.load(str(exported), _extra_files=extra)
    info = json.loads(extra["psearch.json"])
    assert info["model_type"] == model_type and info["format"] == "psearch-torchscript/1"
    size = tuple(info["input_size"])

    counts, worst, compared = set(), 0.0, 0
    with torch.no_grad():
        for entry in results["gallery"]:
            image = read_rgb(frames / entry["image"])
            if tuple(image.shape[1:]) != size:
                continue
            boxes, scores, features = module(image)
            assert boxes.shape[0] == entry["boxes"].shape[0], entry["image"]
            worst = max(worst, max_diff(boxes, entry["boxes"]), max_diff(scores, entry["scores"]),
                        max_diff(features, entry["features"]))
            counts.add(boxes.shape[0])
            compared += 1
        for query in results["queries"]:
            image = read_rgb(frames / query["image"])
            if tuple(image.shape[1:]) != size:
                continue
            feature = module.embed(image, query["box"].reshape(1, 4).float())[0]
            worst = max(worst, max_diff(feature, query["features"]))
    print(f"{model_type}: {compared} frames, detections per frame {sorted(counts)}, max |diff| {worst:.2e}")
    assert compared >= 5
    assert len(counts) >= 2, "every frame had the same detection count: the test proves nothing about it"
    assert worst <= TOLERANCE

    # The LibTorch-only program gives the same detections as torch.jit on one frame.
    entry = next(e for e in results["gallery"] if e["boxes"].shape[0] > 0
                 and tuple(read_rgb(frames / e["image"]).shape[1:]) == size)
    image = read_rgb(frames / entry["image"])
    raw = tmp_path / "frame.f32"
    raw.write_bytes(image.contiguous().numpy().tobytes())
    box = [f"{v:.3f}" for v in entry["boxes"][0].tolist()]
    proc = subprocess.run([str(RUN_EXPORTED), str(exported), str(OPS_LIB), str(raw), *box], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = [line.split(": ", 1) for line in proc.stdout.strip().splitlines()]
    rows = lambda key: torch.tensor([[float(v) for v in value.split()] for k, value in lines if k == key])
    assert int(lines[0][1]) == entry["boxes"].shape[0]
    assert max_diff(rows("box"), entry["boxes"]) <= TOLERANCE
    assert max_diff(rows("feature"), entry["features"]) <= TOLERANCE
    with torch.no_grad():
        want = module.embed(image, torch.tensor([[float(v) for v in box]]))[0]
    assert max_diff(rows("query_feature")[0], want) <= TOLERANCE

    # ONNX: the same frame in onnxruntime against the TorchScript file (the script compares).
    frame = frames / entry["image"]
    onnx_path = tmp_path / f"{model_type}.onnx"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "export_onnx.py"), str(exported), str(onnx_path),
                           "--check", str(frame)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PSEARCH_OPS_LIB": str(OPS_LIB)})
    assert proc.returncode == 0, proc.stderr
    line = next(l for l in proc.stdout.splitlines() if l.startswith("onnxruntime vs TorchScript"))
    diffs = [float(v) for v in re.findall(r"(?:boxes|scores|features) ([0-9.e+-]+)", line)]
    got, want, paired = (int(v) for v in re.match(r".*: (\d+) vs (\d+) detections, (\d+) paired", line).groups())
    print(line)
    assert want > 0 and got == want and paired >= 0.95 * want, line  # near-equal scores may pair off differently
    assert len(diffs) == 4 and max(diffs) <= 1e-3, line  # RoiAlign / NMS kernels of another library


def test_export_refuses_bad_input_in_one_line(tmp_path, data):
    frame = sorted((data / "frames").glob("*.jpg"))[0]
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    out = run("export", "--checkpoint", str(broken), "--example", str(frame), "--out", str(tmp_path / "x.pt"))
    assert_one_line_error(out, str(broken))
    assert not (tmp_path / "x.pt").exists()
    text = tmp_path / "notes.txt"
    text.write_text("no frames here")
    out = run("export", "--model", "separate", "--example", str(text), "--out", str(tmp_path / "x.pt"))
    assert_one_line_error(out, str(text))


def test_run_exported_refuses_a_frame_of_another_size(tmp_path, data):
    """The deployment program checks the frame against the exported size (one line)."""
    checkpoint, results, sets = trained(tmp_path, data, "oim", [])
    example = data / "frames" / results["gallery"][0]["image"]
    exported = tmp_path / "oim.pt"
    assert run("export", "--checkpoint", str(checkpoint), "--example", str(example), "--out", str(exported),
               "--size", "96", "128").returncode == 0
    raw = tmp_path / "frame.f32"
    raw.write_bytes(np.zeros((3, 90, 128), np.float32).tobytes())
    proc = subprocess.run([str(RUN_EXPORTED), str(exported), str(OPS_LIB), str(raw)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "expected" in proc.stderr and "96, 128" in proc.stderr
