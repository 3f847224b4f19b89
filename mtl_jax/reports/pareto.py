"""`mtl-jax pareto`: the static-weight front of two tasks, and where the methods land.

Kurin et al. (2022) and Xin et al. (2022) ask of every balancing method one
question: does it reach a trade-off that some fixed loss weighting does not?
For two tasks a and b of a config, this trains, per seed,

* the static weightings `static(weights=[2w, 2(1 - w)])` for each w of the
  grid (the weights sum to 2, as equal's do, so the learning rate means the
  same; w = 0.5 runs as `equal`, the same weights), and
* each balancing method of `methods`,

all else as the config says (use the learning rate `compare --learning-rates`
chose for the multi-task run). Each run is scored on the eval split by the
two tasks' main metrics. The front is the static runs' means, joined in the
order of w; a method lands **beyond the front** when its mean point lies
above the front's piecewise-linear curve (both metrics oriented so higher is
better): no mixture of two neighbouring static weightings reaches it. Where
a method's first metric lies outside the front's range, the nearer end of
the front is the comparison.

Layout: `DIR/static_w<w>/seed_<s>/` and `DIR/<method>/seed_<s>/` (ordinary
training workdirs), then `DIR/pareto.json`, `DIR/pareto.md` and
`DIR/pareto.png` (means with seed standard deviations as error bars).
Running it again skips finished runs and resumes interrupted ones; a run
another process trains is left to it (`mtl_jax.reports.compare.train_all`).
With `reuse`, a point's run whose config a finished comparison's run has
(typically w = 0.5: `compare`'s equal-weight multi-task run at the same
rate) is read from there, not trained again.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Sequence

import ml_collections
import numpy as np

from mtl_jax import config as config_lib
from mtl_jax.metrics import main as metrics_main
from mtl_jax.reports import compare
from mtl_jax.training import run as run_lib
from mtl_jax.training.evaluate import metrics_filename

PARETO_JSON = "pareto.json"
PARETO_MD = "pareto.md"
PARETO_PNG = "pareto.png"
DEFAULT_WEIGHTS = (0.1, 0.25, 0.5, 0.75, 0.9)


def pair_config(config: ml_collections.ConfigDict, tasks: Sequence[str]
                ) -> ml_collections.ConfigDict:
  """`config` with only the two `tasks` (their entries as the run resolves them).

  Raises:
    ValueError: not two distinct tasks of the config.
  """
  if len(tasks) != 2 or tasks[0] == tasks[1]:
    raise ValueError(f"a Pareto front needs two distinct tasks, got {list(tasks)}")
  singles = [compare.single_task_config(config, task) for task in tasks]  # KeyError if absent
  pair = config_lib.resolve(config)
  pair.mixture = ""
  pair.tasks = {task: single.tasks[task].to_dict() for task, single in zip(tasks, singles)}
  return pair


def run_name(method: str) -> str:
  """A method spec as a folder name ('cagrad(c=0.4)' -> 'cagrad_c_0.4')."""
  return re.sub(r"[^A-Za-z0-9.]+", "_", method).strip("_")


def static_method(w: float) -> str:
  """The balancing spec of task a's share w: weights 2w and 2(1 - w); 'equal' at 0.5.

  Equal weighting weighs both losses 1, as w = 0.5 does: named so, its runs
  are a comparison's equal-weight runs (`run(reuse=...)` reads them).
  """
  return "equal" if w == 0.5 else f"static(weights=[{2 * w!r}, {2 * (1 - w)!r}])"


def plan(config: ml_collections.ConfigDict, workdir: str, tasks: Sequence[str],
         weights: Sequence[float] = DEFAULT_WEIGHTS, methods: Sequence[str] = (),
         seeds: Sequence[int] = (0, 1, 2)) -> dict[str, list[compare.SubRun]]:
  """The runs: {point name: its runs over the seeds}, the static ones first.

  Raises:
    ValueError: a weight outside (0, 1), a repeated point, or no seeds.
  """
  if not seeds:
    raise ValueError("pareto needs at least one seed")
  if not all(0.0 < w < 1.0 for w in weights):
    raise ValueError(f"static weights must be in (0, 1), got {list(weights)}")
  pair = pair_config(config, tasks)
  points: dict[str, str] = {f"static_w{w:g}": static_method(w) for w in weights}
  for method in methods:
    points[run_name(method)] = method
  if len(points) != len(weights) + len(methods):
    raise ValueError(f"points repeat: weights {list(weights)}, methods {list(methods)}")
  runs = {}
  for name, method in points.items():
    runs[name] = []
    for seed in seeds:
      point = config_lib.resolve(pair)
      point.balancing.method = method
      point.seed = seed
      runs[name].append(compare.SubRun(None, seed, os.path.join(workdir, name, f"seed_{seed}"),
                                       point, name=name))
  return runs


def training_order(runs: dict[str, list[compare.SubRun]]) -> list[compare.SubRun]:
  """Every run, seed by seed: all points of the first seed, then of the next.

  A front stopped part-way (runs of an hour each, across sessions) then has
  every point at the seeds it finished, not every seed of some points.
  """
  indexed = [(i, run) for point_runs in runs.values() for i, run in enumerate(point_runs)]
  return [run for _, run in sorted(indexed, key=lambda pair: pair[0])]


def beyond_front(front: Sequence[tuple[float, float]], point: tuple[float, float]) -> bool:
  """Whether `point` lies above the piecewise-linear curve through `front`.

  Args:
    front: (x, y) points, higher is better on both, in any order.
    point: (x, y).

  Returns:
    True where y exceeds the front's y at x (linear between neighbouring front
    points, the nearer end outside their x range), or x exceeds every front
    point's x with y at least the y there.
  """
  xs, ys = np.asarray(sorted(front)).T
  x, y = point
  # Python bools: the summary goes to JSON, which refuses numpy's.
  if x > xs[-1]:
    return bool(y >= ys[-1])
  return bool(y > np.interp(x, xs, ys))


def summarize(runs: dict[str, list[compare.SubRun]], tasks: Sequence[str]) -> dict[str, Any]:
  """The points' metrics (per seed, mean and std) and which methods land beyond the front."""
  task_objects = {t.name: t for t in run_lib.build_tasks(next(iter(runs.values()))[0].config)}
  points: dict[str, Any] = {}
  keys: dict[str, str] = {}
  for name, point_runs in runs.items():
    values = {task: [] for task in tasks}
    for run in point_runs:
      path = os.path.join(run.workdir, metrics_filename("eval", run.config.train.eval_split))
      with open(path) as f:
        results = json.load(f)
      for task in tasks:
        key = keys.setdefault(task, metrics_main.main_metric_key(
            results[task], task_objects[task].spec.main_metric_in(results[task]), task))
        values[task].append(float(results[task][key]))
    points[name] = {
        "method": point_runs[0].config.balancing.method, "static": name.startswith("static_w"),
        "metrics": {task: {"values": v, "mean": float(np.mean(v)),
                           "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0}
                    for task, v in values.items()}}
  signs = {task: -1.0 if metrics_main.lower_is_better(keys[task]) else 1.0 for task in tasks}

  def oriented(point):
    return tuple(signs[t] * point["metrics"][t]["mean"] for t in tasks)

  front = [oriented(p) for p in points.values() if p["static"]]
  for point in points.values():
    if not point["static"]:
      point["beyond_front"] = beyond_front(front, oriented(point))
  return {"tasks": list(tasks), "metrics": keys, "seeds": [r.seed for r in
                                                           next(iter(runs.values()))],
          "points": points}


def format_report(summary: dict[str, Any]) -> str:
  """`pareto.md`: every point's two metrics and whether each method lands beyond the front."""
  a, b = summary["tasks"]
  metric_a, metric_b = summary["metrics"][a], summary["metrics"][b]
  lines = ["# Static-weight front and balancing methods", "",
           f"Tasks {a} ({metric_a}) and {b} ({metric_b}), eval split; mean ± std over seeds "
           f"{', '.join(map(str, summary['seeds']))}. Static runs weigh the losses "
           "2w and 2(1 − w); a method is beyond the front when its mean lies above the "
           "static means' piecewise-linear curve.", "",
           f"| point | method | {a} | {b} | beyond the front |", "| --- | --- | --- | --- | --- |"]
  for name, point in summary["points"].items():
    cells = [f"{point['metrics'][t]['mean']:.4f} ± {point['metrics'][t]['std']:.4f}"
             for t in (a, b)]
    beyond = "" if point["static"] else ("**yes**" if point["beyond_front"] else "no")
    lines.append(f"| {name} | `{point['method']}` | {cells[0]} | {cells[1]} | {beyond} |")
  methods = [n for n, p in summary["points"].items() if not p["static"]]
  winners = [n for n in methods if summary["points"][n]["beyond_front"]]
  if methods:
    lines += ["", f"Beyond the front: {', '.join(winners) if winners else 'none'} "
              f"(of {len(methods)} method(s))."]
  lines += ["", f"![front]({PARETO_PNG})"]
  return "\n".join(lines) + "\n"


def plot(summary: dict[str, Any], png_path: str) -> str:
  """The front (static means joined in the order of w) and the methods, with error bars."""
  from mtl_jax.metrics import plots  # matplotlib only where it is used

  a, b = summary["tasks"]
  figure, axes = plots.plt.subplots(figsize=(6, 5))
  statics = [p for p in summary["points"].values() if p["static"]]
  axes.errorbar([p["metrics"][a]["mean"] for p in statics],
                [p["metrics"][b]["mean"] for p in statics],
                xerr=[p["metrics"][a]["std"] for p in statics],
                yerr=[p["metrics"][b]["std"] for p in statics], fmt="o-", color="gray",
                label="static weights", capsize=3)
  for name, point in summary["points"].items():
    if point["static"]:
      axes.annotate(name.removeprefix("static_"), (point["metrics"][a]["mean"],
                                                   point["metrics"][b]["mean"]), fontsize=7)
      continue
    axes.errorbar(point["metrics"][a]["mean"], point["metrics"][b]["mean"],
                  xerr=point["metrics"][a]["std"], yerr=point["metrics"][b]["std"], fmt="s",
                  capsize=3, label=name + (" (beyond)" if point["beyond_front"] else ""))
  axes.set_xlabel(f"{a} {summary['metrics'][a]}")
  axes.set_ylabel(f"{b} {summary['metrics'][b]}")
  axes.legend(fontsize=7)
  figure.tight_layout()
  figure.savefig(png_path, dpi=120)
  plots.plt.close(figure)
  return png_path


def run(config: ml_collections.ConfigDict, workdir: str, tasks: Sequence[str],
        weights: Sequence[float] = DEFAULT_WEIGHTS, methods: Sequence[str] = (),
        seeds: Sequence[int] = (0, 1, 2), progress: bool = True,
        reuse: str | None = None) -> dict[str, Any]:
  """Trains the front and the methods, writes pareto.json, pareto.md and pareto.png.

  Args:
    config: a config with the two tasks (others are dropped).
    workdir: the folder of the runs and the report.
    tasks: the two tasks.
    weights: the static grid, each w in (0, 1) (task a's share).
    methods: balancing method specs placed against the front.
    seeds: the seeds of every point.
    progress: show each run's progress bar.
    reuse: a finished comparison's folder (`mtl-jax compare`); a planned run
      with the config of one of its runs is read from there, not trained.

  Returns:
    The summary written to pareto.json.

  Raises:
    compare.StillTraining: runs other processes still train (run it again later).
  """
  runs = plan(config, workdir, tasks, weights, methods, seeds)
  if reuse:
    finished = compare.finished_runs(reuse)
    runs = {name: compare.reuse_finished(point_runs, finished)
            for name, point_runs in runs.items()}
  compare.check_all_finished(compare.train_all(training_order(runs), progress))
  summary = summarize(runs, tasks)
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, PARETO_JSON), "w") as f:
    json.dump(summary, f, indent=2)
  plot(summary, os.path.join(workdir, PARETO_PNG))
  with open(os.path.join(workdir, PARETO_MD), "w") as f:
    f.write(format_report(summary))
  return summary
