"""Per-task gradients for the balancing methods, in one backward pass.

The shared parameters are `params["encoder"]`; everything else (the heads)
is task-specific. A balancing method sees the task gradients through
*probes* (a pytree with a leading task axis k), chosen per run by the
gradient mode:

* `full`: the per-task gradients of every shared parameter (exact for
  every method). Memory: k copies of the shared gradient.
* `last_layer`: the same per-task gradients, probed at the last shared
  layer only (GradNorm's choice; the Gram matrix costs k^2 |layer| instead
  of k^2 |shared|). Coefficients found there are applied to the whole
  per-task gradients.
* `representation`: the gradient of each task's loss with respect to the
  shared representation (the encoder output), summed over the task's
  tokens: the gradient with respect to one shift of the representation
  shared by all tasks, which for our post-LN encoder is the gradient of the
  last LayerNorm's bias. (Each task has its own examples, so per-token
  representation gradients of two tasks never share a coordinate and their
  Gram matrix would be diagonal.) One encoder forward, a vjp through the
  heads, one encoder backward with the combined cotangent; nothing is
  materialised per task but [k, d] vectors. Where the encoder reads task
  params (adapters, task embeddings, expert gates), their gradient comes
  from an encoder backward with the loss weights' cotangent (the same pass
  when the weights are the coefficients; pruned where there are none).

How the per-task gradients are taken depends on the model. When task t's
loss depends on the shared parameters only through task t's own examples
(`model.separable_tasks`, true for hard sharing and any architecture that
encodes each task's batch on its own), the encoder runs once per task's
batch with its own copy of the shared parameters: the backward pass then
yields every task's gradient at the cost of one ordinary backward pass
(the rows are simply not summed across tasks). Otherwise (architectures
that mix tasks' representations) the encoder's vjp is applied to the k
per-task cotangents (k backward passes, batched by `vmap`).

`task_gradients` returns the losses, the probes, and closures mapping
coefficients to gradients, so a method's coefficients (or loss weights)
are applied without another forward pass.

The word table is half of a small encoder's parameters, and each task's
gradient of it is a [vocab, d] scatter of the few rows its tokens read: k
such tables, and a stack of them, were the peak of the `full` step at T = 8
(BENCHMARKS.md). So the separable path takes each token's gradient of its
looked-up row instead (a zero probe added to the word vectors,
`bert.word_vectors_hook`) and builds the tables' per-task gradients from
them in one scatter: into the stacked [k, vocab, d] result, or, where the
caller needs only the probes (Gram-based methods, norms: `per_task_grads=
False`) and the batch has fewer tokens than the table rows, into compact
[k, u, d] rows, one per distinct token id of the batch. Inner products,
norms and coefficient sums of these rows equal those of the dense tables;
`shared` scatters the combined rows into one [vocab, d] gradient.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mtl_jax import sharding
from mtl_jax.constants import TASK_TOKEN_SLOTS, TOKEN_SLOTS
from mtl_jax.encoders import bert
from mtl_jax.weighting import GRADIENT_MODES, linalg

SHARED = "encoder"
_LAYER = re.compile(r"layer_(\d+)$")


class TaskGradients(NamedTuple):
  """What the train step needs of the per-task gradients of one batch.

  Attributes:
    losses_k: [k] float32 task losses.
    probes_k: pytree with a leading k axis: the task gradients the balancing
      method and the diagnostics see (see module docstring).
    shared_grads_k: per-task gradients of every shared parameter (leading
      k), in the `full` and `last_layer` modes; None in `representation` and
      where the word table's per-task gradients are compact (see module
      docstring).
    shared: `shared(coeffs_k) -> grads of params["encoder"]`, the gradient of
      `sum_k coeffs_k L_k` with respect to the shared parameters.
    task_specific: `task_specific(weights_k) -> grads of the other params`,
      the gradient of `sum_k weights_k L_k` with respect to them.
  """

  losses_k: jax.Array
  probes_k: Any
  shared_grads_k: Any | None
  shared: Callable[[jax.Array], Any]
  task_specific: Callable[[jax.Array], Any]


def split_params(params: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
  """(shared params, the other params) of a model's params dict."""
  if SHARED not in params:
    raise ValueError(f"the model's params have no {SHARED!r} entry (the shared part); "
                     f"keys: {sorted(params)}")
  return params[SHARED], {key: value for key, value in params.items() if key != SHARED}


def lay_out_per_task(model, shared_grads_k: Any, compact_words: bool = False) -> Any:
  """Per-task gradients of the shared params laid out on the active mesh.

  The task axis `k` and then each leaf's own axes are placed by the rules
  (`sharding.task_axes`), so k copies of a sharded parameter's gradient are
  sharded as the parameter is (and along `task` where the rules say), never
  gathered onto one device. Compact word-table rows ([k, u, d]) keep the
  table's feature axis and leave the row axis unsharded. Outside an active
  layout: unchanged.
  """
  if sharding.active_layout() is None:
    return shared_grads_k
  shared_axes, _ = split_params(model.logical_axes())
  axes = sharding.task_axes(shared_axes)
  if compact_words:
    table_axes = _get(axes, bert.WORD_TABLE)
    axes = _replace(axes, bert.WORD_TABLE,
                    type(table_axes)(table_axes[0], None, *table_axes[2:]))
  return sharding.constrain(shared_grads_k, axes)


def merge(task_specific: Mapping[str, Any], shared: Any) -> dict[str, Any]:
  """The inverse of `split_params`."""
  return {**task_specific, SHARED: shared}


def last_layer_mask(shared: Any, path: str = "") -> Any:
  """A pytree of bools over the shared params marking the last shared layer.

  Args:
    shared: the shared params (`params["encoder"]`).
    path: '/'-separated keys of the layer's subtree (e.g. 'layer_5' or
      'layer_5/output_norm'); '' picks the `layer_<i>` with the largest i.

  Raises:
    ValueError: the path is not in the params, or there is no `layer_<i>`.
  """
  if path:
    prefix = tuple(path.strip("/").split("/"))
  else:
    numbered = [(int(match.group(1)), key) for key in shared
                if (match := _LAYER.match(str(key)))]
    if not numbered:
      raise ValueError("cannot find the last shared layer: the shared params have no "
                       f"'layer_<i>' entries (keys: {sorted(shared)}); set "
                       "config.balancing.last_layer")
    prefix = (max(numbered)[1],)

  def in_layer(key_path, _):
    keys = tuple(str(getattr(entry, "key", entry)) for entry in key_path)
    return keys[:len(prefix)] == prefix

  mask = jax.tree_util.tree_map_with_path(in_layer, shared)
  if not any(jax.tree.leaves(mask)):
    raise ValueError(f"last shared layer {'/'.join(prefix)!r} is not in the shared "
                     f"params (top-level keys: {sorted(shared)})")
  return mask


def _pool(cotangent: jax.Array) -> jax.Array:
  """Sum over every axis but the feature axis: the gradient of a shared shift."""
  return jnp.sum(cotangent.astype(jnp.float32), axis=tuple(range(cotangent.ndim - 1)))


def _task_rng(rng, index):
  return None if rng is None else jax.random.fold_in(rng, index)


def task_gradients(model, params, batch, rng, *, mode: str, last_layer: str = "",
                   train: bool = True, per_task_grads: bool = True) -> TaskGradients:
  """Losses and per-task gradients of one batch (see module docstring).

  Args:
    model: the multi-task model (a `sharing.HardSharingModel`: `encode`,
      `apply_heads`, `losses`, `task_names`, `separable_tasks`).
    params: the model's params.
    batch: {task: batch}, every task of the model.
    rng: the step's dropout key (None without dropout).
    mode: 'full', 'last_layer' or 'representation'.
    last_layer: the last shared layer's path ('' = the last `layer_<i>`).
    train: dropout on.
    per_task_grads: the caller reads `shared_grads_k` (methods that transform
      the per-task gradients themselves); False where it needs only the
      probes and `shared` (Gram-based methods, norms), which lets the word
      table's per-task gradients stay compact.

  Returns:
    The `TaskGradients`.
  """
  if mode not in GRADIENT_MODES:
    raise ValueError(f"unknown gradient mode {mode!r}; use one of {', '.join(GRADIENT_MODES)}")
  separable = model.separable_tasks
  if mode == "representation":
    return _shared_encoder(model, params, batch, rng, train, separable)
  if separable:
    return _per_task_encoders(model, params, batch, rng, mode, last_layer, train,
                              compact_words=not per_task_grads)
  return _per_task_backward(model, params, batch, rng, mode, last_layer, train)


def _probe_last_layer(shared_grads_k, mask):
  leaves = jax.tree.leaves(shared_grads_k)
  return [leaf for leaf, keep in zip(leaves, jax.tree.leaves(mask)) if keep]


def _get(tree, path):
  for key in path:
    if not isinstance(tree, Mapping) or key not in tree:
      return None
    tree = tree[key]
  return tree


def _replace(tree, path, value):
  """A copy of nested dicts `tree` with the leaf at `path` set to `value`
  (removed where `value` is None)."""
  key, rest = path[0], path[1:]
  out = dict(tree)
  if rest:
    out[key] = _replace(tree[key], rest, value)
  elif value is None:
    del out[key]
  else:
    out[key] = value
  return out


def _per_task_encoders(model, params, batch, rng, mode, last_layer, train, *,
                       compact_words: bool):
  """Separable models: each task's batch through the encoder with its own copy of
  the shared params, so one backward pass gives every task's gradient."""
  names = model.task_names
  shared, rest = split_params(params)
  table = _get(shared, bert.WORD_TABLE)

  def task_loss(index, shared_copy, rest, word_probe):
    """Task `index`'s loss and the ids its word lookups read. With a word probe,
    the table is a constant and the probe (zeros) is added to the looked-up rows,
    so the probe's gradient is each token's gradient of the table's rows."""
    name = names[index]
    task_batch = {name: batch[name]}
    if TASK_TOKEN_SLOTS in batch:  # each task's pass on its real tokens only
      task_batch[TOKEN_SLOTS] = batch[TASK_TOKEN_SLOTS]
    seen_ids = []

    def hook(ids_bl, vectors_bld):
      seen_ids.append(ids_bl)
      return vectors_bld if word_probe is None else vectors_bld + word_probe

    if word_probe is not None:
      shared_copy = _replace(shared_copy, bert.WORD_TABLE, table)
    task_params = merge(rest, shared_copy)
    with bert.word_vectors_hook(hook):
      hidden = model.encode(task_params, task_batch, train=train, rng=_task_rng(rng, index))
    outputs = model.apply_heads(task_params, hidden, task_batch, train=train, rng=rng)
    return model.losses(outputs, task_batch)[0], seen_ids

  if table is not None:
    # The ids each task's encoder looks up (their shapes, from a trace only);
    # the table is taken apart only where each task looks words up once.
    looked_up = [jax.eval_shape(lambda i=i: task_loss(i, shared, rest, None)[1])
                 for i in range(len(names))]
    if any(len(ids) != 1 for ids in looked_up):
      table = None
  if table is None:
    shared_copy, probes_in = shared, tuple(None for _ in names)
  else:
    shared_copy = _replace(shared, bert.WORD_TABLE, None)
    probes_in = tuple(jnp.zeros(ids[0].shape + table.shape[1:], table.dtype)
                      for ids in looked_up)

  def losses_fn(shared_copies, rest, word_probes):
    results = [task_loss(index, shared_copies[index], rest, word_probes[index])
               for index in range(len(names))]
    return jnp.stack([loss for loss, _ in results]), [ids for _, ids in results]

  losses_k, vjp, seen_ids = jax.vjp(losses_fn, tuple(shared_copy for _ in names), rest,
                                    probes_in, has_aux=True)
  copies_grads, _, word_grads = vjp(jnp.ones_like(losses_k))
  stacked_k = jax.tree.map(lambda *leaves: jnp.stack(leaves), *copies_grads)
  combine = None
  if table is None:
    shared_grads_k = lay_out_per_task(model, stacked_k)
  else:
    ids_n = jnp.concatenate([ids[0].reshape(-1) for ids in seen_ids])
    task_n = np.repeat(np.arange(len(names)),
                       [int(np.prod(ids[0].shape)) for ids in seen_ids])
    rows_nd = jnp.concatenate([g.reshape(-1, table.shape[1]) for g in word_grads])
    if compact_words and ids_n.shape[0] < table.shape[0]:
      shared_grads_k, combine = _compact_word_rows(model, stacked_k, table.shape, len(names),
                                                   ids_n, task_n, rows_nd)
    else:
      # Every task's table gradient in one scatter into the stacked result.
      table_kvd = jnp.zeros((len(names),) + table.shape, table.dtype
                            ).at[task_n, ids_n].add(rows_nd)
      shared_grads_k = lay_out_per_task(model, _replace(stacked_k, bert.WORD_TABLE,
                                                        table_kvd))
  probes_k = shared_grads_k
  if mode == "last_layer":
    probes_k = _probe_last_layer(shared_grads_k, last_layer_mask(shared, last_layer))
  return TaskGradients(
      losses_k, probes_k, shared_grads_k if combine is None else None,
      shared=combine or (lambda coeffs_k: linalg.combine(coeffs_k, shared_grads_k)),
      task_specific=lambda weights_k: vjp(weights_k.astype(losses_k.dtype))[1])


def _compact_word_rows(model, stacked_k, table_shape, num_tasks, ids_n, task_n, rows_nd):
  """The per-task gradients with the word table's as [k, u, d] rows (one per
  distinct id of the batch, padded to the token count), and `shared`.

  Inner products, norms and coefficient sums of the rows equal those of the
  dense per-task tables; `shared` scatters the combined rows into the table.
  """
  unique_u, slot_n = jnp.unique(ids_n, size=ids_n.shape[0], return_inverse=True)
  words_kud = jnp.zeros((num_tasks, ids_n.shape[0], table_shape[1]),
                        rows_nd.dtype).at[task_n, slot_n.reshape(-1)].add(rows_nd)
  shared_grads_k = lay_out_per_task(model, _replace(stacked_k, bert.WORD_TABLE, words_kud),
                                    compact_words=True)

  def combine(coeffs_k):
    combined = linalg.combine(coeffs_k, shared_grads_k)
    rows_ud = _get(combined, bert.WORD_TABLE)
    table_grad = jnp.zeros(table_shape, rows_ud.dtype).at[unique_u].add(rows_ud)
    return _replace(combined, bert.WORD_TABLE, table_grad)

  return shared_grads_k, combine


class _Representation(NamedTuple):
  losses_k: jax.Array
  # cotangent on the hidden states -> (shared grads, task-specific grads): the
  # latter are those of task params the encoder reads (adapters, gates, task
  # embeddings), zeros for hard sharing (and pruned from the compiled step).
  encode_vjp: Callable
  heads_vjp: Callable  # weights_k -> (task-specific grads, hidden cotangent)
  probes_k: jax.Array  # [k, d] pooled representation gradients
  combined_cotangent: Callable  # coeffs_k -> hidden cotangent of sum_k coeffs_k L_k
  cotangents_k: Any | None  # per-task hidden cotangents (leading k) where built


def _representation(model, params, batch, rng, train, separable) -> _Representation:
  """One encoder pass over all tasks, and the per-task cotangents the heads send back."""
  names = model.task_names
  shared, rest = split_params(params)
  hidden, encode_vjp = jax.vjp(
      lambda shared, rest: model.encode(merge(rest, shared), batch, train=train, rng=rng),
      shared, rest)

  def head_losses(rest, hidden):
    outputs = model.apply_heads(merge(rest, shared), hidden, batch, train=train, rng=rng)
    return model.losses(outputs, batch)

  losses_k, heads_vjp = jax.vjp(head_losses, rest, hidden)
  if separable:
    # Task t's loss reads only hidden[t]: one vjp gives every task's cotangent.
    _, own_cotangents = heads_vjp(jnp.ones_like(losses_k))
    probes_k = jnp.stack([_pool(own_cotangents[name]) for name in names])

    def combined_cotangent(coeffs_k):
      return {name: cotangent * coeffs_k[names.index(name)].astype(cotangent.dtype)
              for name, cotangent in own_cotangents.items()}

    return _Representation(losses_k, encode_vjp, heads_vjp, probes_k, combined_cotangent,
                           None)
  # Heads that mix tasks: k vjps; cotangents_k holds k copies of the hidden states.
  _, cotangents_k = jax.vmap(heads_vjp)(jnp.eye(losses_k.shape[0], dtype=losses_k.dtype))
  pooled = [jax.vmap(_pool)(cotangent_k) for cotangent_k in jax.tree.leaves(cotangents_k)]
  if len({p.shape for p in pooled}) != 1:
    raise ValueError("representation gradients need one feature size across the "
                     f"shared representation, got {[p.shape[1:] for p in pooled]}")

  def combined_cotangent(coeffs_k):
    return jax.tree.map(lambda c_k: linalg.combine(coeffs_k, c_k), cotangents_k)

  return _Representation(losses_k, encode_vjp, heads_vjp, sum(pooled), combined_cotangent,
                         cotangents_k)


def _task_specific(rep: _Representation):
  """weights_k -> the gradient of sum_k weights_k L_k with respect to the
  task-specific params: through the heads, and through the encoder where it
  reads task params of its own (adapters, expert gates, task embeddings)."""

  def task_specific(weights_k):
    heads_grads, _ = rep.heads_vjp(weights_k.astype(rep.losses_k.dtype))
    # The same cotangent expression as `shared` builds: where the weights are
    # the coefficients (loss weightings), the two encoder backwards are one.
    encoder_grads = rep.encode_vjp(rep.combined_cotangent(weights_k))[1]
    return jax.tree.map(jnp.add, heads_grads, encoder_grads)

  return task_specific


def _shared_encoder(model, params, batch, rng, train, separable):
  """The representation mode: one encoder backward with the combined cotangent."""
  rep = _representation(model, params, batch, rng, train, separable)
  return TaskGradients(
      rep.losses_k, rep.probes_k, None,
      shared=lambda coeffs_k: rep.encode_vjp(rep.combined_cotangent(coeffs_k))[0],
      task_specific=_task_specific(rep))


def _per_task_backward(model, params, batch, rng, mode, last_layer, train):
  """Models that mix tasks: the encoder's vjp applied to each task's cotangent."""
  rep = _representation(model, params, batch, rng, train, separable=False)
  shared_grads_k = lay_out_per_task(
      model, jax.vmap(lambda cotangent: rep.encode_vjp(cotangent)[0])(rep.cotangents_k))
  probes_k = shared_grads_k
  if mode == "last_layer":
    probes_k = _probe_last_layer(shared_grads_k,
                                 last_layer_mask(split_params(params)[0], last_layer))
  return TaskGradients(rep.losses_k, probes_k, shared_grads_k,
                       shared=lambda coeffs_k: linalg.combine(coeffs_k, shared_grads_k),
                       task_specific=_task_specific(rep))
