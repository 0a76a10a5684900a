"""GANModel's defaults: sample() runs the declared generator in eval mode."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from ganstudio.core.model import GANModel


class WithG(GANModel):
    def __init__(self):
        super().__init__({}, (1, 2, 2), torch.device("cpu"))
        self.G = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Tanh())

    def generator_module(self):
        return self.G


def test_default_sample_runs_the_generator_in_eval_mode_and_restores_it():
    m = WithG()
    z = torch.randn(5, 3)
    m.G.train()
    a, b = m.sample(z), m.sample(z)
    assert torch.equal(a, b)                    # eval: dropout off, so the same image twice
    assert m.G.training                          # its mode put back
    assert not a.requires_grad and a.dtype == torch.float32
    with torch.no_grad():
        assert torch.equal(a, m.G.eval()(z))


def test_a_model_without_a_generator_says_so():
    class NoG(GANModel):
        pass
    m = NoG({}, (1, 2, 2), torch.device("cpu"))
    with pytest.raises(NotImplementedError):
        m.sample(torch.randn(1, 3))
