"""Datasets: the embedded shapes (generated, with their judges), image folders, the official sets, downloads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from hydra.utils import get_object


def samples_judge(dataset: Any) -> Callable[[torch.Tensor], dict[str, float]] | None:
    """The judge that a dataset declares for generated images (``judge_samples``), or None.

    ``dataset`` is a dataset or its config, read from the ``_target_`` without building the data.
    """
    source = get_object(dataset._target_) if hasattr(dataset, "_target_") else dataset
    return getattr(source, "judge_samples", None)
