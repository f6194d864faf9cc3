"""Task metrics that need no downloaded weights, and the helpers the families score with.

:func:`task_metrics` scores a recipe on held-out data with whatever applies to its
family and dataset (``Recipe.task_metrics``), so a trained checkpoint and the same
networks untrained can be compared figure by figure.  What each family measures:

- noise models (gan, dcgan, wgan, wgan_gp, sngan) on ``shapes``: the dataset's judge
  of ``count`` generated samples (:func:`gantrain.data.shapes.judge_summary`):
  ``valid_share``, ``coverage``, ``share_circle``, ``share_square``, ``share_triangle``;
- CycleGAN on ``shapes_unpaired``: circles translated A -> B and judged by
  :func:`gantrain.data.shapes_translation.judge_unpaired`: ``shape_correct``,
  ``colour_kept``, ``position_kept``, ``all_kept``;
- pix2pix on paired data (``shapes_paired``, ``aligned`` folders and the official
  pix2pix sets): ``l1`` (in [-1, 1] units), ``psnr`` (dB, per image, capped at
  PSNR_CAP_DB) and ``ssim`` against the known targets;
- StarGAN on any labelled data: ``classifier_accuracy``, the share of target labels
  (attributes, or the domain) that the discriminator's classifier reads in images
  translated to each one-change target; on ``shapes_attributes`` and ``shapes_domains``
  also :func:`gantrain.data.shapes_attributes.judge_attributes` over the targets that
  change something: ``shape_correct``, ``colour_correct``, ``position_kept``,
  ``size_kept``, ``all_kept``;
- StarGAN v2 on ``shapes_domains``: the same judge for random styles and for styles of
  held-out references of the target domain, prefixed ``latent_`` and ``reference_``;
  on any domain data, given a local AlexNet weights file, ``lpips_diversity``: the mean LPIPS
  between two random-style outputs of each held-out image, for every other domain.

Any other combination has no metric here and gets ``{}``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import torch
from torch.utils.data import Dataset, default_collate

from gantrain.data.shapes_translation import PSNR_CAP_DB
from gantrain.device import move_to

if TYPE_CHECKING:
    from gantrain.recipes.base import Recipe

BATCH_SIZE = 64
"""Images per forward pass: bounds memory at large image sizes, results do not depend on it."""
SAMPLE_BATCH_SIZE = 256
"""Generated images per draw, as ``gantrain-sample`` draws them, so both judge the same images for a seed."""


def task_metrics(
    recipe: Recipe, dataset: Dataset, count: int = 256, seed: int = 0, lpips_weights: str | None = None
) -> dict[str, float]:
    """Held-out scores of ``recipe`` as the module docstring lists them; ``{}`` when none applies.

    ``dataset`` is the test split (for noise models it only says which judge applies);
    ``count`` is the number of held-out items, or generated samples for noise models.
    The recipe runs in evaluation mode on its own device, and its mode is restored.
    Random draws (noise, styles, pix2pix's dropout) come from ``seed`` alone and leave
    the global random state as it was, so the same seed gives the same figures.
    ``lpips_weights`` is torchvision's AlexNet ImageNet file (alexnet-owt-7be5be79.pth),
    read locally; without it there is no LPIPS.
    """
    device = recipe.device
    was_training = recipe.training
    recipe.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)  # pix2pix's dropout draws from the global generator
            generator = torch.Generator().manual_seed(seed)
            return recipe.task_metrics(dataset, count, generator, lpips_weights)
    finally:
        recipe.train(was_training)


def held_out_batches(dataset: Dataset, count: int, device: torch.device) -> Iterator[Any]:
    """The first ``count`` items of ``dataset``, collated in batches and moved to ``device``."""
    count = min(count, len(dataset))
    for start in range(0, count, BATCH_SIZE):
        items = [dataset[index] for index in range(start, min(count, start + BATCH_SIZE))]
        yield move_to(default_collate(items), device)


def image_fidelity(outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per image of two N x C x H x W batches in [-1, 1]: L1, PSNR (capped at PSNR_CAP_DB) and SSIM."""
    # imported here: torchmetrics takes seconds to import (see gantrain.metrics)
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    unit_outputs, unit_targets = ((outputs + 1) / 2).clamp(0, 1), ((targets + 1) / 2).clamp(0, 1)
    psnr = peak_signal_noise_ratio(unit_outputs, unit_targets, data_range=1.0, reduction="none", dim=(1, 2, 3))
    return {
        "l1": (outputs - targets).abs().flatten(1).mean(1),
        "psnr": psnr.clamp(max=PSNR_CAP_DB),  # identical images have an infinite PSNR
        "ssim": structural_similarity_index_measure(unit_outputs, unit_targets, data_range=1.0, reduction="none"),
    }


def lpips_metric(weights: str) -> torch.nn.Module:
    """torchmetrics' LPIPS on AlexNet, its backbone read from the local file ``weights``, never downloaded.

    torchmetrics asks torchvision for the ImageNet AlexNet, which torch.hub serves from
    its cache folder when the file is there; a temporary cache holding only ``weights``
    under torchvision's file name stands in for the download.  The LPIPS layers on top
    ship with torchmetrics.
    """
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity
    from torchvision.models import AlexNet_Weights

    path = Path(weights).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"No AlexNet weights file at {weights} (torchvision's alexnet-owt-7be5be79.pth).")
    with _hub_cache_holding(path, AlexNet_Weights.IMAGENET1K_V1.url):
        return LearnedPerceptualImagePatchSimilarity(net_type="alex")


@contextmanager
def _hub_cache_holding(weights: Path, url: str) -> Iterator[None]:
    """A torch.hub cache in which ``weights`` is the file downloaded from ``url``; the previous one afterwards."""
    previous = torch.hub.get_dir()
    with tempfile.TemporaryDirectory() as hub:
        checkpoints = Path(hub) / "checkpoints"
        checkpoints.mkdir()
        (checkpoints / Path(urlparse(url).path).name).symlink_to(weights)
        torch.hub.set_dir(hub)
        try:
            yield
        finally:
            torch.hub.set_dir(previous)
