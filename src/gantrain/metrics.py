"""FID and KID of generated images, computed by torchmetrics from a configurable feature network.

``inception`` is the standard network of both papers (torch-fidelity's port of the
TensorFlow 2015-12-05 graph, through torchmetrics): its weights come from
``metrics.inception_weights`` or, when online, from torch-fidelity's download.
``random`` is a fixed, seeded convolutional network that needs no weights file: its
distances are not comparable with published FIDs, but they rank runs on the embedded
shapes offline.  The features of a dataset's real images are computed once and
cached next to the data (under ``~/.cache/gantrain`` for the embedded datasets).

torchmetrics is imported where a figure is computed: with the SciPy modules it loads it takes
seconds, which every command would otherwise pay at start-up.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from gantrain.checkpoint import UNREADABLE, save_checkpoint
from gantrain.errors import ConfigError, require_extra

log = logging.getLogger(__name__)

INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
INCEPTION_FILE = INCEPTION_URL.rsplit("/", 1)[1]
CACHE_FOLDER = ".gantrain_cache"
LOWER_IS_BETTER = {"fid", "kid", "l1"}


def improves(metric: str, value: float, best: float | None) -> bool:
    """Whether ``value`` beats ``best`` for this metric (lower FID, KID and L1; higher scores otherwise)."""
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value < best if metric in LOWER_IS_BETTER else value > best


def to_uint8_rgb(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] as the 0..255 RGB bytes both feature networks read (grey repeated to 3 channels)."""
    images = ((images.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return images.expand(-1, 3, -1, -1) if images.size(1) == 1 else images


class RandomFeatures(nn.Module):
    """A seeded, untrained convolutional network: weight-free features for offline FID / KID.

    Random convolutional features separate image distributions well enough to rank
    runs on small synthetic data; the weights depend only on ``seed``.
    """

    num_features = 256

    def __init__(self, seed: int = 0):
        super().__init__()
        widths = [3, 32, 64, 128, self.num_features]
        layers: list[nn.Module] = []
        for inputs, outputs in itertools.pairwise(widths):
            layers += [nn.Conv2d(inputs, outputs, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
        self.layers = nn.Sequential(*layers)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
        self.requires_grad_(False).eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 RGB images of any size -> N x 256 features (resized to 64 x 64 first)."""
        images = nn.functional.interpolate(images.float() / 127.5 - 1, size=(64, 64), mode="bilinear", antialias=True)
        return self.layers(images).mean((2, 3))


def mean_pairwise_distance(images: torch.Tensor) -> float:
    """Root-mean-square pixel difference averaged over all pairs of images in [-1, 1].

    A cheap mode-collapse indicator for the fixed-noise samples: it falls towards 0
    as the generator maps different noise to the same image.
    """
    flat = images.flatten(1).float()
    distances = torch.cdist(flat, flat) / math.sqrt(flat.size(1))
    count = len(flat)
    return float(distances.sum() / (count * (count - 1))) if count > 1 else 0.0


def inception_network(weights: str | None) -> nn.Module:
    """torchmetrics' Inception (2048 pool features) from a local file, or from the download when online."""
    from torchmetrics.image.fid import NoTrainInceptionV3

    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"metrics.inception_weights={weights} does not exist. Download {INCEPTION_URL} and pass "
                f"the path of the {INCEPTION_FILE} file."
            )
        try:  # torch-fidelity unpickles the file fully: check first that it holds nothing but tensors
            torch.load(path, map_location="cpu", weights_only=True)
        except UNREADABLE as error:
            raise ConfigError(
                f"metrics.inception_weights={weights} is not a plain PyTorch weights file ({error}). "
                f"Use {INCEPTION_FILE} from {INCEPTION_URL}."
            ) from None
        require_extra("torch_fidelity", "metrics", "metrics.features=inception (FID / KID)")
        return NoTrainInceptionV3("inception-v3-compat", ["2048"], str(path))
    require_extra("torch_fidelity", "metrics", "metrics.features=inception (FID / KID)")
    try:
        return NoTrainInceptionV3("inception-v3-compat", ["2048"])
    except OSError as error:  # URLError and socket errors while downloading
        hub = Path(torch.hub.get_dir()) / "checkpoints"
        raise ConfigError(
            f"FID / KID need the Inception weights and they could not be downloaded ({error}). On a machine "
            f"with internet, fetch {INCEPTION_URL}, then pass metrics.inception_weights=<path to "
            f"{INCEPTION_FILE}> or put the file in {hub}/. Offline, metrics.features=random gives "
            f"weight-free distances (not comparable with published FIDs)."
        ) from None


def feature_network(kind: str, inception_weights: str | None = None) -> nn.Module:
    if kind == "inception":
        return inception_network(inception_weights)
    if kind == "random":
        return RandomFeatures()
    raise ConfigError(f"metrics.features={kind} is not a feature network: choose inception or random.")


@torch.no_grad()
def extract_features(network: nn.Module, batches: Iterable[torch.Tensor]) -> torch.Tensor:
    """N x F float64 features of batches of images in [-1, 1], on the network's device."""
    device = next(network.parameters()).device
    return torch.cat([network(to_uint8_rgb(batch.to(device))).double().cpu() for batch in batches])


class PassThrough(nn.Module):
    """Hands already-extracted features to torchmetrics' ``feature=`` argument, so that its
    FID and KID (means, covariances, polynomial kernel) work on cached features."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def feature_distances(real: torch.Tensor, fake: torch.Tensor, kid_subset_size: int = 1000) -> dict[str, float]:
    """FID and KID (mean and standard deviation over subsets) between two sets of features.

    Both sets are real matrices of N x F features; KID's subsets hold at most the smaller set's size.
    """
    if min(len(real), len(fake)) < 2:
        raise ConfigError("FID / KID need at least 2 real and 2 generated images: raise metrics.num_images.")
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    fid = FrechetInceptionDistance(feature=PassThrough(real.size(1)))
    subset = min(kid_subset_size, len(real), len(fake))
    with warnings.catch_warnings():  # that KID keeps every feature: it must, and they are few
        warnings.simplefilter("ignore", UserWarning)
        kid = KernelInceptionDistance(feature=PassThrough(real.size(1)), subset_size=subset)
    for metric in (fid, kid):
        metric.update(real, real=True)
        metric.update(fake, real=False)
    kid_mean, kid_std = kid.compute()
    return {"fid": float(fid.compute()), "kid": float(kid_mean), "kid_std": float(kid_std)}


def cache_file(dataset_config: str, data_path: str | None, features: str, count: int) -> Path:
    """Where the real features of a dataset are kept: beside the data, or in the user's cache for embedded data."""
    key = hashlib.sha256(f"{dataset_config}|{features}|{count}".encode()).hexdigest()[:16]
    if data_path is not None and Path(data_path).expanduser().is_dir():
        folder = Path(data_path).expanduser() / CACHE_FOLDER
    else:
        folder = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gantrain"
    return folder / f"features_{features}_{key}.pt"


def cached_features(path: Path, compute) -> torch.Tensor:
    """The features stored at ``path``, or ``compute()``'s, stored there for next time (atomically)."""
    if path.is_file():
        try:
            return torch.load(path, map_location="cpu", weights_only=True)["features"]
        except (*UNREADABLE, KeyError, TypeError) as error:  # recompute rather than trust it
            log.warning("Recomputing the unreadable feature cache %s (%s)", path, error)
    features = compute()
    try:
        save_checkpoint({"features": features}, path)
    except OSError as error:  # a read-only data folder: compute again next time
        log.warning("Could not cache the real images' features at %s (%s)", path, error)
    return features
