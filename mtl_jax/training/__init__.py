"""Training: the train state, optimizer, pure steps, the loop, checkpoints."""

from mtl_jax.training.checkpoint import Checkpointer
from mtl_jax.training.evaluate import evaluate, predict_split
from mtl_jax.training.loop import train
from mtl_jax.training.nonfinite import NonFiniteLossError, skip_nonfinite
from mtl_jax.training.optimizer import make_optimizer
from mtl_jax.training.preemption import Interrupted
from mtl_jax.training.run import Run, load, prepare, restore_params, save
from mtl_jax.training.state import TrainState
from mtl_jax.training.step import make_predict_step, make_train_step, task_losses
