"""fastssl: video-order self-supervision for 3D CNNs, with a GPU data path.

`fastssl.kernels` lives in the top-level `kernels/` folder and is mapped in with package_dir;
nothing here installs a top-level module named `kernels` (a different PyPI project owns it).
"""
from setuptools import find_packages, setup

setup(
    name="fastssl",
    version="0.1.0",
    description="Video-order self-supervised pretraining (RP/SS/PB) of 3D CNNs, never input-bound",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["fastssl", "fastssl.*"]) + ["fastssl.kernels"],
    package_dir={"fastssl.kernels": "kernels"},
    install_requires=[
        # A range the CPU build satisfies: pip must not swap a user's torch for a CUDA build.
        "torch>=2.4",
        "numpy>=1.24",
        "av>=12",
        "click>=8.1",
        "tensorboard>=2.14",
        "tqdm>=4.60",
        # `fastssl replicate` draws its plots (part of its output) with matplotlib.
        "matplotlib>=3.6",
        # DALI wheels exist for Linux only; elsewhere the PyAV loader is used.
        # CUDA 12 hosts: pip install nvidia-dali-cuda120 instead (same Python API).
        "nvidia-dali-cuda130; sys_platform == 'linux'",
    ],
    extras_require={
        "dev": ["pytest>=7", "hypothesis>=6", "triton>=3.0; sys_platform == 'linux'"],
    },
    entry_points={"console_scripts": ["fastssl=fastssl.cli:main"]},
)
