"""Tiny CUHK-SYSU and PRW trees in the datasets' ORIGINAL on-disk layouts, for the C++ loader
tests (tests/cpp/data_loaders_test.cpp).

write(out_dir) creates
  out_dir/datasets/cuhk_sysu/  Image/SSM/*.jpg, annotation/Images.mat, annotation/pool.mat,
                               annotation/test/train_test/{Train,TestG50,TestG100}.mat,
                               annotation/test/subset/{Occlusion,Resolution}.mat
  out_dir/datasets/prw/        frames/*.jpg, annotations/<frame>.jpg.mat, frame_train.mat,
                               frame_test.mat, query_info.txt (CRLF)

The .mat files are written with scipy.io.savemat from numpy object arrays and structured
arrays, shaped so that scipy.io.loadmat returns what it returns for the real files (the
structures the public person-search code indexes): Img 1xN struct (imname, nAppear, box),
box 1xK struct (idlocate 1x4, ishard), pool Nx1 cell of char, Train Nx1 cell of 1x1 structs
(idname, nAppear, scene), TestG{N} 1xQ struct (Query 1x1 struct, Gallery 1xG struct, an
EMPTY idlocate for a gallery image without the query person), PRW N x 5 double matrices under
box_new / anno_file / anno_previous, Nx1 cells of frame names.

The C++ test holds its own copy of the expected values, computed by hand from the constants
below; this file only writes the constants, it does not compute the protocol.

Run directly with: python tests/python/fixtures_datasets.py <out_dir>
"""

import pathlib
import shutil
import sys

import numpy as np
import scipy.io

# --------------------------------------------------------------------------------------
# CUHK-SYSU constants: image -> boxes (x, y, w, h, ishard), in Images.mat order.
CUHK_IMAGES = [
    ("s1.jpg", [(10.7, 20.2, 30.9, 60.5, 0), (50.0, 60.0, 0.0, 40.0, 0), (100.0, 5.0, 20.0, 50.0, 1)]),
    ("s2.jpg", [(-3.6, 4.4, 25.5, 70.2, 0), (40.0, 10.0, 22.0, -1.0, 0)]),
    ("s3.jpg", [(0.0, 0.0, 15.0, 45.0, 0), (200.0, 30.0, 0.5, 30.0, 0)]),
    ("s4.jpg", []),
    ("s5.jpg", [(12.9, 14.1, 40.8, 90.3, 0), (70.0, 20.0, 30.0, 80.0, 1)]),
    ("s6.jpg", [(5.0, 6.0, 35.0, 85.0, 0), (120.5, 40.5, 25.5, 60.5, 0)]),
    ("s7.jpg", [(33.0, 44.0, 20.0, 50.0, 0)]),
    ("s8.jpg", [(1.0, 2.0, 30.0, 70.0, 0), (90.0, 10.0, 0.0, 10.0, 0)]),
    ("s9.jpg", [(7.0, 8.0, 20.0, 40.0, 0)]),
]
CUHK_POOL = ["s6.jpg", "s5.jpg", "s7.jpg", "s8.jpg", "s9.jpg"]
# Train.mat: identity name -> scenes (image, x, y, w, h). Boxes match Images.mat boxes after
# truncation to integers (10.2 -> 10 like 10.7 -> 10), except the two unmatched ones.
CUHK_TRAIN = [
    ("p101", [("s1.jpg", 10.2, 20.9, 30.1, 60.0), ("s2.jpg", -3.6, 4.4, 25.5, 70.2)]),
    ("p102", [("s1.jpg", 100.0, 5.0, 20.0, 50.0), ("s3.jpg", 0.0, 0.0, 15.0, 45.0),
              ("s5.jpg", 12.9, 14.1, 40.8, 90.3)]),  # s5 is a test image: unmatched
    ("p103", [("s3.jpg", 999.0, 999.0, 10.0, 10.0)]),  # no such box: unmatched
]
# Protocol files: list of (query image, query box, idname, gallery [(image, box or None)]).
Q0 = ("s5.jpg", (12.9, 14.1, 40.8, 90.3), "p201")
Q1 = ("s6.jpg", (120.5, 40.5, 25.5, 60.5), "p202")
CUHK_TESTG = {
    "TestG50": [
        (*Q0, [("s6.jpg", (5.0, 6.0, 35.0, 85.0)), ("s7.jpg", None)]),
        (*Q1, [("s8.jpg", None), ("s5.jpg", (70.0, 20.0, 30.0, 80.0)), ("s7.jpg", (33.9, 44.2, 20.7, 50.1))]),
    ],
    "TestG100": [
        (*Q0, [("s8.jpg", None), ("s6.jpg", (5.0, 6.0, 35.0, 85.0)), ("s7.jpg", None)]),
        (*Q1, [("s9.jpg", None), ("s5.jpg", (70.0, 20.0, 30.0, 80.0)), ("s7.jpg", (33.9, 44.2, 20.7, 50.1))]),
    ],
}
# Query subsets (structure of TestG, variable names as in the public code that reads them).
CUHK_SUBSETS = {
    ("Occlusion.mat", "Occlusion1"): [
        (*Q1, [("s9.jpg", None), ("s5.jpg", (70.0, 20.0, 30.0, 80.0)), ("s8.jpg", None)]),
    ],
    ("Resolution.mat", "Test_Size"): [
        (*Q0, [("s6.jpg", (5.0, 6.0, 35.0, 85.0)), ("s9.jpg", None), ("s7.jpg", None)]),
    ],
}

# --------------------------------------------------------------------------------------
# PRW constants: frame -> {variable: rows [id, x, y, w, h]} (several variables in one file
# test the precedence box_new > anno_file > anno_previous).
PRW_TRAIN = ["c1s1_000151", "c2s1_000226", "c3s2_001234"]
PRW_TEST = ["c1s3_016471", "c2s3_020000", "c1s3_016500", "c3s4_030000"]
PRW_ANNOTATIONS = {
    "c1s1_000151": {
        "box_new": [[479, 10.5, 20.5, 30.2, 60.7], [-2, -5.5, 8.2, 20.3, 40.1], [12, 100.0, 50.0, 0.0, 30.0]],
        "anno_file": [[1, 1.0, 1.0, 5.0, 5.0]],  # ignored: box_new comes first
    },
    "c2s1_000226": {
        "anno_file": [[12, 5.9, 5.1, 20.4, 40.6], [700, 50.0, -3.2, 25.0, 55.0]],
        "anno_previous": [[2, 2.0, 2.0, 5.0, 5.0]],  # ignored: anno_file comes first
    },
    "c3s2_001234": {
        "anno_previous": [[479, 0.0, 0.0, 15.5, 30.5], [-2, -30.0, 5.0, 20.0, 20.0]],
    },
    "c1s3_016471": {"box_new": [[479, 1750.0896, 407.5410, 86.3067, 216.9330], [5, 100.0, 100.0, 40.0, 90.0]]},
    "c2s3_020000": {"box_new": [[479, 300.7, 200.2, 80.5, 200.9], [-2, 10.0, 10.0, 30.0, 60.0]]},
    "c1s3_016500": {"box_new": [[479, 1700.3, 400.8, 90.1, 210.4], [5, -10.5, 50.0, 40.0, 100.0]]},
    "c3s4_030000": {"box_new": [[5, 500.0, 300.0, 45.0, 95.0], [5, 600.0, 300.0, 45.0, 95.0]]},
}
# query_info.txt: CRLF line ends and an empty last line, as in the real file.
PRW_QUERY_INFO = (
    "479 1750.0896 407.5410 86.3067 216.9330 c1s3_016471\r\n"
    "5 -10.5 50 40 100 c1s3_016500\r\n"
    "\r\n"
)


# --------------------------------------------------------------------------------------
def _cell(items, shape=None):
    """A MATLAB cell array (Nx1 by default) of the given Python/numpy values."""
    arr = np.empty(shape or (len(items), 1), dtype=object)
    for i, item in enumerate(items):
        arr.flat[i] = item
    return arr


def _struct(fields, rows):
    """A 1xN MATLAB struct array: rows is a list of dicts {field: value}."""
    arr = np.empty((1, len(rows)), dtype=[(f, object) for f in fields])
    for i, row in enumerate(rows):
        for f in fields:
            arr[0, i][f] = row[f]
    return arr


def _box(xywh):
    return np.array([list(xywh)], dtype=np.float64) if xywh is not None else np.zeros((0, 0))


def _scalar(v):
    return np.array([[v]], dtype=np.float64)


def _write_jpeg(path):
    try:
        from PIL import Image

        Image.new("RGB", (8, 6), (90, 120, 150)).save(path, "JPEG")
    except ImportError:  # torchvision is always there (the oracle environment)
        import torch
        import torchvision.io

        torchvision.io.write_jpeg(torch.full((3, 6, 8), 100, dtype=torch.uint8), str(path))


def _protocol(entries):
    rows = []
    for image, xywh, idname, gallery in entries:
        query = _struct(["imname", "idlocate", "ishard", "idname"],
                        [{"imname": image, "idlocate": _box(xywh), "ishard": _scalar(0), "idname": idname}])
        items = _struct(["imname", "idlocate", "ishard"],
                        [{"imname": g, "idlocate": _box(b), "ishard": _scalar(0)} for g, b in gallery])
        rows.append({"Query": query, "Gallery": items})
    return _struct(["Query", "Gallery"], rows)


def write_cuhk_sysu(root: pathlib.Path) -> None:
    ann = root / "annotation"
    (root / "Image" / "SSM").mkdir(parents=True)
    (ann / "test" / "train_test").mkdir(parents=True)
    (ann / "test" / "subset").mkdir(parents=True)
    for name, _ in CUHK_IMAGES:
        _write_jpeg(root / "Image" / "SSM" / name)

    img_rows = []
    for name, boxes in CUHK_IMAGES:
        box = _struct(["idlocate", "ishard"], [{"idlocate": _box(b[:4]), "ishard": _scalar(b[4])} for b in boxes])
        img_rows.append({"imname": name, "nAppear": _scalar(len(boxes)), "box": box})
    # Images.mat compressed (as MATLAB's default v7 save), the others not: both paths read.
    scipy.io.savemat(ann / "Images.mat", {"Img": _struct(["imname", "nAppear", "box"], img_rows)},
                     do_compression=True)
    scipy.io.savemat(ann / "pool.mat", {"pool": _cell(CUHK_POOL)})

    persons = []
    for idname, scenes in CUHK_TRAIN:
        scene = _struct(["imname", "idlocate", "ishard"],
                        [{"imname": s[0], "idlocate": _box(s[1:5]), "ishard": _scalar(0)} for s in scenes])
        persons.append(_struct(["idname", "nAppear", "scene"],
                               [{"idname": idname, "nAppear": _scalar(len(scenes)), "scene": scene}]))
    scipy.io.savemat(ann / "test" / "train_test" / "Train.mat", {"Train": _cell(persons)}, do_compression=True)

    for var, entries in CUHK_TESTG.items():
        scipy.io.savemat(ann / "test" / "train_test" / f"{var}.mat", {var: _protocol(entries)})
    for (fname, var), entries in CUHK_SUBSETS.items():
        scipy.io.savemat(ann / "test" / "subset" / fname, {var: _protocol(entries)}, do_compression=True)


def write_prw(root: pathlib.Path) -> None:
    (root / "frames").mkdir(parents=True)
    (root / "annotations").mkdir(parents=True)
    for frame in PRW_TRAIN + PRW_TEST:
        _write_jpeg(root / "frames" / f"{frame}.jpg")
    for i, (frame, variables) in enumerate(PRW_ANNOTATIONS.items()):
        mats = {var: np.array(rows, dtype=np.float64).reshape(-1, 5) for var, rows in variables.items()}
        scipy.io.savemat(root / "annotations" / f"{frame}.jpg.mat", mats, do_compression=bool(i % 2))
    scipy.io.savemat(root / "frame_train.mat", {"img_index_train": _cell(PRW_TRAIN)})
    scipy.io.savemat(root / "frame_test.mat", {"img_index_test": _cell(PRW_TEST)}, do_compression=True)
    (root / "query_info.txt").write_bytes(PRW_QUERY_INFO.encode("ascii"))


def write(out_dir) -> None:
    base = pathlib.Path(out_dir) / "datasets"
    if base.exists():
        shutil.rmtree(base)
    write_cuhk_sysu(base / "cuhk_sysu")
    write_prw(base / "prw")


if __name__ == "__main__":
    write(sys.argv[1])
