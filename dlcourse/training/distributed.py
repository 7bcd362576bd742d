"""One process, or several started by `torchrun` (PyTorch's own launcher): who does what.

`torchrun --nproc_per_node N train.py ...` starts N copies of train.py with RANK, WORLD_SIZE and
LOCAL_RANK set; each joins the process group (NCCL on GPUs, gloo on CPU), wraps its model in
DistributedDataParallel, and trains on its own shard of the data. Only rank 0 prints, writes the model
file and pushes to the Hub. Without torchrun, everything here is a no-op and training is one plain process.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.distributed as dist

from ..machine import usable_cores


@dataclass(frozen=True)
class Processes:
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def print(self, *args, file=None, **kwargs) -> None:
        """print(), on rank 0 only."""
        if self.is_main:
            print(*args, file=file or sys.stdout, flush=True, **kwargs)


def start(device: str = "auto") -> Processes:
    """Join the process group when launched by torchrun; pick the device ("auto", "cpu", "cuda")."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size)))
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        from ..errors import BadInput

        raise BadInput("--device cuda was asked for, but PyTorch sees no CUDA GPU here.")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        target = torch.device("cuda", local_rank)
    else:
        target = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        if use_cuda:
            dist.init_process_group("nccl", device_id=target)
        else:
            dist.init_process_group("gloo")
    return Processes(rank, world_size, local_rank, local_world_size, target)


def default_workers(processes_here: int) -> int:
    """Data loading processes per training process: this machine's cores shared out, one kept for the
    training process itself, at most 8 (past that, more workers rarely help and cost memory)."""
    return max(0, min(8, usable_cores() // max(processes_here, 1) - 1))


def stop(procs: Processes) -> None:
    if procs.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(procs: Processes) -> None:
    if procs.distributed:
        dist.barrier()


def all_sum(procs: Processes, values: Sequence[float]) -> list[float]:
    """Element-wise sums of `values` over all processes (the values themselves with one process)."""
    if not procs.distributed:
        return [float(v) for v in values]
    tensor = torch.tensor(values, dtype=torch.float64, device=procs.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def sync_buffers(procs: Processes, model: torch.nn.Module) -> None:
    """Give every process rank 0's buffers (BatchNorm running statistics), so that all of them evaluate,
    and rank 0 saves, the same network."""
    if procs.distributed:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def shard(procs: Processes, n: int) -> list[int]:
    """This process's share of n items for evaluation: every item in exactly one process, no padding."""
    return list(range(procs.rank, n, procs.world_size))


def all_gather(procs: Processes, value: Any) -> list[Any]:
    """`value` of every process, in rank order ([value] with one process); any picklable value."""
    if not procs.distributed:
        return [value]
    values: list[Any] = [None] * procs.world_size
    dist.all_gather_object(values, value)
    return values
