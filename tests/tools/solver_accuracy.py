"""How close the balancing solvers come to exact solutions, on random hard cases.

Run by hand (not part of the suite; CAGrad's reference needs cvxpy, e.g.
`pip install "torchjd[full]==0.18.0"` or `pip install cvxpy`):

    python tests/tools/solver_accuracy.py

Cases: k = 2..10 tasks, gradient norms spread over 1.5 decades or two nearly
opposite gradients (a third each). Prints, per method, the relative error of
the float32 solver inside our jitted step against a float64 solution:

* UPGrad's QP (`linalg.min_quadratic_above`): exact enumeration of free sets;
* CAGrad's update: cvxpy (Clarabel) on the same problem, as torchjd solves it;
* Nash-MTL: the residual of the bargaining condition `alpha_i (G alpha)_i = 1`,
  by the least eigenvalue of the gradients' cosine matrix;
* with torchjd installed, how far rounding G to float32 alone moves torchjd's
  float64 answers on the reference fixture's nearly-opposite cases.

The README's "Every method runs inside the one jitted `train_step`" paragraph
quotes these numbers.
"""

from __future__ import annotations

import os
import sys
import warnings

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from mtl_jax import weighting  # noqa: E402
from mtl_jax.weighting import linalg  # noqa: E402
from helpers import exact_min_quadratic_above  # noqa: E402


def jacobians(seed: int, count: int):
  """(case kind, J [k, n]): random, ill-scaled, or with two nearly opposite rows."""
  rng = np.random.default_rng(seed)
  for case in range(count):
    k = int(rng.integers(2, 11))
    jac = rng.normal(size=(k, k + int(rng.integers(0, 20))))
    if case % 3 == 1:
      jac *= np.logspace(0, 1.5, k)[:, None]
    if case % 3 == 2:
      jac[1] = -jac[0] + 1e-2 * rng.normal(size=jac.shape[1])
    yield ("random", "ill-scaled", "nearly opposite")[case % 3], jac


def upgrad_errors(count: int):
  solve = jax.jit(linalg.min_quadratic_above)
  errors = {}
  for kind, jac in jacobians(0, count):
    k = len(jac)
    gram = jac @ jac.T
    gram = (gram / np.trace(gram) + 1e-4 * np.eye(k)).astype(np.float32)
    for i in range(k):
      lower = np.eye(k)[i] / k
      expected = exact_min_quadratic_above(gram.astype(np.float64), lower)
      v, converged = solve(jnp.asarray(gram), jnp.asarray(lower, jnp.float32))
      assert bool(converged)
      errors.setdefault(kind, []).append(
          np.linalg.norm(np.asarray(v, np.float64) - expected) / np.linalg.norm(expected))
  return errors


def cagrad_errors(count: int, c: float = 0.4):
  import cvxpy as cp
  errors = {}
  for kind, jac in jacobians(1, count):
    k = len(jac)
    unit = jac / np.sqrt(np.trace(jac @ jac.T))  # the problem is scale-free
    g0 = unit.mean(0)
    radius = c * np.linalg.norm(g0)
    w = cp.Variable(k)
    cp.Problem(cp.Minimize((unit @ g0) @ w + radius * cp.norm(unit.T @ w, 2)),
               [w >= 0, cp.sum(w) == 1]).solve(cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12,
                                               tol_feas=1e-12)
    g_w = unit.T @ w.value
    expected = (g0 + radius / np.linalg.norm(g_w) * g_w) / (1 + c ** 2)
    method = weighting.from_spec("cagrad", num_tasks=k)
    coeffs, _ = jax.jit(method.weigh)(jnp.asarray(unit @ unit.T, jnp.float32), method.init(k))
    ours = np.asarray(coeffs, np.float64) @ unit
    errors.setdefault(kind, []).append(np.linalg.norm(ours - expected)
                                       / np.linalg.norm(expected))
  return errors


def nash_residuals(count: int):
  bands = {}
  for _, jac in jacobians(2, count):
    k = len(jac)
    gram = jac @ jac.T
    norms = np.sqrt(np.diag(gram))
    least = np.linalg.eigvalsh(gram / np.outer(norms, norms))[0]
    method = weighting.from_spec("nash_mtl", num_tasks=k)
    alpha, _ = jax.jit(method.weigh)(jnp.asarray(gram, jnp.float32), method.init(k))
    alpha = np.asarray(alpha, np.float64)
    band = ("least eigenvalue >= 1e-2" if least >= 1e-2 else
            "1e-4 <= least eigenvalue < 1e-2" if least >= 1e-4 else "least eigenvalue < 1e-4")
    bands.setdefault(band, []).append(np.abs(alpha * (gram @ alpha) - 1).max())
  return bands


def report(title, groups):
  for name, values in groups.items():
    values = np.asarray(values)
    print(f"{title} [{name}]: n={len(values)} median {np.median(values):.1e} "
          f"max {values.max():.1e}")


def reference_sensitivity():
  """How far rounding G to float32 alone moves torchjd's float64 answers, on the
  nearly-opposite cases of tests/data/balancing_reference.npz (the floor for any
  float32 implementation there; test_reference.py's tolerances)."""
  import torch
  from torchjd import aggregation as agg

  reference = np.load(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                   "data", "balancing_reference.npz"))
  weightings = {"aligned_mtl": agg.AlignedMTLWeighting,
                "cagrad": lambda: agg.CAGradWeighting(c=0.4),
                "fairgrad_1": lambda: agg.FairGradWeighting(alpha=1.0),
                "fairgrad_2": lambda: agg.FairGradWeighting(alpha=2.0),
                "imtl_g": agg.IMTLGWeighting}
  moved = {name: [] for name in weightings}
  for key in reference.files:
    if not key.endswith("nearly_opposite/J"):
      continue
    jac = reference[key]
    j32 = jnp.asarray(jac, jnp.float32)
    rounded = np.asarray(jnp.einsum("kp,jp->kj", j32, j32, precision="highest"), np.float64)
    for name, make in weightings.items():
      expected = reference[key.replace("/J", f"/{name}")]
      update = make()(torch.tensor(rounded)).numpy() @ jac
      moved[name].append(np.linalg.norm(update - expected) / np.linalg.norm(expected))
  return moved


def main():
  report("UPGrad QP, relative error vs exact", upgrad_errors(60))
  report("Nash-MTL, bargaining residual", nash_residuals(100))
  try:
    import cvxpy  # noqa: F401
  except ImportError:
    print("CAGrad: skipped (pip install cvxpy)")
    return
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    report("CAGrad update, relative error vs cvxpy", cagrad_errors(60))
  try:
    import torchjd  # noqa: F401
  except ImportError:
    print("reference sensitivity: skipped (pip install \"torchjd[full]==0.18.0\")")
    return
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    report("torchjd's float64 update moved by rounding G to float32 [nearly opposite]",
           reference_sensitivity())


if __name__ == "__main__":
  main()
