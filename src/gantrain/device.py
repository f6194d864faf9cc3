"""Where and how fast the networks run: the device, the precision, the memory format, and moving batches.

Every command resolves ``device.*`` here, so training, sampling, translation, evaluation,
export and the Python API pick the same device for the same config.
"""

from __future__ import annotations

from typing import Any

import torch

from gantrain.errors import ConfigError
from gantrain.options import DeviceType, Precision

AUTOCAST_DTYPES = {Precision.bf16: torch.bfloat16, Precision.fp16: torch.float16}


def resolve_device(kind: DeviceType | str) -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; a forced device must exist."""
    kind = DeviceType(kind)
    if kind == DeviceType.auto:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    available = {
        DeviceType.cpu: True,
        DeviceType.cuda: torch.cuda.is_available(),
        DeviceType.mps: torch.backends.mps.is_available(),
    }
    if not available[kind]:
        raise ConfigError(f"device={kind.value} was requested but this machine has none: use device=auto or device=cpu.")
    return torch.device(kind.value)


def resolve_precision(precision: Precision | str, device: torch.device, captured: bool = False) -> Precision:
    """``auto`` is the precision measured faster on that device type (docs/performance.md).

    bf16 autocast on CPUs with native bf16 (AVX-512 BF16, AMX): 1.7-2.2x fp32 there.  On CUDA it
    depends on ``captured`` (the step may run as a CUDA graph): a replayed step is bound by the
    card, where bf16 measured 1.13-1.33x of TF32 on an H200; an eager step is bound by the host,
    where bf16's extra cast kernels made it 0.92-0.94x of TF32 on an H100.  fp32 where the card
    has no bf16 tensor cores.
    """
    precision = Precision(precision)
    if precision != Precision.auto:
        return precision
    if device.type == "cpu":
        try:
            native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
        except (AttributeError, RuntimeError):  # a build without oneDNN
            native = False
        return Precision.bf16 if native else Precision.fp32
    if device.type == "cuda" and captured and torch.cuda.is_bf16_supported(including_emulation=False):
        return Precision.bf16
    return Precision.fp32


def measured_choice(setting: bool | None, faster_on: list[DeviceType], device: torch.device) -> bool:
    """A device setting (``device.channels_last``, ``device.compile``), or when it is null whether the model
    measured faster with it on this device type (the model config's ``*_faster_on`` list)."""
    if setting is not None:
        return setting
    return device.type in {DeviceType(kind).value for kind in faster_on}


def autocast(device: torch.device, precision: Precision, cache: bool = True) -> torch.autocast:
    """Mixed precision for ``precision`` (bf16, fp16), or a disabled autocast for fp32; ``cache``: keep the
    casts of the weights within the context (not inside a CUDA graph capture)."""
    return torch.autocast(
        device.type, dtype=AUTOCAST_DTYPES.get(precision, torch.float32), enabled=precision != Precision.fp32,
        cache_enabled=cache,
    )


def move_to(batch: Any, device: torch.device, channels_last: bool = False) -> Any:
    """Move every tensor of a batch (a tensor, or a dict / list / tuple of them) to ``device``."""
    if isinstance(batch, dict):
        return {key: move_to(value, device, channels_last) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(value, device, channels_last) for value in batch)
    if not isinstance(batch, torch.Tensor):
        return batch
    batch = batch.to(device, non_blocking=True)
    if channels_last and batch.dim() == 4:
        batch = batch.contiguous(memory_format=torch.channels_last)
    return batch
