"""Plot a run's TensorBoard scalars as one PNG, for the docs (needs ``pip install -e ".[docs]"``).

    python scripts/plot_run.py outputs/dcgan/shapes/<run> docs/images/dcgan_run.png \\
        --panels loss/generator,loss/discriminator quality/valid_share,quality/sample_diversity

Each ``--panels`` argument is one chart: comma-separated tags drawn against the step.
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a run directory holding events.out.tfevents.*")
    parser.add_argument("output", help="the PNG to write")
    parser.add_argument("--panels", nargs="+", default=["loss/generator,loss/discriminator"])
    parser.add_argument("--title", default=None)
    args = parser.parse_args()

    events = EventAccumulator(args.run, size_guidance={"scalars": 0}).Reload()
    known = set(events.Tags()["scalars"])
    figure, axes = plt.subplots(1, len(args.panels), figsize=(4.2 * len(args.panels), 3.2), squeeze=False)
    for axis, panel in zip(axes[0], args.panels):
        for tag in panel.split(","):
            if tag not in known:
                raise SystemExit(f"{args.run} has no scalar {tag!r}; it has: {', '.join(sorted(known))}")
            points = events.Scalars(tag)
            axis.plot([p.step for p in points], [p.value for p in points], label=tag, linewidth=1.2)
        axis.set_xlabel("step")
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    if args.title:
        figure.suptitle(args.title, fontsize=10)
    figure.tight_layout()
    figure.savefig(args.output, dpi=90)


if __name__ == "__main__":
    main()
