"""psearch's models against what a user would pick instead, in one invocation: runs
`psearch bench` (OIM-base, NAE, NAE+, PCNet, PCNet light, the separate pipeline) and, in
this Python process, torchvision's fasterrcnn_resnet50_fpn, retinanet_resnet50_fpn and
ssdlite320_mobilenet_v3_large at the same input size, thread count and device, with random
weights on the same frame; prints one table with each psearch model's speed ratio against
its family's torchvision reference (two-stage -> Faster R-CNN, one-stage -> RetinaNet,
separate -> SSDLite). Ratio > 1: psearch is faster.

    python bench/bench_models.py [--size 900 1500] [--threads 2] [--repeat 3] [--batch 1] [--device cpu]
    python bench/bench_models.py --tiny        # 128 x 192, one run: what CI checks
"""
import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torchvision

REPO = pathlib.Path(__file__).resolve().parents[1]
BINARY = pathlib.Path(os.environ.get("PSEARCH_BINARY", REPO / "build" / "psearch"))
VTEST = pathlib.Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
REFERENCE_OF = {"oim": "fasterrcnn_resnet50_fpn", "nae": "fasterrcnn_resnet50_fpn", "nae_plus": "fasterrcnn_resnet50_fpn",
                "pcnet": "retinanet_resnet50_fpn", "separate": "ssdlite320_mobilenet_v3_large"}


def frame(height, width):
    """Frame 0 of vtest.avi resized, as psearch bench reads it ([3, H, W] in [0, 1])."""
    try:
        import cv2
        ok, bgr = cv2.VideoCapture(str(VTEST)).read()
        if ok:
            rgb = cv2.cvtColor(cv2.resize(bgr, (width, height), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
            return torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0
    except ImportError:
        pass
    return torch.rand(3, height, width)


def references(height, width):
    short, long = min(height, width), max(height, width)
    tv = torchvision.models.detection
    return {
        "fasterrcnn_resnet50_fpn": tv.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, min_size=short,
                                                              max_size=long),
        "retinanet_resnet50_fpn": tv.retinanet_resnet50_fpn(weights=None, weights_backbone=None, min_size=short,
                                                            max_size=long),
        # SSDLite resizes every input to 320 x 320 itself, as psearch's detector does to 300 x 300
        "ssdlite320_mobilenet_v3_large": tv.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None),
    }


def time_reference(model, image, batch, repeat, warmup, device):
    model.eval().to(device)
    images = [image.to(device)] * batch
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    with torch.no_grad():
        for _ in range(warmup):
            model(images)
        sync()
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            model(images)
            sync()
            times.append((time.perf_counter() - start) * 1000 / batch)
    return float(np.median(times)), float(np.percentile(times, 10)), float(np.percentile(times, 90))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, nargs=2, default=[900, 1500], metavar=("H", "W"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs="*", help="psearch bench models (default: its own list)")
    parser.add_argument("--tiny", action="store_true", help="128 x 192, one timed run: checks the harness")
    args = parser.parse_args()
    if args.tiny:
        args.size, args.repeat, args.warmup = [128, 192], 1, 0
    height, width = args.size
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        rows_file = pathlib.Path(tmp) / "rows.json"
        command = [str(BINARY), "bench", *(args.models or []), "--size", str(height), str(width), "--threads",
                   str(args.threads), "--repeat", str(args.repeat), "--warmup", str(args.warmup), "--batch",
                   str(args.batch), "--device", args.device, "--json", str(rows_file)]
        subprocess.run(command, check=True, cwd=REPO)
        ours = json.loads(rows_file.read_text())

    image = frame(height, width)
    theirs = {}
    for name, model in references(height, width).items():
        theirs[name] = time_reference(model, image, args.batch, args.repeat, args.warmup, args.device)
        del model
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"\n{height} x {width}, fp32, {args.device}, {args.threads} threads, batch {args.batch}, "
          f"median of {args.repeat}; torchvision {torchvision.__version__} in this process (peak RSS {peak:.0f} MB)\n")
    print("| model | psearch ms/frame | reference | reference ms/frame | ratio (reference / psearch) |")
    print("|---|---|---|---|---|")
    for row in ours:
        ref = REFERENCE_OF.get(row["type"])
        ref_ms = theirs[ref][0] if ref else float("nan")
        print(f"| {row['type']} ({row['model']}) | {row['ms_per_frame']:.1f} | {ref} | {ref_ms:.1f} | "
              f"{ref_ms / row['ms_per_frame']:.2f} |")
    for name, (median, p10, p90) in theirs.items():
        print(f"| (reference) {name} | - | {name} | {median:.1f} ({p10:.1f}-{p90:.1f}) | - |")


if __name__ == "__main__":
    sys.exit(main())
