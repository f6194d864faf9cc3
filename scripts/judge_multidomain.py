"""Score a StarGAN or StarGAN v2 checkpoint trained on the embedded shapes, on held-out data.

    python scripts/judge_multidomain.py outputs/stargan/shapes_attributes/<run> [--count 256]

Every one of the first ``count`` test images is translated to the four targets
that change one attribute (the two other colours, the two other shapes), with
the trained networks and with the same networks freshly initialised.  The judge
checks that each translation shows the target colour and shape at the input's
position and size; ``all_kept`` is the attribute-transfer accuracy.  StarGAN v2
is scored twice: with random styles (latent-guided) and with the style of a
held-out image of the target domain (reference-guided).
"""

from __future__ import annotations

import torch
from judging import load_run, print_scores

from gantrain.data.shapes import SHAPE_NAMES
from gantrain.data.shapes_attributes import COLOUR_NAMES, ShapesAttributes, judge_attributes
from gantrain.recipes.stargan import StarGAN


def one_change_targets(attributes: list[dict]) -> list[tuple[int, str, str]]:
    """(item, target colour, target shape) for every attribute change of one group."""
    targets = []
    for item, shape in enumerate(attributes):
        colour, kind = shape["colour_name"], shape["kind"]
        targets += [(item, other, kind) for other in COLOUR_NAMES if other != colour]
        targets += [(item, colour, other) for other in SHAPE_NAMES if other != kind]
    return targets


@torch.no_grad()
def translations(recipe, dataset: ShapesAttributes, images, targets, guide: str) -> torch.Tensor:
    recipe.eval()
    items = torch.tensor([item for item, _, _ in targets])
    inputs = images[items]
    if isinstance(recipe, StarGAN):
        labels = torch.stack([torch.as_tensor(dataset.label_of(c, s)) for _, c, s in targets])
        return recipe.generator(inputs, recipe.labels.condition(labels))
    domains = torch.tensor([dataset.label_of(c, s) for _, c, s in targets])
    if guide == "latent":
        styles = recipe.mapping_ema(recipe.latent(len(targets), inputs.device), domains)
    else:  # a held-out image of the target domain, different for each translation
        pool = dataset.domain_indices()
        picks = [pool[d][n % len(pool[d])] for n, d in enumerate(domains.tolist())]
        references = torch.stack([dataset[p][0] for p in picks])
        styles = recipe.style_encoder_ema(references, domains)
    return recipe.generator_ema(inputs, styles)


def main() -> None:
    count, state, dataset, untrained, trained = load_run(__doc__)
    if not isinstance(dataset, ShapesAttributes):
        raise SystemExit("judge_multidomain.py scores runs on dataset=shapes_attributes or dataset=shapes_domains.")
    images = torch.stack([dataset[i][0] for i in range(count)])
    targets = one_change_targets([dataset.attributes(i) for i in range(count)])
    guides = ["labels"] if isinstance(trained, StarGAN) else ["latent", "reference"]
    rows = {}
    for label, recipe in (("untrained", untrained), (f"step {state['step']}", trained)):
        for guide in guides:
            torch.manual_seed(0)
            outputs = translations(recipe, dataset, images, targets, guide)
            items = torch.tensor([item for item, _, _ in targets])
            scores = judge_attributes(images[items], outputs, [c for _, c, _ in targets], [s for _, _, s in targets])
            rows[label if len(guides) == 1 else f"{label} {guide}"] = scores
    title = f"{state['choices']['model']} on {state['choices']['dataset']}: {count} held-out images"
    print_scores(f"{title}, {len(targets)} translations", rows)


if __name__ == "__main__":
    main()
