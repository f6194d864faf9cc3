"""Train every GAN family on its embedded shapes data for a fixed CPU budget and score it, in one command.

    python scripts/quality_benchmark.py [--scale 1.0] [--only dcgan,stargan] [--images docs/images]

Each family trains through the real command line (``gantrain model=X dataset=Y
...``, with the data's tuning file applied as usual) on the CPU, two runs at a time
with one thread each (``--jobs``, ``OMP_NUM_THREADS=1``): the budget is sized for a
2-core machine, about 50 minutes in all.  ``scripts/judge.py`` then scores each
final checkpoint on held-out data with ``gantrain.task_metrics`` next to the same
networks untrained (same seed).  The result is a markdown table on stdout, a JSON file
and, with ``--images``, each run's final sample grid as ``<family>.png``.

Step budgets come from the throughput of one thread while another run uses the
second core (``steps_per_s`` below): StarGAN, CycleGAN, StarGAN v2 and pix2pix from
docs/multidomain_shapes.md and docs/translation_shapes.md, the noise models
measured on 2026-11-27.  CycleGAN and pix2pix count epochs, so they keep their
tuning's 10 epochs (5 at the full rate, 5 of linear decay) of batch 4 and reach their
budget through the epoch size; StarGAN keeps its half-constant, half-decaying
schedule.  ``--scale`` multiplies every budget (0.01 is a smoke run of a minute or two).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from PIL import Image

JUDGE = Path(__file__).with_name("judge.py")
EPOCHS, EPOCH_BATCH = 10, 4
"""The CycleGAN and pix2pix shapes tunings' epochs and batch size."""
MAX_GRID_SIDE = 512
"""Sample grids copied for the docs are shrunk to at most this many pixels a side."""


def step_budget(steps: int) -> list[str]:
    return [f"trainer.max_steps={steps}"]


def stargan_budget(steps: int) -> list[str]:
    """Half the steps at the full rate, half decaying to zero, as the shapes tuning does."""
    return [*step_budget(steps), f"model.n_steps={steps // 2}", f"model.n_steps_decay={steps - steps // 2}"]


def epoch_budget(steps: int) -> list[str]:
    """Ten epochs (5 + 5 of decay) of batch 4 whose size makes ``steps`` in all."""
    pairs = max(EPOCH_BATCH, round(steps * EPOCH_BATCH / EPOCHS))
    return [
        f"dataset.num_samples={pairs}",
        f"trainer.batch_size={EPOCH_BATCH}",
        f"trainer.max_epochs={EPOCHS}",
        f"model.n_epochs={EPOCHS // 2}",
        f"model.n_epochs_decay={EPOCHS - EPOCHS // 2}",
    ]


@dataclass(frozen=True)
class Family:
    model: str
    dataset: str
    steps: int
    steps_per_s: float
    """Training steps per second on one thread beside another run (see the module docstring)."""
    headline: tuple[str, ...]
    """The task metrics shown in the table."""
    grid: str
    """The sample grid (``samples/<grid>_<step>.png``) that shows the family's task best."""
    budget: Callable[[int], list[str]] = step_budget

    def estimated_s(self, scale: float) -> float:
        return scaled(self.steps, scale) / self.steps_per_s


NOISE_SCORES = ("valid_share", "coverage")
FAMILIES = {
    family.model: family
    for family in (
        Family("gan", "shapes", 3000, 9.0, NOISE_SCORES, "samples"),
        Family("dcgan", "shapes", 5000, 12.5, NOISE_SCORES, "samples"),  # the default run
        Family("wgan", "shapes", 3000, 5.2, NOISE_SCORES, "samples"),  # critic steps
        Family("wgan_gp", "shapes", 2000, 2.7, NOISE_SCORES, "samples"),  # critic steps
        Family("cyclegan", "shapes_unpaired", 2500, 2.4, ("all_kept",), "A_to_B", epoch_budget),
        Family("pix2pix", "shapes_paired", 5000, 17.0, ("psnr", "ssim"), "translation", epoch_budget),
        Family("stargan", "shapes_attributes", 8000, 6.0, ("all_kept", "classifier_accuracy"), "translations",
               stargan_budget),
        Family("stargan_v2", "shapes_domains", 2000, 2.5, ("latent_all_kept", "reference_all_kept"),
               "latent_guided"),
    )
}


def scaled(steps: int, scale: float) -> int:
    return max(1, round(steps * scale))


def run_family(family: Family, scale: float, out: Path, count: int, images: Path | None) -> dict:
    """Train, score and (with ``images``) copy the final grid; returns the family's JSON record."""
    run_dir = out / family.model
    overrides = [f"model={family.model}", f"dataset={family.dataset}", "device=cpu",
                 *family.budget(scaled(family.steps, scale)), f"hydra.run.dir={run_dir}"]
    environment = os.environ | {"OMP_NUM_THREADS": "1"}
    record = {"family": family.model, "dataset": family.dataset, "overrides": overrides, "run_dir": str(run_dir)}
    with open(out / f"{family.model}.log", "w") as log:
        start = time.perf_counter()
        trained = subprocess.run([sys.executable, "-m", "gantrain", *overrides], stdout=log, stderr=log,
                                 env=environment, check=False)
        record["train_s"] = time.perf_counter() - start
        if trained.returncode != 0:
            return record | {"error": f"training exited with {trained.returncode}, see {log.name}"}
        scores_file = run_dir / "task_metrics.json"
        judged = subprocess.run([sys.executable, str(JUDGE), str(run_dir), "--count", str(count),
                                 "--json", str(scores_file)], stdout=log, stderr=log, env=environment, check=False)
        if judged.returncode != 0:
            return record | {"error": f"scoring exited with {judged.returncode}, see {log.name}"}
    if images is not None:
        copy_grid(run_dir, family, images)
    scores = json.loads(scores_file.read_text())
    return record | {key: scores[key] for key in ("step", "scored", "untrained", "trained")}


def copy_grid(run_dir: Path, family: Family, images: Path) -> None:
    """The run's last ``family.grid`` PNG as ``images/<family>.png``, shrunk if large."""
    final = max((run_dir / "samples").glob(f"{family.grid}_*.png"))  # steps are zero-padded
    with Image.open(final) as grid:
        grid.thumbnail((MAX_GRID_SIDE, MAX_GRID_SIDE), Image.Resampling.LANCZOS)
        grid.save(images / f"{family.model}.png", optimize=True)


def duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def markdown_table(records: list[dict]) -> str:
    lines = ["| family | dataset | steps | wall time | untrained -> trained |", "|---|---|---|---|---|"]
    for record in records:
        if "error" in record:
            scores = f"failed: {record['error']}"
            steps = "-"
        else:
            headline = FAMILIES[record["family"]].headline
            untrained, trained = record["untrained"], record["trained"]
            scores = ", ".join(f"{name} {untrained[name]:.3f} -> {trained[name]:.3f}" for name in headline)
            steps = f"{record['step']:,}"
        lines.append(
            f"| {record['family']} | {record['dataset']} | {steps} | {duration(record['train_s'])} | {scores} |"
        )
    return "\n".join(lines)


def expected_wall_s(families: list[Family], scale: float, jobs: int) -> float:
    """Training time with the longest runs started first, each on the lane that frees first."""
    lanes = [0.0] * jobs
    for family in families:
        lanes[lanes.index(min(lanes))] += family.estimated_s(scale)
    return max(lanes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every step budget (0.01: smoke run)")
    parser.add_argument("--only", help=f"comma-separated families, of {','.join(FAMILIES)}")
    parser.add_argument("--out", type=Path, help="run directories (default outputs/quality_benchmark/<time>)")
    parser.add_argument("--images", type=Path, help="copy each family's final sample grid here as <family>.png")
    parser.add_argument("--json", type=Path, help="results file (default <out>/quality_benchmark.json)")
    parser.add_argument("--count", type=int, default=256, help="held-out items or samples to score")
    parser.add_argument("--jobs", type=int, default=2, help="trainings at a time, one thread each")
    args = parser.parse_args()

    names = args.only.split(",") if args.only else list(FAMILIES)
    unknown = sorted(set(names) - set(FAMILIES))
    if unknown:
        parser.error(f"unknown families {', '.join(unknown)}; choose from {', '.join(FAMILIES)}")
    families = sorted((FAMILIES[name] for name in names), key=lambda f: f.estimated_s(args.scale), reverse=True)
    out = (args.out or Path("outputs/quality_benchmark") / f"{datetime.now():%Y-%m-%d_%H-%M-%S}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.images:
        args.images.mkdir(parents=True, exist_ok=True)
    print(f"{len(families)} families, {args.jobs} at a time, expected training time "
          f"{duration(expected_wall_s(families, args.scale, args.jobs))}; runs in {out}", flush=True)

    start = time.perf_counter()

    def run_and_report(family: Family) -> dict:
        record = run_family(family, args.scale, out, args.count, args.images)
        outcome = record.get("error") or f"{record['step']:,} steps trained in {duration(record['train_s'])}"
        print(f"[{duration(time.perf_counter() - start)}] {family.model}: {outcome}", flush=True)
        return record

    with ThreadPoolExecutor(args.jobs) as pool:
        finished = {record["family"]: record for record in pool.map(run_and_report, families)}
    records = [finished[name] for name in names]
    total_s = time.perf_counter() - start
    json_file = args.json or out / "quality_benchmark.json"
    json_file.write_text(json.dumps({"scale": args.scale, "total_s": total_s, "runs": records}, indent=2) + "\n")
    print(f"\n{markdown_table(records)}\n\nTotal wall time {duration(total_s)}; results in {json_file}")
    if any("error" in record for record in records):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
