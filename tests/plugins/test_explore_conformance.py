"""The conformance kit's explorer checks: seeds, batch independence, ONNX."""
from __future__ import annotations

import dataclasses

import torch

import explore_support as es
from ganstudio.testing import FAIL, PASS, check_model


def _by_name(results):
    return {r.name: r for r in results}


def test_a_model_declaring_a_latent_space_passes_the_explorer_checks(tmp_path):
    spec = es.plugin_manager().get_model("explgan")
    results = _by_name(check_model(spec, workdir=tmp_path))
    assert results["latent"].status == PASS, results["latent"].detail
    assert "32-d gaussian latents" in results["latent"].detail
    assert results["onnx"].status == PASS, results["onnx"].detail


def test_a_model_without_latent_space_gets_no_explorer_checks(tmp_path):
    spec = es.plugin_manager().get_model("explgan-nolatent")
    results = _by_name(check_model(spec, workdir=tmp_path))
    assert "latent" not in results and "onnx" not in results
    assert results["steps"].status == PASS


class _BatchCentred(torch.nn.Module):
    """A generator whose sample depends on its batch (it subtracts the batch mean)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, z):
        x = self.inner(z)
        return (x - x.mean(0, keepdim=True)).clamp(-1, 1)


def test_a_batch_dependent_generator_fails_with_the_reason(tmp_path):
    module = es.plugin_module()

    class Leaky(module.ExploreGAN):
        def generator_module(self):
            return _BatchCentred(self.G)

    spec = dataclasses.replace(es.plugin_manager().get_model("explgan"), factory=Leaky)
    results = _by_name(check_model(spec, workdir=tmp_path))
    assert results["latent"].status == FAIL
    assert "seed 17 alone differs from seed 17 in a batch" in results["latent"].detail
    assert "onnx" not in results          # not tried once the latent check failed
