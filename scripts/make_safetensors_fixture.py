#!/usr/bin/env python3
"""Writes tests/data/safetensors/python_fixture.safetensors with the PyPI `safetensors` package.

The file lets the C++ reader be checked against an independent writer (tests/cpp/core/
test_safetensors.cpp). Values follow closed forms that the test recomputes:
  q    F32 [2, 3, 4]  q.flat[n] = 0.25 * n - 3
  k    F16 [1, 3, 4]  k.flat[n] = 0.5 * n
  ids  I64 [5]        [-2, 0, 7, 2**40, 3]
  mask U8  [3]        [1, 0, 255]
  metadata {"producer": "make_safetensors_fixture.py", "format": "np"}
Run from the repository root: python3 scripts/make_safetensors_fixture.py (needs numpy, safetensors).
"""
import pathlib

import numpy as np
from safetensors.numpy import save_file

out = pathlib.Path(__file__).resolve().parent.parent / "tests/data/safetensors/python_fixture.safetensors"
tensors = {
    "q": (0.25 * np.arange(24, dtype=np.float32) - 3).reshape(2, 3, 4),
    "k": (0.5 * np.arange(12)).astype(np.float16).reshape(1, 3, 4),
    "ids": np.array([-2, 0, 7, 2**40, 3], dtype=np.int64),
    "mask": np.array([1, 0, 255], dtype=np.uint8),
}
out.parent.mkdir(parents=True, exist_ok=True)
save_file(tensors, str(out), metadata={"producer": "make_safetensors_fixture.py", "format": "np"})
print(f"wrote {out} ({out.stat().st_size} bytes)")
