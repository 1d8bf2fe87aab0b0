"""Writes the oracle fixtures that the C++ tests compare against.

Usage: make_fixtures.py OUT_DIR

Each fixtures_*.py module owns one topic and exposes write(out_dir). Files are only
rewritten when their inputs changed, so repeated ctest runs stay fast. The inputs are the
module's source, the files its module-level literal SOURCES = [...] names (next to it), and
the sidecars (NAME.json, written by scripts/convert_weights.py) of the converted weights its
WEIGHTS = [...] names in $PSEARCH_WEIGHTS_DIR (default ~/.cache/psearch/weights). A
write() that returns False wrote nothing or an incomplete set (an input was missing): it
runs again next time.
"""
import ast
import hashlib
import importlib
import os
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
TOPICS = ["fixtures_checkpoint", "fixtures_backbone", "fixtures_boxes", "fixtures_datasets", "fixtures_losses", "fixtures_rpn", "fixtures_transform", "fixtures_roi_heads", "fixtures_nae4ps", "fixtures_retinanet", "fixtures_pcnet",
          "fixtures_mobilenet", "fixtures_ssdlite"]

WEIGHTS_DIR = pathlib.Path(os.environ.get("PSEARCH_WEIGHTS_DIR") or pathlib.Path.home() / ".cache/psearch/weights")


def _digest(source: pathlib.Path) -> str:
    """sha1 of the topic's source, its SOURCES files and its WEIGHTS sidecars (read without
    importing the module, which would cost a torch import on every run)."""
    text = source.read_bytes()
    lists = {"SOURCES": [], "WEIGHTS": []}
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and getattr(node.targets[0], "id", None) in lists:
            lists[node.targets[0].id] = ast.literal_eval(node.value)
    h = hashlib.sha1(text)
    for name in lists["SOURCES"]:
        h.update((HERE / name).read_bytes())
    for name in lists["WEIGHTS"]:
        sidecar = WEIGHTS_DIR / f"{name}.json"
        h.update(sidecar.read_bytes() if sidecar.is_file() else f"{name} missing".encode())
    return h.hexdigest()


def main(out_dir: str) -> None:
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(HERE))
    for topic in TOPICS:
        source = HERE / f"{topic}.py"
        if not source.exists():
            print(f"make_fixtures: {topic} not present, skipped")
            continue
        stamp = out / f".{topic}.sha1"
        digest = _digest(source)
        if stamp.exists() and stamp.read_text() == digest:
            continue
        if importlib.import_module(topic).write(out) is False:
            stamp.unlink(missing_ok=True)
            continue
        stamp.write_text(digest)
        print(f"make_fixtures: wrote {topic}")


if __name__ == "__main__":
    main(sys.argv[1])
