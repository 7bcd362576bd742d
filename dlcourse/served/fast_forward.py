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
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Iterator

import onnxruntime
import torch

from ..machine import usable_cores

log = logging.getLogger(__name__)

TOLERANCE = 1e-4  # largest difference from eager PyTorch's probabilities accepted
# A run of one image that takes at least this on one thread is split over every core when no other run is
# under way. Measured on 2 cores with ONNX Runtime, one image: a resnet18 at 224 px 21.5 ms on two threads against
# 37.8 ms on one; the 32 px digits model (1.35 ms on one) 1.44 ms on two, its layers too small to share.
SPLIT_FROM_MS = 10.0
Forward = Callable[[torch.Tensor], torch.Tensor]


def export_graph(model: torch.nn.Module, example: torch.Tensor) -> bytes:
    """`model`'s ONNX graph, its batch size left free, exported in memory (nothing is written anywhere)."""
    graph = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings(), no_onnxscript_functions():  # the exporter traces: no inference mode
        warnings.simplefilter("ignore")  # the exporter's notes on its own future
        torch.onnx.export(model, (example,), graph, input_names=["inputs"], output_names=["logits"],
                          dynamic_axes={"inputs": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    return graph.getvalue()


class OnnxForward:
    """Logits for a batch of inputs (N, C, H, W) from ONNX Runtime sessions; safe to call from many threads."""

    def __init__(self, graph: bytes):
        self.session = _session(graph, 1)
        self.alone, self.alone_threads = self.session, 1
        self.running, self.counting = 0, threading.Lock()
        # ONNX Runtime's memory arena grows to the largest run and keeps it: a batch of 32 photos at 224 px would
        # hold ~1 GB for good. After a run of more than one image it gives back what it grew beyond its first
        # chunk; single images, the common case, keep theirs (the same speed as before).
        self.after_a_batch = onnxruntime.RunOptions()
        self.after_a_batch.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    @classmethod
    def from_network(cls, model: torch.nn.Module, example: torch.Tensor) -> "OnnxForward":
        return cls(export_graph(model, example))

    def split_when_alone(self, graph: bytes, threads: int) -> None:
        """Split a run over `threads` when no other run is under way (one visitor waits about half as long); runs
        side by side keep one thread each: split too, they only fight for the cores (8 clients on a resnet18 at
        224 px: ~10% more CPU a request). Costs a second session: a resnet18's weights again, ~40 MB."""
        self.alone, self.alone_threads = _session(graph, threads), threads

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        options = self.after_a_batch if len(inputs) > 1 else None
        with self.counting:
            session = self.alone if self.running == 0 else self.session
            self.running += 1
        try:
            return torch.from_numpy(session.run(None, {"inputs": inputs.float().contiguous().numpy()}, options)[0])
        finally:
            with self.counting:
                self.running -= 1


def _session(graph: bytes, threads: int) -> onnxruntime.InferenceSession:
    """A session of `threads` to share one run, none of them spinning while waiting for work: on two busy cores
    spinning threads take time from the others."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class Exported:
    """A network's ONNX graph and eager PyTorch's answers on a probe batch: all that another process needs to
    serve the network on ONNX Runtime and to check that it answers alike (`onnx_forward`)."""

    graph: bytes
    probe: torch.Tensor  # (3, C, H, W), random, fixed by its seed
    probabilities: torch.Tensor  # eager PyTorch's softmax on the probe

    @classmethod
    def of(cls, model: torch.nn.Module, in_chans: int, img_size: int) -> "Exported":
        """Raises whatever the exporter raises for a network it cannot take."""
        probe = torch.randn(3, in_chans, img_size, img_size, generator=torch.Generator().manual_seed(0))
        graph = export_graph(model, probe[:1])
        with torch.no_grad():
            return cls(graph, probe, model(probe).float().softmax(dim=1))


def onnx_forward(exported: Exported) -> OnnxForward | None:
    """ONNX Runtime's forward pass of the exported graph when its probabilities on the probe match eager
    PyTorch's within TOLERANCE; None (and a log line saying why) otherwise.

    A run alone is split over every core the process may use when one image takes SPLIT_FROM_MS on one thread
    (a photo model), never for a smaller network (a digits model)."""
    cores = usable_cores()
    fast = OnnxForward(exported.graph)
    difference = (fast(exported.probe).softmax(dim=1) - exported.probabilities).abs().max().item()
    if not difference <= TOLERANCE:
        log.info("serving with eager PyTorch: ONNX Runtime's probabilities differ by %.2g", difference)
        return None
    started = time.perf_counter()  # the session's first run, just done, set it up: this one is as served
    fast(exported.probe[:1])
    one_image_ms = (time.perf_counter() - started) * 1000
    if cores > 1 and one_image_ms >= SPLIT_FROM_MS:
        fast.split_when_alone(exported.graph, cores)
        fast(exported.probe[:1])  # its first run sets it up: not the first visitor's
    return fast


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
    try:
        fast = onnx_forward(Exported.of(model, in_chans, img_size))
    except Exception as error:  # noqa: BLE001 - an architecture the exporter cannot take still serves, eagerly
        log.info("serving with eager PyTorch: ONNX export of %s failed (%s)", type(model).__name__, error)
        fast = None
    return fast if fast is not None else model.to(memory_format=torch.channels_last)
