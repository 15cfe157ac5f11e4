import os

import numpy as np
import pytest
from hypothesis import settings

settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def relu_field(rng, shape, scale=1.0, smooth=2):
    """Spatially correlated, ReLU-sparse activations (like a conv layer's output)."""
    x = rng.normal(size=shape)
    for _ in range(smooth):
        x = (x + np.roll(x, 1, -1) + np.roll(x, 1, -2) + np.roll(x, -1, -1) + np.roll(x, -1, -2)) / 2.2
    return (np.maximum(x - 0.3, 0) * scale).astype(np.float32)
