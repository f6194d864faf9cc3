"""Task metrics that need no downloaded weights: the shapes judges, pixel fidelity, StarGAN's own classifier.

:func:`task_metrics` scores a recipe on held-out data with whatever applies to its
family and dataset, so a trained checkpoint and the same networks untrained can be
compared figure by figure:

- noise models (gan, dcgan, wgan, wgan_gp) on ``shapes``: the geometric judge of
  ``count`` generated samples (:func:`gantrain.data.shapes.judge_summary`):
  ``valid_share``, ``coverage``, ``share_circle``, ``share_square``, ``share_triangle``;
- CycleGAN on ``shapes_unpaired``: circles translated A -> B and judged by
  :func:`gantrain.data.shapes_translation.judge_unpaired`: ``shape_correct``,
  ``colour_kept``, ``position_kept``, ``all_kept``;
- pix2pix on paired data (``shapes_paired``, ``aligned`` folders and the official
  pix2pix sets): ``l1`` (in [-1, 1] units), ``psnr`` (dB, per image, capped at
  PSNR_CAP_DB) and ``ssim`` against the known targets.  On ``shapes_paired`` the
  first two are the figures of :func:`~gantrain.data.shapes_translation.judge_paired`;
- StarGAN on any labelled data: ``classifier_accuracy``, the share of target labels
  (attributes, or the domain) that the discriminator's classifier reads in images
  translated to each one-change target; on ``shapes_attributes`` also
  :func:`gantrain.data.shapes_attributes.judge_attributes` over the targets that change
  something: ``shape_correct``, ``colour_correct``, ``position_kept``, ``size_kept``,
  ``all_kept``;
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
from typing import Any
from urllib.parse import urlparse

import torch
from torch.utils.data import Dataset, default_collate
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from gantrain.data.shapes import SHAPE_NAMES, ShapesDataset, judge_summary
from gantrain.data.shapes_attributes import COLOUR_NAMES, ShapesAttributes, judge_attributes
from gantrain.data.shapes_translation import PSNR_CAP_DB, ShapesPaired, ShapesUnpaired, judge_unpaired
from gantrain.data.translation import AlignedFolders
from gantrain.device import move_to
from gantrain.recipes.base import NoiseToImage, Recipe
from gantrain.recipes.cyclegan import CycleGAN
from gantrain.recipes.pix2pix import Pix2Pix
from gantrain.recipes.stargan import StarGAN
from gantrain.recipes.stargan_v2 import StarGANv2

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
    device = _device(recipe)
    was_training = recipe.training
    recipe.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)  # pix2pix's dropout draws from the global generator
            generator = torch.Generator().manual_seed(seed)
            return _family_metrics(recipe, dataset, count, generator, lpips_weights)
    finally:
        recipe.train(was_training)


def _family_metrics(
    recipe: Recipe, dataset: Dataset, count: int, generator: torch.Generator, lpips_weights: str | None
) -> dict[str, float]:
    if isinstance(recipe, NoiseToImage) and isinstance(dataset, ShapesDataset):
        return sample_judge(recipe, count, generator)
    if isinstance(recipe, CycleGAN) and isinstance(dataset, ShapesUnpaired):
        return unpaired_judge(recipe, dataset, count)
    if isinstance(recipe, Pix2Pix) and isinstance(dataset, (ShapesPaired, AlignedFolders)):
        return pixel_fidelity(recipe, dataset, count)
    if isinstance(recipe, StarGAN):
        return stargan_metrics(recipe, dataset, count)
    if isinstance(recipe, StarGANv2):
        scores = {}
        if isinstance(dataset, ShapesAttributes):
            scores |= stargan_v2_judge(recipe, dataset, count, generator)
        if lpips_weights is not None:
            scores["lpips_diversity"] = lpips_diversity(recipe, dataset, count, generator, lpips_weights)
        return scores
    return {}


def held_out_batches(dataset: Dataset, count: int, device: torch.device) -> Iterator[Any]:
    """The first ``count`` items of ``dataset``, collated in batches and moved to ``device``."""
    count = min(count, len(dataset))
    for start in range(0, count, BATCH_SIZE):
        items = [dataset[index] for index in range(start, min(count, start + BATCH_SIZE))]
        yield move_to(default_collate(items), device)


def sample_judge(recipe: NoiseToImage, count: int, generator: torch.Generator) -> dict[str, float]:
    """The shapes judge's summary of ``count`` samples."""
    images = [
        recipe.sample(min(SAMPLE_BATCH_SIZE, count - start), generator).float().cpu()
        for start in range(0, count, SAMPLE_BATCH_SIZE)
    ]
    return judge_summary(torch.cat(images))


def unpaired_judge(recipe: CycleGAN, dataset: ShapesUnpaired, count: int) -> dict[str, float]:
    """judge_unpaired of held-out A images translated to B."""
    inputs, outputs = [], []
    for batch in held_out_batches(dataset, count, _device(recipe)):
        inputs.append(batch["A"].cpu())
        outputs.append(recipe.translate(batch["A"], "AtoB").float().cpu())
    return judge_unpaired(torch.cat(inputs), torch.cat(outputs), target_kind=dataset.kinds["B"])


def pixel_fidelity(recipe: Pix2Pix, dataset: Dataset, count: int) -> dict[str, float]:
    """Mean per-image L1 (in [-1, 1] units), PSNR and SSIM (images mapped to [0, 1]) against the targets."""
    per_image: dict[str, list[torch.Tensor]] = {"l1": [], "psnr": [], "ssim": []}
    for batch in held_out_batches(dataset, count, _device(recipe)):
        source, target = recipe.pair(batch)
        output = recipe.translate(source, recipe.direction.value).float()
        scores = image_fidelity(output, target.float())
        for name, values in scores.items():
            per_image[name].append(values.cpu())
    return {name: float(torch.cat(values).mean()) for name, values in per_image.items()}


def image_fidelity(outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per image of two N x C x H x W batches in [-1, 1]: L1, PSNR (capped at PSNR_CAP_DB) and SSIM."""
    unit_outputs, unit_targets = ((outputs + 1) / 2).clamp(0, 1), ((targets + 1) / 2).clamp(0, 1)
    psnr = peak_signal_noise_ratio(unit_outputs, unit_targets, data_range=1.0, reduction="none", dim=(1, 2, 3))
    return {
        "l1": (outputs - targets).abs().flatten(1).mean(1),
        "psnr": psnr.clamp(max=PSNR_CAP_DB),  # identical images have an infinite PSNR
        "ssim": structural_similarity_index_measure(unit_outputs, unit_targets, data_range=1.0, reduction="none"),
    }


def stargan_metrics(recipe: StarGAN, dataset: Dataset, count: int) -> dict[str, float]:
    """Classifier accuracy on one-change translations; the attribute judge on shapes_attributes.

    Each held-out image is translated to every target of ``labels.one_change_targets``;
    the judge takes those that change a label (switching on the colour or shape an
    image already has changes nothing).
    """
    spec = recipe.labels
    judged = isinstance(dataset, ShapesAttributes) and dataset.multi_label
    matches, inputs, outputs, targets = [], [], [], []
    for images, labels in held_out_batches(dataset, count, _device(recipe)):
        for target in spec.one_change_targets(labels):
            translated = recipe.translator(images, spec.condition(target))
            matches.append((recipe.estimate_labels(translated) == target).flatten().cpu())
            if judged:
                changed = (target != labels).any(1)
                inputs.append(images[changed].cpu())
                outputs.append(translated[changed].float().cpu())
                targets.append(target[changed].cpu())
    scores = {"classifier_accuracy": float(torch.cat(matches).float().mean())}
    if judged:
        switched_on = [[spec.names[i] for i in target.nonzero().flatten().tolist()] for target in torch.cat(targets)]
        colours = [next(name for name in names if name in COLOUR_NAMES) for names in switched_on]
        shapes = [next(name for name in names if name in SHAPE_NAMES) for names in switched_on]
        scores |= judge_attributes(torch.cat(inputs), torch.cat(outputs), colours, shapes)
    return scores


def attribute_changes(dataset: ShapesAttributes, count: int) -> list[tuple[int, str, str]]:
    """(item, target colour, target shape) for each change of one attribute of the first ``count`` items."""
    targets = []
    for item in range(min(count, len(dataset))):
        shape = dataset.attributes(item)
        colour, kind = shape["colour_name"], shape["kind"]
        targets += [(item, other, kind) for other in COLOUR_NAMES if other != colour]
        targets += [(item, colour, other) for other in SHAPE_NAMES if other != kind]
    return targets


def stargan_v2_judge(
    recipe: StarGANv2, dataset: ShapesAttributes, count: int, generator: torch.Generator
) -> dict[str, float]:
    """judge_attributes of one-attribute changes, with random styles and with reference styles.

    The reference for translation n is the n-th held-out image of its target domain
    (cycling), so every translation gets a different one.
    """
    device = _device(recipe)
    targets = attribute_changes(dataset, count)
    images = torch.stack([dataset[item][0] for item in range(min(count, len(dataset)))])
    inputs = images[[item for item, _, _ in targets]]
    domains = torch.tensor([dataset.label_of(colour, shape) for _, colour, shape in targets])
    latents = recipe.latent(len(targets), device, generator)
    pool = dataset.domain_indices()
    picks = [pool[domain][n % len(pool[domain])] for n, domain in enumerate(domains.tolist())]
    style_sources = {
        "latent": lambda chunk: recipe.mapping_ema(latents[chunk], domains[chunk].to(device)),
        "reference": lambda chunk: recipe.style_encoder_ema(
            torch.stack([dataset[pick][0] for pick in picks[chunk]]).to(device), domains[chunk].to(device)
        ),
    }
    colours, shapes = [colour for _, colour, _ in targets], [shape for _, _, shape in targets]
    scores = {}
    for guide, styles in style_sources.items():
        outputs = []
        for start in range(0, len(targets), BATCH_SIZE):
            chunk = slice(start, start + BATCH_SIZE)
            outputs.append(recipe.generator_ema(inputs[chunk].to(device), styles(chunk)).float().cpu())
        judged = judge_attributes(inputs, torch.cat(outputs), colours, shapes)
        scores |= {f"{guide}_{name}": value for name, value in judged.items()}
    return scores


def lpips_diversity(
    recipe: StarGANv2, dataset: Dataset, count: int, generator: torch.Generator, weights: str
) -> float:
    """Mean LPIPS between two outputs of one input rendered in random styles, for every other domain."""
    device = _device(recipe)
    metric = lpips_metric(weights).to(device)
    domains = recipe.labels.size

    def random_style_output(images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        styles = recipe.mapping_ema(recipe.latent(len(images), device, generator), target)
        # LPIPS takes RGB images in [-1, 1]: grey ones are repeated over three channels
        return recipe.generator_ema(images, styles).float().clamp(-1, 1).expand(-1, 3, -1, -1)

    for images, labels in held_out_batches(dataset, count, device):
        for shift in range(1, domains):
            target = (labels + shift) % domains
            metric.update(random_style_output(images, target), random_style_output(images, target))
    return float(metric.compute())


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


def _device(recipe: Recipe) -> torch.device:
    return next(recipe.parameters()).device
