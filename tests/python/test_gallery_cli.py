"""The search product from the command line (`psearch index`, `psearch search`) on real
footage (Debian's opencv-doc vtest.avi) with the pretrained separate pipeline:

- search results equal a brute-force numpy search over the embeddings read back from the
  gallery's SQLite file with Python's own sqlite3 (ids, similarities, filters), and the
  approximate index's recall is measured against it;
- a query box in a frame equals the stored detection of that box (similarity 1);
- `kill -9` in the middle of indexing and a write that fails (file size limit, as a full
  disk) lose and duplicate nothing: rerunning gives the rows of an uninterrupted run;
- bad input gives one line and a non-zero exit, or (undecodable inputs) a warning, a count
  in the summary, and indexing goes on.
"""
import json
import os
import pathlib
import resource
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from test_pretrained_cli import DETECTOR, VTEST  # noqa: E402
from test_train_cli import BINARY, assert_one_line_error, run  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not DETECTOR.is_file(), reason=f"{DETECTOR} not converted (scripts/setup.sh)"),
    pytest.mark.skipif(not VTEST.is_file(), reason=f"{VTEST} missing (apt install opencv-doc)"),
]
cv2 = pytest.importorskip("cv2")

EVERY = "40"  # vtest.avi: 795 frames -> 20 indexed frames, about 75 detections


def index(gallery, *sources, extra=(), timeout=600):
    return run("index", "--gallery", str(gallery), "--no-progress", "--threads", "2", *extra, *sources,
               timeout=timeout)


def rows(gallery):
    """(source path, frame, rounded box, score) of every stored detection, and the embeddings."""
    with sqlite3.connect(f"file:{gallery}?mode=ro", uri=True) as db:
        out = db.execute("SELECT s.path, d.frame, d.x1, d.y1, d.x2, d.y2, d.score, d.id, d.time, s.camera, "
                         "d.embedding FROM detections d JOIN sources s ON s.id = d.source_id ORDER BY d.id").fetchall()
    keys = [(r[0], r[1], *(round(v, 2) for v in r[2:6]), round(r[6], 4)) for r in out]
    ids = np.array([r[7] for r in out])
    times = np.array([r[8] for r in out])
    cameras = [r[9] for r in out]
    embeddings = np.stack([np.frombuffer(r[10], dtype=np.float32) for r in out]) if out else np.zeros((0, 0))
    return keys, ids, times, cameras, embeddings


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    path = tmp_path_factory.mktemp("gallery") / "vtest.db"
    out = index(path, f"walkway={VTEST}", extra=("--every", EVERY, "--batch-size", "4"))
    assert out.returncode == 0, out.stderr
    assert "20 frames from 1 source(s)" in out.stdout, out.stdout
    return path


def search(gallery, *args):
    out = run("search", "--gallery", str(gallery), "--threads", "2", *args)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def brute_force(embeddings, ids, query, k, allowed=None, exclude=None):
    sims = embeddings @ query
    order = [i for i in np.argsort(-sims, kind="stable") if (allowed is None or allowed[i]) and ids[i] != exclude]
    return ids[order[:k]], sims[order[:k]]


def test_index_stores_every_detection_once_with_unit_embeddings(gallery):
    keys, ids, times, cameras, emb = rows(gallery)
    assert len(keys) >= 40 and len(set(keys)) == len(keys)
    assert emb.shape[1] == 1280
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    frames = sorted({k[1] for k in keys})
    assert all(f % 40 == 0 for f in frames)
    np.testing.assert_allclose(sorted(set(times)), [f / 10.0 for f in frames], atol=1e-6)  # vtest: 10 fps
    assert set(cameras) == {"walkway"}


def test_search_from_a_detection_equals_numpy_brute_force(gallery):
    keys, ids, times, cameras, emb = rows(gallery)
    query_id = int(ids[len(ids) // 2])
    got = search(gallery, "--id", str(query_id), "--top-k", "10")["hits"]
    want_ids, want_sims = brute_force(emb, ids, emb[list(ids).index(query_id)], 10, exclude=query_id)
    assert [h["id"] for h in got] == list(want_ids)
    np.testing.assert_allclose([h["similarity"] for h in got], want_sims, atol=1e-5)
    assert [h["rank"] for h in got] == list(range(1, 11))


def test_time_window_and_min_similarity_filters_equal_numpy(gallery):
    keys, ids, times, cameras, emb = rows(gallery)
    query_id = int(ids[0])
    got = search(gallery, "--id", str(query_id), "--from", "20", "--to", "60", "--top-k", "50",
                 "--min-similarity", "0.5", "--camera", "walkway")["hits"]
    allowed = (times >= 20) & (times <= 60)
    want_ids, want_sims = brute_force(emb, ids, emb[0], 50, allowed=allowed, exclude=query_id)
    keep = want_sims >= 0.5
    assert [h["id"] for h in got] == list(want_ids[keep])
    assert all(20 <= h["time"] <= 60 for h in got)
    assert search(gallery, "--id", str(query_id), "--camera", "elsewhere")["hits"] == []


def test_approximate_index_recall_against_numpy(gallery):
    keys, ids, times, cameras, emb = rows(gallery)
    found = total = 0
    for q in ids[::7]:
        got = search(gallery, "--id", str(q), "--top-k", "10", "--index", "approximate")["hits"]
        want, _ = brute_force(emb, ids, emb[list(ids).index(q)], 10, exclude=q)
        found += len(set(h["id"] for h in got) & set(want))
        total += len(want)
    assert found / total >= 0.99, found / total  # a few dozen vectors: 2 cells, both probed
    out = run("search", "--gallery", str(gallery), "--id", str(ids[0]), "--top-k", "10", "--index", "approximate")
    assert "recall@10 1" in out.stderr, out.stderr  # the recall it reports, measured against the exact scan
    assert "index read from" in out.stderr  # the index saved by the searches above (gallery.ivf)


def test_query_box_in_a_frame_finds_its_own_detection(gallery, tmp_path):
    keys, ids, times, cameras, emb = rows(gallery)
    frame_no, box = keys[3][1], keys[3][2:6]
    capture = cv2.VideoCapture(str(VTEST))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
    for _ in range(frame_no + 1):
        ok, frame = capture.read()
        assert ok
    image = tmp_path / "query.png"
    cv2.imwrite(str(image), frame)
    result = search(gallery, "--image", str(image), "--box", *map(str, box), "--top-k", "3",
                    "--report", str(tmp_path / "report"))
    top = result["hits"][0]
    assert top["id"] == int(ids[3]) and top["similarity"] > 0.999, top
    html = (tmp_path / "report" / "report.html").read_text()
    assert "Camera walkway" in html and "images/hit_1.jpg" in html
    assert cv2.imread(str(tmp_path / "report" / "images" / "hit_1.jpg")) is not None
    assert cv2.imread(str(tmp_path / "report" / "images" / "query.jpg")) is not None


def test_kill_9_then_rerun_equals_an_uninterrupted_run(gallery, tmp_path):
    interrupted = tmp_path / "killed.db"
    args = [str(BINARY), "index", "--gallery", str(interrupted), "--no-progress", "--threads", "2", "--every", EVERY,
            "--batch-size", "1", f"walkway={VTEST}"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    done = 0
    while time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
        try:
            with sqlite3.connect(f"file:{interrupted}?mode=ro", uri=True) as db:
                done = db.execute("SELECT coalesce(sum(frames_indexed), 0) FROM sources").fetchone()[0]
        except sqlite3.Error:
            continue
        if done >= 5:
            break
    assert process.poll() is None, "indexing ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 5 <= done < 20
    out = index(interrupted, f"walkway={VTEST}", extra=("--every", EVERY))
    assert out.returncode == 0, out.stderr
    assert rows(interrupted)[0] == rows(gallery)[0]


def test_a_failed_write_loses_nothing_and_the_next_run_continues(gallery, tmp_path):
    limited = tmp_path / "full.db"

    def small_disk():  # writes past 400 kB fail with EFBIG, as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (400_000, 400_000))

    args = [str(BINARY), "index", "--gallery", str(limited), "--no-progress", "--threads", "2", "--every", EVERY,
            f"walkway={VTEST}"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=600, preexec_fn=small_disk)
    assert_one_line_error(out, str(limited))
    stored = rows(limited)[0]
    assert 0 < len(stored) < len(rows(gallery)[0])
    out = index(limited, f"walkway={VTEST}", extra=("--every", EVERY))
    assert out.returncode == 0, out.stderr
    assert rows(limited)[0] == rows(gallery)[0]


def test_a_new_source_extends_without_redoing_the_old(gallery, tmp_path):
    extended = tmp_path / "extended.db"
    extended.write_bytes(gallery.read_bytes())
    folder = tmp_path / "frames"
    folder.mkdir()
    capture = cv2.VideoCapture(str(VTEST))
    for i in range(3):
        ok, frame = capture.read()
        cv2.imwrite(str(folder / f"{i:03d}.jpg"), frame)
    (folder / "004.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    out = index(extended, f"walkway={VTEST}", f"door={folder}")  # walkway keeps its own stride
    assert out.returncode == 0, out.stderr
    assert "1 source(s) already indexed" in out.stdout and "1 frame(s) would not decode" in out.stdout
    assert "004.jpg" in out.stderr
    keys, ids, times, cameras, emb = rows(extended)
    assert keys[: len(rows(gallery)[0])] == rows(gallery)[0]
    assert cameras.count("door") > 0
    hits = search(extended, "--id", str(ids[0]), "--camera", "door", "--top-k", "5")["hits"]
    assert hits and all(h["camera"] == "door" and h["image"].endswith(".jpg") for h in hits)


def test_undecodable_and_truncated_videos_are_skipped_with_a_warning(tmp_path):
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    capture = cv2.VideoCapture(str(VTEST))
    for _ in range(30):
        ok, frame = capture.read()
        writer.write(cv2.resize(frame, (320, 240)))
    writer.release()
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(os.urandom(4096))
    g = tmp_path / "g.db"
    out = index(g, str(garbage), str(truncated), extra=("--every", "5"))
    assert out.returncode == 0, out.stderr
    assert "garbage.mp4" in out.stderr and "1 source(s) failed" in out.stdout
    assert "truncated" in out.stderr
    frames = {k[1] for k in rows(g)[0]}
    assert frames and max(frames) < 20


def test_bad_input_gives_one_line(gallery, tmp_path):
    assert_one_line_error(index(tmp_path / "x.db", "/nonexistent/cam.mp4"), "/nonexistent/cam.mp4")
    assert not (tmp_path / "x.db").exists()
    image = tmp_path / "q.png"
    cv2.imwrite(str(image), np.zeros((100, 80, 3), np.uint8))
    out = run("search", "--gallery", str(gallery), "--image", str(image), "--box", "200", "10", "260", "90")
    assert_one_line_error(out, str(image), "outside the 80 x 100 image")
    out = run("search", "--gallery", str(tmp_path / "none.db"), "--id", "1")
    assert_one_line_error(out, "none.db", "no such gallery")
    out = run("search", "--gallery", str(gallery), "--id", "999999")
    assert_one_line_error(out, "no detection with id 999999")
    not_gallery = tmp_path / "notes.db"
    not_gallery.write_text("hello")
    assert_one_line_error(run("search", "--gallery", str(not_gallery), "--id", "1"), str(not_gallery))
    # another model (a different crop size makes other embeddings) may not extend the gallery
    copy = tmp_path / "copy.db"
    copy.write_bytes(gallery.read_bytes())
    out = index(copy, f"walkway={VTEST}", extra=("--set", "model.separate.crop_size=[128,64]"))
    assert_one_line_error(out, str(copy), "not separate")
    # a gallery without detections
    folder = tmp_path / "blank"
    folder.mkdir()
    cv2.imwrite(str(folder / "0.png"), np.full((240, 320, 3), 128, np.uint8))
    empty = tmp_path / "empty.db"
    assert index(empty, str(folder)).returncode == 0
    out = run("search", "--gallery", str(empty), "--image", str(image), "--box", "10", "10", "60", "90")
    assert_one_line_error(out, str(empty), "holds no detection")


@pytest.mark.parametrize("model_type", ["nae", "pcnet"])
def test_joint_models_index_and_search_through_the_same_commands(tmp_path, model_type):
    """Every registered model goes through the same interface: a (1-iteration) NAE and a
    PCNet index a folder of generated frames, answer a box query and a detection query,
    and a search with another checkpoint than the gallery's is refused."""
    from test_train_cli import write_config

    data = tmp_path / "prw"
    assert run("synth", "--format", "prw", "--size", "tiny", "--seed", "5", "--out", str(data)).returncode == 0
    checkpoints = []
    for seed in (0, 1):
        config = write_config(tmp_path, data, type=model_type, length=1, every=1)
        run_dir = tmp_path / f"run{seed}"
        out = run("train", "--config", str(config), "--out", str(run_dir), "--quiet", f"train.seed={seed}")
        assert out.returncode == 0, out.stderr
        checkpoints.append(run_dir / "final.pt")
    g = tmp_path / "g.db"
    out = index(g, f"cam={data / 'frames'}", extra=("--checkpoint", str(checkpoints[0]), "--min-score", "0",
                                                   "--set", "inference.score_thresh=0.0",
                                                   "--max-frames", "4"))
    assert out.returncode == 0, out.stderr
    keys, ids, times, cameras, emb = rows(g)
    assert len(ids) > 0 and emb.shape[1] == 32
    # NAE scales a gallery embedding by its detection confidence (its norm), as NAE4PS does
    norms = np.linalg.norm(emb, axis=1)
    assert (norms > 0).all() and (norms <= 1.0001).all()
    hits = search(g, "--id", str(ids[0]), "--top-k", "5")["hits"]
    want, sims = brute_force(emb, ids, emb[0], 5, exclude=ids[0])
    assert [h["id"] for h in hits] == list(want)
    frame = sorted((data / "frames").glob("*.jpg"))[0]
    result = search(g, "--image", str(frame), "--box", "10", "10", "40", "90", "--top-k", "3")
    assert len(result["hits"]) == 3 and all(-1.0 <= h["similarity"] <= 1.0001 for h in result["hits"])
    out = run("search", "--gallery", str(g), "--image", str(frame), "--box", "10", "10", "40", "90",
              "--checkpoint", str(checkpoints[1]))
    assert_one_line_error(out, str(checkpoints[1]), "not the model the gallery was built with")


def test_cbgm_reranking_equals_a_scipy_oracle(gallery):
    """CBGM (SeqNet): the frames holding the k1 best hits are matched, people to people,
    against the query frame's people; scipy's linear_sum_assignment is the oracle."""
    from scipy.optimize import linear_sum_assignment

    keys, ids, times, cameras, emb = rows(gallery)
    boxes = np.array([k[2:6] for k in keys])
    scores = np.array([k[6] for k in keys])
    frames = np.array([k[1] for k in keys])
    k1, k2, top_k = 10, 3, 15

    def iou(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = w * h
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    checked = 0
    for q in range(0, len(ids), 9):
        others = [i for i in np.argsort(-scores, kind="stable")
                  if frames[i] == frames[q] and i != q and iou(boxes[i], boxes[q]) <= 0.4]
        context = np.stack([emb[q]] + [emb[i] for i in others])[:k2]
        sims = {i: float(emb[i] @ emb[q]) for i in range(len(ids)) if i != q}
        best = sorted(sims, key=lambda i: -sims[i])[:k1]
        for f in dict.fromkeys(frames[i] for i in best):
            people = [i for i in range(len(ids)) if frames[i] == f and i != q]
            weight = context @ emb[people].T
            r, c = linear_sum_assignment(weight, maximize=True)
            if 0 in r:
                sims[people[c[list(r).index(0)]]] = float(weight[r, c].max())
        want = sorted(sims, key=lambda i: (-sims[i], ids[i]))[:top_k]
        got = search(gallery, "--id", str(ids[q]), "--cbgm", "--cbgm-k1", str(k1), "--cbgm-k2", str(k2),
                     "--top-k", str(top_k))["hits"]
        assert [h["id"] for h in got] == [int(ids[i]) for i in want]
        np.testing.assert_allclose([h["similarity"] for h in got], [sims[i] for i in want], atol=1e-5)
        checked += len(context) > 1
    assert checked >= 2  # queries that had people around them


def test_pick_a_person_in_a_frame(gallery):
    keys, ids, times, cameras, emb = rows(gallery)
    frame = keys[0][1]
    people = sorted([(k[6], int(i)) for k, i in zip(keys, ids) if k[1] == frame], reverse=True)
    result = search(gallery, "--pick", f"walkway:{frame}:1", "--top-k", "2")
    assert result["query"].startswith(f"gallery detection {people[1][1]} ")
    assert_one_line_error(run("search", "--gallery", str(gallery), "--pick", "walkway:1"), "frame 1 holds 0")
    assert_one_line_error(run("search", "--gallery", str(gallery), "--pick", "lobby:0"), "no camera 'lobby'")
