"""Reports: multi-task vs single-task comparisons (`mtl-jax compare`), run figures.

* `gain`: relative gain and its task average Δm (lower-is-better aware).
* `figures`: loss curves, task weights, gradient-cosine and relatedness heat
  maps of one run or a comparison; `run_report` (`mtl-jax report`).
* `compare`: trains the multi-task run and each task's single-task
  baseline over seeds, resumably, and writes `report.md` / `report.json`.
"""

from mtl_jax.reports import compare, figures, gain
from mtl_jax.reports.compare import single_task_config
from mtl_jax.reports.figures import run_report, write_figures
from mtl_jax.reports.gain import delta_m, lower_is_better, relative_gain
