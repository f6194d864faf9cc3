"""How long the training steps wait for data, with the images decoded per batch and kept in memory.

    python scripts/data_wait_bench.py [--out outputs/data_wait_bench] [--scale 1.0]

Three runs, each with ``dataset.in_memory=false`` and with the default (``auto``), through the
real command line on the CPU: the default ``gantrain`` run (DCGAN on the embedded shapes), a
generated folder of 2,000 grayscale 32 x 32 PNGs (``dataset=folder``), and a generated
``unaligned`` set of 500 + 500 JPEGs of 286 x 286 for CycleGAN at 128 (resize to 143, random
crop).  Each run's TensorBoard events give ``perf/data_wait_share`` and ``perf/images_per_s``
averaged over its log intervals after the first (which includes the start).  Prints a markdown
table.  A benchmark, not a test: the figures are timings of this machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gantrain.data.shapes import ShapesDataset


def shapes_folder(folder: Path, count: int) -> Path:
    """``count`` grayscale 32 x 32 PNGs of the embedded shapes (seed 7), as a user's folder of images."""
    if folder.is_dir():
        return folder
    folder.mkdir(parents=True)
    shapes = ShapesDataset(image_size=32, num_samples=count, channels=1, seed=7)
    for index in range(count):
        pixels = ((shapes[index][0][0].numpy() + 1) * 127.5).round().astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(folder / f"{index:05d}.png")
    return folder


def unaligned_folder(root: Path, count: int, side: int = 286) -> Path:
    """trainA/ trainB/ testA/ testB/ of ``count`` smooth colour JPEGs of ``side`` pixels, as CycleGAN's data."""
    if root.is_dir():
        return root
    rng = np.random.default_rng(3)
    ramp = np.linspace(0, 1, side)
    for split, number in (("train", count), ("test", 8)):
        for domain, tint in (("A", (1.0, 0.6, 0.3)), ("B", (0.3, 0.6, 1.0))):
            folder = root / f"{split}{domain}"
            folder.mkdir(parents=True)
            for index in range(number):
                phase = rng.uniform(0, 2 * np.pi, 3)
                waves = [np.sin(6 * ramp[None, :] + phase[c]) * np.cos(4 * ramp[:, None] + phase[c]) for c in range(3)]
                pixels = np.stack([(0.5 + 0.5 * w) * t for w, t in zip(waves, tint, strict=True)], axis=-1)
                Image.fromarray((pixels * 255).astype(np.uint8)).save(folder / f"{index:04d}.jpg", quality=90)
    return root


def averaged(run_dir: Path, tag: str) -> float:
    """The tag's mean over the run's log intervals, leaving out the first (it includes the start-up)."""
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0}).Reload()
    values = [event.value for event in events.Scalars(tag)]
    return statistics.fmean(values[1:] if len(values) > 1 else values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("outputs/data_wait_bench"))
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every run's number of steps")
    args = parser.parse_args()
    data = args.out / "data"
    digits = shapes_folder(data / "gray_png", 2000)
    photos = unaligned_folder(data / "unaligned_286", 500)
    cases = {
        "default run (DCGAN, shapes)": (["trainer.log_every=100"], 600),
        "folder of 2,000 grayscale 32 px PNGs": (
            ["dataset=folder", f"dataset.path={digits}", "dataset.channels=1", "dataset.image_size=32",
             "trainer.log_every=100"], 600),
        "unaligned 500 + 500 JPEGs of 286 px, CycleGAN 128": (
            ["model=cyclegan", "dataset=unaligned", f"dataset.path={photos}", "dataset.image_size=128",
             "dataset.load_size=143", "trainer.max_epochs=null", "trainer.log_every=10",
             "trainer.sample_every=1000", "trainer.eval_every=0"], 60),
    }
    print("| data | dataset.in_memory | data wait share | images/s |")
    print("|---|---|---|---|")
    for name, (overrides, steps) in cases.items():
        for in_memory in ("false", "auto"):
            run_dir = args.out / f"{name.split()[0]}_{in_memory}"
            command = [sys.executable, "-m", "gantrain", *overrides, "device=cpu", "seed=0",
                       f"trainer.max_steps={max(2, round(steps * args.scale))}", f"dataset.in_memory={in_memory}",
                       "trainer.progress=false", f"hydra.run.dir={run_dir}"]
            subprocess.run(command, check=True, env=os.environ, stdout=subprocess.DEVNULL)
            wait = averaged(run_dir, "perf/data_wait_share")
            speed = averaged(run_dir, "perf/images_per_s")
            print(f"| {name} | {in_memory} | {wait:.3f} | {speed:,.3g} |", flush=True)


if __name__ == "__main__":
    main()
