"""Task heads: one small Flax module and its masked loss per output kind, and
`OUTPUTS`, the head, loss and prediction of each task kind (`outputs.py`).

Regression and multi-label classification reuse `SequenceClassificationHead`
(one output; one output per label) with their own losses.
"""

from mtl_jax.heads.classification import (SequenceClassificationHead,
                                          classification_loss, pool)
from mtl_jax.heads.decoder import (DecoderClassificationHead, Seq2SeqHead, TokenDecoder,
                                   decoder_options)
from mtl_jax.heads.multilabel import multilabel_loss
from mtl_jax.heads.regression import regression_loss
from mtl_jax.heads.tagging import TokenClassificationHead, tagging_loss
from mtl_jax.heads.outputs import OUTPUTS, Output, output_of, pooled_head
