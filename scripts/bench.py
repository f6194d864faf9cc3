"""Training throughput of every model at its default settings, on this machine.

Times ``recipe.train_step`` on a fixed batch (data loading excluded) after a
warm-up, in fp32 and under bf16 autocast, and prints images per second:

    python scripts/bench.py                       # all models, CPU
    python scripts/bench.py --models dcgan --steps 50 --json bench.json
    python scripts/bench.py --overrides dataset.image_size=64
    python scripts/bench.py --models stargan --overrides dataset=shapes_attributes dataset.image_size=128 '~tuning'
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
from hydra import compose, initialize_config_module
from torch.utils.data import default_collate

import gantrain.cli  # noqa: F401  (registers the config schemas and resolvers)
from gantrain.build import attach_labels, build_dataset, build_recipe
from gantrain.config import Precision
from gantrain.recipes.base import Step
from gantrain.trainer import AUTOCAST_DTYPES, move_to, resolve_device


def bench(model: str, precision: Precision, steps: int, warmup: int, overrides: list[str]) -> dict:
    with initialize_config_module("gantrain.configs", version_base="1.3"):
        cfg = compose("train", overrides=[f"model={model}", *overrides])
    torch.manual_seed(0)
    device = resolve_device(cfg.device.type)
    dataset = build_dataset(cfg)
    attach_labels(cfg, dataset, {"model": model, "dataset": "the configured dataset"})
    recipe = build_recipe(cfg).to(device)
    dataset = recipe.training_data(dataset, seed=0)
    batch = move_to(default_collate([dataset[i] for i in range(cfg.trainer.batch_size)]), device)
    step = Step(recipe.optimizers(), torch.amp.GradScaler(device.type, enabled=precision == Precision.fp16))
    autocast = torch.autocast(device.type, AUTOCAST_DTYPES.get(precision, torch.float32),
                              enabled=precision != Precision.fp32)

    def run(count: int) -> float:
        start = time.perf_counter()
        for _ in range(count):
            with autocast:
                recipe.train_step(batch, step)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    run(warmup)
    seconds = run(steps)
    return {
        "model": model,
        "precision": precision.value,
        "device": str(device),
        "image_size": cfg.dataset.image_size,
        "batch_size": cfg.trainer.batch_size,
        "steps": steps,
        "images_per_s": steps * cfg.trainer.batch_size / seconds,
        "ms_per_step": 1000 * seconds / steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["gan", "dcgan", "wgan", "wgan_gp"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=[p.value for p in Precision if p != Precision.auto])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--overrides", nargs="*", default=[], help="extra Hydra overrides, e.g. device=cpu")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    print(f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{'model':<10} {'precision':<9} {'device':<6} {'size':>4} {'batch':>5} {'images/s':>9} {'ms/step':>8}")
    results = []
    for model in args.models:
        for precision in args.precisions:
            row = bench(model, Precision(precision), args.steps, args.warmup, args.overrides)
            results.append(row)
            print(f"{model:<10} {precision:<9} {row['device']:<6} {row['image_size']:>4} {row['batch_size']:>5} "
                  f"{row['images_per_s']:>9.1f} {row['ms_per_step']:>8.1f}", flush=True)
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=2)


if __name__ == "__main__":
    main()
