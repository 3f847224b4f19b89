"""Values the data layer and the model layer must agree on (a leaf module: no imports)."""

# The label of sub-words that neither the loss nor the metric sees: later
# sub-words of a word, special tokens, padding (the PyTorch/HF convention, so
# exported data is familiar).
IGNORE_LABEL = -100
