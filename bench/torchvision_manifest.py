"""Hold fastssl's video ResNets to torchvision's: write the manifest, compare outputs.

Run once, in a throwaway venv that has torchvision (never the project's: torchvision's wheels do
not import beside the CPU torch the project installs), from the repository root:

    python3 -m venv /tmp/tvenv && /tmp/tvenv/bin/pip install torch==2.14.1 torchvision==0.29.1
    /tmp/tvenv/bin/python bench/torchvision_manifest.py [--out tests/fixtures/torchvision_video_resnets.json]

For each of r3d_18, mc3_18, r2plus1d_18 it
- writes torchvision's state-dict keys and shapes to the manifest (the committed test fixture);
- builds torchvision's model under a fixed seed, gives BatchNorm non-trivial running statistics,
  saves its state dict to a file, loads that into ours strictly, runs both in eval mode on one
  fixed input and prints the largest absolute difference of the logits and of the pooled features.

fastssl.models.resnet3d is imported from its file, so nothing else of fastssl (or its
dependencies) has to import in this venv.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import torch
import torchvision
from torchvision.models import video as tv_video

ROOT = Path(__file__).resolve().parents[1]
MODULE = ROOT / "fastssl" / "models" / "resnet3d.py"
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "torchvision_video_resnets.json"
NUM_CLASSES = 101  # not the default 400, so fc's shape is really checked


def load_ours():
    spec = importlib.util.spec_from_file_location("fastssl_resnet3d", MODULE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def keys_and_shapes(state_dict) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in sorted(state_dict.items())}


@torch.no_grad()
def warm_batchnorm(model: torch.nn.Module, seed: int) -> None:
    """A few train-mode forwards so running mean/var are not the identity (tests them too)."""
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(2):
        model(torch.randn(2, 3, 8, 64, 64, generator=g) * 2 + 0.5)
    model.eval()


@torch.no_grad()
def compare(arch: str, ours_mod, x: torch.Tensor) -> dict:
    torch.manual_seed(0)
    theirs = getattr(tv_video, arch)(num_classes=NUM_CLASSES)  # weights=None: nothing downloaded
    warm_batchnorm(theirs, 1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{arch}.pt"
        torch.save(theirs.state_dict(), path)
        saved = torch.load(path, weights_only=True)
    ours = ours_mod.video_resnet(arch, NUM_CLASSES)
    ours.load_state_dict(saved, strict=True)
    ours.eval()
    ref = theirs(x)
    out = ours(x)
    # torchvision's pooled feature: everything but fc
    t = theirs.avgpool(theirs.layer4(theirs.layer3(theirs.layer2(theirs.layer1(theirs.stem(x)))))).flatten(1)
    feat = ours.features(x)
    cl = ours.to(memory_format=torch.channels_last_3d)(x.contiguous(memory_format=torch.channels_last_3d))
    # and the other way: our freshly initialised weights load into torchvision's model
    torch.manual_seed(1)
    back = getattr(tv_video, arch)(num_classes=NUM_CLASSES)
    back.load_state_dict(ours_mod.video_resnet(arch, NUM_CLASSES).state_dict(), strict=True)
    return {
        "arch": arch,
        "params": sum(p.numel() for p in theirs.parameters()),
        "logits_max_abs": float(ref.sub(out).abs().max()),
        "logits_scale": float(ref.abs().max()),
        "features_max_abs": float(t.sub(feat).abs().max()),
        "channels_last_max_abs": float(ref.sub(cl).abs().max()),
        "out_shape": list(out.shape),
        "feature_shape": list(feat.shape),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", type=int, default=112)
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    ours_mod = load_ours()

    manifest = {"torchvision": torchvision.__version__, "torch": torch.__version__,
                "num_classes": NUM_CLASSES, "archs": {}}
    for arch in ours_mod.ARCHS:
        sd = getattr(tv_video, arch)(num_classes=NUM_CLASSES).state_dict()
        manifest["archs"][arch] = keys_and_shapes(sd)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(manifest, sort_keys=True, separators=(",", ":")) + "\n")
    print(f"manifest: {args.out} ({args.out.stat().st_size} bytes)")

    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, python "
          f"{platform.python_version()}, {platform.machine()} {platform.processor() or ''}, "
          f"{torch.get_num_threads()} threads, {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}")
    torch.manual_seed(0)
    x = torch.randn(2, 3, args.frames, args.size, args.size)
    print(f"input {tuple(x.shape)}, eval mode, float32, num_classes {NUM_CLASSES}")
    for arch in ours_mod.ARCHS:
        r = compare(arch, ours_mod, x)
        print(f"{arch:12s} params {r['params']:>9,d}  logits |max| {r['logits_scale']:.3g}  "
              f"max abs diff: logits {r['logits_max_abs']:.3g}, features {r['features_max_abs']:.3g}, "
              f"ours channels_last vs theirs {r['channels_last_max_abs']:.3g}  "
              f"out {r['out_shape']} features {r['feature_shape']}")


if __name__ == "__main__":
    main()
