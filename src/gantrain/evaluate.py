"""Held-out evaluation: during training every ``trainer.eval_every`` steps, and ``gantrain-eval``.

    gantrain-eval checkpoint=outputs/pix2pix/facades/<run> [metrics.fid=true] [dataset.path=...]

The task metrics need no weights (shapes judges, L1 / PSNR / SSIM, StarGAN's own
classifier); FID and KID need a feature network (``metrics.features``).  The
report is written as JSON beside the checkpoint.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset

from gantrain.build import (
    add_plus_for_open_settings,
    answered_version,
    build_dataset,
    report_user_errors,
    require,
)
from gantrain.config import MetricsConfig, register_configs
from gantrain.device import move_to, resolve_device
from gantrain.errors import ConfigError
from gantrain.metrics import (
    cache_file,
    cached_features,
    extract_features,
    feature_distances,
    feature_network,
)
from gantrain.options import FeatureNetwork
from gantrain.recipes.base import Recipe
from gantrain.run_log import progress
from gantrain.task_metrics import task_metrics
from gantrain.trained import load_trained

log = logging.getLogger(__name__)
register_configs()
FEATURE_BATCH = 50  # generated and real images per feature extraction

def held_out_dataset(cfg: DictConfig, split: str = "test") -> Dataset:
    """The test split where the dataset has one, else the training data itself (the embedded shapes).

    Never kept in memory (``dataset.in_memory``): only a few of its items are used, and as float images.
    """
    overrides = {"split": split} if "split" in cfg.dataset else {}
    return build_dataset(cfg, **overrides, in_memory=False)


class Evaluator:
    """Measures a recipe on held-out data as ``metrics`` says; deterministic for a seed."""

    def __init__(self, metrics: MetricsConfig, cfg: DictConfig, dataset: Dataset, recipe: Recipe, seed: int):
        self.metrics, self.seed, self.dataset = metrics, seed, dataset
        self.batches = recipe.training_data(dataset, seed=seed)
        self.real_cache = cache_file(
            OmegaConf.to_yaml(cfg.dataset, resolve=True),
            cfg.dataset.get("path"),
            f"{FeatureNetwork(metrics.features).value}-{Path(metrics.inception_weights or 'download').name}",
            metrics.num_images,
        )
        self.network: torch.nn.Module | None = None
        if metrics.best is not None and not (metrics.fid or metrics.task):
            raise ConfigError(f"metrics.best={metrics.best} needs metrics.task=true or metrics.fid=true.")

    def __call__(self, recipe: Recipe) -> dict[str, float]:
        scores: dict[str, float] = {}
        if self.metrics.task:
            scores |= task_metrics(
                recipe, self.dataset, count=self.metrics.task_images, seed=self.seed,
                lpips_weights=self.metrics.lpips_weights,
            )
        if self.metrics.fid:
            scores |= self.feature_scores(recipe)
        if self.metrics.best is not None and self.metrics.best not in scores:
            raise ConfigError(
                f"metrics.best={self.metrics.best} is not measured for this model and dataset: "
                f"choose one of {', '.join(sorted(scores)) or '(none: enable metrics.task or metrics.fid)'}."
            )
        return scores

    @torch.no_grad()
    def feature_scores(self, recipe: Recipe) -> dict[str, float]:
        """FID and KID of ``metrics.num_images`` generated images against as many real ones."""
        device = next(recipe.parameters()).device
        if self.network is None:
            self.network = feature_network(self.metrics.features, self.metrics.inception_weights).to(device)
        real_known = self.real_cache.is_file()
        generator = torch.Generator().manual_seed(self.seed)
        fake, real, seen = [], [], 0
        was_training = recipe.training
        recipe.eval()
        # pix2pix's dropout draws from the global generator: leave the training's draws as they were
        try:
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                torch.manual_seed(self.seed)
                loader = DataLoader(self.batches, batch_size=FEATURE_BATCH)
                batches = min(len(loader), -(-self.metrics.num_images // FEATURE_BATCH))
                for batch in progress(loader, batches, "FID / KID features", log):
                    generated, reference = recipe.generated_and_real(move_to(batch, device), generator)
                    take = min(len(generated), self.metrics.num_images - seen)
                    fake.append(extract_features(self.network, [generated[:take]]))
                    if not real_known:
                        real.append(extract_features(self.network, [reference[:take]]))
                    seen += take
                    if seen == self.metrics.num_images:
                        break
        finally:
            recipe.train(was_training)
        real_features = cached_features(self.real_cache, lambda: torch.cat(real))
        return feature_distances(real_features, torch.cat(fake))


@report_user_errors
def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Score a checkpoint on held-out data; write and return the JSON report."""
    require(cfg, "gantrain-eval", ("checkpoint",), "checkpoint=outputs/pix2pix/facades/<run> metrics.fid=true")
    trained = load_trained(cfg.checkpoint, resolve_device(cfg.device.type), cfg.dataset)
    recipe, train_cfg = trained.recipe, trained.config
    metrics = OmegaConf.to_object(cfg.metrics)
    evaluator = Evaluator(metrics, train_cfg, held_out_dataset(train_cfg, cfg.split), recipe, train_cfg.seed)
    scores = evaluator(recipe)
    report = {
        "checkpoint": str(trained.path),
        "step": trained.step,
        "model": trained.model,
        "dataset": trained.dataset,
        "split": cfg.split if "split" in train_cfg.dataset else "train",
        "metrics": scores,
        "settings": OmegaConf.to_container(cfg.metrics, resolve=True),
    }
    output = Path(cfg.output) if cfg.output else trained.path.with_name(f"eval_{trained.path.stem}.json")
    output.write_text(json.dumps(report, indent=2))
    log.info("%s", ", ".join(f"{name} {value:.4g}" for name, value in scores.items()))
    log.info("Report written to %s", output)
    return report


@hydra.main(version_base="1.3", config_path="configs", config_name="eval")
def run(cfg: DictConfig) -> None:
    evaluate(cfg)


def main() -> None:
    if not answered_version():
        add_plus_for_open_settings("dataset")
        run()


if __name__ == "__main__":
    main()
