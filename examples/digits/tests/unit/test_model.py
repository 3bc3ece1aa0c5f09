import numpy as np
import pytest

from digits_service import inference
from digits_service.model import Model


def test_model_file_loads_and_predicts_digits():
    model = inference.load()
    x = np.zeros((3, 64))
    preds = inference.predict(x, model)
    assert len(preds) == 3
    assert all(0 <= p <= 9 for p in preds)


def test_scores_are_probabilities():
    model = inference.load()
    rng = np.random.default_rng(0)
    s = model.scores(rng.integers(0, 17, size=(5, 64)))
    assert np.allclose(s.sum(axis=1), 1.0)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError):
        Model(np.zeros((3, 3)), np.zeros(10))
    with pytest.raises(ValueError):
        inference.predict(np.zeros((2, 5)))
