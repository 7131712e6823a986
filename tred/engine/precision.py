"""Mixed precision on CUDA: bf16 autocast where the GPU supports it, else fp16 with a GradScaler.

On CPU (or with trainer.amp=false) every method here is the identity, so CPU numbers are the
float32 ones bit for bit. Loss terms are computed outside autocast, on float32 copies of the
logits / features / feature maps, so regularizer penalties never run in half precision.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch


def autocast_dtype(device: torch.device, enabled: bool, bf16_supported: bool) -> torch.dtype | None:
    """None (float32), bfloat16 or float16, for `device`."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if bf16_supported else torch.float16


class Precision:
    def __init__(self, device: torch.device, enabled: bool, channels_last: bool | None = None):
        cuda = device.type == "cuda"
        self.device = device
        self.dtype = autocast_dtype(device, enabled, cuda and torch.cuda.is_bf16_supported())
        # Only fp16 needs loss scaling: bf16 has float32's exponent range.
        self.scaler = torch.amp.GradScaler("cuda") if self.dtype == torch.float16 else None
        # channels_last: faster convolutions on CUDA and, for depthwise-separable networks such
        # as Lite0, on CPU too (None: on CUDA only, which keeps CPU results of older runs).
        self.channels_last = cuda if channels_last is None else channels_last

    def prepare(self, *modules) -> None:
        if self.channels_last:
            for m in modules:
                m.to(memory_format=torch.channels_last)

    def input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.dtype) if self.dtype is not None else nullcontext()

    @staticmethod
    def as_float32(x):
        """Tensors (or dicts of them) in float32; a float32 tensor is returned as is."""
        if isinstance(x, dict):
            return {k: v.float() for k, v in x.items()}
        return x.float()

    def backward_step(self, loss: torch.Tensor, optimizer) -> None:
        if self.scaler is None:
            loss.backward()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)  # skips the step when a gradient overflowed
        self.scaler.update()

    def state_dict(self) -> dict:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
