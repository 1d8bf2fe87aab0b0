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
model:
  type: {type}
  backbone: {{arch: resnet18, weights: "", norm: batchnorm, freeze_at: 0}}
  rpn: {{anchor_sizes: [[16, 32, 64]], aspect_ratios: [[1.0, 2.0, 3.0]], pre_nms_top_n_train: 300,
        post_nms_top_n_train: 100, pre_nms_top_n_test: 300, post_nms_top_n_test: 50}}
  roi_heads: {{pooler_resolution: 4, batch_size_per_image: 16}}
  embedding: {{dim: 32, pixel_size: 2}}
  oim: {{queue_size: 32}}
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
