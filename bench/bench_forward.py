"""The served model's forward pass, side by side: eager PyTorch, TorchScript, torch.compile, ONNX Runtime.

    .venv/bin/python bench/bench_forward.py [--model model/model.pkl] [--threads 1] [--skip-compile]

Each is built from the same model file; for one image and for a batch of 64 it prints the median time
(interleaved rounds, so drift of the machine's speed hits all alike), the ratio to eager PyTorch and the
largest difference of its probabilities from eager's. One torch thread, as app.py serves, unless --threads.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from dlcourse.served.classifier import Classifier  # noqa: E402
from dlcourse.served.fast_forward import OnnxForward  # noqa: E402
from dlcourse.served.images import load_image  # noqa: E402
from dlcourse.served.loading import load_model_file  # noqa: E402
from dlcourse.served.modelfile import build_model  # noqa: E402
from support.timing import timings_ms  # noqa: E402

EXAMPLES = sorted((ROOT / "examples").glob("*.png"))


def candidates(model: torch.nn.Module, example: torch.Tensor, compile_too: bool) -> dict:
    """name -> forward function, each built from `model`."""
    found = {"eager PyTorch (channels_last, as before)": model}
    with torch.no_grad():
        found["TorchScript (traced, frozen)"] = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, example)))
    if compile_too:
        compiled = torch.compile(model, dynamic=False)
        start = time.perf_counter()
        with torch.inference_mode():
            compiled(example)
        print(f"torch.compile: first call (compiling) {time.perf_counter() - start:.1f} s")
        found["torch.compile (inductor)"] = compiled
    start = time.perf_counter()
    found["ONNX Runtime (dlcourse/served/fast_forward.py)"] = OnnxForward.from_network(model, example[:1])
    print(f"ONNX Runtime: export and session {time.perf_counter() - start:.2f} s")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "model" / "model.pkl")
    parser.add_argument("--threads", type=int, default=1, help="torch threads; app.py serves with 1 a request")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--skip-compile", action="store_true", help="leave out torch.compile (it compiles for ~40 s)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    classifier = Classifier.from_file(args.model)
    images = [load_image(EXAMPLES[i % len(EXAMPLES)]) for i in range(64)]
    batch = classifier.batch_inputs([classifier.prepare(image) for image in images])
    print(f"model: {classifier.meta.arch} {classifier.meta.img_size} px, torch threads {torch.get_num_threads()}")
    network = build_model(*load_model_file(args.model)).to(memory_format=torch.channels_last)  # as served eagerly
    forwards = candidates(network, batch[:1], not args.skip_compile)
    for inputs, repeats in ((batch[:1], 20), (batch, 2)):
        with torch.inference_mode():
            eager = network(inputs).softmax(dim=1)
            times: dict[str, list[float]] = {name: [] for name in forwards}
            for _ in range(args.rounds):
                for name, forward in forwards.items():
                    times[name] += timings_ms(lambda: forward(inputs), repeats)
            base = statistics.median(times[next(iter(forwards))])
            print(f"batch of {len(inputs)}:")
            for name, forward in forwards.items():
                difference = (forward(inputs).softmax(dim=1) - eager).abs().max().item()
                median = statistics.median(times[name])
                print(f"  {name:<42} p50 {median:8.2f} ms  {median / base:5.2f}x eager  max |p - p_eager| {difference:.1e}")


if __name__ == "__main__":
    main()
