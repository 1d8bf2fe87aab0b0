"""The CUDA kernels are built for sm_80 and sm_90 machine code plus sm_90 PTX (the default
PSEARCH_CUDA_ARCHITECTURES), so Ampere, Hopper and newer GPUs find a kernel image. Reads
the fat binary inside libpsearch_ops.so directly (no GPU, no cuobjdump needed); skipped
for a CPU-only build."""
import collections
import os
import pathlib
import shutil
import struct
import subprocess

import pytest

from test_train_cli import BINARY

FATBIN_MAGIC = 0xBA55ED50


def fatbin_entries(library):
    """(kind, sm) of every cubin ("ELF") and PTX entry in the library's .nv_fatbin section."""
    if not shutil.which("objdump"):
        pytest.skip("objdump (binutils) missing")
    headers = subprocess.run(["objdump", "-h", str(library)], capture_output=True, text=True, check=True).stdout
    section = [line.split() for line in headers.splitlines() if ".nv_fatbin" in line]
    if not section:
        pytest.skip("a CPU-only build (no .nv_fatbin section)")
    size, offset = int(section[0][2], 16), int(section[0][5], 16)
    data = library.read_bytes()[offset:offset + size]
    entries, pos = [], 0
    while pos + 16 <= len(data):
        magic, _, header_size, fat_size = struct.unpack_from("<IHHQ", data, pos)
        if magic != FATBIN_MAGIC:
            pos += 8  # fat binaries are 8-byte aligned
            continue
        p, end = pos + header_size, pos + header_size + fat_size
        while p < end:
            kind, _, entry_header, payload = struct.unpack_from("<HHIQ", data, p)
            arch = struct.unpack_from("<I", data, p + 28)[0]
            entries.append(({1: "PTX", 2: "ELF"}.get(kind, str(kind)), arch))
            p += entry_header + payload
        pos = end
    return entries


def test_kernels_cover_sm80_sm90_and_ptx():
    library = pathlib.Path(os.environ.get("PSEARCH_OPS_LIB", BINARY.parent / "src" / "libpsearch_ops.so"))
    counts = collections.Counter(fatbin_entries(library))
    assert counts[("ELF", 80)] >= 3 and counts[("ELF", 90)] >= 3 and counts[("PTX", 90)] >= 3, counts
