"""Sweeps through Hydra's plugins: submitit's local executor, Optuna with a SQLite study; HParams."""

from __future__ import annotations

import optuna
from helpers import run_cli, tiny
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from gantrain.checkpoint import load_checkpoint


def hparams_of(run_dir) -> tuple[dict, list[str]]:
    """The hyperparameters and metric tags that TensorBoard's HParams dashboard reads from a run."""
    accumulator = EventAccumulator(str(run_dir)).Reload()
    values, metrics = {}, []
    for content in accumulator.PluginTagToContent("hparams").values():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        for name, value in data.session_start_info.hparams.items():
            values[name] = value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
        metrics += [info.name.tag for info in data.experiment.metric_infos]
    return values, metrics


def test_submitit_local_sweep_runs_each_job_as_a_process_with_its_hparams(workdir):
    run_cli("-m", "hydra/launcher=submitit_local", *tiny("gan", "trainer.max_steps=2", "seed=1,2"), cwd=workdir)
    (sweep,) = (workdir / "outputs" / "multirun").iterdir()
    runs = sorted(path for path in sweep.iterdir() if path.is_dir() and not path.name.startswith("."))
    assert [run.name.split("_", 1)[0] for run in runs] == ["0", "1"]
    assert all(load_checkpoint(run)["step"] == 2 for run in runs)
    assert len(list((sweep / ".submitit").iterdir())) >= 2  # submitit's own job folders: real subprocesses
    for run, seed in zip(runs, (1, 2)):
        assert f"seed={seed}" in run.name
        values, metrics = hparams_of(run)
        assert values["seed"] == seed and values["model"] == "gan" and values["optimizer.lr"] == 2e-4
        assert values["effective_batch_size"] == 8
        assert {"loss/generator", "loss/discriminator"} <= set(metrics)


def test_optuna_search_runs_trials_into_a_sqlite_study_that_a_second_sweep_continues(workdir):
    searched = ("model.ngf", "model.ndf")  # the search samples these
    args = [*(arg for arg in tiny("dcgan", "trainer.max_steps=2", "trainer.eval_every=2", "metrics.task_images=16")
              if not arg.startswith(searched)),
            "+hparams_search=shapes_dcgan", "hydra.sweeper.storage=sqlite:///study.db"]
    run_cli(*args, "hydra.sweeper.n_trials=3", cwd=workdir)
    run_cli(*args, "hydra.sweeper.n_trials=1", cwd=workdir)
    study = optuna.load_study(study_name="shapes_dcgan", storage=f"sqlite:///{workdir / 'study.db'}")
    trials = [trial for trial in study.trials if trial.state == optuna.trial.TrialState.COMPLETE]
    assert len(trials) == 4 and study.direction == optuna.study.StudyDirection.MAXIMIZE
    first_sweep = min((workdir / "outputs" / "multirun").iterdir())
    runs = sorted(path for path in first_sweep.iterdir() if path.is_dir())
    assert len(runs) == 3 and all("optimizer.lr=" in run.name and "trainer." not in run.name for run in runs)
    values, metrics = hparams_of(runs[0])
    assert values["metrics.best"] == "valid_share" and "best/valid_share" in metrics
    assert trials[0].value == load_checkpoint(runs[0] / "checkpoints" / "best.pt")["best"]["value"]
