"""Writes the oracle fixtures that the C++ tests compare against.

Usage: make_fixtures.py OUT_DIR

Each fixtures_*.py module owns one topic and exposes write(out_dir). Files are only
rewritten when the generating code changed, so repeated ctest runs stay fast.
"""
import hashlib
import importlib
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
TOPICS = ["fixtures_checkpoint", "fixtures_backbone", "fixtures_boxes", "fixtures_datasets", "fixtures_losses", "fixtures_rpn", "fixtures_transform", "fixtures_roi_heads", "fixtures_nae4ps", "fixtures_retinanet", "fixtures_pcnet"]


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
        digest = hashlib.sha1(source.read_bytes()).hexdigest()
        if stamp.exists() and stamp.read_text() == digest:
            continue
        importlib.import_module(topic).write(out)
        stamp.write_text(digest)
        print(f"make_fixtures: wrote {topic}")


if __name__ == "__main__":
    main(sys.argv[1])
