"""Evaluation during training (trainer.eval_every, best checkpoint) and ``gantrain-eval``, through the real CLI."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import read_events, run_cli, tiny

OFFLINE_FID = [
    "metrics.fid=true",
    "metrics.features=random",
    "metrics.num_images=48",
    "metrics.task_images=48",
]


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    """Real-image features of the embedded data are cached here instead of the user's ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_periodic_evaluation_logs_metrics_and_keeps_the_best_checkpoint(workdir, cache_home):
    run_dir = workdir / "run"
    run_cli(
        *tiny("dcgan", "trainer.max_steps=12", "trainer.eval_every=4", "device.precision=fp32",
              "metrics.best=fid", *OFFLINE_FID, f"hydra.run.dir={run_dir}"),
        cwd=workdir,
    )
    scalars, _ = read_events(run_dir)
    fid = scalars["eval/fid"]
    assert sorted(fid) == [4, 8, 12]
    assert {"eval/kid", "eval/valid_share", "eval/coverage", "quality/sample_diversity"} <= scalars.keys()
    best_step = min(fid, key=fid.get)
    best = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)
    assert best["step"] == best_step
    assert best["best"]["metric"] == "fid" and best["best"]["value"] == pytest.approx(fid[best_step], rel=1e-5)
    assert list(cache_home.glob("gantrain/features_random-download_*.pt"))  # computed once, then cached

    # gantrain-eval on the best checkpoint measures the same figures and writes a JSON report beside it
    run_cli(f"checkpoint={run_dir}/checkpoints/best.pt", "device=cpu", *OFFLINE_FID,
            module="gantrain.evaluate", cwd=workdir)
    report = json.loads((run_dir / "checkpoints" / "eval_best.json").read_text())
    assert report["step"] == best_step and report["model"] == "dcgan"
    assert report["metrics"]["fid"] == pytest.approx(fid[best_step], rel=1e-4)
    assert report["metrics"]["valid_share"] == pytest.approx(scalars["eval/valid_share"][best_step], abs=1e-6)


def test_eval_reports_task_metrics_of_a_translation_model(workdir, cache_home):
    run_dir = workdir / "run"
    run_cli(
        "model=pix2pix", "dataset=shapes_paired", "device=cpu", "trainer.max_steps=2", "trainer.batch_size=2",
        "trainer.num_samples=2", "model.ngf=8", "model.ndf=8", "dataset.num_samples=16",
        f"hydra.run.dir={run_dir}", cwd=workdir,
    )
    output = workdir / "report.json"
    # dataset.<key>= replaces a stored dataset setting as the help page spells it (no + needed)
    run_cli(f"checkpoint={run_dir}", "device=cpu", "metrics.task_images=8", f"output={output}",
            "dataset.num_samples=8", module="gantrain.evaluate", cwd=workdir)
    metrics = json.loads(output.read_text())["metrics"]
    assert {"l1", "psnr", "ssim"} <= metrics.keys() and 0 < metrics["l1"] <= 2


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["metrics.best=fid", "trainer.eval_every=0"], "trainer.eval_every=0 runs none"),
        (["trainer.eval_every=2", "metrics.best=psnr"], "metrics.best=psnr is not measured"),
        (["trainer.eval_every=2", "metrics.features=alexnet", "metrics.fid=true"], "metrics.features"),
    ],
)
def test_impossible_evaluation_settings_are_clear_errors(overrides, message, workdir, cache_home):
    result = run_cli(*tiny("dcgan", "trainer.max_steps=2", *overrides), cwd=workdir, check=False)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
