"""What a training checkpoint restores besides the model and optimizer, and restoring it.

The data position is the step itself (the sampler is a function of it), so model, optimizer,
grad scaler, step, RNG states, the log interval's running sums and the bad videos met so far are
everything the next step depends on: a resumed run continues exactly where the checkpoint left it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from fastssl.train.checkpoints import Checkpoint


@dataclass
class Interval:
    """Running sums of the current log interval, kept on the device (read only at log points) and
    saved in checkpoints, so a resumed run logs the same numbers as an uninterrupted one."""
    loss_sum: torch.Tensor
    correct: torch.Tensor
    seen: int = 0

    @classmethod
    def zero(cls, device: str) -> "Interval":
        return cls(torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.long))

    def state(self) -> dict:
        return {"loss_sum": self.loss_sum.detach().cpu(), "correct": self.correct.cpu(), "seen": self.seen}

    @classmethod
    def restore(cls, state: dict, device: str) -> "Interval":
        return cls(state["loss_sum"].to(device), state["correct"].to(device), int(state["seen"]))


@dataclass
class TrainState:
    step: int = 0
    interval: Interval | None = None
    bad_videos: dict = field(default_factory=dict)    # path -> reason
    skipped_nonfinite: int = 0


def rng_state() -> dict:
    state = {"torch_rng": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.stack(torch.cuda.get_rng_state_all())
    return state


def restore_rng(state: dict, report=print) -> None:
    torch.set_rng_state(state["torch_rng"])
    if "cuda_rng" not in state or not torch.cuda.is_available():
        return
    saved, here = list(state["cuda_rng"]), torch.cuda.device_count()
    torch.cuda.set_rng_state_all(saved[:here])
    if len(saved) != here:
        # Nothing in a run draws from the CUDA RNG today (the data path has its own generators),
        # so this changes no result; said because a bit-exact resume was promised per device.
        report(f"resume: the checkpoint saved the CUDA RNG of {len(saved)} GPU(s), this host has "
               f"{here}; restored {min(len(saved), here)}")


def restore(ckpt: Checkpoint, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
            scaler: torch.amp.GradScaler, device: str, report=print) -> TrainState:
    """Load everything a checkpoint holds back into the run's objects."""
    state = ckpt.state
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    restore_rng(state, report)
    bad = dict(line.split("\t", 1) for line in state.get("bad_videos", "").splitlines() if "\t" in line)
    interval = Interval.restore(state["interval"], device) if "interval" in state else None
    return TrainState(ckpt.step, interval, bad, int(state.get("skipped_nonfinite", 0)))


def bad_videos_text(found: dict) -> str:
    return "\n".join(f"{p}\t{r}" for p, r in found.items())
