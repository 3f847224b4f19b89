"""`mtl-jax compare`: a multi-task run against each task's single-task baseline.

For every seed it trains the configuration as given (multi-task) and, for
each of its tasks, the same configuration with that task alone: the same
encoder, steps, batch size per task, optimizer and schedule, so each
single-task run sees exactly the examples of its task that the multi-task
run sees. A single task has nothing to balance, so the baselines use
`balancing.method='equal'` and no balancing diagnostics. Then it writes
`DIR/report.md` and `DIR/report.json`: per task, its main metric (the
kind's first metric) as mean ± std over seeds in both settings, the
relative gain and the average relative gain Δm (`mtl_jax.reports.gain`),
the same table for each further split every run scored at its end (a task's
`test` split: scored once, never used to choose), each run's training time,
and the figures of `mtl_jax.reports.figures`.

Layout: `DIR/multi_task/seed_<s>/` and `DIR/single_task/<task>/seed_<s>/`,
each an ordinary training workdir (`mtl-jax eval|predict|report` work on
it; `tensorboard --logdir DIR` shows them all). Running `compare` again on
DIR skips the runs that finished with this config (their `metrics.json`
is there) and resumes an interrupted one from its checkpoint; a run that
another process is training is left to it, so one process per core can
work through a comparison (the report is written by the last). With
`--learning-rates`, each setting's rate is first chosen on held-out data
(`mtl_jax.reports.selection`, runs in `DIR/selection/`); a chosen candidate
whose config is a comparison run's (early stopping on the same held-out
slice, the selection seed) is read as that run, not trained again.

With `--reuse DIR2`, any planned run (a selection candidate included) whose
config a run of the finished comparison in DIR2 has is read from there: a
comparison that widens another's learning-rate grid trains only the new rates.

With `--baselines DIR2`, the single-task runs are read from the finished
comparison in DIR2 (its `report.json`) instead of trained: a new multi-task
recipe (a balancing method, a sharing option) is compared against baselines
tuned once. They must have seen what this comparison's own single-task runs
would see (`BASELINE_KEYS`); their optimizer and checkpoint choices are
their own.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Mapping, Sequence

import ml_collections
import numpy as np

from mtl_jax import config as config_lib
from mtl_jax.metrics import main as metrics_main
from mtl_jax.reports import figures as figures_lib
from mtl_jax.reports import gain
from mtl_jax.tasks import mixture as mixture_lib
from mtl_jax.tasks.sources import HELDOUT
from mtl_jax.training import loop, resume
from mtl_jax.training import run as run_lib
from mtl_jax.training.evaluate import metrics_filename
from mtl_jax.training.lock import WorkdirBusy

# What a baseline read from another comparison shares with this one's own
# single-task run: the examples and their order (seed, tasks with their hold-out,
# budget, batch shapes), the starting encoder, and the split the report scores.
BASELINE_KEYS = ("seed", "tasks", "mixture", "encoder", "tokenizer", "sharing", "train.steps",
                 "train.batch_size", "train.buckets", "train.eval_split")
MULTI_TASK = "multi_task"
SINGLE_TASK = "single_task"
TIME_FILE = "compare_time.json"
REPORT_MD = "report.md"
REPORT_JSON = "report.json"


@dataclasses.dataclass(frozen=True)
class SubRun:
  """One training run of a comparison."""

  task: str | None  # the single task; None for the multi-task run
  seed: int
  workdir: str
  config: ml_collections.ConfigDict
  name: str | None = None  # what the progress lines call it (default: the setting)

  @property
  def label(self) -> str:
    setting = self.name or ("multi-task" if self.task is None else "single-task " + self.task)
    return f"{setting}, seed {self.seed}"


def single_task_config(config: ml_collections.ConfigDict, task: str
                       ) -> ml_collections.ConfigDict:
  """`config` with `task` alone (its entry as the run would resolve it, mixture included).

  Raises:
    KeyError: `task` is not one of the config's tasks.
  """
  specs = mixture_lib.task_specs(config.mixture, {
      name: spec.to_dict() if hasattr(spec, "to_dict") else spec
      for name, spec in config.tasks.items()})
  if task not in specs:
    raise KeyError(f"no task {task!r} in the config; its tasks: {', '.join(sorted(specs))}")
  single = config_lib.resolve(config)
  single.mixture = ""
  single.tasks = {task: specs[task]}
  single.balancing.method = "equal"
  single.balancing.diagnostics = False
  best_metric = single.checkpoint.best_metric
  if best_metric != metrics_main.MAIN_SCORE and best_metric.partition("/")[0] != task:
    # Another task's metric: early stopping goes by this task's main metric.
    single.checkpoint.best_metric = metrics_main.MAIN_SCORE if single.train.patience else ""
  return single


def setting_name(task: str | None) -> str:
  """A setting's name: 'multi_task', or 'single_task/<task>' (also its folder under DIR)."""
  return MULTI_TASK if task is None else f"{SINGLE_TASK}/{task}"


def plan(config: ml_collections.ConfigDict, workdir: str, seeds: Sequence[int],
         learning_rates: Mapping[str, float] | None = None) -> list[SubRun]:
  """The runs of a comparison: per seed, the multi-task run then each task alone.

  Args:
    config: the multi-task config.
    workdir: the comparison's folder.
    seeds: the seeds.
    learning_rates: setting name (`setting_name`) -> its learning rate (e.g.
      chosen by `mtl_jax.reports.selection`); default: the config's for all.

  Raises:
    ValueError: no or repeated seeds, a single-task config, or learning rates
      for settings the comparison does not have.
  """
  if not seeds:
    raise ValueError("compare needs at least one seed")
  if len(set(seeds)) != len(seeds):
    raise ValueError(f"seeds repeat: {list(seeds)}")
  tasks = [t.name for t in run_lib.build_tasks(config)]
  if len(tasks) < 2:
    raise ValueError(f"compare needs a multi-task config; this one has {len(tasks)} task(s)")
  if config.train.patience and config.train.eval_split == "eval":
    raise ValueError("train.patience stops runs by the split the report scores: hold out a "
                     "slice to stop on (tasks.NAME.source.holdout and "
                     "train.eval_split=heldout), or use --learning-rates with --holdout")
  unknown = set(learning_rates or {}) - {setting_name(t) for t in [None, *tasks]}
  if unknown:
    raise ValueError(f"learning rates for settings the comparison lacks: {sorted(unknown)}")
  runs = []
  for seed in seeds:
    for task in [None, *tasks]:
      setting = (config_lib.resolve(config) if task is None
                 else single_task_config(config, task))
      setting.seed = seed
      if learning_rates and setting_name(task) in learning_rates:
        setting.optimizer.learning_rate = float(learning_rates[setting_name(task)])
      runs.append(SubRun(task, seed, os.path.join(workdir, setting_name(task), f"seed_{seed}"),
                         setting))
  return runs


def _canonical(config) -> str:
  """A run's identity: its config (ConfigDict or saved dict) read onto today's
  defaults, without the keys of how its step computes (`resume.IMPLEMENTATION_KEYS`),
  as JSON text."""
  resolved = config_lib.resolve(config).to_dict()
  for key in resume.IMPLEMENTATION_KEYS:
    section, name = key.split(".")
    resolved[section].pop(name)
  return json.dumps(resolved, sort_keys=True)


def is_finished(run: SubRun) -> bool:
  """Whether `run` trained to the end with this very config (so is not run again).

  The saved config is read onto today's defaults first: a run saved before a
  new option existed ran with what is now that option's default (e.g. the
  options of a sharing kind added since), so it still counts as finished.
  """
  config_path = os.path.join(run.workdir, run_lib.CONFIG_FILE)
  if not (os.path.exists(os.path.join(run.workdir, loop.METRICS_FILE))
          and os.path.exists(config_path)):
    return False
  with open(config_path) as f:
    saved = json.load(f)
  try:
    return _canonical(saved) == _canonical(run.config)
  except ValueError:  # a key that no longer exists: not this config
    return False


def reuse_finished(runs: Sequence[SubRun], finished: Sequence[SubRun]) -> list[SubRun]:
  """`runs`, each one whose config a finished run of `finished` had read from there.

  Training is deterministic given the config (seed, data order, dropout
  keys), so a run with the same config is the same run: e.g. the selection's
  candidate at the chosen rate is the comparison's run of the selection seed
  when both stop on the same held-out slice. Reading it saves training it twice.

  Args:
    runs: the planned runs.
    finished: runs trained elsewhere (e.g. `DIR/selection/...`); unfinished ones
      are not reused.

  Returns:
    The runs, with `workdir` pointing at the finished twin where one exists.
  """
  twins = {_canonical(done.config): done.workdir for done in finished if is_finished(done)}
  return [dataclasses.replace(run, workdir=twins.get(_canonical(run.config), run.workdir))
          for run in runs]


def _lookup(config: dict[str, Any], dotted: str) -> Any:
  for key in dotted.split("."):
    config = config[key]
  return config


def read_baselines(runs: Sequence[SubRun], baselines: str) -> list[SubRun]:
  """`runs`, each single-task run replaced by its finished twin in another comparison.

  Args:
    runs: the planned runs.
    baselines: the folder of a finished comparison (`report.json` lists its runs).

  Returns:
    The runs, single-task ones pointing at the baselines' workdirs with their
    saved configs (so they count as finished and are not trained).

  Raises:
    ValueError: no report there (`report_runs`), a (task, seed) it lacks, a baseline run
      that is not finished, or one that differs from this comparison's own
      single-task run in a `BASELINE_KEYS` entry.
  """
  found = {(run.task, run.seed): run for run in report_runs(baselines)
           if run.task is not None}
  replaced = []
  for run in runs:
    if run.task is None:
      replaced.append(run)
      continue
    baseline = found.get((run.task, run.seed))
    if baseline is None:
      raise ValueError(f"--baselines {baselines}: no single-task run of {run.task!r} at "
                       f"seed {run.seed}; it has {sorted(found)}")
    mine, theirs = config_lib.resolve(run.config).to_dict(), baseline.config.to_dict()
    differ = [key for key in BASELINE_KEYS if _lookup(mine, key) != _lookup(theirs, key)]
    if differ:
      raise ValueError(
          f"--baselines {baselines}: {baseline.workdir} differs from this comparison's "
          f"single-task run of {run.task!r} in {', '.join(differ)}: " + "; ".join(
              f"{key} {_lookup(theirs, key)!r} there, {_lookup(mine, key)!r} here"
              for key in differ))
    if not is_finished(baseline):
      raise ValueError(f"--baselines {baselines}: {baseline.workdir} did not finish")
    replaced.append(baseline)
  return replaced


def report_runs(workdir: str) -> list[SubRun]:
  """The runs a finished comparison in `workdir` lists in its report, with their saved configs.

  Raises:
    ValueError: no report there, or a listed run without its saved config.
  """
  return [_saved_run(workdir, entry["task"], entry["seed"], entry["workdir"])
          for entry in _read_report(workdir)["runs"]]


def finished_runs(workdir: str) -> list[SubRun]:
  """Every run of the finished comparison in `workdir`: its report's runs and,
  where it chose its rates on held-out data, every selection candidate.

  Raises:
    ValueError: as `report_runs`.
  """
  runs = report_runs(workdir)
  selection = _read_report(workdir).get("selection")
  if selection:
    for name, entry in selection["settings"].items():
      task = None if name == MULTI_TASK else name.removeprefix(SINGLE_TASK + "/")
      runs += [_saved_run(workdir, task, selection["seed"], candidate)
               for candidate in entry["workdirs"].values()]
  return runs


def _read_report(workdir: str) -> dict[str, Any]:
  report_path = os.path.join(workdir, REPORT_JSON)
  if not os.path.exists(report_path):
    raise ValueError(f"{workdir}: no {REPORT_JSON} there; finish that comparison first "
                     "(mtl-jax compare on it)")
  with open(report_path) as f:
    return json.load(f)


def _saved_run(comparison: str, task: str | None, seed: int, workdir: str) -> SubRun:
  try:
    with open(os.path.join(workdir, run_lib.CONFIG_FILE)) as f:
      saved = config_lib.resolve(json.load(f))
  except OSError as error:
    raise ValueError(f"{comparison}: its run {workdir} has no saved config ({error})") from None
  return SubRun(task, seed, workdir, saved)


def train_all(runs: Sequence[SubRun], progress: bool = True) -> list[SubRun]:
  """Trains the runs not finished yet; an interrupted one resumes from its checkpoint.

  A run another process is training (its workdir locked) is left to it, so
  several processes (e.g. one per core) can work through one comparison.
  Each run's wall time (start-up, compiles, training and evaluation) adds up
  in its `compare_time.json`, across resumptions.

  Returns:
    The runs left to other processes (still training there).
  """
  elsewhere = []
  for number, run in enumerate(runs, 1):
    if is_finished(run):
      print(f"[{number}/{len(runs)}] {run.label}: done already ({run.workdir})")
      continue
    print(f"[{number}/{len(runs)}] {run.label}: training in {run.workdir}")
    start, busy = time.time(), False
    try:
      loop.train(run.config, run.workdir, progress=progress)
    except WorkdirBusy as error:
      busy = True
      print(f"[{number}/{len(runs)}] {run.label}: left to another process ({error})")
      elsewhere.append(run)
    finally:
      if not busy:  # the holder counts its own time
        _add_seconds(run.workdir, time.time() - start)
  return elsewhere


class StillTraining(RuntimeError):
  """Some runs of a comparison are training in other processes: nothing to report yet."""


def check_all_finished(elsewhere: Sequence[SubRun]) -> None:
  """Raises `StillTraining` naming the runs other processes still train.

  Raises:
    StillTraining: `elsewhere` is not empty.
  """
  if elsewhere:
    raise StillTraining(
        f"{len(elsewhere)} run(s) are training in other processes "
        f"({', '.join(run.workdir for run in elsewhere)}): run the command again when "
        "they end, to write the report")


def _add_seconds(workdir: str, seconds: float) -> None:
  os.makedirs(workdir, exist_ok=True)
  total = _seconds(workdir) + seconds  # read before "w" truncates the file
  with open(os.path.join(workdir, TIME_FILE), "w") as f:
    json.dump({"seconds": total}, f)


def _seconds(workdir: str) -> float:
  path = os.path.join(workdir, TIME_FILE)
  if not os.path.exists(path):
    return 0.0
  with open(path) as f:
    return float(json.load(f)["seconds"])


def _mean_std(values: Sequence[float]) -> dict[str, Any]:
  values_s = np.asarray(values, float)
  std = float(values_s.std(ddof=1)) if len(values_s) > 1 else 0.0
  return {"mean": float(values_s.mean()), "std": std, "values": values_s.tolist()}


def summarize(config: ml_collections.ConfigDict, runs: Sequence[SubRun]) -> dict[str, Any]:
  """The comparison's numbers (what `report.json` holds) from the finished runs."""
  tasks = run_lib.build_tasks(config)
  seeds = sorted({run.seed for run in runs})
  metrics = {}
  for run in runs:
    # The reported split, also where the run chose its checkpoint on a held-out slice.
    reported = metrics_filename("eval", run.config.train.eval_split)
    with open(os.path.join(run.workdir, reported)) as f:
      metrics[run.task, run.seed] = json.load(f)
  summary: dict[str, Any] = {"seeds": seeds, "tasks": {}}
  main_keys = {}
  for task in tasks:
    key = main_keys[task.name] = metrics_main.main_metric_key(
        metrics[task.name, seeds[0]][task.name],
        task.spec.main_metric_in(metrics[task.name, seeds[0]][task.name]), task.name)
    summary["tasks"][task.name] = _gain_row(
        key, [metrics[task.name, s][task.name][key] for s in seeds],
        [metrics[None, s][task.name][key] for s in seeds])
  # A task whose single-task value is 0 (e.g. CoLA's Matthews correlation of a
  # run that predicts one class) has no relative gain: Δm averages the others
  # and the report names the ones left out.
  included = {t: k for t, k in main_keys.items() if summary["tasks"][t]["single_task"]["mean"]}
  summary["delta_m_excluded"] = sorted(set(main_keys) - set(included))
  summary["delta_m"] = _or_none(
      gain.delta_m, {t: v["multi_task"]["mean"] for t, v in summary["tasks"].items()},
      {t: v["single_task"]["mean"] for t, v in summary["tasks"].items()}, included)
  summary["delta_m_per_seed"] = [_or_none(
      gain.delta_m, {t: metrics[None, s][t][k] for t, k in included.items()},
      {t: metrics[t, s][t][k] for t, k in included.items()}, included) for s in seeds]
  summary["other_splits"] = _other_splits(runs, main_keys, seeds)
  summary["runs"] = [{"task": run.task, "seed": run.seed, "workdir": run.workdir,
                      "seconds": round(_seconds(run.workdir), 2),
                      "metrics": metrics[run.task, run.seed]} for run in runs]
  summary["setup"] = {"weighting": config.balancing.method, "sharing": config.sharing.kind,
                      "steps": config.train.steps, "batch_size": config.train.batch_size,
                      "encoder": config.encoder.pretrained or "from scratch",
                      "learning_rates": {setting_name(run.task): run.config.optimizer.learning_rate
                                         for run in runs}}
  return summary


def _gain_row(key: str, single: Sequence[float], multi: Sequence[float]) -> dict[str, Any]:
  """One task's row: its metric in both settings over seeds and the relative gain."""
  single_stats, multi_stats = _mean_std(single), _mean_std(multi)
  lower = metrics_main.lower_is_better(key)
  return {"metric": key, "lower_is_better": lower, "single_task": single_stats,
          "multi_task": multi_stats, "relative_gain": _or_none(
              gain.relative_gain, multi_stats["mean"], single_stats["mean"], lower)}


def _other_splits(runs: Sequence[SubRun], main_keys: Mapping[str, str], seeds: Sequence[int]
                  ) -> dict[str, dict[str, Any]]:
  """Each further split the runs scored once at their end (e.g. `test`), as `summarize`'s tasks.

  A split appears when every run has its `metrics_<split>.json`; a task is in it
  when those files score it in both settings at every seed (a test split with
  labels for some tasks only, as GLUE's, leaves the others out). The held-out
  slice and dev (`eval`) are not further splits: one chose, the other is reported.
  """
  found = None
  for run in runs:
    names = {name[len("metrics_"):-len(".json")] for name in os.listdir(run.workdir)
             if name.startswith("metrics_") and name.endswith(".json")}
    found = names if found is None else found & names
  splits: dict[str, dict[str, Any]] = {}
  for split in sorted((found or set()) - {"eval", HELDOUT}):
    metrics = {}
    for run in runs:
      with open(os.path.join(run.workdir, metrics_filename(split, run.config.train.eval_split))
                ) as f:
        metrics[run.task, run.seed] = json.load(f)
    rows = {}
    for task, key in main_keys.items():
      if not all(key in metrics[setting, s].get(task, {}) for setting in (task, None)
                 for s in seeds):
        continue
      rows[task] = _gain_row(key, [metrics[task, s][task][key] for s in seeds],
                             [metrics[None, s][task][key] for s in seeds])
    if rows:
      splits[split] = rows
  return splits


def _or_none(function, *args):
  """`function(*args)`, or None where a single-task value is 0 (no relative gain)."""
  try:
    return function(*args)
  except ValueError:
    return None


def _percent(value: float | None) -> str:
  return "n/a (a single-task value is 0)" if value is None else f"{100 * value:+.2f}%"


def _gains_table(rows: Mapping[str, Any]) -> list[str]:
  """The markdown table of `_gain_row`s, one line per task."""
  lines = ["| task | metric | single-task | multi-task | gain |", "| --- | --- | --- | --- | --- |"]
  for task, row in rows.items():
    cells = [f"{row[s]['mean']:.4f} ± {row[s]['std']:.4f}" for s in ("single_task", "multi_task")]
    metric = row["metric"] + (" ↓" if row["lower_is_better"] else "")
    lines.append(f"| {task} | {metric} | {cells[0]} | {cells[1]} | "
                 f"{_percent(row['relative_gain'])} |")
  return lines


def format_report(summary: dict[str, Any], figures: dict[str, str]) -> str:
  """`report.md`: the gains table, Δm, training times and the figures."""
  setup, seeds = summary["setup"], summary["seeds"]
  lines = [
      "# Multi-task vs single-task", "",
      f"Weighting `{setup['weighting']}`, sharing `{setup['sharing']}`, encoder "
      f"{setup['encoder']}; {setup['steps']} steps of {setup['batch_size']} examples per "
      f"task; seeds {', '.join(map(str, seeds))}. Each cell is the mean ± std over seeds "
      "(std with n − 1); gain = (−1)^l (MT − ST) / |ST|, l = 1 where lower is better (↓).",
      ""] + _gains_table(summary["tasks"])
  per_seed = ", ".join(_percent(d) for d in summary["delta_m_per_seed"])
  excluded = summary["delta_m_excluded"]
  over = ("the tasks" if not excluded else
          f"{len(summary['tasks']) - len(excluded)} of {len(summary['tasks'])} tasks; "
          f"left out, single-task value 0: {', '.join(excluded)}")
  lines += ["", f"**Δm = {_percent(summary['delta_m'])}** (average relative gain over "
            f"{over}; from the means; per seed: {per_seed})"]
  for split, rows in summary.get("other_splits", {}).items():
    lines += ["", f"## The `{split}` split", "",
              "Scored once at the end of each run (its checkpoint chosen as above), never used "
              "to choose anything.", ""] + _gains_table(rows)
  lines += ["", "## Training time", "",
            "Wall-clock seconds of each run (start-up, compiles, training, evaluation).", "",
            "| run | " + " | ".join(f"seed {s}" for s in seeds) + " | mean |",
            "| --- |" + " --- |" * (len(seeds) + 1)]
  by_setting: dict[str, dict[int, float]] = {}
  for run in summary["runs"]:
    label = "multi-task" if run["task"] is None else f"single-task {run['task']}"
    by_setting.setdefault(label, {})[run["seed"]] = run["seconds"]
  for label, seconds in by_setting.items():
    lines.append(f"| {label} | " + " | ".join(f"{seconds[s]:.1f}" for s in seeds)
                 + f" | {np.mean(list(seconds.values())):.1f} |")
  selection = summary.get("selection")
  if selection:
    grid = selection["learning_rates"]
    lines += ["", "## Learning rates, chosen on held-out data", "",
              f"Each setting trained once per rate (seed {selection['seed']}) with "
              f"{selection['held_out_fraction']:g} of every task's train split held out; "
              "the score is the held-out main metric (the multi-task run's: the mean over "
              "its tasks). The dev split above took no part.", "",
              "| setting | " + " | ".join(f"lr {lr:g}" for lr in grid) + " | chosen |",
              "| --- |" + " --- |" * (len(grid) + 1)]
    for name, entry in selection["settings"].items():
      cells = [f"{entry['scores'][repr(float(lr))]:.4f}" for lr in grid]
      lines.append(f"| {name} | " + " | ".join(cells) + f" | {entry['chosen']:g} |")
  if summary.get("baselines"):
    lines += ["", f"The single-task runs are read from the comparison in "
              f"`{summary['baselines']}` (the same examples, budget and encoder; their own "
              "learning rates and recipe), not trained here."]
  if summary.get("reused"):
    lines += ["", "Read from earlier runs with the same config (the same run: training is "
              "deterministic given it), not trained again: "
              + ", ".join(f"`{path}`" for path in summary["reused"]) + "."]
  if figures:
    lines += ["", "## Figures", ""] + [f"![{name}]({png})" for name, png in figures.items()]
  return "\n".join(lines) + "\n"


def run(config: ml_collections.ConfigDict, workdir: str, seeds: Sequence[int] = (0, 1, 2),
        progress: bool = True, learning_rates: Mapping[str, float] | None = None,
        selection: dict[str, Any] | None = None,
        finished: Sequence[SubRun] = (), baselines: str | None = None,
        reuse: str | None = None) -> dict[str, Any]:
  """Trains the multi-task run and every single-task baseline per seed, writes the report.

  Args:
    config: a resolved multi-task config (`mtl_jax.config.load_config`).
    workdir: the comparison's folder (see the module docstring for its layout).
    seeds: the seeds (`config.seed` of each run).
    progress: show each run's progress bar.
    learning_rates: each setting's learning rate (see `plan`).
    selection: how they were chosen (`mtl_jax.reports.selection`), for the report.
    finished: runs trained before (the selection's candidates): a planned run
      with the same config is read from there instead of trained again
      (`reuse_finished`); the report's run list names the folder it read.
    baselines: a finished comparison's folder to read the single-task runs
      from instead of training them (`read_baselines`).
    reuse: a finished comparison's folder; a planned run with the config of
      one of its runs is read from there, not trained (e.g. a grid that
      widens a finished comparison's).

  Returns:
    The summary written to `report.json`.
  """
  planned = plan(config, workdir, seeds, learning_rates)
  runs = reuse_finished(planned, [*finished, *(finished_runs(reuse) if reuse else ())])
  if baselines:
    runs = read_baselines(runs, baselines)
  check_all_finished(train_all(runs, progress))
  summary = summarize(config, runs)
  summary["reused"] = [run.workdir for run, own in zip(runs, planned)
                       if run.workdir != own.workdir and not (baselines and run.task)]
  if baselines:
    summary["baselines"] = baselines
  if selection:
    summary["selection"] = selection
  multi = [run.workdir for run in runs if run.task is None]
  # A task's single-task curve averages the runs that have it (its own).
  logs = {"multi-task": figures_lib.read_logs(multi),
          "single-task": figures_lib.read_logs([r.workdir for r in runs if r.task])}
  figures = figures_lib.write_figures(workdir, list(summary["tasks"]), logs, "multi-task",
                                      multi)
  summary["figures"] = figures
  with open(os.path.join(workdir, REPORT_JSON), "w") as f:
    json.dump(summary, f, indent=2)
  with open(os.path.join(workdir, REPORT_MD), "w") as f:
    f.write(format_report(summary, figures))
  return summary
