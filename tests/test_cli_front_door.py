"""The front door, through the real command lines: settings that do what they say, commands that explain
themselves, progress and results without TensorBoard, and features that name the extra they need."""

from __future__ import annotations

import csv
import os
import subprocess
import sysconfig
import venv
from pathlib import Path

import pytest
import yaml
from helpers import CYCLEGAN, PIX2PIX, read_events, run_cli, tiny

import gantrain
from gantrain.checkpoint import load_checkpoint

COMMANDS = {  # module -> (command name, its own keys that --help must explain)
    "gantrain": ("gantrain", ["seed=", "resume=", "init_from=", "trainer.max_steps=", "device.cuda_graphs"]),
    "gantrain.sample": ("gantrain-sample", ["checkpoint=", "num_samples=", "seed=", "output="]),
    "gantrain.translate": ("gantrain-translate", ["input=", "direction=", "target=", "reference=", "num_styles=",
                                                  "side_by_side="]),
    "gantrain.evaluate": ("gantrain-eval", ["checkpoint=", "split=", "metrics.fid=", "dataset.<key>="]),
    "gantrain.export": ("gantrain-export", ["format=", "part=", "direction=", "output="]),
    "gantrain.import_weights": ("gantrain-import", ["source=", "weights=", "labels=", "model.<setting>="]),
}


@pytest.mark.parametrize("model", ["cyclegan", "pix2pix"])
def test_a_typed_max_steps_wins_over_the_epochs_of_the_model_config(model, workdir):
    args = {"cyclegan": CYCLEGAN, "pix2pix": PIX2PIX}[model]
    args = [arg for arg in args if not arg.startswith("trainer.max_epochs")]  # the model config's 200 epochs
    data = "dataset=shapes_unpaired" if model == "cyclegan" else "dataset=shapes_paired"
    result = run_cli(*args, data, "~tuning", "dataset.num_samples=16", "trainer.max_steps=3", "hydra.run.dir=run",
                     cwd=workdir)
    assert "from step 0 to 3 (trainer.max_steps=3)" in result.stdout + result.stderr
    assert load_checkpoint(workdir / "run")["step"] == 3
    both = run_cli(*args, data, "~tuning", "dataset.num_samples=16", "trainer.max_steps=100", "trainer.max_epochs=2",
                   "hydra.run.dir=both", cwd=workdir)
    assert "to 32 (the first of trainer.max_steps=100 and trainer.max_epochs=2 of 16 steps: trainer.max_epochs" \
           in both.stdout + both.stderr
    assert load_checkpoint(workdir / "both")["step"] == 32


def test_the_applied_tuning_is_named_with_its_changes_in_the_log_and_the_record(workdir):
    run_cli(*tiny("dcgan", "trainer.max_steps=1", "hydra.run.dir=run"), cwd=workdir)
    log = (workdir / "run" / "train.log").read_text()
    assert "Tuning configs/tuning/shapes_dcgan.yaml applies (~tuning drops it): " in log
    assert "optimizer.lr 0.0002 -> 0.0005" in log and "model.ema_decay 0.0 -> 0.999" in log
    record = yaml.safe_load((workdir / "run" / ".hydra" / "tuning.yaml").read_text())
    assert record["file"] == "configs/tuning/shapes_dcgan.yaml"
    assert record["changes"]["optimizer.lr"] == {"paper": 0.0002, "tuned": 0.0005}
    run_cli(*tiny("dcgan", "trainer.max_steps=1", "~tuning", "hydra.run.dir=paper"), cwd=workdir)
    assert "Tuning" not in (workdir / "paper" / "train.log").read_text()


@pytest.mark.parametrize("module", ["gantrain.sample", "gantrain.translate", "gantrain.evaluate", "gantrain.export"])
def test_every_command_without_arguments_names_the_missing_keys_in_one_paragraph(module, workdir):
    result = run_cli(module=module, cwd=workdir, check=False)
    command = COMMANDS[module][0]
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"gantrain: error: {command} needs checkpoint=")
    assert "for example" in result.stderr and result.stderr.count("\n") == 1


@pytest.mark.parametrize("module", list(COMMANDS))
def test_every_help_page_explains_its_own_keys_and_hides_the_schemas(module, workdir):
    page = run_cli("--help", module=module, cwd=workdir).stdout
    command, keys = COMMANDS[module]
    assert page.startswith(f"{command}: ")
    assert all(key in page for key in keys), page
    assert "== Examples ==" in page and "_schema" not in page
    if module == "gantrain":
        assert "sngan" in page and "[dcgan]" in page and "tuning:" in page
    else:
        assert "hparams_search" not in page and "tuning" not in page and "optimizer:" not in page


def test_version_names_gantrain_torch_and_the_device(workdir):
    for module in ("gantrain", "gantrain.translate"):
        line = run_cli("--version", module=module, cwd=workdir).stdout
        assert line.startswith("gantrain 0.") and "torch 2." in line and "device=auto uses cpu" in line


def test_messages_name_the_key_of_the_command_they_come_from(workdir):
    result = run_cli("checkpoint=nonexistent", "input=x", module="gantrain.translate", cwd=workdir, check=False)
    assert result.returncode == 2 and "for example checkpoint=outputs/" in result.stderr
    assert "resume=" not in result.stderr


def test_a_run_logs_progress_without_a_terminal_and_ends_with_a_summary_and_metrics_csv(workdir):
    result = run_cli(*tiny("dcgan", "trainer.max_steps=6", "trainer.checkpoint_every=2", "trainer.keep_checkpoints=1",
                           "trainer.keep_checkpoints_every=4", "hydra.run.dir=run"), cwd=workdir)
    output = result.stdout + result.stderr
    assert "step 2 of 6 (33%), " in output and " steps/s, " in output and " left: loss/" in output
    summary = output[output.index("Run summary: step 6 of 6"):]
    for line in ("last losses: discriminator ", "last sample quality: sample_diversity", "checkpoints: ",
                 "samples: ", "scalars: ", "gantrain-plot ", "tensorboard --logdir "):
        assert line in summary, summary
    with open(workdir / "run" / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [int(row["step"]) for row in rows] == [2, 4, 6]
    scalars, _ = read_events(workdir / "run")
    assert float(rows[-1]["loss/generator"]) == pytest.approx(scalars["loss/generator"][6], rel=1e-6)
    assert rows[1]["quality/valid_share"] != ""  # the sample step's judge, in the same row
    # the last periodic checkpoint and every 4th step are kept, besides last.pt
    assert sorted(p.name for p in (workdir / "run" / "checkpoints").glob("*.pt")) == [
        "last.pt", "step_0000004.pt", "step_0000006.pt"]
    plotted = run_cli("run", "--output", "curves.png", module="gantrain.plot", cwd=workdir)
    assert "Wrote curves.png" in plotted.stdout and (workdir / "curves.png").stat().st_size > 10_000


def test_translating_a_folder_without_a_terminal_logs_its_progress(workdir):
    run_cli(*CYCLEGAN, "dataset=shapes_unpaired", "dataset.num_samples=16", "trainer.max_steps=1", "hydra.run.dir=run",
            cwd=workdir)
    from PIL import Image

    (workdir / "inputs").mkdir()
    for number in range(3):
        Image.new("RGB", (16, 16), (number * 60, 0, 0)).save(workdir / "inputs" / f"{number}.png")
    result = run_cli("checkpoint=run", "input=inputs", "batch_size=1", module="gantrain.translate", cwd=workdir)
    assert "translating 3 images: 3 of 3" in result.stdout + result.stderr


def test_a_failed_start_writes_its_error_into_the_run_folders_log(workdir):
    result = run_cli("dataset=folder", "dataset.path=missing", "device=cpu", "hydra.run.dir=run", cwd=workdir,
                     check=False)
    assert result.returncode == 2 and "dataset folder" in result.stderr
    assert "The dataset folder 'missing' does not exist" in (workdir / "run" / "train.log").read_text()


def test_the_data_root_comes_from_the_environment(workdir):
    env = {**os.environ, "GANTRAIN_DATA": "/srv/shared-data"}
    config = run_cli("model=cyclegan", "dataset=horse2zebra", "--cfg", "job", "--resolve", cwd=workdir, env=env).stdout
    assert "path: /srv/shared-data/horse2zebra" in config


def lean_install(tmp_path: Path, hidden: tuple[str, ...]) -> Path:
    """The python of a fresh virtual environment that has this one's packages except ``hidden`` (and their
    metadata), as an install without the extras that bring them; gantrain comes from the checkout."""
    environment = tmp_path / "lean"
    venv.create(environment, with_pip=False)
    python = environment / "bin" / "python"
    site = Path(subprocess.check_output([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    packages, kept = Path(sysconfig.get_paths()["purelib"]), tmp_path / "kept"
    kept.mkdir()

    def visible(entry: Path) -> bool:
        return not entry.name.lower().replace("-", "_").startswith(hidden) and not entry.name.endswith(".pth")

    for entry in filter(visible, packages.iterdir()):
        if entry.name == "hydra_plugins":  # a namespace package: keep the plugins that are not hidden
            (kept / entry.name).mkdir()
            for plugin in filter(visible, entry.iterdir()):
                (kept / entry.name / plugin.name).symlink_to(plugin)
        else:
            (kept / entry.name).symlink_to(entry)
    (site / "lean.pth").write_text(f"{kept}\n{Path(gantrain.__file__).parents[1]}\n")
    return python


def test_features_of_an_extra_that_is_not_installed_name_it_in_one_line(workdir, tmp_path):
    run_cli(*tiny("dcgan", "trainer.max_steps=1", "hydra.run.dir=run"), cwd=workdir)
    python = lean_install(tmp_path, ("onnx", "matplotlib", "hydra_optuna_sweeper", "optuna", "torch_fidelity"))

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([python, "-m", *args], cwd=workdir, capture_output=True, text=True, timeout=300,
                              check=False)

    export = run("gantrain.export", "checkpoint=run", "output=g.onnx")
    assert export.returncode == 2 and export.stderr.count("\n") == 1, export.stderr
    assert 'format=onnx needs the export extra, which is not installed: pip install "gantrain[export]"' in export.stderr
    assert not (workdir / "g.onnx").exists()
    assert run("gantrain.export", "checkpoint=run", "output=g.pt", "format=torchscript").returncode == 0
    sweep = run("gantrain", "+hparams_search=shapes_dcgan", "-m")
    assert sweep.returncode == 2 and "needs the sweep extra" in sweep.stderr and "Traceback" not in sweep.stderr
    plot = run("gantrain.plot", "run")
    assert plot.returncode == 2 and 'pip install "gantrain[plot]"' in plot.stderr
    fid = run("gantrain.evaluate", "checkpoint=run", "metrics.fid=true", "metrics.num_images=4", "device=cpu")
    assert fid.returncode == 2 and 'needs the metrics extra' in fid.stderr
