"""Shared fixtures, and a guard: no test may open a network connection."""

import socket

import pytest
import torch

from tutorial_pkg.analytic import GaussianMixture
from tutorial_pkg.schedules import cosine_schedule, linear_schedule


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    def refuse(self, address, *args, **kwargs):
        if isinstance(address, tuple) and address and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise RuntimeError(f"a test tried to open a network connection to {address!r}")
        return _connect(self, address, *args, **kwargs)

    _connect = socket.socket.connect
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture(params=["linear", "cosine"])
def schedule(request):
    return linear_schedule(100) if request.param == "linear" else cosine_schedule(100)


@pytest.fixture
def mixture():
    """A 2-D, three-class mixture with correlated, unequal covariances."""
    return GaussianMixture(
        weights=[0.2, 0.3, 0.5],
        means=[[-2.0, 0.0], [2.0, 1.0], [0.0, -2.0]],
        covs=[[[0.5, 0.2], [0.2, 0.3]], [[0.3, 0.0], [0.0, 0.8]], [[0.2, -0.1], [-0.1, 0.4]]],
    )


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)
