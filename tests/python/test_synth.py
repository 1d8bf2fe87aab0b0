"""`psearch synth` writes PRW and CUHK-SYSU datasets that scipy reads back exactly as it
reads the real files: same variables, struct fields, cell/struct shapes and conventions.
Also checks the dataset's logic (splits, queries, galleries, distractors, unlabeled
people, boxes inside images) and that the output is a pure function of the seed."""
import filecmp
import json
import os
import pathlib
import re
import struct
import subprocess
from collections import defaultdict

import numpy as np
import pytest
import scipy.io as sio

REPO = pathlib.Path(__file__).resolve().parents[2]
BINARY = pathlib.Path(os.environ.get("PSEARCH_BINARY", REPO / "build" / "psearch"))
ALTERNATE_VARIABLES = ("anno_file", "anno_previous")


def synth(out, fmt, seed=0, *extra):
    return subprocess.run([str(BINARY), "synth", "--format", fmt, "--size", "tiny", "--out", str(out),
                           "--seed", str(seed), *map(str, extra)],
                          capture_output=True, text=True, timeout=300)


def generate(tmp_path_factory, fmt, seed=0, *extra):
    out = tmp_path_factory.mktemp(fmt) / "data"
    res = synth(out, fmt, seed, *extra)
    assert res.returncode == 0, res.stderr
    return out


@pytest.fixture(scope="module")
def prw(tmp_path_factory):
    return generate(tmp_path_factory, "prw")


@pytest.fixture(scope="module")
def cuhk(tmp_path_factory):
    return generate(tmp_path_factory, "cuhk-sysu")


def jpeg_size(path):
    """(width, height) from the JPEG's SOF marker: no image library needed."""
    data = path.read_bytes()
    assert data[:2] == b"\xff\xd8", f"{path} is not a JPEG"
    i = 2
    while i < len(data):
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + length
    raise AssertionError(f"{path}: no SOF marker")


def text(cell_item):
    """A MATLAB char array as scipy returns it (a 1-element array of str) -> str."""
    assert cell_item.dtype.kind == "U" and cell_item.shape == (1,), (cell_item.dtype, cell_item.shape)
    return str(cell_item[0])


def string_column(mat, name):
    """An Nx1 cell of char arrays -> list of str, checking the shape."""
    cell = mat[name]
    assert cell.dtype == object and cell.ndim == 2 and cell.shape[1] == 1, cell.shape
    return [text(c) for c in cell[:, 0]]


def box_inside(box, size, tol=1e-6):
    x, y, w, h = box
    return w > 0 and h > 0 and x >= -tol and y >= -tol and x + w <= size[0] + tol and y + h <= size[1] + tol


# ---------------------------------------------------------------------------------- PRW

def load_prw(root):
    train = string_column(sio.loadmat(root / "frame_train.mat"), "img_index_train")
    test = string_column(sio.loadmat(root / "frame_test.mat"), "img_index_test")
    boxes, variables = {}, {}
    for name in train + test:
        mat = sio.loadmat(root / "annotations" / f"{name}.jpg.mat")
        names = [k for k in mat if not k.startswith("__")]
        assert len(names) == 1 and names[0] in ("box_new",) + ALTERNATE_VARIABLES, names
        variables[name] = names[0]
        boxes[name] = mat[names[0]]
    return train, test, boxes, variables


def camera(name):
    return int(re.match(r"c(\d+)s\d+_\d{6}$", name).group(1))


def test_prw_layout_and_variables(prw):
    train, test, boxes, variables = load_prw(prw)
    assert not set(train) & set(test)
    assert sorted(p.stem for p in (prw / "frames").glob("*.jpg")) == sorted(train + test)
    assert {camera(n) for n in train + test} == set(range(1, 7)), "six cameras by default"
    for name, m in boxes.items():
        assert m.dtype == np.float64 and m.ndim == 2 and m.shape[1] == 5 and m.shape[0] >= 1, (name, m.shape)
        size = jpeg_size(prw / "frames" / f"{name}.jpg")
        for row in m:
            assert row[0] == -2 or (row[0] >= 1 and row[0] == int(row[0])), row
            assert box_inside(row[1:], size), (name, row, size)
    used = set(variables.values())
    assert "box_new" in used and set(ALTERNATE_VARIABLES) <= used, used


def test_prw_splits_identities_and_distractors(prw):
    train, test, boxes, _ = load_prw(prw)
    ids = {split: {int(i) for n in names for i in boxes[n][:, 0] if i != -2}
           for split, names in (("train", train), ("test", test))}
    assert ids["train"] and ids["test"] and not ids["train"] & ids["test"]
    cameras = defaultdict(set)
    for name, m in boxes.items():
        for i in m[:, 0]:
            if i != -2:
                cameras[int(i)].add(camera(name))
    assert all(len(c) >= 2 for c in cameras.values()), cameras
    assert any((m[:, 0] == -2).any() for m in boxes.values()), "no unlabeled boxes"
    assert any((m[:, 0] == -2).all() for n, m in boxes.items() if n in test), "no test distractor frame"
    assert any((m[:, 0] == -2).all() for n, m in boxes.items() if n in train), "no train distractor frame"


def test_prw_query_info(prw):
    _, test, boxes, _ = load_prw(prw)
    raw = (prw / "query_info.txt").read_bytes()
    assert raw.endswith(b"\r\n") and raw.count(b"\n") == raw.count(b"\r\n"), "CRLF line endings"
    lines = raw.decode().split("\r\n")[:-1]
    assert lines
    frames_of = defaultdict(set)
    for name in test:
        for i in boxes[name][:, 0]:
            frames_of[int(i)].add(name)
    for line in lines:
        fields = line.split(" ")
        assert len(fields) == 6, line
        assert all(re.fullmatch(r"-?\d+\.\d{4}", f) for f in fields[1:5]), line
        pid, box, frame = int(fields[0]), [float(f) for f in fields[1:5]], fields[5]
        assert frame in test
        rows = boxes[frame][boxes[frame][:, 0] == pid]
        assert len(rows) == 1 and np.allclose(rows[0, 1:], box, atol=5e-5), (line, rows)
        others = frames_of[pid] - {frame}
        assert any(camera(n) != camera(frame) for n in others), f"{pid} has no cross-camera ground truth"


# ---------------------------------------------------------------------------- CUHK-SYSU

def fields(struct_array):
    return struct_array.dtype.names


def load_images(root):
    img = sio.loadmat(root / "annotation" / "Images.mat")["Img"]
    assert img.ndim == 2 and img.shape[0] == 1 and fields(img) == ("imname", "nAppear", "box")
    images = {}
    for entry in img[0]:
        name = text(entry["imname"])
        n = entry["nAppear"]
        box = entry["box"]
        assert n.shape == (1, 1) and n.dtype == np.float64
        assert box.shape == (1, int(n[0, 0])) and fields(box) == ("idlocate", "ishard"), box.shape
        rows = []
        for b in box[0]:
            assert b["idlocate"].shape == (1, 4) and b["idlocate"].dtype == np.float64
            assert b["ishard"].shape == (1, 1) and b["ishard"][0, 0] in (0, 1)
            rows.append(tuple(b["idlocate"][0]))
        images[name] = rows
    return images


def protocol_dir(root):
    return root / "annotation" / "test" / "train_test"


def test_cuhk_images_and_pool(cuhk):
    images = load_images(cuhk)
    assert sorted(p.name for p in (cuhk / "Image" / "SSM").glob("*.jpg")) == sorted(images)
    for name, rows in images.items():
        assert re.fullmatch(r"s\d+\.jpg", name)
        size = jpeg_size(cuhk / "Image" / "SSM" / name)
        assert rows and all(box_inside(r, size) for r in rows), name
        assert all(float(v).is_integer() for r in rows for v in r), "CUHK-SYSU boxes are integers"
    pool = string_column(sio.loadmat(cuhk / "annotation" / "pool.mat"), "pool")
    assert len(set(pool)) == len(pool) and set(pool) < set(images)


def load_train(root):
    train = sio.loadmat(protocol_dir(root) / "Train.mat")["Train"]
    assert train.dtype == object and train.ndim == 2 and train.shape[1] == 1, (train.dtype, train.shape)
    people = {}
    for cell in train[:, 0]:
        assert cell.shape == (1, 1) and fields(cell) == ("idname", "nAppear", "scene")
        person = cell[0, 0]
        scene = person["scene"]
        assert fields(scene) == ("imname", "idlocate", "ishard")
        assert scene.shape == (1, int(person["nAppear"][0, 0]))
        sightings = []
        for s in scene[0]:
            assert s["idlocate"].shape == (1, 4) and s["ishard"].shape == (1, 1)
            sightings.append((text(s["imname"]), tuple(s["idlocate"][0])))
        people[text(person["idname"])] = sightings
    return people


def load_test(root, n):
    test = sio.loadmat(protocol_dir(root) / f"TestG{n}.mat")[f"TestG{n}"]
    assert test.ndim == 2 and test.shape[0] == 1 and fields(test) == ("Query", "Gallery")
    queries = []
    for item in test[0]:
        q, g = item["Query"], item["Gallery"]
        assert q.shape == (1, 1) and fields(q) == ("imname", "idlocate", "ishard", "idname")
        assert g.shape == (1, n) and fields(g) == ("imname", "idlocate", "ishard")
        q = q[0, 0]
        assert q["idlocate"].shape == (1, 4)
        gallery = []
        for e in g[0]:
            loc = e["idlocate"]
            assert loc.shape in ((1, 4), (0, 0)), loc.shape
            gallery.append((text(e["imname"]), tuple(loc[0]) if loc.size else None))
        queries.append((text(q["idname"]), text(q["imname"]), tuple(q["idlocate"][0]), gallery))
    return queries


def test_cuhk_train_and_test_protocol(cuhk):
    images = load_images(cuhk)
    pool = set(string_column(sio.loadmat(cuhk / "annotation" / "pool.mat"), "pool"))
    train = load_train(cuhk)
    assert train and all(re.fullmatch(r"p\d{5}", n) for n in train)
    for name, sightings in train.items():
        assert len({im for im, _ in sightings}) >= 2, name
        for im, box in sightings:
            assert im not in pool and box in images[im], (name, im, box)
    written = sorted(int(p.stem[5:]) for p in protocol_dir(cuhk).glob("TestG*.mat"))
    assert written == [n for n in (50, 100, 500, 1000, 2000, 4000) if n <= len(pool) - 1], written
    queries = load_test(cuhk, 50)
    assert queries and not {q[0] for q in queries} & set(train), "train/test identities overlap"
    labeled_in_pool = set()
    for idname, q_im, q_box, gallery in queries:
        assert q_im in pool and q_box in images[q_im]
        names = [im for im, _ in gallery]
        assert len(set(names)) == len(names) and q_im not in names and set(names) <= pool
        positives = [(im, box) for im, box in gallery if box is not None]
        assert positives, f"{idname}: no positive in the gallery"
        for im, box in positives:
            assert box in images[im]
        labeled_in_pool |= {q_im} | {im for im, _ in positives}
    assert pool - labeled_in_pool, "no distractor image (pool image without a labeled person)"


def test_cuhk_unlabeled_boxes_and_cameras(cuhk):
    images = load_images(cuhk)
    labeled = {(im, box) for s in load_train(cuhk).values() for im, box in s}
    identity_images = defaultdict(set)
    for idname, s in load_train(cuhk).items():
        identity_images[idname] |= {im for im, _ in s}
    for idname, q_im, q_box, gallery in load_test(cuhk, 50):
        labeled |= {(q_im, q_box)} | {(im, b) for im, b in gallery if b is not None}
        identity_images[idname] |= {q_im} | {im for im, b in gallery if b is not None}
    all_boxes = {(im, b) for im, rows in images.items() for b in rows}
    assert labeled < all_boxes and len(all_boxes - labeled) > len(labeled) / 2, "too few unlabeled boxes"
    camera = json.loads((cuhk / "synth_info.json").read_text())["image_camera"]
    for idname, ims in identity_images.items():
        assert len({camera[im] for im in ims}) >= 2, f"{idname} seen by one camera only"


# ------------------------------------------------------------------- determinism and CLI

@pytest.mark.parametrize("fmt", ["prw", "cuhk-sysu"])
def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, fmt):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert synth(a, fmt, 3).returncode == 0
    assert synth(b, fmt, 3, "--threads", 1).returncode == 0  # thread count must not matter
    assert synth(c, fmt, 4).returncode == 0
    files = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file())
    match, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert not mismatch and not errors, (mismatch, errors)
    _, differ, _ = filecmp.cmpfiles(a, c, files, shallow=False)
    assert any(f.endswith(".jpg") for f in differ) and any(f.endswith(".mat") for f in differ)


def test_refuses_non_empty_directory_unless_forced(tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    res = synth(out, "prw")
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [f"psearch: error: {out}: directory is not empty (use --force to overwrite)"]
    res = synth(out, "prw", 0, "--force")
    assert res.returncode == 0, res.stderr
    assert (out / "keep.txt").read_text() == "mine" and (out / "query_info.txt").is_file()
    assert not list(out.rglob(".*tmp*")), "temporary files left behind"


def test_preview_and_usage_errors(tmp_path):
    sheet = tmp_path / "sheet.png"
    res = synth(tmp_path / "ds", "cuhk-sysu", 0, "--preview", sheet)
    assert res.returncode == 0 and sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = synth(tmp_path / "x", "pascal")
    assert res.returncode == 2 and "--format" in res.stderr
    res = synth(tmp_path / "y", "prw", 0, "--images", 8)
    assert res.returncode == 2 and "--images 8" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "y").exists(), "nothing is written for impossible options"
