"""The validation split the benches choose settings on is carved from the training rows only."""

import numpy as np

from modelpress.datasets import carve_validation


def test_validation_rows_are_training_rows_disjoint_from_the_fitting_rows_and_seeded():
    x = np.arange(100, dtype=np.float32).reshape(50, 2)
    y = np.arange(50)
    x_fit, y_fit, x_val, y_val = carve_validation(x, y, 10, seed=0)
    assert (len(y_fit), len(y_val)) == (40, 10)
    assert set(y_fit.tolist()).isdisjoint(y_val.tolist())
    assert sorted(y_fit.tolist() + y_val.tolist()) == list(range(50))
    assert np.array_equal(x_val[:, 0], 2 * y_val)  # rows stay paired with their labels
    again = carve_validation(x, y, 10, seed=0)
    assert np.array_equal(again[3], y_val)
    assert not np.array_equal(carve_validation(x, y, 10, seed=1)[3], y_val)
