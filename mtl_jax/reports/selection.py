"""Each setting's learning rate, chosen on a held-out slice of its train split.

`mtl-jax compare --learning-rates 5e-5,1e-4,2e-4` first trains every setting
of the comparison (the multi-task run and each task alone) once per learning
rate, on the selection seed, with a fraction of every task's train split held
out (`source.holdout`) and scored (`train.eval_split='heldout'`). The dev
split the report scores never takes part in the choice (Kurin et al. 2022,
Xin et al. 2022: untuned baselines are what makes balancing tables mislead).

A candidate's score is `mtl_jax.metrics.main.main_score` of its held-out
metrics: its main metric, or for the multi-task run the mean of its tasks'
main metrics, each lower-is-better one negated (the GLUE score's rule). With
`train.patience` (early stopping on `checkpoint.best_metric`, e.g.
'main_score'), a run's metrics are those of its best checkpoint, so the
choice covers the training length too; the comparison's runs then also
stop on the held-out slice (and train on the rest of train), and the
report scores them on the eval split at their best checkpoints; the chosen
candidates are then the comparison's runs of the selection seed, read and
not trained again. While another process trains a setting's candidates,
the settings whose rates are chosen go on to their comparison runs.

Layout: `DIR/selection/multi_task/lr_<x>/` and
`DIR/selection/single_task/<task>/lr_<x>/` (ordinary training workdirs), and
`DIR/selection.json`: every candidate's score and the choices.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Sequence

import ml_collections

from mtl_jax import config as config_lib
from mtl_jax.metrics import main as metrics_main
from mtl_jax.reports import compare
from mtl_jax.training import loop
from mtl_jax.training import run as run_lib

SELECTION_DIR = "selection"
SELECTION_JSON = "selection.json"


def held_out(config: ml_collections.ConfigDict, fraction: float
             ) -> ml_collections.ConfigDict:
  """`config` with `fraction` of every task's train split held out and scored.

  Raises:
    ValueError: `fraction` is not in (0, 1).
  """
  if not 0.0 < fraction < 1.0:
    raise ValueError(f"the held-out fraction must be in (0, 1), got {fraction!r}")
  names = [task.name for task in run_lib.build_tasks(config)]
  overrides = [f"tasks.{name}.source.holdout={fraction}" for name in names]
  return config_lib.apply_overrides(config_lib.resolve(config),
                                    overrides + ["train.eval_split=heldout"])


def with_learning_rate(config: ml_collections.ConfigDict, learning_rate: float
                       ) -> ml_collections.ConfigDict:
  """A copy of `config` at `learning_rate`."""
  config = config_lib.resolve(config)
  config.optimizer.learning_rate = float(learning_rate)
  return config


def learning_rate_dir(learning_rate: float) -> str:
  """`lr_5e-05`: a candidate's folder name (repr of the float: unique, no '/')."""
  return f"lr_{float(learning_rate)!r}"


def choose(scores: dict[float, float]) -> float:
  """The learning rate with the best score (the first of the grid on a tie).

  Raises:
    ValueError: every candidate's score is NaN (every run diverged or scored nothing).
  """
  finite = {lr: s for lr, s in scores.items() if not math.isnan(s)}
  if not finite:
    raise ValueError(f"no learning rate of {sorted(scores)} gave a finite held-out score")
  return max(finite, key=lambda lr: (finite[lr], -list(scores).index(lr)))


def read_metrics(workdir: str) -> dict[str, dict[str, float]]:
  with open(os.path.join(workdir, loop.METRICS_FILE)) as f:
    return json.load(f)


def write_selection(workdir: str, selection: dict[str, Any]) -> str:
  """Writes `DIR/selection.json` (temp file + rename); returns its path."""
  path = os.path.join(workdir, SELECTION_JSON)
  os.makedirs(workdir, exist_ok=True)
  with open(path + ".tmp", "w") as f:
    json.dump(selection, f, indent=2)
  os.replace(path + ".tmp", path)
  return path


def plan(config: ml_collections.ConfigDict, workdir: str, learning_rates: Sequence[float],
         fraction: float, seed: int, multi_task_only: bool = False) -> list[compare.SubRun]:
  """The selection runs: each setting (multi-task, then each task alone) at each rate.

  With `multi_task_only` (the baselines come from another comparison), only
  the multi-task setting's.
  """
  if not learning_rates:
    raise ValueError("the learning-rate grid is empty")
  if len(set(learning_rates)) != len(learning_rates):
    raise ValueError(f"learning rates repeat: {list(learning_rates)}")
  runs = []
  for setting in compare.plan(held_out(config, fraction), workdir, [seed]):
    if multi_task_only and setting.task is not None:
      continue
    folder = os.path.join(workdir, SELECTION_DIR, compare.setting_name(setting.task))
    for learning_rate in learning_rates:
      runs.append(compare.SubRun(setting.task, seed,
                                 os.path.join(folder, learning_rate_dir(learning_rate)),
                                 with_learning_rate(setting.config, learning_rate)))
  return runs


def run(config: ml_collections.ConfigDict, workdir: str, learning_rates: Sequence[float],
        seeds: Sequence[int] = (0, 1, 2), fraction: float = 0.1,
        selection_seed: int | None = None, progress: bool = True,
        baselines: str | None = None, reuse: str | None = None) -> dict[str, Any]:
  """Chooses each setting's learning rate on held-out data, then compares over seeds.

  Args:
    config: a resolved multi-task config (`mtl_jax.config.load_config`).
    workdir: the comparison's folder (the selection runs in `DIR/selection/`).
    learning_rates: the grid, tried for every setting.
    seeds: the comparison's seeds.
    fraction: the part of each task's train split held out for the choice.
    selection_seed: the seed of the selection runs (default: the first of `seeds`).
    progress: show each run's progress bar.
    baselines: a finished comparison's folder whose single-task runs (their
      rates chosen there) this comparison reads; only the multi-task rate is
      chosen here (`mtl_jax.reports.compare.read_baselines`).
    reuse: a finished comparison's folder; a candidate or comparison run with
      the config of one of its runs is read from there, not trained
      (`mtl_jax.reports.compare.reuse_finished`).

  Returns:
    The comparison's summary (`report.json`), with the selection under "selection".

  Raises:
    ValueError: a setting has no finite held-out score at any rate.
  """
  seed = seeds[0] if selection_seed is None else selection_seed
  previous = compare.finished_runs(reuse) if reuse else []
  runs = compare.reuse_finished(
      plan(config, workdir, learning_rates, fraction, seed, multi_task_only=bool(baselines)),
      previous)
  if compare.train_all(runs, progress):
    # Other processes still train some candidates. The settings whose candidates
    # all finished have their rate already: train their comparison runs
    # meanwhile, so that a process per core is never idle waiting for another.
    chosen = {name: entry["chosen"] for name, entry in score(config, runs).items()}
    ready = [run for run in compare.reuse_finished(
        compare.plan(comparison_config(config, fraction), workdir, seeds, chosen),
        [*runs, *previous])
             if compare.setting_name(run.task) in chosen]
    compare.train_all(ready, progress)
    compare.check_all_finished([run for run in runs if not compare.is_finished(run)])
  settings = score(config, runs)
  selection = {"held_out_fraction": fraction, "seed": seed,
               "learning_rates": [float(lr) for lr in learning_rates], "settings": settings}
  write_selection(workdir, selection)
  chosen = {name: entry["chosen"] for name, entry in settings.items()}
  # With early stopping the comparison's run of the selection seed is the chosen
  # candidate itself (same config): it is read, not trained again.
  return compare.run(comparison_config(config, fraction), workdir, seeds, progress,
                     learning_rates=chosen, selection=selection, finished=[*runs, *previous],
                     baselines=baselines)


def score(config: ml_collections.ConfigDict, runs: Sequence[compare.SubRun]
          ) -> dict[str, Any]:
  """Each setting's held-out scores, candidate folders and chosen rate.

  Only settings whose candidates all finished are in it (a setting with one
  still training elsewhere has no choice yet).

  Raises:
    ValueError: a setting has no finite held-out score at any rate.
  """
  tasks = {task.name: task for task in run_lib.build_tasks(config)}
  unfinished = {compare.setting_name(run.task) for run in runs if not compare.is_finished(run)}
  settings: dict[str, Any] = {}
  for candidate in runs:
    name = compare.setting_name(candidate.task)
    if name in unfinished:
      continue
    scored = [tasks[candidate.task]] if candidate.task else list(tasks.values())
    entry = settings.setdefault(name, {"scores": {}, "workdirs": {}})
    key = repr(candidate.config.optimizer.learning_rate)
    entry["scores"][key] = metrics_main.main_score(read_metrics(candidate.workdir), scored)
    entry["workdirs"][key] = candidate.workdir
  for name, entry in settings.items():
    try:
      entry["chosen"] = choose({float(lr): s for lr, s in entry["scores"].items()})
    except ValueError as error:
      raise ValueError(f"{name}: {error}") from None
  return settings


def comparison_config(config: ml_collections.ConfigDict, fraction: float
                      ) -> ml_collections.ConfigDict:
  """The config of the comparison after the choice: `config` as given (all of
  train), or with early stopping (`train.patience`) the held-out slice to stop
  on (the candidates at the chosen rates are then the comparison's runs of
  the selection seed); the report scores the eval split either way."""
  return held_out(config, fraction) if config.train.patience else config_lib.resolve(config)
