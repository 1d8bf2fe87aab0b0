"""The psearch program as a user meets it: help, version, usage errors (one line, exit 2),
runtime errors (one line naming the file, exit 1) and the demo's output."""
import json
import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
BINARY = pathlib.Path(os.environ.get("PSEARCH_BINARY", REPO / "build" / "psearch"))
FIXTURES = pathlib.Path(os.environ.get("PSEARCH_FIXTURES_DIR", REPO / "build" / "fixtures"))


def run(*args, cwd=None):
    return subprocess.run([str(BINARY), *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def test_help_lists_subcommands():
    out = run("--help")
    assert out.returncode == 0
    for sub in ("info", "inspect", "backbone", "demo"):
        assert sub in out.stdout


def test_version():
    out = run("--version")
    assert out.returncode == 0
    assert out.stdout.startswith("psearch 0.1.0 (LibTorch 2.11.0")


@pytest.mark.parametrize("args, expected", [
    (["frobnicate"], "unknown command 'frobnicate'"),
    (["backbone", "--bogus"], "--bogus"),
    (["backbone", "--arch", "resnet99"], "resnet99"),
    (["backbone", "--batch", "-3"], "--batch"),
    ([], "subcommand is required"),
])
def test_usage_errors_are_one_line_with_exit_2(args, expected):
    out = run(*args)
    assert out.returncode == 2, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("psearch: error:") and expected in lines[0], lines[0]


def test_missing_checkpoint_is_named(tmp_path):
    missing = tmp_path / "nope.pth"
    out = run("inspect", str(missing))
    assert out.returncode == 1
    assert out.stderr.strip() == f"psearch: error: {missing}: cannot open file"


def test_corrupt_checkpoint_is_named(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"PK\x03\x04 truncated zip")
    out = run("inspect", str(bad))
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and "corrupt checkpoint" in lines[0], out.stderr


def test_inspect_lists_torchvision_keys():
    out = run("inspect", str(FIXTURES / "resnet18.pth"), "--prefix", "layer1.0.conv1")
    assert out.returncode == 0, out.stderr
    assert "layer1.0.conv1.weight" in out.stdout and "[64, 64, 3, 3]" in out.stdout


def test_backbone_rejects_checkpoint_of_another_model():
    out = run("backbone", "--arch", "resnet50", "--weights", str(FIXTURES / "resnet18.pth"),
              "--height", "64", "--width", "64", "--repeat", "1")
    assert out.returncode == 1
    assert "resnet18.pth: checkpoint does not match the model" in out.stderr
    assert "\n  missing key: layer1.0.bn3.weight" in out.stderr


def test_backbone_runs_with_torchvision_weights():
    out = run("backbone", "--arch", "resnet18", "--weights", str(FIXTURES / "resnet18.pth"),
              "--height", "64", "--width", "96", "--repeat", "1")
    assert out.returncode == 0, out.stderr
    assert "C5     32      [1, 512, 2, 3]" in out.stdout


def test_demo_finds_the_query_person_first(tmp_path):
    out = run("demo", "--output", str(tmp_path))
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "demo.json").read_text())
    # Identity 0 is the query; it appears once in the gallery frame (plus its near-duplicate
    # proposals). Identical appearance must rank first even with a random backbone.
    assert result["ranking"][0]["identity"] == 0
    assert not list(tmp_path.glob("*.tmp"))
