import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax import weighting


def test_equal_and_static_weights():
  losses = jnp.array([2.0, 3.0])
  method = weighting.from_spec("equal", num_tasks=2)
  weights, _ = method.update(losses, method.init(2))
  np.testing.assert_array_equal(weights, [1.0, 1.0])
  method = weighting.from_spec("static(weights=[1, 0.25])", num_tasks=2)
  weights, _ = method.update(losses, method.init(2))
  np.testing.assert_array_equal(weights, [1.0, 0.25])
  method = weighting.from_spec("static(weights={'ner': 0.5, 'news': 2})", num_tasks=2,
                               task_names=("ner", "news"))
  np.testing.assert_array_equal(method.update(losses, method.init(2))[0], [0.5, 2.0])
  with pytest.raises(ValueError, match=r"unknown tasks \['nre'\], missing tasks \['ner'\]"):
    weighting.from_spec("static(weights={'nre': 0.5, 'news': 2})", num_tasks=2,
                        task_names=("ner", "news"))


def test_bad_specs_are_named():
  with pytest.raises(ValueError, match=r"unknown balancing method 'equl' \(did you mean 'equal'"):
    weighting.from_spec("equl", num_tasks=2)
  with pytest.raises(ValueError, match="has no argument 'weight'"):
    weighting.from_spec("static(weight=[1, 2])", num_tasks=2)
  with pytest.raises(ValueError, match="2 weights for 3 tasks"):
    weighting.from_spec("static(weights=[1, 2])", num_tasks=3)
