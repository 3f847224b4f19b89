"""Several hosts: `jax.distributed.initialize` from the config or the environment.

On a TPU pod slice, under SLURM or Open MPI, JAX finds the coordinator, the
number of processes and this process's id itself: set
`distributed.enabled=True`. Elsewhere (e.g. several GPU hosts) give them in
the config (`distributed.coordinator_address`, `num_processes`,
`process_id`) or in the environment (`JAX_COORDINATOR_ADDRESS`,
`JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`); an address in either enables it.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping

import jax

log = logging.getLogger(__name__)


def initialize(config: Mapping[str, Any]) -> bool:
  """Joins the processes of a multi-host run; a no-op for a single process.

  Must run before any JAX computation (the training loop calls it first).

  Args:
    config: `config.distributed`.

  Returns:
    Whether this is a distributed run.
  """
  address = config["coordinator_address"] or os.environ.get("JAX_COORDINATOR_ADDRESS", "")
  if not (config["enabled"] or address):
    return False
  if jax.distributed.is_initialized():
    return True
  num_processes = config["num_processes"] or int(os.environ.get("JAX_NUM_PROCESSES", 0))
  process_id = config["process_id"]
  if process_id < 0:
    process_id = int(os.environ.get("JAX_PROCESS_ID", -1))
  jax.distributed.initialize(
      coordinator_address=address or None,
      num_processes=num_processes or None,
      process_id=None if process_id < 0 else process_id)
  log.info("process %d of %d; %d local of %d devices", jax.process_index(),
           jax.process_count(), jax.local_device_count(), jax.device_count())
  return True


def is_primary() -> bool:
  """True on the one process that writes logs, metrics and run files."""
  return jax.process_index() == 0
