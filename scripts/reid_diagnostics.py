"""Signs of re-identification collapse in a two-stage psearch checkpoint.

Usage: reid_diagnostics.py CHECKPOINT.pt [...]   (last.pt / final.pt of psearch train)

Prints per checkpoint: the mean pairwise cosine of the OIM lookup-table rows that were
written (near 1: every identity points the same way), the same for the unlabeled queue,
and the norms of the embedding projection's BatchNorm weight and bias (a bias much larger
than the weight makes every embedding the same vector after L2 normalisation).
"""
import sys

import torch


def mean_pairwise_cosine(rows):
    rows = rows[rows.norm(dim=1) > 0]
    if len(rows) < 2:
        return float("nan"), len(rows)
    unit = torch.nn.functional.normalize(rows, dim=1)
    sim = unit @ unit.t()
    n = len(rows)
    return float((sim.sum() - n) / (n * (n - 1))), n


def main(paths):
    print(f"{'checkpoint':48} {'lut cos':>8} {'rows':>5} {'queue cos':>9} {'|bn w| r4/r5':>14} {'|bn b| r4/r5':>14}")
    for path in paths:
        try:
            state = torch.jit.load(path, map_location="cpu")._c.getattr("model")
        except Exception as e:  # noqa: BLE001 - one line per unreadable file
            print(f"{path}: not a psearch training checkpoint ({type(e).__name__})", file=sys.stderr)
            return 1
        lut, n = mean_pairwise_cosine(state["reid_loss.lut"])
        cq, _ = mean_pairwise_cosine(state["reid_loss.cq"])
        norm = lambda key: float(state[key].norm()) if key in state else float("nan")  # noqa: E731
        w = f"{norm('embedding_head.proj_res4.1.weight'):.2f}/{norm('embedding_head.proj_res5.1.weight'):.2f}"
        b = f"{norm('embedding_head.proj_res4.1.bias'):.2f}/{norm('embedding_head.proj_res5.1.bias'):.2f}"
        print(f"{path[-48:]:48} {lut:8.3f} {n:5d} {cq:9.3f} {w:>14} {b:>14}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print("usage: reid_diagnostics.py CHECKPOINT.pt [...]", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1:]))
