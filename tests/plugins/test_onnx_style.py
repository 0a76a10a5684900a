"""The fast style network exports as an image-to-image ONNX model (``input`` / ``output``,
dynamic batch, height and width), and onnxruntime agrees with torch."""
from __future__ import annotations

import numpy as np
import torch


def test_fast_style_network_exports_with_dynamic_size(tmp_path):
    import onnxruntime as ort
    from ganstudio.core.onnx_export import export_image_net_onnx
    from ganstudio_style.fast import TransformerNet
    torch.manual_seed(0)
    net = TransformerNet(width=8, res_blocks=1).eval()
    report = export_image_net_onnx(net, 3, tmp_path / "style.onnx", size=32)
    assert report.max_abs_diff < 1e-3
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].name == "input" and session.get_outputs()[0].name == "output"
    # sizes the network pads to a multiple of 4 inside, and one it does not pad
    for shape in [(2, 3, 37, 51), (1, 3, 36, 52), (1, 3, 21, 30)]:
        x = torch.rand(*shape)
        out = session.run(None, {"input": x.numpy()})[0]
        with torch.no_grad():
            want = net(x).clamp(0, 1).numpy()
        assert out.shape == shape
        assert np.abs(out - want).max() < 1e-3, shape
