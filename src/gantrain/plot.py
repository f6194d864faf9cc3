"""``gantrain-plot``: a run's losses and quality curves as one PNG, without TensorBoard.

    gantrain-plot outputs/dcgan/shapes/<run>                       # <run>/curves.png, the default panels
    gantrain-plot <run> --output curves.png --panels loss/generator,loss/discriminator quality/valid_share

It reads the run's ``metrics.csv`` (written by every run at its logging cadence). Each
``--panels`` argument is one chart: comma-separated tags drawn against the step; by default
the two players' losses, D's outputs or the critic's estimate, and the sample quality, where
the run logged them.  Needs matplotlib (``pip install "gantrain[plot]"``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gantrain.build import report_user_errors
from gantrain.errors import ConfigError
from gantrain.run_log import METRICS_CSV, read_metrics_table

DEFAULT_PANELS = (
    "loss/generator,loss/discriminator",
    "discriminator/D(x),discriminator/D(G(z))",
    "critic/wasserstein_estimate",
    "quality/valid_share,quality/coverage",
    "quality/sample_diversity",
    "eval/valid_share,eval/all_kept,eval/psnr",
)


def series(table: dict[int, dict[str, float]], tag: str) -> tuple[list[int], list[float]]:
    steps = [step for step in sorted(table) if tag in table[step]]
    return steps, [table[step][tag] for step in steps]


def plot_run(run: Path, output: Path, panels: list[str] | None = None, title: str | None = None) -> Path:
    """Draw the panels of the run's ``metrics.csv`` into ``output``; returns it."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no display
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError(
            'gantrain-plot draws with matplotlib, which is not installed: pip install "gantrain[plot]".'
        ) from None
    table_file = run / METRICS_CSV
    if not table_file.is_file():
        raise ConfigError(
            f"No {METRICS_CSV} in {run}: pass the folder of a gantrain run (outputs/<model>/<dataset>/<time>); "
            f"every run writes it at trainer.log_every."
        )
    table = read_metrics_table(table_file)
    known = {tag for row in table.values() for tag in row}
    if panels is None:  # the default panels, each with the tags this run logged
        panels = [",".join(t for t in p.split(",") if t in known) for p in DEFAULT_PANELS]
        panels = [panel for panel in panels if panel]
    unknown = sorted({tag for panel in panels for tag in panel.split(",")} - known)
    if unknown:
        raise ConfigError(
            f"{run} logged no {', '.join(unknown)}; it logged: {', '.join(sorted(known))}."
        )
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
    for axis, panel in zip(axes[0], panels, strict=True):
        for tag in panel.split(","):
            axis.plot(*series(table, tag), label=tag, linewidth=1.2)
        axis.set_xlabel("step")
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=90)
    plt.close(figure)
    return output


@report_user_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="gantrain-plot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a run directory (it holds metrics.csv)")
    parser.add_argument("--output", type=Path, help="the PNG to write (default: <run>/curves.png)")
    parser.add_argument("--panels", nargs="+", help="charts, each comma-separated tags (default: the usual ones)")
    parser.add_argument("--title")
    args = parser.parse_args(argv)
    written = plot_run(args.run, args.output or args.run / "curves.png", args.panels, args.title)
    print(f"Wrote {written}")


if __name__ == "__main__":
    main()
