"""Early stopping: end a run when its best metric stops improving.

After each evaluation the loop hands the value of `checkpoint.best_metric` to
`EarlyStopping.update`; `train.patience` evaluations in a row without a new
best end the run, and its final metrics are those of the best checkpoint.
The state is saved in every checkpoint's meta, so a resumed run counts on
where it stopped, and a run that stopped early stays stopped.
"""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass
class EarlyStopping:
  """The best value so far, the evaluations since it, and where the run stopped.

  Attributes:
    patience: evaluations without a new best that stop the run (0: never).
    mode: 'max' or 'min', which end of the metric is best.
    best: the best value seen (None before the first evaluation).
    evaluations_since_best: evaluations since `best` was set.
    stopped_at: the step the run stopped at, or None.
  """

  patience: int
  mode: str = "max"
  best: float | None = None
  evaluations_since_best: int = 0
  stopped_at: int | None = None

  def update(self, step: int, value: float) -> bool:
    """Counts one evaluation at `step`; returns whether the run stops here.

    A NaN value is never a new best (a diverged run is not rewarded).
    """
    improved = not math.isnan(value) and (
        self.best is None or (value > self.best if self.mode == "max" else value < self.best))
    if improved:
      self.best, self.evaluations_since_best = float(value), 0
    else:
      self.evaluations_since_best += 1
    if self.patience and self.evaluations_since_best >= self.patience:
      self.stopped_at = step
    return self.stopped_at is not None

  def to_meta(self) -> dict:
    """What a checkpoint's meta keeps (restored by `EarlyStopping(patience, mode, **meta)`)."""
    return {"best": self.best, "evaluations_since_best": self.evaluations_since_best,
            "stopped_at": self.stopped_at}
