"""`train.precision`: the forward pass under autocast (bf16; fp16 with dynamic loss
scaling) trains the same model as fp32: the first iteration's loss terms agree within
bfloat16's rounding, parameters stay float32, and fp16 logs its loss scale."""
import json
import os
import pathlib
import subprocess

import pytest
import torch

from test_train_cli import TINY_CONFIG, run

REPO = pathlib.Path(__file__).resolve().parents[2]
BINARY = pathlib.Path(os.environ.get("PSEARCH_BINARY", REPO / "build" / "psearch"))


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "prw"
    out = run("synth", "--format", "prw", "--size", "tiny", "--seed", "5", "--out", str(root))
    assert out.returncode == 0, out.stderr
    config = root.parent / "oim.yaml"
    config.write_text(TINY_CONFIG.format(type="oim", length=2, every=10, root=root))
    return config


# The samplers take every candidate anchor and proposal, so the loss terms do not depend on
# which random subset each precision happens to draw.
TAKE_ALL = ["model.two_stage.rpn.batch_size_per_image=100000", "model.two_stage.roi_heads.batch_size_per_image=100000"]


def train(config, out, precision):
    result = run("train", "--config", str(config), "--out", str(out), "--quiet", f"train.precision={precision}",
                 *TAKE_ALL)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_bf16_loss_terms_agree_with_fp32(tmp_path, tiny_config):
    fp32 = train(tiny_config, tmp_path / "fp32", "fp32")
    bf16 = train(tiny_config, tmp_path / "bf16", "bf16")
    for key, value in fp32[0].items():
        if key.startswith("loss"):
            # bfloat16 keeps 8 significant bits (0.4% per rounding); measured: <= 0.4%.
            assert bf16[0][key] == pytest.approx(value, rel=0.01), key
    assert bf16[0]["grad_norm"] == pytest.approx(fp32[0]["grad_norm"], rel=0.01)
    state = dict(torch.jit.load(str(tmp_path / "bf16" / "final.pt")).model)
    assert all(v.dtype in (torch.float32, torch.int64) for v in state.values())


def test_fp16_logs_its_dynamic_loss_scale(tmp_path, tiny_config):
    log = train(tiny_config, tmp_path / "fp16", "fp16")
    scales = [entry["loss_scale"] for entry in log]
    skipped = [entry["skipped_steps"] for entry in log]
    # GradScaler's rule: 65536 at start, halved after every step whose gradients overflow.
    for before, after, s0, s1 in zip([65536.0] + scales, scales, [0] + skipped, skipped):
        assert after == (before / 2 if s1 == s0 + 1 else before)


def test_plot_logs_draws_the_runs_and_refuses_a_folder_without_a_log(tmp_path, tiny_config):
    import cv2

    train(tiny_config, tmp_path / "a", "fp32")
    train(tiny_config, tmp_path / "b", "bf16")
    png = tmp_path / "curves.png"
    out = run("plot-logs", str(tmp_path / "a"), str(tmp_path / "b"), "--key", "loss_reid", "--out", str(png))
    assert out.returncode == 0, out.stderr
    image = cv2.imread(str(png))
    assert image is not None and image.shape[:2] == (650, 900)
    (tmp_path / "empty").mkdir()
    out = run("plot-logs", str(tmp_path / "a"), str(tmp_path / "empty"), "--out", str(tmp_path / "x.png"))
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "empty/log.jsonl" in lines[0], out.stderr
    assert not (tmp_path / "x.png").exists()


def test_eval_in_bf16_stores_float32_results_close_to_fp32(tmp_path, tiny_config):
    root = tiny_config.parent / "prw"
    results = {}
    for precision in ("fp32", "bf16"):
        path = tmp_path / f"{precision}.pt"
        out = run("eval", "--model", "resnet50-roi", "--gt-boxes", "--min-size", "120", "--max-size", "160",
                  "--dataset", "prw", "--root", str(root), "--out", str(tmp_path / precision),
                  "--precision", precision, "--save-results", str(path))
        assert out.returncode == 0, out.stderr
        results[precision] = torch.load(path, weights_only=False)
    for a, b in zip(results["fp32"]["queries"], results["bf16"]["queries"]):
        assert b["features"].dtype == torch.float32
        cosine = torch.nn.functional.cosine_similarity(a["features"], b["features"], dim=0)
        assert cosine > 0.999  # measured >= 0.99999 (random ResNet-50 features are all alike, so a floor only)


def test_fp16_resume_continues_the_loss_scale(tmp_path):
    """The loss scaler's state is in the checkpoint: a run stopped at iteration 2 and
    resumed logs the same loss scale at iterations 3 and 4 as an uninterrupted run (before,
    the resumed run restarted at 65536 and skipped steps again)."""
    root = tmp_path / "prw"
    assert run("synth", "--format", "prw", "--size", "tiny", "--seed", "5", "--out", str(root)).returncode == 0
    config = tmp_path / "oim.yaml"
    config.write_text(TINY_CONFIG.format(type="oim", length=4, every=2, root=root))
    common = ["--config", str(config), "--quiet", "train.precision=fp16", *TAKE_ALL]
    assert run("train", *common, "--out", str(tmp_path / "whole")).returncode == 0
    first = run("train", *common, "--out", str(tmp_path / "split"), "--stop-after", "2")
    assert first.returncode == 0, first.stderr
    second = run("train", *common, "--out", str(tmp_path / "split"), "--resume")
    assert second.returncode == 0, second.stderr
    whole = [json.loads(line) for line in (tmp_path / "whole" / "log.jsonl").read_text().splitlines()]
    split = [json.loads(line) for line in (tmp_path / "split" / "log.jsonl").read_text().splitlines()]
    assert [e["loss_scale"] for e in split] == [e["loss_scale"] for e in whole]
    assert whole[0]["loss_scale"] < 65536.0  # the scale did move, so a restart would show
    saved = torch.jit.load(str(tmp_path / "whole" / "final.pt")).loss_scaler
    assert float(saved[0]) == whole[-1]["loss_scale"]
