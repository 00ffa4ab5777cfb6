#!/usr/bin/env python3
"""Bad state and batches files for `onnx-ac train` (fixtures/fail/train/, issue #15), written
by numpy itself (and a safetensors file laid out by hand, as the format specifies), so the
readers in src/state.rs and src/batches.rs are tested on what real tools write, not only on
the test's own encoder. Each is for the momentum step of the MLP fixture (inputs x [8, 64]
float32, labels [8] int64; parameters fc1.weight [128, 64], ...). tests/train_state.rs runs
them. The arrays are deterministic (the zip entries carry the time they were written); run with `.venv/bin/python scripts/make_train_fail_fixtures.py`.
"""
import json
import struct
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "fixtures" / "fail" / "train"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261203)
    x = rng.standard_normal((2, 8, 64)).astype(np.float32)
    labels = rng.integers(0, 10, (2, 8)).astype(np.int64)
    # A valid compressed archive (deflate), as numpy.savez_compressed writes it.
    np.savez_compressed(OUT / "good_compressed.npz", x=x, labels=labels)
    # Fortran order.
    np.savez(OUT / "fortran.npz", x=np.asfortranarray(x), labels=labels)
    # Big-endian floats.
    np.savez(OUT / "big_endian.npz", x=x.astype(">f4"), labels=labels)
    # A pickled object array (never unpickled: refused by its type code).
    obj = np.empty((2, 8), dtype=object)
    obj[:] = 1
    np.savez(OUT / "pickled.npz", x=x, labels=obj)
    # A safetensors state whose fc2.bias has 64 elements where the step has 128.
    t = np.zeros(64, dtype="<f4").tobytes()
    header = {"fc2.bias": {"dtype": "F32", "shape": [64], "data_offsets": [0, len(t)]}}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    (OUT / "short_bias.safetensors").write_bytes(struct.pack("<Q", len(h)) + h + t)


if __name__ == "__main__":
    main()
