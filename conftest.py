"""Doctests that import PyTorch (the parity oracle, installed beside the test tools but never needed by bptt)
are skipped, with the reason, where it is not installed; the tests do the same with ``pytest.importorskip``."""

import pytest


def _torch_missing() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return True
    return False


def pytest_collection_modifyitems(config, items):
    doctests = [item for item in items if isinstance(item, pytest.DoctestItem)]
    if not doctests or not _torch_missing():
        return
    for item in doctests:
        if any("import torch" in example.source for example in item.dtest.examples):
            item.add_marker(pytest.mark.skip(reason="could not import 'torch': this doctest runs a torch module"))
