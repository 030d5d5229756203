"""Run the test suite as on a machine without PyTorch: every import of torch fails as if it were not
installed (nothing is put in sys.modules, which other libraries inspect), so each torch test and doctest
skips with its reason and the rest, the fast path against bptt.reference included, must pass."""

import importlib.abc
import sys

import pytest


class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden: a run without torch)", name=name)
        return None


sys.meta_path.insert(0, NoTorch())

if __name__ == "__main__":    # the sweep's worker processes import this module again (spawn): only the hook
    sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", *sys.argv[1:]]))
