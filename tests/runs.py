"""What the tests of interrupted and resumed runs compare: two output folders of ``bptt train``."""

from __future__ import annotations

import numpy as np

from bptt.interop.io import load_arrays


def assert_same_run_files(out, reference) -> None:
    """``out`` holds bitwise the files of ``reference``: metrics.jsonl, and the best weights and train state
    with their metadata."""
    assert (out / "metrics.jsonl").read_bytes() == (reference / "metrics.jsonl").read_bytes()
    for name in ("model.safetensors", "train_state.safetensors"):
        arrays, metadata = load_arrays(out / name)
        arrays_ref, metadata_ref = load_arrays(reference / name)
        assert metadata == metadata_ref and sorted(arrays) == sorted(arrays_ref)
        for key, value in arrays_ref.items():
            np.testing.assert_array_equal(arrays[key], value, err_msg=f"{name}: {key}")
