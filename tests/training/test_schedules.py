import datasets
import jax
import numpy as np
import optax
import pytest

from mtl_jax import weighting
from mtl_jax.encoders import EncoderConfig
from mtl_jax.sharing import HardSharingModel, TaskHead
from mtl_jax.tasks import batching
from mtl_jax.tasks.kinds import Classification, EncodedSplit, Tagging
from mtl_jax.tasks.sources import RawSplit
from mtl_jax.training import TrainState, make_train_step
from mtl_jax.training.schedules import make_schedule, scheduled_batches
from mtl_jax.promotion import standard_promotion

NAMES = ("a", "b", "c")
SIZES = {"a": 100, "b": 400, "c": 1600}


def _frequencies(schedule, steps):
  return np.mean([schedule.present(s) for s in range(steps)], axis=0)


def test_joint_and_alternating():
  joint = make_schedule("joint", NAMES, SIZES)
  assert all(joint.present(s).all() for s in range(5))
  alternating = make_schedule("alternating", NAMES, SIZES)
  order = [int(np.flatnonzero(alternating.present(s))[0]) for s in range(7)]
  assert order == [0, 1, 2, 0, 1, 2, 0]


@pytest.mark.parametrize("spec, expected", [
    ("proportional", np.array([1, 4, 16]) / 21),
    ("temperature(temperature=2)", np.array([10, 20, 40]) / 70),  # sqrt of the sizes
    ("temperature(temperature=1e6)", np.ones(3) / 3),
    ("proportional(rates={'a': 1, 'b': 1, 'c': 2})", np.array([1, 1, 2]) / 4),
])
def test_sampled_schedules_hit_their_rates_one_task_per_step(spec, expected):
  schedule = make_schedule(spec, NAMES, SIZES, seed=3)
  presence = np.asarray([schedule.present(s) for s in range(20000)])
  assert (presence.sum(axis=1) == 1).all()
  # Binomial standard error at 20k draws is < 0.0036.
  np.testing.assert_allclose(presence.mean(axis=0), expected, atol=0.012)


def test_sampling_is_a_pure_function_of_seed_and_step():
  a = make_schedule("temperature", NAMES, SIZES, seed=1)
  b = make_schedule("temperature", NAMES, SIZES, seed=1)
  c = make_schedule("temperature", NAMES, SIZES, seed=2)
  draws = lambda s, steps: [tuple(s.present(i)) for i in steps]
  assert draws(a, range(50)) == draws(b, range(50))
  assert draws(a, range(50)) != draws(c, range(50))
  # Step 40 alone, without the steps before it.
  assert draws(b, [40]) == draws(a, range(50))[40:41]


def test_progressive_adds_tasks_at_their_start_steps():
  schedule = make_schedule("progressive(main_task='b', start_steps={'a': 10, 'c': 20})",
                           NAMES, SIZES)
  assert list(schedule.present(0)) == [False, True, False]
  assert list(schedule.present(9)) == [False, True, False]
  assert list(schedule.present(10)) == [True, True, False]
  assert list(schedule.present(20)) == [True, True, True]
  one_step = make_schedule("progressive(main_task='a', start_steps=5)", NAMES, SIZES)
  np.testing.assert_allclose(_frequencies(one_step, 10), [1.0, 0.5, 0.5])


def test_weights_on_a_schedule_interpolate():
  schedule = make_schedule("joint(weights={'a': 0.5, 'c': [(10, 0.0), (20, 1.0)]})",
                           NAMES, SIZES)
  np.testing.assert_allclose(schedule(0).weights_k, [0.5, 1.0, 0.0])
  np.testing.assert_allclose(schedule(15).weights_k, [0.5, 1.0, 0.5])
  np.testing.assert_allclose(schedule(99).weights_k, [0.5, 1.0, 1.0])


@pytest.mark.parametrize("spec, message", [
    ("roundrobin", "unknown schedule 'roundrobin'"),
    ("joint(temperature=2)", "has no argument 'temperature'"),
    ("temperature(temperature=0)", "must be > 0"),
    ("proportional(rates={'a': 1, 'b': 1})", r"missing tasks \['c'\]"),
    ("proportional(rates={'a': 1, 'b': 1, 'c': 0})", "positive"),
    ("progressive(main_task='x')", "main_task must be one of"),
    ("progressive(main_task='a', start_steps={'b': 3})", r"missing tasks \['c'\]"),
    ("joint(weights={'z': 1})", r"unknown tasks \['z'\]"),
    ("joint(weights={'a': [(5, 1), (2, 0)]})", "steps must increase"),
    ("temperature(", "cannot parse schedule"),
])
def test_bad_schedules_are_clear_errors(spec, message):
  with pytest.raises(ValueError, match=message):
    make_schedule(spec, NAMES, SIZES)


def _split(num, token_labels, seed=0):
  rng = np.random.default_rng(seed)
  lengths = rng.integers(3, 8, num)
  ids = [rng.integers(1, 30, n).astype(np.int32) for n in lengths]
  labels = ([rng.integers(0, 4, n).astype(np.int32) for n in lengths] if token_labels
            else list(rng.integers(0, 3, num)))
  raw = RawSplit(datasets.Dataset.from_dict({"_line": list(range(num))}), "x")
  return EncodedSplit(ids, [np.zeros_like(x) for x in ids], labels, raw,
                      word_ids=[np.zeros_like(x) for x in ids] if token_labels else None)


def _streams(positions=None):
  positions = positions or {}
  return {"news": batching.TaskStream(_split(12, False), 4, (8,), seed=0,
                                      position=positions.get("news")),
          "ner": batching.TaskStream(_split(10, True, 1), 4, (8,), seed=1,
                                     position=positions.get("ner"))}


def test_absent_tasks_get_zero_batches_and_keep_their_stream_position():
  streams = _streams()
  schedule = make_schedule("alternating", ("ner", "news"), {"ner": 10, "news": 12})
  batch = next(scheduled_batches(streams, schedule))
  assert batch["ner"]["task_present"] == 1 and batch["news"]["task_present"] == 0
  assert batch["news"]["attention_mask"].sum() == 0
  assert batch["news"]["input_ids"].shape == batch["ner"]["input_ids"].shape
  assert streams["news"].position == batching.StreamPosition(0, 0)
  assert streams["ner"].position == batching.StreamPosition(0, 1)
  assert batch["news"]["task_present"].dtype == np.float32


def test_resumed_batches_equal_the_uninterrupted_ones():
  schedule = make_schedule("temperature", ("ner", "news"), {"ner": 10, "news": 12}, seed=4)
  straight = scheduled_batches(_streams(), schedule)
  expected = [next(straight) for _ in range(20)]
  first_streams = _streams()
  first = scheduled_batches(first_streams, schedule)
  for _ in range(9):
    next(first)
  saved = {n: batching.StreamPosition(**vars(s.position)) for n, s in first_streams.items()}
  resumed = scheduled_batches(_streams(saved), schedule, first_step=9)
  for want in expected[9:]:
    got = next(resumed)
    jax.tree.map(np.testing.assert_array_equal, got, want)


def test_one_compiled_step_serves_every_schedule():
  kinds = {"news": Classification(), "ner": Tagging()}
  config = EncoderConfig(vocab_size=30, hidden_size=16, num_layers=1, num_heads=2,
                         intermediate_size=32, max_position_embeddings=16)
  model = HardSharingModel(config, [TaskHead("ner", kinds["ner"], 4),
                                    TaskHead("news", kinds["news"], 3)])
  optimizer = standard_promotion(optax.sgd(0.1))
  balance = weighting.from_spec("equal")
  state = TrainState.create(model.init(jax.random.PRNGKey(0)), optimizer, balance.init(2),
                            jax.random.PRNGKey(1))
  step = jax.jit(make_train_step(model, balance, optimizer))
  sizes = {"ner": 10, "news": 12}
  specs = ["joint", "alternating", "proportional", "temperature(temperature=3)",
           "progressive(main_task='news', start_steps=2)",
           "joint(weights={'ner': [(0, 0.0), (4, 1.0)]})"]
  for spec in specs:
    schedule = make_schedule(spec, model.task_names, sizes)
    batches = scheduled_batches(_streams(), schedule)
    for s in range(3):
      batch = next(batches)
      state, metrics = step(state, batch, jax.random.PRNGKey(s))
      plan = schedule(s)
      np.testing.assert_allclose(metrics["weights"], plan.present_k * plan.weights_k)
  assert step._cache_size() == 1
