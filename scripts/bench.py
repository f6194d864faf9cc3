"""Training speed of gantrain's fast path against the fp32 eager baseline, in one process.

For each model, two copies are built from the same seed. The baseline runs as the
reference code does: fp32, eager, contiguous memory, PyTorch's default optimizer loop
(``--baseline`` replaces its device settings and then keeps the optimizer as configured).
The fast path runs the defaults (the precision measured faster on the device type: bf16
autocast on the CPU, fp32 on CUDA; the model's measured memory format; fused Adam) plus
``--fast``.  Both train on the same fixed batches with the same random draws, in
alternating chunks of ``--steps`` steps after ``--warmup`` steps each, so that a slower
or faster period of the machine hits both alike.  Data loading is excluded.  Printed:
images/s of each, the speed-up, peak memory, and the losses after the last step of each
(the fast path should track the baseline's training).

    python scripts/bench.py --models dcgan                       # CPU or GPU, default data
    python scripts/bench.py --models cyclegan --steps 2 --rounds 3 \\
        --overrides dataset=shapes_unpaired dataset.image_size=128 '~tuning'
    python scripts/bench.py --models stargan --fast device.compile=true --json stargan.json
    python scripts/bench.py --models pix2pix --baseline device.channels_last=false \\
        --fast device.channels_last=true        # measure a memory format (both in bf16)

A WGAN, WGAN-GP or StarGAN step is one critic step (the generator steps every n_critic,
and the warm-up lasts at least n_critic steps so that it includes a generator step);
a StarGAN v2 step is the paper's whole iteration.  Peak memory is the CUDA allocator's
peak on a GPU (weights included); on the CPU (Linux) it is the peak resident memory
above the built networks of a fresh process that trains ``--warmup`` steps of that
variant alone (``--no-memory`` skips it).  ``--profile N`` then profiles N more steps of
the fast path: the share of the wall time the device computes (on a GPU, kernel time; a
low share means the host cannot queue work fast enough), on a GPU the host's waits for
the device per step (reads of device values), and the operators that take longest.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_module
from torch.autograd import DeviceType
from torch.utils.data import default_collate

import gantrain.cli  # noqa: F401  (registers the config schemas and resolvers)
from gantrain.build import attach_labels, build_dataset, build_recipe, checked_model
from gantrain.graphs import GRAPH_WARMUP_STEPS
from gantrain.trainer import Trainer

BASELINE = ["device.precision=fp32", "device.channels_last=false", "device.compile=false", "device.cuda_graphs=false"]
DISTINCT_BATCHES = 4  # the steps cycle through this many different batches


class Variant:
    """One copy of the model with its own device settings, weights, optimizers and random stream."""

    def __init__(self, model: str, overrides: list[str], batches_from: Any = None, plain_optimizer: bool = False):
        """``plain_optimizer``: PyTorch's default optimizer implementation, as the reference code uses it."""
        with initialize_config_module("gantrain.configs", version_base="1.3"):
            self.cfg = compose("train", overrides=[f"model={model}", *overrides])
        self.cfg.model = checked_model(self.cfg.model)  # the recipe's schema, with the labels slot StarGAN fills
        if plain_optimizer and "fused" in self.cfg.optimizer:
            self.cfg.optimizer.fused = None
        dataset = build_dataset(self.cfg, in_memory=False)  # a few batches are drawn: rendering them all would take minutes
        attach_labels(self.cfg, dataset, {"model": model, "dataset": "the configured dataset"})
        self.trainer = Trainer(self.cfg.trainer, self.cfg.device, Path(tempfile.gettempdir()), 0, {})
        torch.manual_seed(0)  # the same initial weights for every variant
        self.recipe = build_recipe(self.cfg)
        self.trainer.place(self.recipe)
        self.trainer.compile_networks(self.recipe)
        self.runner = self.trainer.captured_steps(self.recipe)  # CUDA graphs where the settings allow them
        self.step_fn = self.trainer.step_fn
        batch_size = self.cfg.trainer.batch_size
        data = self.recipe.training_data(dataset, seed=0)
        collated = batches_from or [
            default_collate([data[(b * batch_size + i) % len(data)] for i in range(batch_size)])
            for b in range(DISTINCT_BATCHES)
        ]
        self.cpu_batches = collated
        # in-memory datasets: centre crops, so that every variant trains on the same pixels
        self.batches = [self.trainer.to_device(b, dataset, train=False) for b in collated]
        self.rng = torch.get_rng_state()
        self.cuda_rng = torch.cuda.get_rng_state_all() if self.trainer.device.type == "cuda" else None
        self.steps = 0
        self.seconds = 0.0
        self.peak_bytes = 0
        self.losses: dict[str, float] = {}

    def synchronize(self) -> None:
        if self.trainer.device.type == "cuda":
            torch.cuda.synchronize()

    def train(self, count: int, timed: bool = True) -> None:
        """``count`` more steps, continuing this variant's own random stream."""
        torch.set_rng_state(self.rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)
            torch.cuda.reset_peak_memory_stats()
        self.synchronize()
        start = time.perf_counter()
        latest: dict[str, torch.Tensor] = {}
        for _ in range(count):
            batch = self.batches[self.steps % len(self.batches)]
            with self.trainer.autocast(graphs=self.runner is not None):
                if self.runner is None:  # the gradient norms as training records them: on logged steps only
                    self.step_fn.begin_step(self.steps + 1, record_norms=False)
                    latest.update(self.recipe.train_step(batch, self.step_fn))
                else:
                    self.step_fn.begin_step(self.steps + 1)
                    latest.update(self.runner(batch, self.cfg.trainer.batch_size))
            self.step_fn.end_iteration()
            self.steps += 1
        self.step_fn.read_deferred()  # the NaN checks that training reads at its logging cadence
        self.synchronize()
        if timed:
            self.seconds += time.perf_counter() - start
        self.losses.update({tag: float(value) for tag, value in latest.items() if tag.startswith("loss/")})
        self.rng = torch.get_rng_state()
        if self.cuda_rng is not None:
            self.cuda_rng = torch.cuda.get_rng_state_all()
            if timed:  # the warm-up's peak holds cuDNN's one-off algorithm trials, paid by whichever variant runs first
                self.peak_bytes = max(self.peak_bytes, torch.cuda.max_memory_allocated())

    def describe(self) -> dict[str, Any]:
        trainer = self.trainer
        return {
            "precision": trainer.precision.value,
            "channels_last": trainer.channels_last,
            "compile": trainer.compile,
            "cuda_graphs": self.runner is not None,
        }

    def warmup_steps(self, requested: int) -> int:
        """Enough steps for every kind of update to run once (a WGAN or StarGAN generator steps every n_critic),
        so that cuDNN's per-shape search is over; with CUDA graphs, until every update pattern is captured."""
        every = getattr(self.recipe, "n_critic", 1)
        return max(requested, every * (GRAPH_WARMUP_STEPS + 1) if self.runner is not None else every)


def resident_mib(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process, from Linux's /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_cpu_memory(model: str, overrides: list[str], steps: int) -> float:
    """Training's peak resident memory (MiB) above the built networks, in a fresh process.

    That is activations, gradients and optimizer state: the interpreter, torch and the
    weights are left out, which the two variants share.
    """
    variant = Variant(model, overrides)
    Path("/proc/self/clear_refs").write_text("5")  # restart the peak (VmHWM) from the current RSS
    built = resident_mib("VmRSS")
    variant.train(steps)
    return resident_mib("VmHWM") - built


def profile(variant: Variant, steps: int) -> dict[str, Any]:
    """Where ``steps`` more steps of ``variant`` spend their time (see ``--profile``)."""
    on_cuda = variant.trainer.device.type == "cuda"
    activities = [torch.profiler.ProfilerActivity.CPU]
    if on_cuda:
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as profiler:
        start = time.perf_counter()
        variant.train(steps, timed=False)
        wall = time.perf_counter() - start
    events = profiler.key_averages()
    own_time = "self_device_time_total" if on_cuda else "self_cpu_time_total"  # microseconds
    # on a GPU, a kernel's time shows both as its own entry and under the operator that launched
    # it: the busy time sums the kernels, the slowest list names the operators
    kernels = [event for event in events if event.device_type == DeviceType.CUDA]
    operators = [event for event in events if event.device_type == DeviceType.CPU]
    busy = sum(event.self_device_time_total for event in kernels) / 1e6 if on_cuda else wall
    slowest = sorted(operators, key=lambda event: getattr(event, own_time), reverse=True)[:8]
    return {
        "steps": steps,
        "wall_s_per_step": wall / steps,
        "device_busy_share": busy / wall,
        "host_waits_per_step": sum(e.count for e in events if e.key == "cudaStreamSynchronize") / steps
        if on_cuda else None,
        "graph_launches_per_step": sum(e.count for e in events if e.key == "cudaGraphLaunch") / steps
        if on_cuda else None,
        "slowest_operators": [
            {"name": e.key, "calls_per_step": e.count / steps, "ms_per_step": getattr(e, own_time) / 1e3 / steps}
            for e in slowest
        ],
        # inside a replayed graph no operator launches the kernels: the kernels themselves say where the card's time goes
        "kernels_per_step": sum(e.count for e in kernels) / steps if on_cuda else None,
        "slowest_kernels": [
            {"name": e.key[:120], "calls_per_step": e.count / steps, "ms_per_step": e.self_device_time_total / 1e3 / steps}
            for e in sorted(kernels, key=lambda event: event.self_device_time_total, reverse=True)[:12]
        ],
    }


def bench(model: str, args: argparse.Namespace) -> dict[str, Any]:
    overrides = {
        "baseline": [*args.overrides, *args.baseline],
        "fast": [*args.overrides, *args.fast],
    }
    baseline = Variant(model, overrides["baseline"], plain_optimizer=args.baseline == BASELINE)
    fast = Variant(model, overrides["fast"], batches_from=baseline.cpu_batches)
    variants = {"baseline": baseline, "fast": fast}
    for variant in variants.values():
        variant.train(variant.warmup_steps(args.warmup), timed=False)
    chunk_seconds: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, variant in variants.items():
            before = variant.seconds
            variant.train(args.steps)
            chunk_seconds[name].append(variant.seconds - before)

    cfg = baseline.cfg
    images = args.steps * args.rounds * cfg.trainer.batch_size
    device = baseline.trainer.device
    row: dict[str, Any] = {
        "model": model,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "image_size": cfg.dataset.image_size,
        "batch_size": cfg.trainer.batch_size,
        "timed_steps": args.steps * args.rounds,
        "overrides": args.overrides,
    }
    for name, variant in variants.items():
        if device.type == "cuda":
            peak = variant.peak_bytes / 2**20
        elif args.memory:
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                peak = pool.apply(peak_cpu_memory, (model, overrides[name], max(args.warmup, 1)))
        else:
            peak = None
        row[name] = {
            **variant.describe(),
            "overrides": overrides[name],
            "images_per_s": images / variant.seconds,
            "median_s_per_step": statistics.median(chunk_seconds[name]) / args.steps,
            "peak_memory_mib": peak,
            "losses_after_last_step": variant.losses,
        }
    row["speedup"] = row["fast"]["images_per_s"] / row["baseline"]["images_per_s"]
    if args.profile:
        row["fast"]["profile"] = profile(fast, args.profile)
    return row


def print_row(row: dict[str, Any]) -> None:
    memory = {name: row[name]["peak_memory_mib"] for name in ("baseline", "fast")}
    print(f"\n{row['model']} {row['image_size']}x{row['image_size']} batch {row['batch_size']}, "
          f"{row['timed_steps']} timed steps each, {row['device']}")
    for name in ("baseline", "fast"):
        variant = row[name]
        settings = f"{variant['precision']}{' channels_last' if variant['channels_last'] else ''}" \
                   f"{' compiled' if variant['compile'] else ''}{' graphs' if variant['cuda_graphs'] else ''}"
        peak = "-" if memory[name] is None else f"{memory[name]:.0f} MiB"
        losses = ", ".join(f"{tag.removeprefix('loss/')} {value:.4g}"
                           for tag, value in sorted(variant["losses_after_last_step"].items()))
        print(f"  {name:<8} {settings:<28} {variant['images_per_s']:9.2f} images/s  peak {peak:>9}  {losses}")
    print(f"  speed-up {row['speedup']:.2f}x", flush=True)
    if "profile" in row["fast"]:
        found = row["fast"]["profile"]
        print(f"  fast path profiled: {found['wall_s_per_step'] * 1e3:.1f} ms per step, device busy "
              f"{found['device_busy_share']:.0%}, host waits per step {found['host_waits_per_step']}, graph launches "
              f"per step {found['graph_launches_per_step']}; slowest:")
        for operator in found["slowest_operators"]:
            print(f"    {operator['ms_per_step']:8.2f} ms {operator['calls_per_step']:6.1f}x  {operator['name'][:90]}")
        if found["kernels_per_step"] is not None:
            print(f"  kernels per step {found['kernels_per_step']:.0f}; slowest:")
            for kernel in found["slowest_kernels"]:
                print(f"    {kernel['ms_per_step']:8.2f} ms {kernel['calls_per_step']:6.1f}x  {kernel['name'][:90]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["gan", "dcgan", "wgan", "wgan_gp"])
    parser.add_argument("--overrides", nargs="*", default=[], help="Hydra overrides for both, e.g. device=cpu")
    parser.add_argument("--baseline", nargs="*", default=BASELINE, help="overrides of the baseline")
    parser.add_argument("--fast", nargs="*", default=[], help="overrides of the fast path (default: none)")
    parser.add_argument("--steps", type=int, default=10, help="steps per timed chunk")
    parser.add_argument("--rounds", type=int, default=3, help="timed chunks of each variant, alternating")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="skip the CPU memory measurement")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="then profile N steps of the fast path")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    print(f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")
    results = []
    for model in args.models:
        row = bench(model, args)
        results.append(row)
        print_row(row)
        if args.json:  # after each model, so that a long benchmark keeps what it measured
            Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
