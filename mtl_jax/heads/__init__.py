"""Task heads: one small Flax module and its masked loss per output kind."""

from mtl_jax.heads.classification import (SequenceClassificationHead,
                                          classification_loss, pool)
from mtl_jax.heads.decoder import (DecoderClassificationHead, Seq2SeqHead, TokenDecoder,
                                   decoder_options)
from mtl_jax.heads.tagging import TokenClassificationHead, tagging_loss
