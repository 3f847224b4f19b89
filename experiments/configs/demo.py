"""The main job: news-topic classification + NER, jointly, on the shipped demo slices.

    mtl-jax train --config experiments/configs/demo.py --workdir runs/demo

A small encoder trained from scratch (WordPiece vocabulary learnt from the
task texts), so it runs on a laptop CPU in a few minutes with no download.
"""

from mtl_jax.config import default_config


def get_config(arg=None):
  del arg
  config = default_config()
  config.seed = 0
  config.tasks = {
      # AG News slice: 2,000 train / 500 dev; mean pooling learns faster from scratch.
      "demo_ag_news": {"head": {"pooling": "mean"}},
      "demo_conll2003_ner": {},  # CoNLL-2003 NER slice: 2,000 / 500 sentences
  }
  config.encoder.hidden_size = 128
  config.encoder.num_layers = 2
  config.encoder.num_heads = 4
  config.encoder.intermediate_size = 512
  config.tokenizer.vocab_size = 8000
  config.optimizer.learning_rate = 1e-3
  config.optimizer.warmup_steps = 40
  config.train.steps = 400
  config.train.batch_size = 16
  config.train.buckets = (32, 64, 128)
  config.train.log_every = 20
  return config
