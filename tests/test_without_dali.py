"""On a host without DALI nothing crashes: `--loader dali` is a usage error saying how to
install it, `auto` falls back to PyAV (and says so on CUDA), and training runs."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from videos import make_coded_dataset

BLOCKER = Path(__file__).parent / "without_dali"


def python_without_dali(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BLOCKER), str(Path(__file__).parent)])}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


def test_the_blocker_really_hides_nvidia():
    result = python_without_dali("import importlib.util; importlib.util.find_spec('nvidia.dali')")
    assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr


def test_loader_choice_without_dali():
    result = python_without_dali(
        "from fastssl.data import loaders\n"
        "assert loaders.dali_available() is False\n"
        "said = []\n"
        "assert loaders.choose_loader('auto', 'cuda', report=said.append) == 'pyav'\n"
        "assert 'DALI is not installed' in said[0] and 'pip install nvidia-dali' in said[0]\n"
        "assert loaders.choose_loader('auto', 'cpu') == 'pyav'\n"
        "try:\n"
        "    loaders.choose_loader('dali', 'cpu')\n"
        "except ValueError as e:\n"
        "    print(e)\n")
    assert result.returncode == 0, result.stderr
    assert "--loader dali: NVIDIA DALI is not installed (pip install nvidia-dali-cuda130" in result.stdout


@pytest.mark.slow
def test_cli_without_dali(tmp_path):
    data = make_coded_dataset(tmp_path / "data", frames=(24, 30, 30))
    code = ("import sys; from fastssl.cli import main; sys.argv = ['fastssl'] + sys.argv[1:]; main()")
    common = ["--data", str(data), "--device", "cpu", "--workers", "0", "--batch-size", "2", "--steps", "1"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BLOCKER), str(Path(__file__).parent)])}
    run = lambda *a: subprocess.run([sys.executable, "-c", code, *a], env=env, capture_output=True,  # noqa: E731
                                    text=True, timeout=300)
    refused = run("pretrain", *common, "--loader", "dali", "--out", str(tmp_path / "d"))
    assert refused.returncode == 2 and "NVIDIA DALI is not installed" in refused.stderr
    assert "Traceback" not in refused.stderr
    ran = run("pretrain", *common, "--out", str(tmp_path / "auto"))
    assert ran.returncode == 0, ran.stderr
    assert "loader: pyav" in ran.stdout
