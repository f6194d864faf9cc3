"""Score a CycleGAN or pix2pix checkpoint trained on the embedded shapes pairs, on held-out data.

    python scripts/judge_translation.py outputs/cyclegan/shapes_unpaired/<run> [--count 256]

Translates the first ``count`` items of the test split (A -> B) with the trained
generator and with the same networks freshly initialised, and prints the judges'
scores for both: shape / colour / position kept for ``shapes_unpaired``, L1 and
PSNR against the known target for ``shapes_paired``.
"""

from __future__ import annotations

import torch
from judging import load_run, print_scores
from torch.utils.data import default_collate

from gantrain.data.shapes_translation import ShapesPaired, ShapesUnpaired, judge_paired, judge_unpaired


def scores(recipe, batch: dict[str, torch.Tensor], dataset) -> dict[str, float]:
    recipe.eval()
    with torch.no_grad():
        outputs = recipe.translate(batch["A"], "AtoB")
    if isinstance(dataset, ShapesUnpaired):
        return judge_unpaired(batch["A"], outputs, target_kind="square")
    return judge_paired(outputs, batch["B"])


def main() -> None:
    count, state, dataset, untrained, trained = load_run(__doc__)
    if not isinstance(dataset, (ShapesUnpaired, ShapesPaired)):
        raise SystemExit("judge_translation.py scores runs on dataset=shapes_unpaired or dataset=shapes_paired.")
    batch = default_collate([dataset[i] for i in range(count)])
    rows = {"untrained": scores(untrained, batch, dataset), f"step {state['step']}": scores(trained, batch, dataset)}
    print_scores(f"{state['choices']['model']} on {state['choices']['dataset']}, {count} held-out items", rows)


if __name__ == "__main__":
    main()
