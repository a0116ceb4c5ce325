"""Put this folder on PYTHONPATH to run Python as on a host with no `nvidia` package at all
(macOS, Windows, a plain CUDA box): importing `nvidia` or anything under it fails, and
importlib.util.find_spec("nvidia.dali") raises ModuleNotFoundError, as it does there."""
import sys


class _NoNvidia:
    def find_spec(self, name, path=None, target=None):
        if name == "nvidia" or name.startswith("nvidia."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NoNvidia())
