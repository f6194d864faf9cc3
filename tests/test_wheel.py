"""The built wheel carries its configs: the installed command runs from any directory."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

from helpers import read_events, tiny

REPO = Path(__file__).resolve().parents[1]


def test_wheel_installed_in_a_fresh_venv_runs_outside_the_repository(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path / "dist", REPO],
        check=True,
    )
    (wheel,) = (tmp_path / "dist").glob("gantrain-*.whl")

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.check_output([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    # torch and friends come from this environment (a plain path entry: its editable
    # install of gantrain is not activated), gantrain itself only from the wheel
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel], check=True)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    origin = subprocess.check_output([python, "-c", "import gantrain; print(gantrain.__file__)"], cwd=elsewhere, text=True)
    assert origin.startswith(str(site))
    configs = site / "gantrain" / "configs"
    assert (configs / "train.yaml").is_file() and (configs / "model" / "wgan_gp.yaml").is_file()

    subprocess.run([env_dir / "bin" / "gantrain", *tiny("dcgan", "trainer.max_steps=2")], cwd=elsewhere, check=True,
                   capture_output=True)
    (run_dir,) = (elsewhere / "outputs" / "dcgan" / "shapes").iterdir()
    scalars, _ = read_events(run_dir)
    assert sorted(scalars["loss/generator"]) == [2]
    help_text = subprocess.run([env_dir / "bin" / "gantrain-sample", "--help"], cwd=elsewhere, capture_output=True,
                               text=True, check=True).stdout
    assert "checkpoint" in help_text
