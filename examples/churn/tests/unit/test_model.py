import numpy as np
import pytest

from churn_service import inference
from churn_service.model import N_FEATURES, as_batch


def test_model_file_loads_and_returns_probabilities():
    model = inference.load()
    x = np.random.default_rng(0).normal(size=(5, N_FEATURES))
    proba = np.asarray(inference.predict(x, model))
    assert proba.shape == (5, 2)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert np.allclose(inference.churn_score(x, model), proba[:, 1])


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError):
        as_batch(np.zeros((2, 5)))
    with pytest.raises(ValueError):
        as_batch([[float("nan")] * N_FEATURES])
