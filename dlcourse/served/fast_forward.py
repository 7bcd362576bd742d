"""The classifier's forward pass on ONNX Runtime, exported in memory from the network the model file built.

On the served digits model (resnet10t, 32 px, one image, one thread) ONNX Runtime took 0.14x eager
PyTorch's time (its per-layer Python and dispatch overhead is most of a small network's time), torch.compile
0.97x after a 5-38 s compile, TorchScript (frozen) 1.8x; for a batch of 64 ONNX Runtime 0.68x
(`python bench/bench_forward.py`, docs/serving-speed.md). The model file stays the one source of truth: the
graph is exported from its weights at load time and never written anywhere, and it is used only when its
probabilities match eager PyTorch's within TOLERANCE on a probe batch; otherwise the app keeps eager PyTorch.
The forward pass chosen is the only one kept: ONNX Runtime holds its own copy of the weights, so the network
it was exported from is let go (with it, a resnet18 at 224 px held 45 MB of weights twice).
"""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from typing import Callable, Iterator

import onnxruntime
import torch

log = logging.getLogger(__name__)

TOLERANCE = 1e-4  # largest difference from eager PyTorch's probabilities accepted
Forward = Callable[[torch.Tensor], torch.Tensor]


class OnnxForward:
    """Logits for a batch of inputs (N, C, H, W) from an ONNX Runtime session; safe to call from many threads."""

    def __init__(self, model: torch.nn.Module, example: torch.Tensor):
        graph = io.BytesIO()
        with warnings.catch_warnings(), no_onnxscript_functions():  # the exporter's notes on its own future
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), graph, input_names=["inputs"], output_names=["logits"],
                              dynamic_axes={"inputs": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
        options = onnxruntime.SessionOptions()
        # As many threads as torch has (app.py: one a request, requests run side by side), none of them
        # spinning while waiting for work: on two busy cores spinning threads take time from the others.
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(graph.getvalue(), options, providers=["CPUExecutionProvider"])
        # ONNX Runtime's memory arena grows to the largest run and keeps it: a batch of 32 photos at 224 px would
        # hold ~1 GB for good. After a run of more than one image it gives back what it grew beyond its first
        # chunk; single images, the common case, keep theirs (the same speed as before).
        self.after_a_batch = onnxruntime.RunOptions()
        self.after_a_batch.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        options = self.after_a_batch if len(inputs) > 1 else None
        return torch.from_numpy(self.session.run(None, {"inputs": inputs.float().contiguous().numpy()}, options)[0])


@contextlib.contextmanager
def no_onnxscript_functions() -> Iterator[None]:
    """torch.onnx.export (TorchScript) without its last step, which adds the onnxscript functions a graph calls.

    torch 2.15's exporter then always imports the `onnx` package (1-3 s at start-up here, most of it
    ml_dtypes) and parses the whole graph back (45 MB for resnet18) to look for them. A network built from a
    model file calls none: the step would return the same bytes. Export and ONNX Runtime session of a resnet18
    at 224 px took 1.25-1.57 s without it against 2.94-4.57 s with it (separate processes, two busy cores).
    Where torch names the step otherwise, the export runs whole."""
    try:
        from torch.onnx._internal.torchscript_exporter import onnx_proto_utils
    except ImportError:
        yield
        return
    whole = getattr(onnx_proto_utils, "_add_onnxscript_fn", None)
    if whole is not None:
        onnx_proto_utils._add_onnxscript_fn = lambda model_bytes, custom_opsets: model_bytes
    try:
        yield
    finally:
        if whole is not None:
            onnx_proto_utils._add_onnxscript_fn = whole


def fastest_forward(model: torch.nn.Module, in_chans: int, img_size: int) -> Forward:
    """ONNX Runtime's forward pass of `model` when it answers as eager PyTorch does, else `model` itself in
    channels_last (about 2x faster convolutions on CPU). Nothing returned holds on to `model` but itself."""
    probe = torch.randn(3, in_chans, img_size, img_size, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():  # the exporter traces the model: not in inference mode
            fast = OnnxForward(model, probe[:1])
            difference = (fast(probe).softmax(dim=1) - model(probe).float().softmax(dim=1)).abs().max().item()
    except Exception as error:  # noqa: BLE001 - an architecture the exporter cannot take still serves, eagerly
        log.info("serving with eager PyTorch: ONNX export of %s failed (%s)", type(model).__name__, error)
        return model.to(memory_format=torch.channels_last)
    if not difference <= TOLERANCE:
        log.info("serving with eager PyTorch: ONNX Runtime's probabilities differ by %.2g", difference)
        return model.to(memory_format=torch.channels_last)
    return fast
