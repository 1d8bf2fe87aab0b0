"""`psearch train` and `psearch eval --checkpoint` as a user meets them: bad input gives one
line and a non-zero exit; Ctrl-C or a kill mid-run loses at most the work since the last
checkpoint, and --resume finishes the run."""
import os
import pathlib
import signal
import subprocess
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
BINARY = pathlib.Path(os.environ.get("PSEARCH_BINARY", REPO / "build" / "psearch"))
FIXTURES = pathlib.Path(os.environ.get("PSEARCH_FIXTURES_DIR", REPO / "build" / "fixtures"))

TINY_CONFIG = """
version: 2
model:
  type: {type}
  backbone: {{arch: resnet18, weights: "", norm: batchnorm, freeze_at: 0}}
  embedding_dim: 32
  oim: {{queue_size: 32}}
  two_stage:
    rpn: {{anchor_sizes: [[16, 32, 64]], aspect_ratios: [[1.0, 2.0, 3.0]], pre_nms_top_n_train: 300,
          post_nms_top_n_train: 100, pre_nms_top_n_test: 300, post_nms_top_n_test: 50}}
    roi_heads: {{pooler_resolution: 4, batch_size_per_image: 16}}
    embedding: {{pixel_size: 2}}
train: {{batch_size: 2, min_size: 120, max_size: 160, unit: iteration, length: {length},
        warmup: 0, milestones: [], checkpoint_every: {every}, log_every: 1}}
inference: {{min_size: 120, max_size: 160}}
dataset: {{name: prw, root: {root}}}
"""


def run(*args, timeout=300):
    return subprocess.run([str(BINARY), *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tiny_prw(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "prw"
    out = run("synth", "--format", "prw", "--size", "tiny", "--seed", "5", "--out", str(root))
    assert out.returncode == 0, out.stderr
    return root


def write_config(tmp_path, root, type="nae", length=6, every=2):
    path = tmp_path / f"{type}.yaml"
    path.write_text(TINY_CONFIG.format(type=type, length=length, every=every, root=root))
    return path


def assert_one_line_error(out, *fragments):
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_unknown_config_key(tmp_path, tiny_prw):
    config = write_config(tmp_path, tiny_prw)
    out = run("train", "--config", str(config), "--out", str(tmp_path / "run"), "train.lrr=0.1")
    assert_one_line_error(out, "unknown key 'train.lrr'", "did you mean 'train.lr'")
    assert not (tmp_path / "run").exists()


def test_wrong_dataset_path(tmp_path, tiny_prw):
    config = write_config(tmp_path, tiny_prw)
    out = run("train", "--config", str(config), "--out", str(tmp_path / "run"), "dataset.root=/nonexistent/PRW")
    assert_one_line_error(out, "/nonexistent/PRW")


def test_eval_refuses_a_file_that_is_not_a_checkpoint(tmp_path, tiny_prw):
    out = run("eval", "--checkpoint", str(FIXTURES / "resnet18.pth"), "--dataset", "prw", "--root", str(tiny_prw))
    assert_one_line_error(out, "resnet18.pth", "not a psearch")


def test_nae_plus_refuses_an_oim_checkpoint(tmp_path, tiny_prw):
    oim = write_config(tmp_path, tiny_prw, type="oim", length=1, every=1)
    assert run("train", "--config", str(oim), "--out", str(tmp_path / "oim"), "--quiet").returncode == 0
    plus = write_config(tmp_path, tiny_prw, type="nae_plus")
    out = run("train", "--config", str(plus), "--out", str(tmp_path / "plus"),
              f"train.init_from={tmp_path / 'oim' / 'final.pt'}")
    assert_one_line_error(out, "final.pt", "holds a 'oim' model")


def start_training(config, out_dir, *extra):
    return subprocess.Popen([str(BINARY), "train", "--config", str(config), "--out", str(out_dir), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_line(proc, prefix, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if line.startswith(prefix):
            return line
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"no line starting with {prefix!r}; stderr: {proc.stderr.read()}")


def checkpoint_iteration(path):
    """The iteration a checkpoint holds, read by `psearch eval`'s loader message."""
    out = run("eval", "--checkpoint", str(path), "--dataset", "prw", "--root", str(path.parent / "missing"))
    assert "loaded" in out.stdout, out.stderr
    return int(out.stdout.split("(iteration ")[1].split(")")[0])


def test_ctrl_c_writes_a_checkpoint_and_resume_finishes(tmp_path, tiny_prw):
    config = write_config(tmp_path, tiny_prw, length=40, every=100)
    run_dir = tmp_path / "run"
    proc = start_training(config, run_dir)
    wait_for_line(proc, "it 3/")
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    assert proc.returncode == 130
    stopped = checkpoint_iteration(run_dir / "last.pt")
    assert 3 <= stopped < 40  # the iteration under way finished, nothing was lost
    out = run("train", "--config", str(config), "--out", str(run_dir), "--resume", "--quiet")
    assert out.returncode == 0, out.stderr
    assert checkpoint_iteration(run_dir / "final.pt") == 40


def test_a_killed_run_keeps_its_last_checkpoint(tmp_path, tiny_prw):
    config = write_config(tmp_path, tiny_prw, length=40, every=2)
    run_dir = tmp_path / "run"
    proc = start_training(config, run_dir)
    wait_for_line(proc, "it 7/")
    proc.kill()  # no chance to write anything: the checkpoint of iteration 6 must be intact
    proc.wait(timeout=60)
    assert checkpoint_iteration(run_dir / "last.pt") >= 6
    out = run("train", "--config", str(config), "--out", str(run_dir), "--resume", "--quiet")
    assert out.returncode == 0, out.stderr
    assert checkpoint_iteration(run_dir / "final.pt") == 40


def test_models_lists_the_registered_types():
    out = run("models")
    assert out.returncode == 0, out.stderr
    for name in ("oim", "nae", "nae_plus"):
        assert any(line.startswith(name + "  (model.two_stage)") for line in out.stdout.splitlines()), out.stdout
    assert any(line.startswith("pcnet  (model.one_stage)") for line in out.stdout.splitlines()), out.stdout
    assert "loss_box_reg" in out.stdout and "loss_triplet" in out.stdout


def test_eval_checkpoint_saves_results_that_eval_results_scores_alike(tmp_path, tiny_prw):
    """eval --checkpoint --save-results writes the documented results file (read here by
    torch.load, independently of psearch); eval-results scores it to the same figures, with
    CBGM too; the checkpoint's inference.det_thresh is eval's default."""
    import json

    import torch

    config = write_config(tmp_path, tiny_prw, type="nae", length=2, every=1)
    assert run("train", "--config", str(config), "--out", str(tmp_path / "run"), "--quiet").returncode == 0
    results = tmp_path / "results" / "r.pt"
    common = ["--dataset", "prw", "--root", str(tiny_prw), "--cbgm"]
    a = run("eval", "--checkpoint", str(tmp_path / "run" / "final.pt"), *common, "--save-results", str(results),
            "--out", str(tmp_path / "a"), "--set", "inference.score_thresh=0.0", "--set", "inference.det_thresh=0.05",
            "--set", "inference.batch_size=3")
    assert a.returncode == 0, a.stderr
    b = run("eval-results", str(results), *common, "--det-thresh", "0.05", "--out", str(tmp_path / "b"))
    assert b.returncode == 0, b.stderr
    ma = json.loads((tmp_path / "a" / "metrics.json").read_text())
    mb = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert ma["settings"]["det_thresh"] == 0.05 and ma["settings"]["cbgm"]
    assert ma["search"] == mb["search"]
    assert ma["detection"]["ap"] == mb["detection"]["ap"]

    saved = torch.load(results, weights_only=True)
    assert saved["format"] == "psearch-results/1"
    assert len(saved["queries"]) == len(saved["query_detections"]) > 0
    assert sum(len(g["boxes"]) for g in saved["gallery"]) > 0
    for query, context in zip(saved["queries"], saved["query_detections"]):
        assert torch.allclose(context["boxes"][0], query["box"])  # row 0 is the query box
        assert torch.allclose(context["features"][0], query["features"])
        assert context["features"].shape[1] == 32


@pytest.mark.parametrize("variant", ["pcnet", "pcnet_dagger", "pcnet_mnv2"])
def test_pcnet_trains_and_evaluates_through_the_same_commands(tmp_path, tiny_prw, variant):
    """The one-stage family goes through the same train / eval / eval-results path, on a
    ResNet or on set-up's ImageNet MobileNetV2 trunk."""
    import json

    config = write_config(tmp_path, tiny_prw, type="pcnet", length=2, every=1)
    extra = []
    if variant == "pcnet_mnv2":
        weights = pathlib.Path(os.environ.get("PSEARCH_WEIGHTS_DIR") or pathlib.Path.home() / ".cache/psearch/weights")
        if not (weights / "mobilenet_v2_imagenet.pth").is_file():
            pytest.skip("the ImageNet MobileNetV2 is not converted (scripts/setup.sh)")
        extra = ["model.backbone.arch=mobilenet_v2", "model.backbone.weights=imagenet"]
    if variant == "pcnet_dagger":
        extra = ["model.one_stage.aspect_ratios=[[1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [1.0, 2.0]]",
                 "model.one_stage.anchor_sizes=[[32, 40], [64, 80], [128, 161], [256, 322], [512, 645]]"]
    out = run("train", "--config", str(config), "--out", str(tmp_path / "run"), "--quiet", *extra)
    assert out.returncode == 0, out.stderr
    results = tmp_path / "r.pt"
    common = ["--dataset", "prw", "--root", str(tiny_prw), "--cbgm"]
    a = run("eval", "--checkpoint", str(tmp_path / "run" / "final.pt"), *common, "--out", str(tmp_path / "a"),
            "--save-results", str(results), "--set", "inference.score_thresh=0.0", "--set", "inference.det_thresh=0.0")
    assert a.returncode == 0, a.stderr
    assert "loaded pcnet" in a.stdout
    b = run("eval-results", str(results), *common, "--det-thresh", "0.0", "--out", str(tmp_path / "b"))
    assert b.returncode == 0, b.stderr
    ma = json.loads((tmp_path / "a" / "metrics.json").read_text())
    mb = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert ma["search"] == mb["search"]
    # The CPP sampling points of the detections, drawn on a test frame (Fig. 5 of the paper).
    frame = sorted((tiny_prw / "frames").glob("*.jpg"))[0]
    png = tmp_path / "points.png"
    p = run("points", "--checkpoint", str(tmp_path / "run" / "final.pt"), "--image", str(frame), "--out", str(png),
            "--min-score", "0.0")
    assert p.returncode == 0, p.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "CPP sampling points" in p.stdout


@pytest.fixture(scope="module")
def trained_nae(tmp_path_factory, tiny_prw):
    """A NAE checkpoint after one iteration."""
    folder = tmp_path_factory.mktemp("nae")
    config = write_config(folder, tiny_prw, type="nae", length=1, every=1)
    assert run("train", "--config", str(config), "--out", str(folder / "run"), "--quiet").returncode == 0
    return folder / "run" / "final.pt"


def test_points_refuses_a_two_stage_checkpoint(tmp_path, tiny_prw, trained_nae):
    frame = sorted((tiny_prw / "frames").glob("*.jpg"))[0]
    out = run("points", "--checkpoint", str(trained_nae), "--image", str(frame),
              "--out", str(tmp_path / "p.png"))
    assert_one_line_error(out, "final.pt", "holds a 'nae' model", "'pcnet' models only")
    assert not (tmp_path / "p.png").exists()


def test_pcnet_refuses_a_nae_checkpoint(tmp_path, tiny_prw, trained_nae):
    pcnet = write_config(tmp_path, tiny_prw, type="pcnet")
    out = run("train", "--config", str(pcnet), "--out", str(tmp_path / "pcnet"), f"train.init_from={trained_nae}")
    assert_one_line_error(out, "final.pt", "holds a 'nae' model")


def test_a_retinanet_file_is_no_resnet_file(tmp_path, tiny_prw):
    """A torchvision RetinaNet checkpoint given as the ImageNet weights of a two-stage model
    is named for what it is, in one line."""
    config = write_config(tmp_path, tiny_prw, type="nae")
    weights = FIXTURES / "retinanet_resnet50_fpn.pth"
    out = run("train", "--config", str(config), "--out", str(tmp_path / "run"), "model.backbone.arch=resnet50",
              f"model.backbone.weights={weights}")
    assert_one_line_error(out, str(weights), "is a torchvision RetinaNet checkpoint, not a torchvision ResNet")
