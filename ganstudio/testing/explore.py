"""Conformance checks for what the explorer needs from a model that declares a latent space.

Called by the conformance kit (:mod:`ganstudio.testing`) after a model trained a
few steps:

* ``latent``: the declared latent space fits the generator (``generator_module()``
  takes (N, dim) latents and gives images in [-1, 1]); a seed gives the same
  image twice; a sample does not depend on the rest of its batch (seed 17 alone
  equals seed 17 inside a batch - the generator runs in eval mode);
* ``onnx`` (only with capability ``onnx``): the generator exports to ONNX with a
  dynamic batch and onnxruntime agrees with torch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ganstudio.testing.results import FAIL, PASS, CheckResult, ConformanceError, _exc_text

#: Largest difference allowed between seed 17 alone and inside a batch (images in [-1, 1]).
BATCH_TOLERANCE = 1e-4


def explorer_checks(spec: Any, model: Any, workdir: Path) -> list[CheckResult]:
    import torch

    from ganstudio.core.latents import explorer_for
    results: list[CheckResult] = []
    try:
        ex = explorer_for(spec, model, device=model.device)
        seeds = [3, 17, 42]
        try:
            batch = ex.seed_images(seeds)
        except Exception as e:  # noqa: BLE001
            raise ConformanceError(
                f"generator_module() refused latents of shape (3, {ex.dim}) drawn from the "
                f"declared latent space ({spec.latent}): {_exc_text(e)}") from None
        if batch.dim() != 4 or batch.shape[0] != 3:
            raise ConformanceError(f"generator_module() gave shape {tuple(batch.shape)} for 3 "
                                   "latents; expected (3, C, H, W)")
        if not torch.isfinite(batch).all() or batch.min() < -1.001 or batch.max() > 1.001:
            raise ConformanceError("generator_module() gave images outside [-1, 1] (or NaN)")
        if not torch.equal(batch, ex.seed_images(seeds)):
            raise ConformanceError("the same seeds gave different images twice: the generator "
                                   "must not draw random numbers in eval mode")
        alone = ex.seed_images([17])
        gap = float((alone[0] - batch[1]).abs().max())
        if gap > BATCH_TOLERANCE:
            raise ConformanceError(
                f"seed 17 alone differs from seed 17 in a batch by {gap:.2g}: a sample must not "
                "depend on its batch in eval mode (batch statistics, minibatch-std layers)")
        results.append(CheckResult(spec.id, "latent", PASS,
                                   f"{ex.dim}-d {ex.distribution} latents; seeds reproducible; "
                                   f"a sample is independent of its batch (gap {gap:.1e})"))
    except ConformanceError as e:
        results.append(CheckResult(spec.id, "latent", FAIL, str(e)))
        return results
    except Exception as e:  # noqa: BLE001
        results.append(CheckResult(spec.id, "latent", FAIL, _exc_text(e)))
        return results
    if spec.has("onnx"):
        from ganstudio.core.onnx_export import export_generator_onnx
        try:
            report = export_generator_onnx(ex.network(), ex.dim, Path(workdir) / "generator.onnx")
            results.append(CheckResult(spec.id, "onnx", PASS,
                                       f"exported; onnxruntime agrees with torch to "
                                       f"{report.max_abs_diff:.1e} for batches of 1 and 5"))
        except Exception as e:  # noqa: BLE001 - UserError from the check, exporter errors
            results.append(CheckResult(spec.id, "onnx", FAIL, _exc_text(e)))
    return results
