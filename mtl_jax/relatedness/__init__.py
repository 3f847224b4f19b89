"""Task relatedness: the `L_R` regulariser (prior or learned R) and measured relatedness.

* `regularizer`: `L_R = sum_ij R_ij ||f_i - f_j||^2`, added to the objective
  when `relatedness.weight > 0`.
* `measure`: task-gradient cosines and the lookahead inter-task affinity
  (TAG), every `relatedness.measure_every` steps.
* `report`: `relatedness.json` and the heat map `relatedness.png`.
* `monitor`: measuring during training (probe batches, the jitted function).
"""

from mtl_jax.relatedness.measure import make_measure_fn, relatedness_measures
from mtl_jax.relatedness.monitor import RelatednessMonitor
from mtl_jax.relatedness.regularizer import (RelatednessRegularizer, learned_relatedness,
                                             make_regularizer, prior_matrix,
                                             relatedness_penalty, squared_distances,
                                             task_features)
from mtl_jax.relatedness.report import RelatednessLog
