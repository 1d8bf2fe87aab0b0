"""`psearch eval-results` against the independent Python oracle (eval_oracle.py).

Each trial writes a small random dataset in the ORIGINAL on-disk layout of PRW or CUHK-SYSU
(scipy.io.savemat, empty image files) and a random results file (torch.save, the format of
docs/results_format.md), runs the C++ program on them, and compares its metrics.json with
the oracle, which reads the same files itself. Features lie on a grid (multiples of 1/1024,
|value| <= 1/2, D = 16) so every dot product is exact in float32 whatever the summation
order: the two sides then rank identically, ties included, and must agree to 1e-9. One trial
uses unquantised features and is held to 1e-6.

Also the results file's validation: one-line errors naming the file and the entry.

Run directly to measure agreement over many trials:
    python tests/python/test_eval_oracle.py --trials 200
"""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import scipy.io
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import eval_oracle  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
BINARY = pathlib.Path(os.environ.get("PSEARCH_BINARY", REPO / "build" / "psearch"))
DIM = 16
GALLERY_LENGTHS = {50: 6, 100: 9, 500: 12, 1000: 15, 2000: 18, 4000: 22}  # tiny stand-ins


# ------------------------------------------------------------------------------ mat helpers
def _cell(items):
    arr = np.empty((len(items), 1), dtype=object)
    for i, item in enumerate(items):
        arr[i, 0] = item
    return arr


def _struct(fields, rows):
    arr = np.empty((1, len(rows)), dtype=[(f, object) for f in fields])
    for i, row in enumerate(rows):
        for f in fields:
            arr[0, i][f] = row[f]
    return arr


def _xywh(b):
    return np.array([list(b)], dtype=np.float64) if b is not None else np.zeros((0, 0))


def _random_box(rng, extent=(640, 480)):
    """(x, y, w, h) with fractional parts; a third are small (the small-box IoU rule)."""
    w = rng.uniform(3, 25) if rng.random() < 0.35 else rng.uniform(25, 140)
    h = w * rng.uniform(1.2, 3.0)
    x = rng.uniform(-15, extent[0] - w)
    y = rng.uniform(-15, extent[1] - h)
    return [round(x, 4), round(y, 4), round(w, 4), round(h, 4)]


# ------------------------------------------------------------------------------ features
def quantise(f):
    return (np.clip(np.round(f * 1024), -512, 512) / 1024).astype(np.float32)


class Features:
    """Identity embeddings plus noise; on the exact grid unless `continuous`."""

    def __init__(self, rng, continuous=False):
        self.rng, self.continuous, self.ids = rng, continuous, {}

    def __call__(self, identity=None, noise=0.25):
        base = np.zeros(DIM)
        if identity is not None:
            if identity not in self.ids:
                v = self.rng.normal(size=DIM)
                self.ids[identity] = v / np.linalg.norm(v) * 0.45
            base = self.ids[identity]
        f = base + self.rng.normal(scale=noise * 0.45 / np.sqrt(DIM), size=DIM)
        return f.astype(np.float32) if self.continuous else quantise(f)


def jittered(rng, box, scale):
    """A detection around a corner box: shifted and resized by up to `scale` of its size."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    dx, dy = rng.normal(scale=scale * w), rng.normal(scale=scale * h)
    sw, sh = np.exp(rng.normal(scale=scale)), np.exp(rng.normal(scale=scale))
    cx, cy = (x1 + x2) / 2 + dx, (y1 + y2) / 2 + dy
    return [cx - w * sw / 2, cy - h * sh / 2, cx + w * sw / 2, cy + h * sh / 2]


def make_detections(rng, feats, gts, identities, n_false=(0, 4)):
    """Detections of one image: most persons found (some twice), plus false positives.
    Scores on a 1/64 grid (ties, and exactly 0.5)."""
    boxes, fs = [], []
    for gt, ident in zip(gts, identities):
        for _ in range(rng.choice([0, 1, 1, 1, 2])):
            boxes.append(jittered(rng, gt, rng.choice([0.03, 0.1, 0.25])))
            fs.append(feats(ident))
    for _ in range(rng.integers(*n_false, endpoint=True)):
        x, y, w, h = _random_box(rng)
        boxes.append([x, y, x + w, y + h])
        fs.append(feats(None))
    n = len(boxes)
    order = rng.permutation(n)
    return {
        "boxes": torch.tensor(np.array(boxes, dtype=np.float32).reshape(-1, 4)[order]),
        "scores": torch.tensor((rng.integers(1, 65, size=n) / 64).astype(np.float32)[order]),
        "features": torch.tensor(np.array(fs, dtype=np.float32).reshape(-1, DIM)[order]),
    }


# ------------------------------------------------------------------------------ datasets
def write_prw(root, rng, n_frames=30, n_ids=7, cams=3, n_queries=14):
    root = pathlib.Path(root)
    (root / "frames").mkdir(parents=True)
    (root / "annotations").mkdir(parents=True)
    test = [f"c{1 + rng.integers(cams)}s{1 + rng.integers(3)}_{i:06d}" for i in range(n_frames)]
    train = ["c1s1_999999"]
    labeled = []  # (frame, row)
    for frame in test + train:
        rows = []
        pids = rng.permutation(n_ids)[: rng.integers(0, 4, endpoint=True)]
        for pid in pids:
            rows.append([float(pid + 1)] + _random_box(rng))
        for _ in range(rng.integers(0, 2, endpoint=True)):
            rows.append([-2.0] + _random_box(rng))
        if rng.random() < 0.1:
            rows.append([-2.0, 10.0, 10.0, 0.0, 20.0])  # degenerate: dropped
        rows = [rows[i] for i in rng.permutation(len(rows))]
        var = ["box_new", "anno_file", "anno_previous"][rng.integers(3)]
        scipy.io.savemat(root / "annotations" / f"{frame}.jpg.mat",
                         {var: np.array(rows, dtype=np.float64).reshape(-1, 5)})
        (root / "frames" / f"{frame}.jpg").write_bytes(b"")
        if frame in test:
            labeled += [(frame, r) for r in rows if r[0] > 0]
    scipy.io.savemat(root / "frame_test.mat", {"img_index_test": _cell(test)})
    scipy.io.savemat(root / "frame_train.mat", {"img_index_train": _cell(train)})
    picks = rng.permutation(len(labeled))[:n_queries]
    lines = []
    for i in picks:
        frame, r = labeled[i]
        lines.append(f"{int(r[0])} {r[1]:.4f} {r[2]:.4f} {r[3]:.4f} {r[4]:.4f} {frame}\r\n")
    (root / "query_info.txt").write_bytes("".join(lines).encode())


def write_cuhk(root, rng, n_pool=45, n_train=5, n_ids=14, n_queries=12):
    root = pathlib.Path(root)
    ann = root / "annotation"
    (root / "Image" / "SSM").mkdir(parents=True)
    (ann / "test" / "train_test").mkdir(parents=True)
    names = [f"s{i}.jpg" for i in rng.permutation(n_pool + n_train) + 1]
    pool = names[:n_pool]
    boxes = {n: [] for n in names}  # name -> [(xywh, identity or None)]
    appearances = {}
    for ident in range(n_ids):
        for name in rng.choice(pool, size=rng.integers(2, 5, endpoint=True), replace=False):
            boxes[name].append((_random_box(rng), ident))
            appearances.setdefault(ident, []).append(name)
    for name in names:
        for _ in range(rng.integers(0, 2, endpoint=True)):
            boxes[name].append((_random_box(rng), None))
        if rng.random() < 0.1:
            boxes[name].append(([5.0, 5.0, -1.0, 20.0], None))  # degenerate: dropped
    img_rows = []
    for name in names:
        bs = _struct(["idlocate", "ishard"], [{"idlocate": _xywh(b), "ishard": np.array([[0.0]])}
                                              for b, _ in boxes[name]])
        img_rows.append({"imname": name, "nAppear": np.array([[float(len(boxes[name]))]]), "box": bs})
    scipy.io.savemat(ann / "Images.mat", {"Img": _struct(["imname", "nAppear", "box"], img_rows)})
    scipy.io.savemat(ann / "pool.mat", {"pool": _cell(pool)})
    queries = []
    for ident in rng.permutation(n_ids)[:n_queries]:
        qname = appearances[ident][0]
        queries.append((ident, qname, next(b for b, i in boxes[qname] if i == ident)))
    for size, length in GALLERY_LENGTHS.items():
        rows = []
        for ident, qname, qbox in queries:
            holders = [n for n in appearances[ident] if n != qname]
            others = [n for n in pool if n != qname and n not in appearances[ident]]
            keep = holders[: max(1, min(len(holders), length // 3))]
            gallery = keep + list(rng.choice(others, size=length - len(keep), replace=False))
            gallery = [gallery[i] for i in rng.permutation(len(gallery))]
            items = []
            for g in gallery:
                b = next((b for b, i in boxes[g] if i == ident), None)
                items.append({"imname": g, "idlocate": _xywh(b), "ishard": np.array([[0.0]])})
            query = _struct(["imname", "idlocate", "ishard", "idname"],
                            [{"imname": qname, "idlocate": _xywh(qbox), "ishard": np.array([[0.0]]),
                              "idname": f"p{ident + 100}"}])
            rows.append({"Query": query, "Gallery": _struct(["imname", "idlocate", "ishard"], items)})
        scipy.io.savemat(ann / "test" / "train_test" / f"TestG{size}.mat",
                         {f"TestG{size}": _struct(["Query", "Gallery"], rows)})
    for name in names:
        (root / "Image" / "SSM" / name).write_bytes(b"")
    return boxes


def make_results(rng, split, identity_of, continuous=False, extra_image=True):
    """A results file for `split` (the oracle's reading of the dataset). identity_of(image
    name, box index) -> identity or None gives the persons' embeddings."""
    feats = Features(rng, continuous)
    gallery, dets = [], {}
    for im in split["images"]:
        idents = [identity_of(im["name"], k) for k in range(len(im["boxes"]))]
        d = make_detections(rng, feats, [list(b) for b in im["boxes"]], idents)
        dets[im["name"]] = {k: v.numpy() for k, v in d.items()}
        gallery.append({"image": im["name"], **d})
    if extra_image:  # an image the split does not use: ignored
        gallery.append({"image": "not_in_split.jpg", "boxes": torch.zeros(0, 4), "scores": torch.zeros(0),
                        "features": torch.zeros(0, DIM)})
    gallery = [gallery[i] for i in rng.permutation(len(gallery))]  # any order
    queries, context, qfeats = [], [], []
    for q in split["queries"]:
        f = feats(q["pid"], noise=0.2)
        qfeats.append(f)
        queries.append({"image": q["image"], "box": torch.tensor(q["box"]), "features": torch.tensor(f)})
        others = [feats(q["pid"] + "ctx" + str(i)) for i in range(rng.integers(0, 4, endpoint=True))]
        boxes = [q["box"]] + [[10.0 * i, 0.0, 10.0 * i + 8, 20.0] for i in range(len(others))]
        context.append({"boxes": torch.tensor(boxes, dtype=torch.float32),
                        "features": torch.tensor(np.array([f] + others, dtype=np.float32))})
    results = {"format": "psearch-results/1", "gallery": gallery, "queries": queries, "query_detections": context}
    return results, dets, np.array(qfeats, dtype=np.float32).reshape(-1, DIM), \
        [{k: v.numpy() for k, v in c.items()} for c in context]


def identity_from(split):
    """identity_of for make_results from the oracle's reading of the dataset."""
    by_name = {im["name"]: im for im in split["images"]}

    def identity_of(name, k):
        pid = by_name[name]["pids"][k]
        return None if pid is None else str(pid)

    return identity_of


# ------------------------------------------------------------------------------ running
def run_cli(*args):
    return subprocess.run([str(BINARY), *map(str, args)], capture_output=True, text=True, timeout=600)


def eval_cli(results_path, dataset, root, out, *extra):
    proc = run_cli("eval-results", results_path, "--dataset", dataset, "--root", root, "--out", out, *extra)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return json.loads((pathlib.Path(out) / "metrics.json").read_text())


def compare(metrics, oracle_search, oracle_det, tol):
    """Largest differences between the program's metrics.json and the oracle."""
    m_ap, accs, per_query = oracle_search
    diffs = {"mAP": abs(metrics["search"]["mAP"] - m_ap)}
    for k, acc in zip(eval_oracle.TOPK, accs):
        diffs[f"top{k}"] = abs(metrics["search"][f"top{k}"] - acc)
    assert len(metrics["queries"]) == len(per_query)
    diffs["query_ap"] = 0.0
    for got, want in zip(metrics["queries"], per_query):
        diffs["query_ap"] = max(diffs["query_ap"], abs(got["ap"] - want["ap"]))
        for key in ("count_gt", "count_tp", "num_detections"):
            assert got[key] == want[key], (key, got, want)
        assert [got[f"top{k}"] for k in eval_oracle.TOPK] == want["hits"], (got, want)
    if oracle_det is not None:
        ap, recall, count_gt, count_tp = oracle_det
        det = metrics["detection"]
        assert (det["count_gt"], det["count_tp"]) == (count_gt, count_tp)
        diffs["det_ap"] = abs(det["ap"] - ap)
        diffs["det_recall"] = abs(det["recall"] - recall)
    for key, value in diffs.items():
        assert value <= tol, (key, value, diffs)
    return diffs


def prw_trial(tmp, seed, det_thresh=0.5, ignore_cam_id=True, cbgm=False, labeled_only=False, greedy=False,
              continuous=False):
    rng = np.random.default_rng(seed)
    root = tmp / f"prw{seed}"
    write_prw(root, rng)
    split = eval_oracle.load_prw_test(root, ignore_cam_id)
    results, dets, qfeats, context = make_results(rng, split, identity_from(split), continuous)
    path = tmp / f"prw{seed}.pt"
    torch.save(results, path)
    extra = ["--det-thresh", det_thresh, "--ignore-cam-id", "true" if ignore_cam_id else "false"]
    extra += ["--cbgm"] if cbgm else []
    extra += ["--labeled-only"] if labeled_only else []
    extra += ["--det-matching", "greedy"] if greedy else []
    metrics = eval_cli(path, "prw", root, tmp / f"out_prw{seed}", *extra)
    search = eval_oracle.evaluate_search(split, dets, qfeats, det_thresh, (30, 4) if cbgm else None, context)
    det = eval_oracle.evaluate_detection(split["images"], dets, labeled_only=labeled_only,
                                         matching="greedy" if greedy else "reference")
    return metrics, search, det


def cuhk_trial(tmp, seed, gallery_size=100, det_thresh=0.5, cbgm=False, labeled_only=False, continuous=False,
               all_sizes=False):
    rng = np.random.default_rng(seed)
    root = tmp / f"cuhk{seed}"
    boxes = write_cuhk(root, rng)
    split = eval_oracle.load_cuhk_test(root, gallery_size)

    def identity_of(name, k):  # the k-th kept box of the image, in Images.mat order
        kept = [i for b, i in boxes[name] if b[2] > 0 and b[3] > 0]
        return None if kept[k] is None else f"p{kept[k] + 100}"

    results, dets, qfeats, context = make_results(rng, split, identity_of, continuous)
    path = tmp / f"cuhk{seed}.pt"
    torch.save(results, path)
    extra = ["--det-thresh", det_thresh, "--gallery-size", gallery_size]
    extra += ["--cbgm"] if cbgm else []
    extra += ["--labeled-only"] if labeled_only else []
    extra += ["--all-gallery-sizes"] if all_sizes else []
    metrics = eval_cli(path, "cuhk-sysu", root, tmp / f"out_cuhk{seed}", *extra)
    search = eval_oracle.evaluate_search(split, dets, qfeats, det_thresh, (10, 3) if cbgm else None, context)
    det = eval_oracle.evaluate_detection(split["images"], dets, labeled_only=labeled_only)
    by_size = {}
    if all_sizes:
        for size in GALLERY_LENGTHS:
            s = eval_oracle.load_cuhk_test(root, size)
            by_size[size] = eval_oracle.evaluate_search(s, dets, qfeats, det_thresh, (10, 3) if cbgm else None,
                                                        context)
    return metrics, search, det, by_size


# ------------------------------------------------------------------------------ tests
PRW_SETTINGS = [
    dict(),
    dict(det_thresh=0.3),
    dict(ignore_cam_id=False),
    dict(cbgm=True),
    dict(labeled_only=True),
    dict(greedy=True, det_thresh=0.05),
    dict(cbgm=True, ignore_cam_id=False, det_thresh=0.2),
]


@pytest.mark.parametrize("seed", range(len(PRW_SETTINGS)))
def test_prw_matches_oracle(tmp_path, seed):
    settings = PRW_SETTINGS[seed]
    metrics, search, det = prw_trial(tmp_path, seed, **settings)
    compare(metrics, search, det, 1e-9)
    assert metrics["settings"]["det_thresh"] == settings.get("det_thresh", 0.5)


CUHK_SETTINGS = [
    dict(),
    dict(gallery_size=50, det_thresh=0.25),
    dict(gallery_size=-1),  # whole pool: the blocked matrix-product path
    dict(cbgm=True),
    dict(gallery_size=-1, cbgm=True, labeled_only=True),
    dict(gallery_size=4000, labeled_only=True),
]


@pytest.mark.parametrize("seed", range(len(CUHK_SETTINGS)))
def test_cuhk_matches_oracle(tmp_path, seed):
    metrics, search, det, _ = cuhk_trial(tmp_path, 100 + seed, **CUHK_SETTINGS[seed])
    compare(metrics, search, det, 1e-9)


def test_cuhk_all_gallery_sizes(tmp_path):
    metrics, search, det, by_size = cuhk_trial(tmp_path, 200, all_sizes=True)
    compare(metrics, search, det, 1e-9)
    got = {e["gallery_size"]: e for e in metrics["gallery_sizes"]}
    assert sorted(got) == sorted(GALLERY_LENGTHS)
    for size, (m_ap, accs, _) in by_size.items():
        assert abs(got[size]["mAP"] - m_ap) <= 1e-9
        assert abs(got[size]["top1"] - accs[0]) <= 1e-9
    out = tmp_path / "out_cuhk200"
    assert (out / "map_vs_gallery_size.png").stat().st_size > 1000
    assert (out / "detection_pr.png").stat().st_size > 1000


def test_continuous_features_agree(tmp_path):
    # Not on the exact grid: float32 sums differ in the last bits between BLAS and numpy.
    metrics, search, det = prw_trial(tmp_path, 300, continuous=True)
    compare(metrics, search, det, 1e-6)
    metrics, search, det, _ = cuhk_trial(tmp_path, 301, gallery_size=-1, continuous=True)
    compare(metrics, search, det, 1e-6)


@pytest.mark.parametrize("fmt, gallery_size, cbgm", [("prw", None, False), ("prw", None, True),
                                                      ("cuhk-sysu", 50, True), ("cuhk-sysu", -1, False)])
def test_synth_dataset_matches_oracle(tmp_path, fmt, gallery_size, cbgm):
    # A dataset from `psearch synth` (the generator's own files), read by the C++ loaders and
    # by the oracle's independent reader.
    root = tmp_path / "data"
    proc = run_cli("synth", "--format", fmt, "--size", "tiny", "--seed", 3, "--out", root, "--threads", 1)
    assert proc.returncode == 0, proc.stderr
    if fmt == "prw":
        split = eval_oracle.load_prw_test(root)
        extra = []
    else:
        split = eval_oracle.load_cuhk_test(root, gallery_size)
        extra = ["--gallery-size", gallery_size]
    results, dets, qfeats, context = make_results(np.random.default_rng(4), split, identity_from(split))
    torch.save(results, tmp_path / "r.pt")
    metrics = eval_cli(tmp_path / "r.pt", fmt, root, tmp_path / "out", *extra, *(["--cbgm"] if cbgm else []))
    k1k2 = ((30, 4) if fmt == "prw" else (10, 3)) if cbgm else None
    search = eval_oracle.evaluate_search(split, dets, qfeats, 0.5, k1k2, context)
    det = eval_oracle.evaluate_detection(split["images"], dets)
    compare(metrics, search, det, 1e-9)
    assert len(split["queries"]) > 0 and metrics["detection"]["count_gt"] > 0


# ------------------------------------------------------------------------------ validation
@pytest.fixture(scope="module")
def prw_case(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prw_errors")
    rng = np.random.default_rng(5)
    write_prw(tmp / "prw", rng)
    split = eval_oracle.load_prw_test(tmp / "prw")
    results, *_ = make_results(rng, split, lambda name, k: None, extra_image=False)
    return tmp, results, split


def expect_error(tmp, results, *needles, extra=(), code=1):
    path = tmp / "bad.pt"
    torch.save(results, path)
    proc = run_cli("eval-results", path, "--dataset", "prw", "--root", tmp / "prw", "--out", tmp / "out", *extra)
    assert proc.returncode == code, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("psearch: error:"), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_missing_image_is_named(prw_case):
    tmp, results, split = prw_case
    bad = dict(results, gallery=[g for g in results["gallery"] if g["image"] != split["images"][3]["name"]])
    expect_error(tmp, bad, str(tmp / "bad.pt"), split["images"][3]["name"], "no detections for image")


def test_shape_mismatches_are_named(prw_case):
    tmp, results, _ = prw_case
    g = [dict(x) for x in results["gallery"]]
    name = g[0]["image"]
    g[0]["scores"] = torch.zeros(len(g[0]["boxes"]) + 1)
    expect_error(tmp, dict(results, gallery=g), f"gallery[0] ({name})", "scores must have shape")
    g = [dict(x) for x in results["gallery"]]
    g[1]["boxes"] = torch.zeros(2, 5)
    expect_error(tmp, dict(results, gallery=g), "gallery[1]", "boxes must have shape [N, 4], got [2, 5]")
    g = [dict(x) for x in results["gallery"]]
    k = next(i for i, x in enumerate(g) if len(x["boxes"]) > 0)
    g[k]["features"] = torch.zeros(len(g[k]["boxes"]), DIM + 1)
    expect_error(tmp, dict(results, gallery=g), f"gallery[{k}] ({g[k]['image']})", "dimensions")
    q = [dict(x) for x in results["queries"]]
    q[2]["features"] = torch.zeros(DIM - 1)
    expect_error(tmp, dict(results, queries=q), "queries[2]", "dimensions")
    g = [dict(x) for x in results["gallery"]]
    g[k]["features"] = g[k]["features"].clone()
    g[k]["features"][0, 0] = float("nan")
    expect_error(tmp, dict(results, gallery=g), f"gallery[{k}]", "NaN")


def test_query_order_mismatch_is_named(prw_case):
    tmp, results, _ = prw_case
    q = list(results["queries"])
    i = next(i for i in range(1, len(q)) if q[i]["image"] != q[0]["image"] or not torch.equal(q[i]["box"], q[0]["box"]))
    c = list(results["query_detections"])
    q[0], q[i] = q[i], q[0]
    c[0], c[i] = c[i], c[0]
    expect_error(tmp, dict(results, queries=q, query_detections=c), "queries[0]", "dataset's query order")
    expect_error(tmp, dict(results, queries=q[:-1], query_detections=None), "queries", "test split has")


def test_format_and_cbgm_requirements(prw_case):
    tmp, results, _ = prw_case
    expect_error(tmp, dict(results, format="other/2"), "unsupported results format")
    expect_error(tmp, {k: v for k, v in results.items() if k != "format"}, "not a psearch results file")
    expect_error(tmp, {k: v for k, v in results.items() if k != "query_detections"}, "--cbgm needs",
                 extra=["--cbgm"])
    ctx = [dict(c) for c in results["query_detections"]]
    ctx[1]["boxes"] = ctx[1]["boxes"].clone()
    ctx[1]["boxes"][0] += 50
    expect_error(tmp, dict(results, query_detections=ctx), "query_detections[1]", "query box")
    dup = dict(results, gallery=results["gallery"] + [results["gallery"][0]])
    expect_error(tmp, dup, "listed twice")


def test_usage_errors(prw_case):
    tmp, results, _ = prw_case
    expect_error(tmp, results, "--gallery-size", "cuhk-sysu only", extra=["--gallery-size", "50"], code=2)
    path = tmp / "missing.pt"
    proc = run_cli("eval-results", path, "--dataset", "prw", "--root", tmp / "prw")
    assert proc.returncode == 1 and proc.stderr.strip() == f"psearch: error: {path}: cannot open file"


def test_output_files(prw_case):
    tmp, results, split = prw_case
    path = tmp / "ok.pt"
    torch.save(results, path)
    metrics = eval_cli(path, "prw", tmp / "prw", tmp / "out_ok")
    assert len(metrics["queries"]) == len(split["queries"])
    assert metrics["queries"][0]["image"] == split["queries"][0]["image"]
    curve = metrics["detection"]["curve"]
    assert len(curve["recall"]) == len(curve["precision"]) > 0
    png = (tmp / "out_ok" / "detection_pr.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp / "out_ok").glob("*.tmp"))


# ------------------------------------------------------------------------------ measuring
def main():
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=50)
    args = parser.parse_args()
    worst = {}
    settings = [("prw", s) for s in PRW_SETTINGS] + [("cuhk", s) for s in CUHK_SETTINGS]
    with tempfile.TemporaryDirectory() as d:
        for t in range(args.trials):
            kind, s = settings[t % len(settings)]
            tmp = pathlib.Path(d) / str(t)
            tmp.mkdir()
            continuous = (t // len(settings)) % 2 == 1
            if kind == "prw":
                metrics, search, det = prw_trial(tmp, 1000 + t, continuous=continuous, **s)
            else:
                metrics, search, det, _ = cuhk_trial(tmp, 1000 + t, continuous=continuous, **s)
            diffs = compare(metrics, search, det, 1e-6 if continuous else 1e-9)
            for key, value in diffs.items():
                tag = ("continuous " if continuous else "grid ") + key
                worst[tag] = max(worst.get(tag, 0.0), value)
    print(f"{args.trials} trials; largest |C++ - oracle|:")
    for key in sorted(worst):
        print(f"  {key:28s} {worst[key]:.3g}")


if __name__ == "__main__":
    main()
