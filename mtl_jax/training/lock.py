"""One trainer per workdir: an exclusive lock on `WORKDIR/.lock` for the whole run.

Two runs on one workdir would write each other's tokenizer, config and
checkpoints and delete each other's saves. The lock is the kernel's
(`flock`), so it goes with its process, also on kill -9: a stale file never
blocks a later run. The file names the holder's host and pid for the error.
On several hosts, host 0 takes it for the run.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from typing import Iterator

LOCK_FILE = ".lock"


class WorkdirBusy(OSError):
  """Another run holds the workdir."""


@contextlib.contextmanager
def workdir_lock(workdir: str, take: bool = True) -> Iterator[None]:
  """Holds the workdir's lock while the block runs.

  Args:
    workdir: the run's folder (created if needed).
    take: False on hosts other than host 0 (they do not lock).

  Raises:
    WorkdirBusy: another process holds it (its host and pid named).
  """
  if not take:
    yield
    return
  os.makedirs(workdir, exist_ok=True)
  fd = os.open(os.path.join(workdir, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.pread(fd, 256, 0).decode("utf-8", "replace").strip() or "another process"
      raise WorkdirBusy(f"{workdir} is in use by another run ({holder}): wait for it to "
                        "end, or train in another --workdir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"host {socket.gethostname()} pid {os.getpid()}\n".encode(), 0)
    yield
  finally:
    os.close(fd)  # releases the lock
