"""Score a CycleGAN or pix2pix checkpoint trained on the embedded shapes pairs, on held-out data.

    python scripts/judge_translation.py outputs/cyclegan/shapes_unpaired/<run> [--count 256]

Translates the first ``count`` items of the test split (A -> B) with the trained
generator and with the same networks freshly initialised, and prints the judges'
scores for both: shape / colour / position kept for ``shapes_unpaired``, L1 and
PSNR against the known target for ``shapes_paired``.
"""

from __future__ import annotations

import argparse

import torch
from omegaconf import OmegaConf
from torch.utils.data import default_collate

import gantrain.cli  # noqa: F401  (registers the config schemas)
from gantrain.build import build_dataset, build_recipe
from gantrain.checkpoint import load_checkpoint
from gantrain.data.shapes_translation import ShapesPaired, ShapesUnpaired, judge_paired, judge_unpaired


def scores(recipe, batch: dict[str, torch.Tensor], dataset) -> dict[str, float]:
    recipe.eval()
    with torch.no_grad():
        outputs = recipe.translate(batch["A"], "AtoB")
    if isinstance(dataset, ShapesUnpaired):
        return judge_unpaired(batch["A"], outputs, target_kind="square")
    return judge_paired(outputs, batch["B"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a run directory or checkpoint file")
    parser.add_argument("--count", type=int, default=256, help="held-out items to translate")
    args = parser.parse_args()

    state = load_checkpoint(args.checkpoint)
    cfg = OmegaConf.create(state["config"])
    dataset = build_dataset(cfg, split="test")
    if not isinstance(dataset, (ShapesUnpaired, ShapesPaired)):
        raise SystemExit("judge_translation.py scores runs on dataset=shapes_unpaired or dataset=shapes_paired.")
    batch = default_collate([dataset[i] for i in range(min(args.count, len(dataset)))])

    torch.manual_seed(cfg.seed)
    untrained = build_recipe(cfg)
    trained = build_recipe(cfg)
    trained.load_state_dict(state["recipe"])
    rows = {"untrained": scores(untrained, batch, dataset), f"step {state['step']}": scores(trained, batch, dataset)}
    names = list(next(iter(rows.values())))
    print(f"{state['choices']['model']} on {state['choices']['dataset']}, {len(batch['A'])} held-out items")
    print(f"{'':<12}" + "".join(f"{name:>15}" for name in names))
    for label, row in rows.items():
        print(f"{label:<12}" + "".join(f"{row[name]:>15.3f}" for name in names))


if __name__ == "__main__":
    main()
