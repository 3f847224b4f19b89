"""Values the data layer and the model layer must agree on (a leaf module: no imports)."""

# The label of sub-words that neither the loss nor the metric sees: later
# sub-words of a word, special tokens, padding (the PyTorch/HF convention, so
# exported data is familiar).
IGNORE_LABEL = -100

# A step batch's entry beside the tasks' under which the loop says how many
# real tokens the encoder's compact buffer holds: an empty [capacity, 0]
# array, so the capacity is a shape (static, one program per value) and
# costs no transfer (`tasks.batching.with_token_slots`,
# `encoders.compaction`).
TOKEN_SLOTS = "token_slots"
# The same for a step whose encoder passes take one task's rows each (per-task
# gradients, `training/gradients.py`): every task's pass gets this capacity.
TASK_TOKEN_SLOTS = "task_token_slots"
