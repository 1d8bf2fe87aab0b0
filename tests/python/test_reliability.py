"""Edges a user meets sooner or later (issue 13): a full disk, a run folder that already
holds a run, out-of-range numeric flags and settings, a mistyped command. Each gives one line
naming the file or flag, a non-zero exit, and loses nothing already written."""
import contextlib
import json
import os
import pathlib
import shutil
import subprocess

import pytest

from test_train_cli import BINARY, assert_one_line_error, checkpoint_iteration, run, tiny_prw, write_config  # noqa: F401


@contextlib.contextmanager
def small_filesystem(path, size_bytes):
    """A tmpfs of `size_bytes` mounted at `path` (needs root, as CI and the dev machines run)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_full_disk_keeps_the_previous_checkpoint(tmp_path, tiny_prw):
    config = write_config(tmp_path, tiny_prw, length=40, every=100)
    first = tmp_path / "first"
    assert run("train", "--config", str(config), "--out", str(first), "--stop-after", "2", "--quiet").returncode == 0
    size = (first / "last.pt").stat().st_size
    # Room for the run as it is plus half a checkpoint: the next checkpoint cannot fit.
    with small_filesystem(tmp_path / "full", size + size // 2 + 65536) as full:
        run_dir = full / "run"
        shutil.copytree(first, run_dir)
        out = run("train", "--config", str(config), "--out", str(run_dir), "--resume", "--stop-after", "4", "--quiet")
        assert out.returncode == 1, out.stderr
        assert_one_line_error(out, str(run_dir / "last.pt"), "No space left on device")
        assert not (run_dir / "last.pt.tmp").exists()
        assert checkpoint_iteration(run_dir / "last.pt") == 2


def test_full_disk_eval_report(tmp_path, tiny_prw):
    with small_filesystem(tmp_path / "full", 8192) as full:
        out = run("eval", "--dataset", "prw", "--root", str(tiny_prw), "--gt-boxes", "--min-size", "64",
                  "--max-size", "96", "--out", str(full))
        assert out.returncode == 1
        # stderr also carries the progress bar; the error is its last line, and names the file.
        last = out.stderr.strip().splitlines()[-1]
        assert last.startswith("psearch: error: " + str(full)) and "No space left on device" in last, last
        assert not [p.name for p in full.iterdir() if p.name.endswith(".tmp")]


def test_a_run_is_not_overwritten_without_asking(tmp_path, tiny_prw):
    config = write_config(tmp_path, tiny_prw, length=3, every=1)
    run_dir = tmp_path / "run"
    assert run("train", "--config", str(config), "--out", str(run_dir), "--quiet").returncode == 0
    log_lines = (run_dir / "log.jsonl").read_text().splitlines()
    out = run("train", "--config", str(config), "--out", str(run_dir), "--quiet")
    assert_one_line_error(out, str(run_dir), "--resume", "--overwrite")
    assert checkpoint_iteration(run_dir / "last.pt") == 3
    assert (run_dir / "log.jsonl").read_text().splitlines() == log_lines
    # Asked for explicitly, the old run is replaced, log included.
    out = run("train", "--config", str(config), "--out", str(run_dir), "--overwrite", "--stop-after", "1", "--quiet")
    assert out.returncode == 0, out.stderr
    assert checkpoint_iteration(run_dir / "last.pt") == 1
    assert not (run_dir / "final.pt").exists()
    assert [json.loads(l)["iteration"] for l in (run_dir / "log.jsonl").read_text().splitlines()] == [1]


def test_import_does_not_overwrite_an_existing_file(tmp_path):
    target = tmp_path / "nae.pt"
    target.write_bytes(b"keep me")
    config = pathlib.Path(__file__).resolve().parents[2] / "configs" / "official" / "nae4ps_prw.yaml"
    out = run("import-nae4ps", "--checkpoint", str(config), "--config", str(config), "--out", str(target))
    assert_one_line_error(out, str(target), "--overwrite")
    assert target.read_bytes() == b"keep me"


@pytest.mark.parametrize("args, fragment", [
    (["backbone", "--threads", "100000"], "--threads"),
    (["backbone", "--threads", "-5"], "--threads"),
    (["backbone", "--batch", "99999999999"], "--batch"),
    (["train", "--config", "configs/nae_prw.yaml", "--stop-after", "-3"], "--stop-after"),
    (["synth", "--format", "prw", "--out", "/tmp/never", "--images", "-3"], "--images"),
    (["tarin", "--help"], "unknown command 'tarin'"),
])
def test_usage_errors_are_one_short_line(args, fragment):
    out = subprocess.run([str(BINARY), *args], capture_output=True, text=True, timeout=60,
                         cwd=pathlib.Path(__file__).resolve().parents[2])
    assert out.returncode == 2, out.stdout + out.stderr
    assert_one_line_error(out, fragment)
    assert len(out.stderr) < 200, out.stderr  # no 309-digit bound of a double range


@pytest.mark.parametrize("override, fragment", [
    ("train.lr=.inf", "must be a finite number"),
    ("train.lr=1e999", "must be a finite number"),
    ("train.batch_size=99999999999", "must be in [1, 1024]"),
    ("inference.max_size=100000", "must be in [1, 8192]"),
])
def test_out_of_range_settings_are_refused(tmp_path, tiny_prw, override, fragment):
    config = write_config(tmp_path, tiny_prw)
    out = run("train", "--config", str(config), "--out", str(tmp_path / "run"), override)
    assert out.returncode == 1
    assert_one_line_error(out, override.split("=")[0], fragment)
    assert len(out.stderr) < 200, out.stderr
    assert not (tmp_path / "run").exists()


FIXTURES = pathlib.Path(os.environ.get("PSEARCH_FIXTURES_DIR", pathlib.Path(__file__).resolve().parents[2] / "build" / "fixtures"))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_prw):
    tmp = tmp_path_factory.mktemp("trained")
    config = write_config(tmp, tiny_prw, length=2, every=1)
    out = run("train", "--config", str(config), "--out", str(tmp / "run"), "--quiet")
    assert out.returncode == 0, out.stderr
    return config, tmp / "run"


def test_our_own_formats_are_named(trained_run):
    _, run_dir = trained_run
    checkpoint = run_dir / "final.pt"
    out = run("inspect", str(checkpoint))
    assert out.returncode == 0, out.stderr
    assert "psearch training checkpoint, model nae, iteration 2" in out.stdout
    tensors = int(out.stdout.strip().splitlines()[-1].split()[0])
    assert tensors > 100  # the model state, not "0 tensors"
    out = run("backbone", "--arch", "resnet18", "--weights", str(checkpoint), "--height", "32", "--width", "32")
    assert_one_line_error(out, str(checkpoint), "psearch training checkpoint", "eval --checkpoint")
    out = run("eval", "--checkpoint", str(FIXTURES / "resnet18.pth"), "--dataset", "prw", "--root", "/nowhere")
    assert_one_line_error(out, "resnet18.pth", "torch.save weight file", "not a psearch checkpoint",
                          "model.backbone.weights")


def test_resume_with_another_config_names_the_keys(trained_run):
    config, run_dir = trained_run
    out = run("train", "--config", str(config), "--out", str(run_dir), "--resume", "train.lr=0.5")
    assert_one_line_error(out, "last.pt", "train.lr: 0.003 -> 0.5")


def test_a_duplicated_yaml_key_is_refused(tmp_path, tiny_prw):
    config = write_config(tmp_path, tiny_prw)
    config.write_text(config.read_text() + "train: {lr: 0.1}\n")
    out = run("train", "--config", str(config), "--out", str(tmp_path / "run"))
    assert_one_line_error(out, str(config), "key 'train' is given twice")


def test_eval_warns_about_training_overrides(trained_run, tiny_prw, tmp_path):
    _, run_dir = trained_run
    out = run("eval", "--checkpoint", str(run_dir / "final.pt"), "--dataset", "prw", "--root", str(tiny_prw),
              "--set", "train.lr=0.1", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "--set train.lr=0.1: eval does not use training settings" in out.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics) >= {"results", "dataset", "settings", "search", "detection", "queries"}


def test_a_truncated_jpeg_is_named_and_refused(tmp_path, tiny_prw):
    root = tmp_path / "prw"
    shutil.copytree(tiny_prw, root)
    frames = sorted((root / "frames").glob("*.jpg"))
    assert frames
    for frame in frames:  # whichever frame the test split reads first
        data = frame.read_bytes()
        frame.write_bytes(data[: len(data) // 3])
    out = run("eval", "--dataset", "prw", "--root", str(root), "--gt-boxes", "--min-size", "64", "--max-size", "96",
              "--out", str(tmp_path / "eval"))
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    named = last.split("psearch: error: ")[1].split(":")[0]
    assert pathlib.Path(named) in frames, last
    assert "damaged JPEG" in last and "Premature end of JPEG file" in last, last
    assert "Premature end" not in "".join(out.stderr.strip().splitlines()[:-1])  # no anonymous libjpeg line


def test_eval_checks_its_output_folder_before_the_model_runs(tmp_path, tiny_prw):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    out = run("eval", "--dataset", "prw", "--root", str(tiny_prw), "--gt-boxes", "--out", str(blocker / "eval"))
    assert_one_line_error(out, str(blocker))  # one line: no progress bar ran before it


def test_libtorch_messages_are_ours(tmp_path):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"PK\x03\x04" + bytes(200))
    for args in (["inspect", str(broken)], ["eval", "--checkpoint", str(broken), "--dataset", "prw", "--root", "/x"]):
        out = run(*args)
        assert_one_line_error(out, str(broken))
        assert "enforce fail" not in out.stderr and "miniz" not in out.stderr, out.stderr
