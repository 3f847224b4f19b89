"""Writes tests/data/balancing_reference.npz: reference outputs of the balancing methods.

Run by hand (not part of the suite), in an environment with the references:

    pip install "torchjd[full]==0.18.0"   # brings quadprog, cvxpy, scipy
    python tests/tools/make_balancing_reference.py

Cases: fixed float64 Jacobians J [T, 24] for T = 2, 3, 4, 8, 10, each as
"random" (Gaussian rows), "ill_scaled" (row norms spread over about two
decades) and "nearly_opposite" (row 1 = -row 0 + 1e-2 noise). For each case
the file holds J and the aggregated update `d` [24] of every reference:

* torchjd 0.18 (its defaults): UPGrad, DualProj, IMTLG, AlignedMTL, ConFIG,
  CAGrad(c=0.4), FairGrad(alpha=1, 2), Krum(n_byzantine=0 and 1, where T
  allows), TrimmedMean(trim_number=1, where T allows), PCGrad with the
  random orders it drew (stored, so ours can follow them);
* LibMTL's MoCo and DB-MTL (not in torchjd), their few lines ported;
* exact float64 solves where torchjd's solver is approximate: MGDA's
  min-norm point (cvxpy, Clarabel at 1e-12); Nash-MTL's
  `alpha_i (G alpha)_i = 1` (scipy root-finding on the cosine matrix).

Stateful methods (MoDo, SDMGrad, CR-MOGM over UPGrad: torchjd's weightings fed
each step's Gram matrix J J^T; ExcessMTL with and without 2 warm-up steps:
torchjd's aggregator fed J; MoCo and DB-MTL: LibMTL's rules ported to numpy,
fed J and the step's losses) run over `sequence_T<T>`: four Jacobians in a
row, J [4, T, 24], and each step's update [4, 24].

Keys: `<case>/J`, `<case>/<method>`, and `<case>/pcgrad_orders` [T, T].
tests/weighting/test_reference.py compares our methods with these, after the
conventions the README states (our CAGrad divides by 1 + c^2, our
Aligned-MTL sums where torchjd averages).
"""

from __future__ import annotations

import importlib.metadata
import os

import cvxpy as cp
import numpy as np
import scipy.optimize
import torch
from torchjd import aggregation as agg

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data",
                   "balancing_reference.npz")
TASKS = (2, 3, 4, 8, 10)
DIM = 24


def jacobian(kind: str, tasks: int, rng: np.random.Generator) -> np.ndarray:
  jac = rng.normal(size=(tasks, DIM))
  if kind == "ill_scaled":
    jac *= np.exp(np.linspace(-2.3, 2.3, tasks))[:, None]
  elif kind == "nearly_opposite":
    jac[1] = -jac[0] + 1e-2 * rng.normal(size=DIM)
  return jac


def min_norm_point(jac: np.ndarray) -> np.ndarray:
  w = cp.Variable(jac.shape[0])
  problem = cp.Problem(cp.Minimize(cp.sum_squares(jac.T @ w)), [w >= 0, cp.sum(w) == 1])
  problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
  return jac.T @ np.maximum(w.value, 0.0) / np.maximum(w.value, 0.0).sum()


def nash_point(jac: np.ndarray) -> np.ndarray:
  norms = np.linalg.norm(jac, axis=1)
  cosines = (jac @ jac.T) / np.outer(norms, norms)

  def condition(log_beta):  # beta_i (C beta)_i = 1, beta = norms * alpha
    beta = np.exp(log_beta)
    return beta * (cosines @ beta) - 1.0

  # The minimiser of 1/2 b^T C b - sum log b in log coordinates, then root polishing.
  def objective(log_beta):
    beta = np.exp(log_beta)
    return 0.5 * beta @ cosines @ beta - np.sum(log_beta), beta * (cosines @ beta) - 1.0

  start = scipy.optimize.minimize(objective, np.zeros(len(norms)), jac=True, method="BFGS",
                                  options={"gtol": 1e-12, "maxiter": 10_000}).x
  solution = scipy.optimize.root(condition, start, method="hybr", tol=1e-14)
  beta = np.exp(solution.x)
  residual = np.max(np.abs(condition(solution.x)))
  assert residual < 1e-9, f"Nash-MTL reference did not converge: residual {residual:.1e}"
  return jac.T @ (beta / norms)


def libmtl_moco(jacs, losses, beta=0.5, beta_sigma=0.5, gamma=0.1, gamma_sigma=0.5, rho=0.0):
  """LibMTL's MoCo.backward, step after step; returns each step's update."""
  tasks = jacs.shape[1]
  y, lambd, updates = np.zeros(jacs.shape[1:]), np.ones(tasks) / tasks, []
  for step, (grads, loss) in enumerate(zip(jacs, losses), 1):
    grads = grads / (np.linalg.norm(grads, axis=1, keepdims=True) + 1e-8) * loss[:, None]
    y = y - (beta / step ** beta_sigma) * (y - grads)
    logits = lambd - (gamma / step ** gamma_sigma) * (y @ y.T + rho * np.eye(tasks)) @ lambd
    lambd = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    updates.append(y.T @ lambd)
  return np.stack(updates)


def libmtl_db_mtl(jacs, losses, beta=0.9, beta_sigma=0.0):
  """LibMTL's DB_MTL.backward (gradients of log(L + 1e-8)), step after step."""
  buffer, updates = np.zeros(jacs.shape[1:]), []
  for step, (grads, loss) in enumerate(zip(jacs, losses), 1):
    batch_grads = grads / (loss[:, None] + 1e-8)
    buffer = batch_grads + (beta / step ** beta_sigma) * (buffer - batch_grads)
    norms = np.linalg.norm(buffer, axis=1)
    alpha = norms.max() / (norms + 1e-8)
    updates.append(alpha @ buffer)
  return np.stack(updates)


def torchjd_update(aggregator, jac: np.ndarray) -> np.ndarray:
  return aggregator(torch.tensor(jac, dtype=torch.float64)).numpy()


def main() -> None:
  rng = np.random.default_rng(20261203)
  out: dict[str, np.ndarray] = {}
  for tasks in TASKS:
    for kind in ("random", "ill_scaled", "nearly_opposite"):
      case = f"T{tasks}_{kind}"
      jac = jacobian(kind, tasks, rng)
      out[f"{case}/J"] = jac
      methods = {"upgrad": agg.UPGrad(), "dualproj": agg.DualProj(), "imtl_g": agg.IMTLG(),
                 "aligned_mtl": agg.AlignedMTL(), "config": agg.ConFIG(),
                 "cagrad": agg.CAGrad(c=0.4), "fairgrad_1": agg.FairGrad(alpha=1.0),
                 "fairgrad_2": agg.FairGrad(alpha=2.0)}
      if tasks >= 3:
        methods["krum_0"] = agg.Krum(n_byzantine=0)
        methods["trimmed_mean_1"] = agg.TrimmedMean(trim_number=1)
      if tasks >= 4:
        methods["krum_1"] = agg.Krum(n_byzantine=1, n_selected=2)
      for name, aggregator in methods.items():
        out[f"{case}/{name}"] = torchjd_update(aggregator, jac)
      # PCGrad draws one torch.randperm per task: replay them from the same seed.
      torch.manual_seed(tasks)
      orders = np.stack([torch.randperm(tasks).numpy() for _ in range(tasks)])
      torch.manual_seed(tasks)
      out[f"{case}/pcgrad"] = torchjd_update(agg.PCGrad(), jac)
      out[f"{case}/pcgrad_orders"] = orders
      out[f"{case}/mgda"] = min_norm_point(jac)
      out[f"{case}/nash_mtl"] = nash_point(jac)
  # Stateful methods: a sequence of STEPS Jacobians per T, each step's update.
  sequence_rng = np.random.default_rng(7)
  for tasks in TASKS:
    case = f"sequence_T{tasks}"
    jacs = np.stack([jacobian(kind, tasks, sequence_rng)
                     for kind in ("random", "ill_scaled", "random", "nearly_opposite")])
    out[f"{case}/J"] = jacs
    weightings = {"modo": agg.MoDoWeighting(gamma=0.1, rho=0.1),
                  "sdmgrad": agg.SDMGradWeighting(),
                  "cr_mogm_upgrad": agg.CRMOGMWeighting(agg.UPGradWeighting(), alpha=0.9)}
    for name, weighting in weightings.items():
      updates = []
      for jac in jacs:
        gram = torch.tensor(jac @ jac.T, dtype=torch.float64)
        updates.append(weighting(gram).numpy() @ jac)
      out[f"{case}/{name}"] = np.stack(updates)
    # ExcessMTL reads the Jacobian itself (its coordinates' squares).
    for name, aggregator in (("excess_mtl", agg.ExcessMTL()),
                             ("excess_mtl_warmup2", agg.ExcessMTL(n_warmup_steps=2))):
      out[f"{case}/{name}"] = np.stack([torchjd_update(aggregator, jac) for jac in jacs])
    # MoCo and DB-MTL: LibMTL's update rules (LibMTL/weighting/MoCo.py, DB_MTL.py at
    # commit 8b8f1d0 / 7b0f56a), ported line for line to float64 numpy, with LibMTL's
    # defaults; each step's losses are stored beside its Jacobian.
    losses = sequence_rng.uniform(0.2, 3.0, size=(len(jacs), tasks))
    out[f"{case}/losses"] = losses
    out[f"{case}/moco"] = libmtl_moco(jacs, losses)
    out[f"{case}/db_mtl"] = libmtl_db_mtl(jacs, losses)
  np.savez_compressed(OUT, torchjd_version=np.array(importlib.metadata.version("torchjd")), **out)
  print(f"wrote {OUT}: {len(out)} arrays")


if __name__ == "__main__":
  main()
