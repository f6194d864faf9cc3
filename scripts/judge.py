"""Score a run on held-out data with gantrain.task_metrics, next to the same networks untrained.

    python scripts/judge.py outputs/stargan/shapes_attributes/<run> [--count 256] [--json scores.json]

The untrained row is the run's networks at the run's seed, before any step.  Which
figures a run gets depends on its model and dataset (see ``gantrain.task_metrics``):
the shapes judges for the embedded datasets, L1 / PSNR / SSIM for pix2pix, the
discriminator's classifier accuracy for StarGAN, and with ``--lpips-weights`` (a
local copy of torchvision's AlexNet weights) LPIPS diversity for StarGAN v2.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from omegaconf import OmegaConf

import gantrain.cli  # noqa: F401  (registers the config schemas)
from gantrain.build import build_dataset, build_recipe
from gantrain.checkpoint import load_checkpoint
from gantrain.recipes.base import NoiseToImage
from gantrain.task_metrics import task_metrics


def score_run(
    checkpoint: str, count: int = 256, seed: int = 0, device: str = "cpu", lpips_weights: str | None = None
) -> dict:
    """Model, dataset, step and the task metrics of the untrained and the trained networks."""
    state = load_checkpoint(checkpoint)
    cfg = OmegaConf.create(state["config"])
    # the shapes data has no split: its generated images are all unseen
    dataset = build_dataset(cfg, split="test") if "split" in cfg.dataset else build_dataset(cfg)
    torch.manual_seed(cfg.seed)  # the initialisation the run started from
    untrained = build_recipe(cfg)
    trained = build_recipe(cfg)
    trained.load_state_dict(state["recipe"])
    scores = {
        label: task_metrics(recipe.to(device), dataset, count, seed, lpips_weights)
        for label, recipe in (("untrained", untrained), ("trained", trained))
    }
    scored = f"{count} samples" if isinstance(trained, NoiseToImage) else f"{min(count, len(dataset))} held-out items"
    return {**state["choices"], "step": state["step"], "scored": scored, **scores}


def print_scores(result: dict) -> None:
    """One row per figure, one column for the untrained and one for the trained networks."""
    columns = {"untrained": result["untrained"], f"step {result['step']}": result["trained"]}
    print(f"{result['model']} on {result['dataset']}, {result['scored']}")
    if not result["trained"]:
        print("No task metric applies to this model and dataset.")
        return
    width = max(map(len, result["trained"])) + 2
    print(f"{'':<{width}}" + "".join(f"{label:>12}" for label in columns))
    for name in result["trained"]:
        print(f"{name:<{width}}" + "".join(f"{scores[name]:>12.3f}" for scores in columns.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a run directory or checkpoint file")
    parser.add_argument("--count", type=int, default=256, help="held-out items (or samples) to score")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise and random styles")
    parser.add_argument("--device", default="cpu", help="where the networks run (cpu, cuda)")
    parser.add_argument("--lpips-weights", help="torchvision's alexnet-owt-7be5be79.pth, for StarGAN v2's LPIPS")
    parser.add_argument("--json", type=Path, help="also write the scores to this file")
    args = parser.parse_args()
    result = score_run(args.checkpoint, args.count, args.seed, args.device, args.lpips_weights)
    print_scores(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
