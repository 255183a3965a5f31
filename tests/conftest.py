import os

import pytest
import torch

os.environ.setdefault("PYTHONHASHSEED", "0")
torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def same_under_seed(fn_a, fn_b, seed: int = 0) -> bool:
    """True when fn_a() and fn_b() return identical tensors under the same global seed."""
    torch.manual_seed(seed)
    a = fn_a()
    torch.manual_seed(seed)
    return torch.equal(a, fn_b())


@pytest.fixture(scope="session")
def digits():
    """The built-in 8x8 digits (17 levels), loaded once per test session."""
    from deepgen.data import load_data

    return load_data("digits")


@pytest.fixture(scope="session")
def binary_digits():
    """The built-in binarized digits (2 levels), loaded once per test session."""
    from deepgen.data import load_data

    return load_data("digits-binary")


@pytest.fixture
def one_thread():
    """For tests of many tiny ops (masked convolutions, LSTM loops, planar layers): a second intra-op thread only
    adds wake-up latency (10-20x slower on a loaded machine).  Use with ``pytestmark = pytest.mark.usefixtures``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
