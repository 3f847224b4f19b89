"""The shared Transformer encoder and Hugging Face checkpoint loading/export."""

from mtl_jax.encoders.bert import Encoder, logical_axes, mean_pool
from mtl_jax.encoders.config import EncoderConfig
from mtl_jax.encoders.pretrained import CheckpointError, export_pretrained, load_pretrained
