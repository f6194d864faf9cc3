"""``gantrain.load``: a trained checkpoint as a Python object, for programs that embed gantrain.

    import gantrain
    model = gantrain.load("outputs/cyclegan/horse2zebra/<run>")     # a run directory or a .pt file
    zebras = model.translate(["horse1.jpg", "horse2.jpg"])          # N x C x H x W in [0, 1]

Images go in as paths, PIL images or float tensors in [0, 1] (C x H x W or N x C x H x W)
and come out as float tensors in [0, 1] on the model's device.  They are read, padded or
resized and normalised through the functions gantrain-translate uses, and noise is drawn as
gantrain-sample draws it, so the API and the commands give the same pixels.
"""

from __future__ import annotations

import os

import torch

from gantrain.device import resolve_device
from gantrain.inference import (
    LabelTranslationModel,
    NoiseModel,
    StyleTranslationModel,
    TrainedModel,
    TranslationModel,
)
from gantrain.options import DeviceType
from gantrain.trained import load_trained

__all__ = ["LabelTranslationModel", "NoiseModel", "StyleTranslationModel", "TranslationModel", "load"]


def pick_device(device: str | torch.device) -> torch.device:
    """``auto``, ``cpu``, ``cuda`` and ``mps`` as the commands' ``device=`` reads them; anything else as torch does."""
    if isinstance(device, str) and device in DeviceType.__members__:
        return resolve_device(DeviceType(device))
    return torch.device(device)


def load(checkpoint: str | os.PathLike, device: str | torch.device = "cpu") -> TrainedModel:
    """The model in a checkpoint file or run directory, in evaluation mode on ``device``.

    What it can do depends on the family: a :class:`NoiseModel` generates (``generate``), a
    :class:`TranslationModel`, :class:`LabelTranslationModel` or :class:`StyleTranslationModel`
    translates (``translate``).
    """
    device = pick_device(device)
    trained = load_trained(checkpoint, device)
    return trained.recipe.inference_model(trained, device)
