"""Train every GAN family on its embedded shapes data and score it, in one command.

    python scripts/quality_benchmark.py [--seeds 0,1,2] [--only dcgan,stargan] [--scale 1.0] [--images docs/images]

The families are the model configs in ``configs/model/``: each trains through the real
command line (``gantrain model=X dataset=Y seed=S``) on the embedded dataset its recipe
names (``Recipe.embedded_dataset``), with that pair's tuning file applied as usual, on the
CPU, ``--jobs`` runs at a time with ``--threads`` threads each.  ``scripts/judge.py``
then scores each final checkpoint on held-out data with ``gantrain.task_metrics`` next
to the same networks untrained.  The result is a markdown table of the recipe's headline
metrics (``Recipe.headline_metrics``) with the mean and range over the seeds and every
seed's figure, a JSON file and, with ``--images``, the first seed's final sample grid as
``<family>.png``.

``--scale`` multiplies the training length (0.01 is a smoke run of a minute or two): the
number of steps, or for families that count epochs the size of an epoch
(``dataset.num_samples``), so that their learning-rate schedules keep their shape.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from hydra import compose, initialize_config_module
from hydra.utils import get_object
from PIL import Image

import gantrain.cli

JUDGE = Path(__file__).with_name("judge.py")
CONFIGS = Path(gantrain.cli.__file__).parent / "configs"
MAX_GRID_SIDE = 512
"""Sample grids copied for the docs are shrunk to at most this many pixels a side."""


@dataclass(frozen=True)
class Family:
    model: str
    dataset: str
    headline: tuple[str, ...]
    """The task metrics shown in the table."""
    max_steps: int | None
    max_epochs: int | None
    num_samples: int

    def budget(self, scale: float) -> list[str]:
        """Overrides that scale the training length (none at scale 1)."""
        if scale == 1.0:
            return []
        if self.max_epochs is not None:
            return [f"dataset.num_samples={max(1, round(self.num_samples * scale))}"]
        return [f"trainer.max_steps={max(1, round(self.max_steps * scale))}"]


def discover_families() -> dict[str, Family]:
    """Every model config, on its recipe's embedded dataset, with the training length its tuning sets."""
    families = {}
    with initialize_config_module("gantrain.configs", version_base="1.3"):
        for path in sorted((CONFIGS / "model").glob("*.yaml")):
            recipe = get_object(compose("train", overrides=[f"model={path.stem}"]).model._target_)
            cfg = compose("train", overrides=[f"model={path.stem}", f"dataset={recipe.embedded_dataset}"])
            families[path.stem] = Family(
                path.stem, recipe.embedded_dataset, recipe.headline_metrics, cfg.trainer.max_steps,
                cfg.trainer.max_epochs, cfg.dataset.num_samples,
            )
    return families


def run_family(family: Family, seed: int, args: argparse.Namespace, out: Path) -> dict:
    """Train and score one seed; returns its JSON record."""
    run_dir = out / f"{family.model}_seed{seed}"
    overrides = [f"model={family.model}", f"dataset={family.dataset}", "device=cpu", f"seed={seed}",
                 *family.budget(args.scale), f"hydra.run.dir={run_dir}"]
    environment = os.environ | {"OMP_NUM_THREADS": str(args.threads)}
    record = {"family": family.model, "seed": seed, "dataset": family.dataset, "overrides": overrides,
              "run_dir": str(run_dir)}
    with open(out / f"{family.model}_seed{seed}.log", "w") as log:
        start = time.perf_counter()
        trained = subprocess.run([sys.executable, "-m", "gantrain", *overrides], stdout=log, stderr=log,
                                 env=environment, check=False)
        record["train_s"] = time.perf_counter() - start
        if trained.returncode != 0:
            return record | {"error": f"training exited with {trained.returncode}, see {log.name}"}
        scores_file = run_dir / "task_metrics.json"
        judged = subprocess.run([sys.executable, str(JUDGE), str(run_dir), "--count", str(args.count),
                                 "--json", str(scores_file)], stdout=log, stderr=log, env=environment, check=False)
        if judged.returncode != 0:
            return record | {"error": f"scoring exited with {judged.returncode}, see {log.name}"}
    if args.images is not None and seed == args.seeds[0]:
        copy_grid(run_dir, family.model, args.images)
    scores = json.loads(scores_file.read_text())
    return record | {key: scores[key] for key in ("step", "scored", "untrained", "trained")}


def copy_grid(run_dir: Path, model: str, images: Path) -> None:
    """The run's final sample grid as ``images/<model>.png``, shrunk if large.

    The grids of the last step are the recipe's visuals (the real batch is logged at step 0
    only); of several, the first by name.
    """
    grids = sorted((run_dir / "samples").glob("*.png"))
    last_step = max(path.stem.rsplit("_", 1)[1] for path in grids)  # steps are zero-padded
    final = next(path for path in grids if path.stem.endswith(f"_{last_step}"))
    with Image.open(final) as grid:
        grid.thumbnail((MAX_GRID_SIDE, MAX_GRID_SIDE), Image.Resampling.LANCZOS)
        grid.save(images / f"{model}.png", optimize=True)


def duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def summary(values: list[float]) -> str:
    """The mean, and with several seeds the range and each seed's value."""
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ({min(values):.3f}-{max(values):.3f}; {', '.join(f'{v:.3f}' for v in values)})"


def markdown_table(families: list[Family], records: list[dict]) -> str:
    lines = ["| family | dataset | steps | wall time per seed | untrained | trained: mean (range; per seed) |",
             "|---|---|---|---|---|---|"]
    for family in families:
        runs = [record for record in records if record["family"] == family.model]
        failed = [record for record in runs if "error" in record]
        if failed:
            lines.append(f"| {family.model} | {family.dataset} | - | - | - | failed: {failed[0]['error']} |")
            continue
        untrained = ", ".join(f"{name} {runs[0]['untrained'][name]:.3f}" for name in family.headline)
        trained = "; ".join(
            f"{name} {summary([run['trained'][name] for run in runs])}" for name in family.headline
        )
        wall = duration(statistics.mean(run["train_s"] for run in runs))
        lines.append(f"| {family.model} | {family.dataset} | {runs[0]['step']:,} | {wall} | {untrained} | {trained} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, each a full run (default 0)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every training length (0.01: smoke run)")
    parser.add_argument("--only", help="comma-separated families (default: every configs/model/*.yaml)")
    parser.add_argument("--out", type=Path, help="run directories (default outputs/quality_benchmark/<time>)")
    parser.add_argument("--images", type=Path, help="copy each family's final sample grid here as <family>.png")
    parser.add_argument("--json", type=Path, help="results file (default <out>/quality_benchmark.json)")
    parser.add_argument("--count", type=int, default=256, help="held-out items or samples to score")
    parser.add_argument("--jobs", type=int, default=1, help="trainings at a time")
    parser.add_argument("--threads", type=int, default=2, help="threads of each training (OMP_NUM_THREADS)")
    args = parser.parse_args()
    args.seeds = [int(seed) for seed in args.seeds.split(",")]

    known = discover_families()
    names = args.only.split(",") if args.only else list(known)
    unknown = sorted(set(names) - set(known))
    if unknown:
        parser.error(f"unknown families {', '.join(unknown)}; choose from {', '.join(known)}")
    families = [known[name] for name in names]
    out = (args.out or Path("outputs/quality_benchmark") / f"{datetime.now():%Y-%m-%d_%H-%M-%S}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.images:
        args.images.mkdir(parents=True, exist_ok=True)
    jobs = [(family, seed) for family in families for seed in args.seeds]
    print(f"{len(families)} families x {len(args.seeds)} seeds, {args.jobs} at a time with {args.threads} "
          f"thread(s) each; runs in {out}", flush=True)

    start = time.perf_counter()

    def run_and_report(job: tuple[Family, int]) -> dict:
        record = run_family(*job, args, out)
        outcome = record.get("error") or f"{record['step']:,} steps trained in {duration(record['train_s'])}"
        print(f"[{duration(time.perf_counter() - start)}] {job[0].model} seed {job[1]}: {outcome}", flush=True)
        return record

    with ThreadPoolExecutor(args.jobs) as pool:
        records = list(pool.map(run_and_report, jobs))
    total_s = time.perf_counter() - start
    json_file = args.json or out / "quality_benchmark.json"
    json_file.write_text(json.dumps({"scale": args.scale, "seeds": args.seeds, "total_s": total_s,
                                     "runs": records}, indent=2) + "\n")
    print(f"\n{markdown_table(families, records)}\n\nTotal wall time {duration(total_s)}; results in {json_file}")
    if any("error" in record for record in records):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
