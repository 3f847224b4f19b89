"""Resuming: is the checkpoint in a workdir from the run that a config describes?

A workdir keeps its run's `config.json`, `tasks.json` (labels) and
`encoder.json`. Training again on it must describe the same model, tasks,
data order and optimizer state, or the checkpoint would be silently misread;
settings that leave the train state's meaning alone (the run's length, log,
eval and checkpoint cadence, the mesh, learning-rate hyperparameters,
dropout, the compute dtype) may change.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Iterator

from mtl_jax import config as config_lib

# Config keys of how a step computes, not what: implementations of the same
# function (results differ in rounding only) and token compaction (the same
# function; with dropout on, its masks are drawn over the compact buffer: another
# draw of the same distribution). Left out of a run's identity (`reports.compare`).
IMPLEMENTATION_KEYS = ("encoder.attention_impl", "encoder.matmul_impl", "encoder.norm_impl",
                       "train.token_buckets")

# Config keys (or key prefixes, ending in '.') that may differ on resume.
CHANGEABLE = (
    *IMPLEMENTATION_KEYS,
    "train.steps", "train.log_every", "train.eval_every", "train.checkpoint_every",
    "train.eval_batch_size", "train.max_nonfinite_in_a_row",
    "checkpoint.", "mesh.", "distributed.",
    "optimizer.learning_rate", "optimizer.warmup_steps", "optimizer.schedule",
    "optimizer.weight_decay",
    "encoder.pretrained", "encoder.dtype", "encoder.hidden_dropout",
    "encoder.attention_dropout",
    # Measuring task relatedness leaves the train state alone.
    "relatedness.measure_every", "relatedness.lookahead_lr",
)
_ENCODER_CHANGEABLE = ("dtype", "hidden_dropout", "attention_dropout", "attention_impl",
                       "matmul_impl", "norm_impl")


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
  if isinstance(value, dict) and value:
    for key, item in value.items():
      yield from _flatten(item, f"{prefix}{key}.")
  else:
    yield prefix[:-1], value


def _changeable(key: str) -> bool:
  return any(key == c or (c.endswith(".") and key.startswith(c)) for c in CHANGEABLE)


def _json(value: Any) -> Any:
  return json.loads(json.dumps(value))


def differences(saved: dict[str, Any], new: dict[str, Any], prefix: str = ""
                ) -> list[str]:
  """'key: saved -> new' for every differing leaf of two JSON-like dicts."""
  saved, new = dict(_flatten(_json(saved))), dict(_flatten(_json(new)))
  missing = "(absent)"
  return [f"{prefix}{key}: {saved.get(key, missing)!r} -> {new.get(key, missing)!r}"
          for key in sorted(set(saved) | set(new))
          if saved.get(key, missing) != new.get(key, missing)]


def check_compatible(workdir: str, run, saved_files: dict[str, Any]) -> None:
  """Raises if `run` is not the run whose checkpoint `workdir` holds.

  Args:
    workdir: a training workdir with a checkpoint.
    run: the prepared run (`training.run.prepare`) of the new config.
    saved_files: the workdir's run files (`training.run.read_run_files`).

  Raises:
    ValueError: the model, tasks, labels, data order or optimizer differ;
      the message lists every difference.
  """
  from mtl_jax.training import run as run_lib  # run imports the checkpointer

  saved_config = config_lib.resolve(saved_files[run_lib.CONFIG_FILE]).to_dict()
  found = [d for d in differences(saved_config, run.config.to_dict())
           if not _changeable(d.split(":")[0])]
  saved_tasks = saved_files[run_lib.TASKS_FILE]
  # As `run.save` writes them (the rate is None without a mixture).
  new_tasks = {t.name: {"kind": t.kind, "labels": list(run.labels[t.name]),
                        "rate": run.rates and run.rates[t.name]}
               for t in run.tasks}
  found += differences(saved_tasks, new_tasks, prefix="tasks.json: ")
  saved_encoder = saved_files[run_lib.ENCODER_FILE]
  new_encoder = dataclasses.asdict(run.encoder_config)
  found += [d for d in differences(saved_encoder, new_encoder, prefix="encoder.json: ")
            if d.split(":")[1].strip() not in _ENCODER_CHANGEABLE]
  if found:
    raise ValueError(
        f"{workdir} holds a checkpoint of a different run; resuming it with this config "
        "would misread it. Differences (saved -> now):\n  " + "\n  ".join(found) +
        f"\nUse a new --workdir, or train with the config saved in "
        f"{os.path.join(workdir, run_lib.CONFIG_FILE)}.")
