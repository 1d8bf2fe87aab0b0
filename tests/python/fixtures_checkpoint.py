"""Checkpoint files in every shape the C++ reader must handle. Tensor values follow
formulas (arange-based) that the C++ test recomputes, so the reader is checked
against values it cannot have produced itself."""
import collections
import pathlib

import torch


def _contents():
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6) * 0.5 - 3.0
    sd = collections.OrderedDict()
    sd["f32"] = base.clone()
    sd["f64"] = base.double() / 3.0
    sd["f16"] = base.half()
    sd["bf16"] = base.bfloat16()
    sd["i64"] = torch.arange(5, dtype=torch.int64) * 1_000_000_007
    sd["u8"] = torch.arange(200, 210, dtype=torch.uint8)
    sd["i8"] = torch.arange(-5, 5, dtype=torch.int8)
    sd["b"] = torch.tensor([True, False, True])
    sd["scalar"] = torch.tensor(2.5)
    sd["empty"] = torch.zeros(0, 3)
    sd["view_rows"] = base[1:3]          # a view with a storage offset, same storage as f32's source
    sd["view_t"] = base.t()              # non-contiguous strides
    sd["param"] = torch.nn.Parameter(base[0].clone())
    sd._metadata = collections.OrderedDict({"": {"version": 1}})
    return sd


def write(out: pathlib.Path) -> None:
    sd = _contents()
    torch.save(sd, out / "ckpt_state_dict.pth")
    torch.save(sd, out / "ckpt_protocol4.pth", pickle_protocol=4)
    torch.save({"model": sd, "iteration": 1234, "lr": 0.003, "name": "oim",
                "big": 2**40, "neg": -7, "lists": [sd["f32"], (sd["i64"], None)], "flag": True},
               out / "ckpt_nested.pth")
    torch.save(sd, out / "ckpt_legacy.pth", _use_new_zipfile_serialization=False)
