"""An independent Python implementation of the person-search evaluation protocol
(shared/reference/protocol.md), used as the oracle for the C++ evaluator.

It reads the datasets from their original files itself (scipy.io.loadmat), scores search
with sklearn.metrics.average_precision_score and numpy, detection likewise, and CBGM with
scipy.optimize.linear_sum_assignment. Nothing here calls psearch code.

Conventions the protocol leaves open, fixed as documented in docs/results_format.md:
ties in similarity are broken by position (gallery order, then detection order) for the
per-image first match and for the top-k list; average precision groups ties (sklearn).
"""
import pathlib

import numpy as np
import scipy.io
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import average_precision_score

TOPK = (1, 5, 10)


# ------------------------------------------------------------------------------ datasets
def _names(cell):
    return [str(np.asarray(x).ravel()[0]) for x in np.asarray(cell).ravel()]


def prw_camera(name):
    i = name.find("c")
    return int(name[i + 1]) if i >= 0 and i + 1 < len(name) and name[i + 1].isdigit() else -1


def prw_box(x, y, w, h):
    """Float corners, negatives clipped to 0, then truncated."""
    return [float(int(max(0.0, v))) for v in (x, y, x + w, y + h)]


def load_prw_test(root, ignore_cam_id=True):
    """Returns {"images": [{"name", "boxes" [K,4], "pids" [K]}], "queries": [...]}; each query
    {"image", "box", "pid", "gallery" [names], "positives" {name: box}}."""
    root = pathlib.Path(root)
    frames = _names(scipy.io.loadmat(root / "frame_test.mat")["img_index_test"])
    images = []
    for frame in frames:
        name = frame if frame.endswith(".jpg") else frame + ".jpg"
        mat = scipy.io.loadmat(root / "annotations" / (name + ".mat"))
        rows = next(mat[k] for k in ("box_new", "anno_file", "anno_previous") if k in mat)
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
        boxes, pids = [], []
        for pid, x, y, w, h in rows:
            b = prw_box(x, y, w, h)
            if w <= 0 or h <= 0 or b[2] <= b[0] or b[3] <= b[1]:
                continue
            boxes.append(b)
            pids.append(int(pid) if pid != -2 else None)
        images.append({"name": name, "camera": prw_camera(name), "boxes": np.array(boxes).reshape(-1, 4),
                       "pids": pids})
    queries = []
    for line in (root / "query_info.txt").read_text().splitlines():
        fields = line.strip().split()
        if not fields:
            continue
        pid = int(fields[0])
        x, y, w, h = map(float, fields[1:5])
        qname = fields[5].rstrip("\r\n")
        qname = qname if qname.endswith(".jpg") else qname + ".jpg"
        qcam = prw_camera(qname)
        gallery, positives = [], {}
        for im in images:
            if im["name"] == qname or (not ignore_cam_id and im["camera"] == qcam):
                continue
            gallery.append(im["name"])
            for b, p in zip(im["boxes"], im["pids"]):
                if p == pid and im["name"] not in positives:
                    positives[im["name"]] = list(b)
        queries.append({"image": qname, "box": prw_box(x, y, w, h), "pid": str(pid), "gallery": gallery,
                        "positives": positives})
    return {"images": images, "queries": queries}


def cuhk_box(xywh):
    """(x, y, w, h) truncated to integers, then corners."""
    x, y, w, h = (int(v) for v in np.asarray(xywh, dtype=np.float64).ravel()[:4])
    return [float(x), float(y), float(x + w), float(y + h)]


def load_cuhk_test(root, gallery_size=100):
    root = pathlib.Path(root)
    ann = root / "annotation"
    img = scipy.io.loadmat(ann / "Images.mat")["Img"].ravel()
    by_name = {}
    for entry in img:
        name = str(entry["imname"].ravel()[0])
        raw = []
        for b in np.asarray(entry["box"]).ravel():
            xywh = np.asarray(b["idlocate"], dtype=np.float64).ravel()
            if xywh.size == 4 and xywh[2] > 0 and xywh[3] > 0:
                raw.append(xywh)
        by_name[name] = raw
    pool = _names(scipy.io.loadmat(ann / "pool.mat")["pool"])
    var = f"TestG{50 if gallery_size == -1 else gallery_size}"
    protocol = scipy.io.loadmat(ann / "test" / "train_test" / f"{var}.mat")[var].ravel()

    images = []
    labels = {}  # (image, integer xywh) -> identity name
    queries = []
    for item in protocol:
        q = item["Query"].ravel()[0]
        qname = str(q["imname"].ravel()[0])
        qxywh = np.asarray(q["idlocate"], dtype=np.float64).ravel()
        idname = str(q["idname"].ravel()[0])
        labels.setdefault((qname, tuple(int(v) for v in qxywh)), idname)
        gallery, positives = [], {}
        for g in np.asarray(item["Gallery"]).ravel():
            gname = str(g["imname"].ravel()[0])
            gallery.append(gname)
            loc = np.asarray(g["idlocate"], dtype=np.float64).ravel()
            if loc.size == 4:
                positives.setdefault(gname, cuhk_box(loc))
                labels.setdefault((gname, tuple(int(v) for v in loc)), idname)
        if gallery_size == -1:
            listed = set(gallery) | {qname}
            gallery += [n for n in pool if n not in listed]
        queries.append({"image": qname, "box": cuhk_box(qxywh), "pid": idname, "gallery": gallery,
                        "positives": positives})
    for name in pool:
        boxes, pids = [], []
        for xywh in by_name[name]:
            b = cuhk_box(xywh)
            if b[2] <= b[0] or b[3] <= b[1]:
                continue
            boxes.append(b)
            pids.append(labels.get((name, tuple(int(v) for v in xywh))))
        images.append({"name": name, "boxes": np.array(boxes).reshape(-1, 4), "pids": pids})
    return {"images": images, "queries": queries}


# ------------------------------------------------------------------------------ metrics
def iou(a, b):
    """Plain inter / union of corner boxes, in float64."""
    a = [float(v) for v in a]
    b = [float(v) for v in b]
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def _kept(dets, det_thresh):
    """dets: {"boxes" [N,4], "scores" [N], "features" [N,D]} as float32 numpy arrays."""
    keep = dets["scores"] >= np.float32(det_thresh)
    return {k: v[keep] for k, v in dets.items()}


def cbgm_rescore(sims_by_image, feats_by_image, context_feats, k1, k2):
    """SeqNet's Context Bipartite Graph Matching on {image: similarities} (modified in place)."""
    pooled = [(s, name) for name, sims in sims_by_image.items() for s in sims]
    if not pooled:
        return
    values = np.array([p[0] for p in pooled])
    top = np.argsort(-values, kind="stable")[:k1]
    ctx = context_feats[:k2].astype(np.float64)
    for name in {pooled[i][1] for i in top}:
        weights = ctx @ feats_by_image[name].astype(np.float64).T  # [rows, cols]
        rows, cols = linear_sum_assignment(weights, maximize=True)
        best = max(weights[r, c] for r, c in zip(rows, cols))
        for r, c in zip(rows, cols):
            if r == 0:
                sims_by_image[name][c] = best


def evaluate_search(split, gallery_dets, query_features, det_thresh=0.5, cbgm=None, query_context=None):
    """gallery_dets: {image name: dets}; query_features: [Q, D] float32.
    cbgm: (k1, k2) or None; query_context: per query {"boxes", "features"} (row 0 = query box).
    Returns (mAP, [top-k accuracies], per-query dicts)."""
    kept = {name: _kept(d, det_thresh) for name, d in gallery_dets.items()}
    results = []
    for qi, query in enumerate(split["queries"]):
        qf = query_features[qi].astype(np.float64)
        count_gt = 0
        sims_by_image, feats_by_image, order = {}, {}, []
        for name in query["gallery"]:
            if name == query["image"]:
                continue
            if name in query["positives"]:
                count_gt += 1
            if name in sims_by_image or len(kept[name]["scores"]) == 0:
                continue
            sims_by_image[name] = kept[name]["features"].astype(np.float64) @ qf
            feats_by_image[name] = kept[name]["features"]
            order.append(name)
        if cbgm is not None:
            cbgm_rescore(sims_by_image, feats_by_image, query_context[qi]["features"], *cbgm)
        labels, scores = [], []
        count_tp = 0
        for name in order:
            sims = sims_by_image[name]
            lab = np.zeros(len(sims), dtype=np.int64)
            if name in query["positives"]:
                gt = query["positives"][name]
                w, h = gt[2] - gt[0], gt[3] - gt[1]
                thresh = min(0.5, (w * h) / ((w + 10) * (h + 10)))
                for j in np.argsort(-sims, kind="stable"):
                    if iou(kept[name]["boxes"][j], gt) >= thresh:
                        lab[j] = 1
                        count_tp += 1
                        break
            labels.extend(lab)
            scores.extend(sims)
        labels, scores = np.array(labels), np.array(scores)
        ap = 0.0 if count_tp == 0 else average_precision_score(labels, scores) * count_tp / count_gt
        ranked = labels[np.argsort(-scores, kind="stable")]
        hits = [int(min(1, ranked[:k].sum())) for k in TOPK]
        results.append({"ap": ap, "hits": hits, "count_gt": count_gt, "count_tp": count_tp,
                        "num_detections": len(labels)})
    m_ap = float(np.mean([r["ap"] for r in results])) if results else 0.0
    accs = [float(np.mean([r["hits"][i] for r in results])) if results else 0.0 for i in range(len(TOPK))]
    return m_ap, accs, results


def evaluate_detection(images, gallery_dets, det_thresh=0.01, iou_thresh=0.5, labeled_only=False,
                       matching="reference"):
    """Detection AP and recall. matching: "reference" (a detection and a ground truth match
    when each is the other's best-IoU partner, first on ties) or "greedy" (by score)."""
    y_true, y_score = [], []
    count_gt = count_tp = 0
    for im in images:
        gts = [b for b, p in zip(im["boxes"], im["pids"]) if not labeled_only or p is not None]
        if labeled_only and not gts:
            continue
        d = _kept(gallery_dets[im["name"]], det_thresh)
        n_gt, n_det = len(gts), len(d["scores"])
        count_gt += n_gt
        tp = np.zeros(n_det, dtype=bool)
        if n_gt and n_det:
            ious = np.array([[iou(g, b) for b in d["boxes"]] for g in gts], dtype=np.float32)
            if matching == "reference":
                best_gt = ious.argmax(axis=0)
                best_det = ious.argmax(axis=1)
                for i in range(n_gt):
                    j = best_det[i]
                    if best_gt[j] == i and ious[i, j] >= iou_thresh:
                        tp[j] = True
            else:
                taken = np.zeros(n_gt, dtype=bool)
                for j in np.argsort(-d["scores"], kind="stable"):
                    cand = np.where(~taken & (ious[:, j] >= iou_thresh))[0]
                    if len(cand):
                        i = cand[np.argmax(ious[cand, j])]
                        taken[i] = True
                        tp[j] = True
        count_tp += int(tp.sum())
        y_true.extend(tp)
        y_score.extend(d["scores"])
    recall = count_tp / count_gt if count_gt else 0.0
    ap = average_precision_score(y_true, y_score) * recall if count_tp else 0.0
    return ap, recall, count_gt, count_tp
