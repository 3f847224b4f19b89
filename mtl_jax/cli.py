"""The `mtl-jax` command: train, eval, predict, compare, pareto, report, doctor.

    mtl-jax train --config experiments/configs/demo.py --workdir runs/demo
    mtl-jax eval --workdir runs/demo
    echo "Stocks rally" | mtl-jax predict --workdir runs/demo --task demo_ag_news
    printf 'A man sleeps.\tNobody sleeps.\n' | mtl-jax predict --workdir runs/glue --task glue_rte
    mtl-jax compare --config experiments/configs/demo.py --workdir runs/compare --seeds 0,1,2
    mtl-jax compare --config experiments/configs/demo.py --workdir runs/tuned \
        --learning-rates 5e-5,1e-4,2e-4   # each setting's rate chosen on held-out data
    mtl-jax compare --config experiments/configs/demo.py --workdir runs/pcgrad \
        --set balancing.method=pcgrad --baselines runs/tuned   # its single-task runs
    mtl-jax report --workdir runs/demo
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys


# `compare` ended with runs still training in other processes (EX_TEMPFAIL: try again).
EXIT_STILL_TRAINING = 75


def _step(text: str) -> int | str:
  if text in ("latest", "best"):
    return text
  try:
    return int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(
        f"{text!r} is not a step number, 'latest' or 'best'") from None


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="mtl-jax", description="Multi-task learning for NLP in JAX.")
  parser.add_argument("--debug", action="store_true",
                      help="show full tracebacks on errors")
  commands = parser.add_subparsers(dest="command", required=True)

  train = commands.add_parser("train", help="train the tasks of a config jointly")
  train.add_argument("--config", required=True,
                     help="a config file, optionally with an argument: path.py[:arg]")
  train.add_argument("--workdir", required=True,
                     help="output folder; a workdir with a checkpoint resumes")
  train.add_argument("--set", dest="overrides", action="append", default=[],
                     metavar="KEY=VALUE", help="override a config value (repeatable)")
  train.add_argument("--no-progress", action="store_true", help="no progress bar")

  evaluate = commands.add_parser("eval", help="evaluate a trained workdir")
  evaluate.add_argument("--workdir", required=True)
  evaluate.add_argument("--split", default=None,
                        help="the split to score: any split the tasks define ('eval', 'test', "
                        "'heldout'; default the run's train.eval_split); tasks without it "
                        "are skipped; other than 'eval' it writes metrics_SPLIT.json")
  evaluate.add_argument("--step", type=_step, default=None,
                        help="checkpoint: a step, 'latest' (default) or 'best' "
                        "(by checkpoint.best_metric)")

  predict = commands.add_parser(
      "predict", help="predict raw text, one input per line (pair tasks: two "
      "tab-separated texts); prints the label, score or tags, a tab, the input")
  predict.add_argument("--workdir", required=True)
  predict.add_argument("--task", required=True)
  predict.add_argument("--input", default="-",
                       help="a text file with one input per line, or - for stdin")
  predict.add_argument("--step", type=_step, default=None,
                       help="checkpoint: a step, 'latest' (default) or 'best'")
  predict.add_argument("--format", choices=("text", "jsonl"), default="text",
                       help="text: 'prediction<TAB>input' lines; jsonl: one JSON object "
                       "per line with the input, the prediction and each label's probability")
  predict.add_argument("--batch-size", type=int, default=None,
                       help="inputs per batch (default: the run's train.eval_batch_size)")
  export = commands.add_parser(
      "export", help="write a checkpoint for use elsewhere: the encoder as a Hugging Face "
      "BERT folder, each head as safetensors + JSON (loadable by Predictor.from_export)")
  export.add_argument("--workdir", required=True)
  export.add_argument("--out", required=True, help="a new (or empty) folder")
  export.add_argument("--step", type=_step, default=None,
                      help="checkpoint: a step, 'latest' (default) or 'best'")
  export.add_argument("--task", default=None, help="export only this task's head")
  commands.add_parser("doctor", help="print the backend, devices, kernel, versions and caches "
                      "(paste it into a bug report)")
  compare = commands.add_parser(
      "compare", help="train the config and each of its tasks alone, over seeds; "
      "write DIR/report.md (per-task gains, Δm, times, figures)")
  compare.add_argument("--config", required=True, help="a multi-task config: path.py[:arg]")
  compare.add_argument("--workdir", required=True,
                       help="the comparison's folder; running again resumes it")
  _add_run_options(compare)
  compare.add_argument(
      "--learning-rates", type=_positive_numbers, default=None, metavar="LR,LR,...",
      help="first choose each setting's learning rate from this grid on a held-out "
      "slice of its train split (runs in DIR/selection/, choices in DIR/selection.json)")
  compare.add_argument("--holdout", type=float, default=0.1, metavar="FRACTION",
                       help="the part of each train split held out for the choice (0.1)")
  compare.add_argument("--selection-seed", type=int, default=None,
                       help="the selection runs' seed (default: the first of --seeds)")
  compare.add_argument(
      "--baselines", default=None, metavar="DIR",
      help="read the single-task runs from the finished comparison in DIR (same tasks, "
      "seeds, budget and encoder) instead of training them; with --learning-rates, only "
      "the multi-task rate is chosen")

  pareto = commands.add_parser(
      "pareto", help="the static-weight front of two tasks and where balancing methods "
      "land against it; write DIR/pareto.md, pareto.json, pareto.png")
  pareto.add_argument("--config", required=True, help="a config with both tasks")
  pareto.add_argument("--workdir", required=True,
                      help="the runs' folder; running again resumes it")
  pareto.add_argument("--tasks", required=True, type=lambda t: tuple(t.split(",")),
                      metavar="A,B", help="the two tasks")
  pareto.add_argument("--weights", type=_positive_numbers, default=(0.1, 0.25, 0.5, 0.75, 0.9),
                      metavar="W,W,...", help="task A's share of each static weighting")
  pareto.add_argument("--methods", type=lambda t: tuple(m for m in t.split(";") if m),
                      default=(), metavar="M;M;...",
                      help="balancing method specs, ';'-separated (e.g. 'pcgrad;cagrad(c=0.4)')")
  _add_run_options(pareto)

  report = commands.add_parser(
      "report", help="figures and report.md of a trained workdir, in WORKDIR/report")
  report.add_argument("--workdir", required=True)
  return parser


def _add_run_options(parser: argparse.ArgumentParser) -> None:
  """The options of the commands that train many runs (compare, pareto)."""
  parser.add_argument("--seeds", type=_seeds, default=(0, 1, 2),
                      help="comma-separated seeds (default 0,1,2)")
  parser.add_argument("--set", dest="overrides", action="append", default=[],
                      metavar="KEY=VALUE", help="override a config value (repeatable)")
  parser.add_argument("--no-progress", action="store_true", help="no progress bars")
  parser.add_argument("--reuse", default=None, metavar="DIR",
                      help="read, instead of training, each run whose config a run of the "
                      "finished comparison in DIR has (e.g. its equal-weight runs, or the "
                      "rates of a grid this one widens)")


def _seeds(text: str) -> tuple[int, ...]:
  try:
    return tuple(int(seed) for seed in text.split(","))
  except ValueError:
    raise argparse.ArgumentTypeError(f"{text!r} is not comma-separated seeds") from None


def _positive_numbers(text: str) -> tuple[float, ...]:
  try:
    numbers = tuple(float(number) for number in text.split(","))
  except ValueError:
    raise argparse.ArgumentTypeError(f"{text!r} is not comma-separated numbers") from None
  if not all(number > 0 for number in numbers):
    raise argparse.ArgumentTypeError(f"{text!r}: every number must be positive")
  return numbers


def _compare(args) -> None:
  from mtl_jax import config as config_lib
  from mtl_jax.reports import compare
  from mtl_jax.reports import selection

  config = config_lib.apply_overrides(config_lib.load_config(args.config), args.overrides)
  try:
    if args.learning_rates:
      selection.run(config, args.workdir, args.learning_rates, args.seeds, args.holdout,
                    args.selection_seed, progress=not args.no_progress,
                    baselines=args.baselines, reuse=args.reuse)
    else:
      compare.run(config, args.workdir, args.seeds, progress=not args.no_progress,
                  baselines=args.baselines, reuse=args.reuse)
  except compare.StillTraining as waiting:
    print(f"mtl-jax compare: {waiting}", file=sys.stderr)
    raise SystemExit(EXIT_STILL_TRAINING) from None
  print(f"report: {os.path.join(args.workdir, compare.REPORT_MD)}")


def _pareto(args) -> None:
  from mtl_jax import config as config_lib
  from mtl_jax.reports import compare
  from mtl_jax.reports import pareto

  config = config_lib.apply_overrides(config_lib.load_config(args.config), args.overrides)
  try:
    pareto.run(config, args.workdir, args.tasks, args.weights, args.methods, args.seeds,
               progress=not args.no_progress, reuse=args.reuse)
  except compare.StillTraining as waiting:
    print(f"mtl-jax pareto: {waiting}", file=sys.stderr)
    raise SystemExit(EXIT_STILL_TRAINING) from None
  print(f"report: {os.path.join(args.workdir, pareto.PARETO_MD)}")


def _export(args) -> None:
  from mtl_jax.export import export_workdir

  print(f"exported: {export_workdir(args.workdir, args.out, args.step, args.task)}")


def _report(args) -> None:
  from mtl_jax.reports import figures

  print(f"report: {figures.run_report(args.workdir)}")


def _train(args) -> None:
  from mtl_jax import config as config_lib
  from mtl_jax.training import train

  config = config_lib.apply_overrides(config_lib.load_config(args.config), args.overrides)
  _print_glue(train(config, args.workdir, progress=not args.no_progress))


def _eval(args) -> None:
  from mtl_jax import metrics
  from mtl_jax.training.evaluate import evaluate_workdir

  results = evaluate_workdir(args.workdir, args.split, args.step, write=True)
  print(metrics.format_table(results))
  _print_glue(results)


def _print_glue(results) -> None:
  from mtl_jax import metrics

  glue = metrics.glue_average(results)
  if glue:
    print(f"GLUE score over {len(glue['tasks'])} of 9 tasks: {glue['score']:.4f}")


def _predict(args) -> None:
  from mtl_jax.predict import Predictor

  from mtl_jax.tasks.sources.base import decode_line

  # Read as bytes and decoded line by line, so a bad byte names its line.
  name = "<stdin>" if args.input == "-" else args.input
  stream = sys.stdin.buffer if args.input == "-" else open(args.input, "rb")
  with stream:
    lines = [decode_line(raw, number, "utf-8", name, hint="predict reads UTF-8 text"
                         ).rstrip("\r\n")
             for number, raw in enumerate(stream, 1)]
  predictor = Predictor.from_workdir(args.workdir, args.step)
  if args.batch_size is not None and args.batch_size < 1:
    raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
  # One output line per input line: an empty input line gets an empty prediction.
  present = [line for line in lines if line.strip()]
  results = iter(predictor.predict(args.task, present, batch_size=args.batch_size,
                                   scores=args.format == "jsonl") if present else [])
  for line in lines:
    if args.format == "text":
      print(f"{predictor.show(args.task, next(results))}\t{line}" if line.strip() else "")
      continue
    prediction, scores = next(results) if line.strip() else (None, None)
    print(json.dumps({"input": line, "prediction": prediction, "scores": scores},
                     ensure_ascii=False, default=float))


def _doctor(args) -> None:
  del args
  from mtl_jax import doctor

  print("\n".join(doctor.report()))


def _without_closed_loop_callbacks(hook):
  """`sys.unraisablehook` less the "Event loop is closed" errors of callbacks that
  fire after their event loop was closed: tensorstore's write callbacks of a
  failed checkpoint save, after orbax closed its loop (a traceback each, a dozen
  or more, before the save's own one-line error)."""

  def unraisablehook(unraisable):
    if (unraisable.exc_type is RuntimeError
        and str(unraisable.exc_value) == "Event loop is closed"):
      return
    hook(unraisable)

  return unraisablehook


def main(argv: list[str] | None = None) -> int:
  args = _parser().parse_args(argv)
  logging.basicConfig(level=logging.INFO if args.debug else logging.WARNING,
                      format="%(levelname)s %(name)s: %(message)s")
  if not args.debug:
    sys.unraisablehook = _without_closed_loop_callbacks(sys.unraisablehook)
  import datasets
  datasets.disable_progress_bars()
  datasets.logging.set_verbosity_error()
  commands = {"train": _train, "eval": _eval, "predict": _predict, "compare": _compare,
              "report": _report, "doctor": _doctor, "export": _export, "pareto": _pareto}
  from mtl_jax.training.preemption import Interrupted
  try:
    commands[args.command](args)
  except Interrupted as stopped:
    print(f"mtl-jax: {stopped}", file=sys.stderr)
    return 128 + stopped.signal_number if stopped.signal_number else 1
  except (ValueError, KeyError, OSError, FloatingPointError) as error:
    if args.debug:
      raise
    message = error.args[0] if isinstance(error, KeyError) and error.args else error
    print(f"mtl-jax: error: {message}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
