"""train.py's looks at the data and the model: show-batch and the learning-rate finder before training,
the validation report after it (confusion matrix, most confused, top losses, curves).

Only rank 0 looks and writes; under torchrun the other processes wait, and a learning rate picked by
the finder reaches all of them. The figures go to the report folder (`--report-dir`, by default
reports/<model file's stem>/); the compact summary goes into the model file's report.
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..served.modelfile import ModelInfo
    from .learner import Learner

# Importing this module stays cheap (no torch, no matplotlib) so that `train.py --help` answers at once.
LR_FIND_CHOICES = ("stop", "valley", "steep")
DEFAULT_START_LR, DEFAULT_END_LR, DEFAULT_NUM_IT = 1e-7, 10.0, 100  # as dlcourse.training.lr_find (a test checks)
DEFAULT_TOP_LOSSES = 16  # as dlcourse.training.interpretation


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("looking before and after training")
    g.add_argument("--lr-find", nargs="?", const="stop", choices=LR_FIND_CHOICES,
                   help="run the learning-rate range test first (a copy of the model, --lr-find-iters mini-batches "
                        "of exponentially growing lr; the model is left untouched), print the suggestions "
                        "(steepest descent and fastai's valley) and save lr_find.png in the report folder. "
                        "Bare or 'stop': then stop without training; 'valley' or 'steep': train with that "
                        "suggestion as --lr")
    g.add_argument("--lr-find-iters", type=int, default=DEFAULT_NUM_IT,
                   help="mini-batches of the range test at most; it stops earlier when the loss explodes "
                        "(default %(default)s)")
    g.add_argument("--lr-find-range", type=float, nargs=2, default=(DEFAULT_START_LR, DEFAULT_END_LR),
                   metavar=("START", "END"),
                   help=f"learning rates tried, from START to END (default {DEFAULT_START_LR:g} {DEFAULT_END_LR:g})")
    g.add_argument("--show-batch", action="store_true",
                   help="save show_batch.png in the report folder: a batch of training images as the model receives "
                        "them (after augmentation), with their labels. Stops before training unless "
                        "--lr-find valley|steep asks for training")
    g.add_argument("--report-dir", metavar="DIR",
                   help="where the report goes: confusion_matrix.png, top_losses.png, curves.png, report.json "
                        "(and lr_find.png, show_batch.png) (default: reports/<stem of --out>/)")
    g.add_argument("--top-losses", type=int, default=DEFAULT_TOP_LOSSES,
                   help="validation images with the largest loss to report; their thumbnails go into the model "
                        "file (default %(default)s)")


def report_dir(args: argparse.Namespace) -> Path:
    return Path(args.report_dir) if args.report_dir else Path("reports") / Path(args.out).stem


def stops_before_training(args: argparse.Namespace) -> bool:
    """--show-batch or a bare --lr-find only look: no training follows."""
    return (args.lr_find == "stop") or (args.show_batch and args.lr_find is None)


def before_training(args: argparse.Namespace, learner: Learner, meta: ModelInfo) -> dict[str, Any] | None:
    """Show a batch and run the range test as asked (rank 0). Returns the finder's result as plain values,
    or None; with --lr-find valley|steep, every process gets the suggested lr in `learner.recipe`."""
    from . import report
    from . import distributed

    procs = learner.procs
    out = report_dir(args)
    found: dict[str, Any] | None = None
    if procs.is_main and args.show_batch:
        path = report.show_batch(learner.train_loader, meta.classes, meta.mean, meta.std,
                                 out / report.FILES["show_batch"])
        procs.print(f"show-batch: {path}")
    if args.lr_find:
        lr = 0.0
        if procs.is_main:
            result = run_lr_find(learner, args)
            found = result.to_dict()
            path = report.lr_find_plot(result, out / report.FILES["lr_find"])
            procs.print(f"lr-find: {len(result.lrs)} mini-batches from {result.lrs[0]:.1e} to {result.lrs[-1]:.1e}"
                        f"{' (stopped: the loss exploded)' if result.stopped_early else ''}; suggested lr: "
                        f"valley {result.valley:.2e}, steep {result.steep:.2e}; plot: {path}")
            lr = result.suggestions.get(args.lr_find, 0.0)
        if args.lr_find in ("valley", "steep"):
            (lr,) = distributed.all_sum(procs, [lr])  # rank 0's value reaches every process
            learner.recipe = _with_lr(learner.recipe, lr)
            procs.print(f"training with --lr {lr:.2e} (the {args.lr_find} suggestion)")
    distributed.barrier(procs)
    return found


def run_lr_find(learner: Learner, args: argparse.Namespace):
    """The range test on the learner's model as the first training phase will see it (frozen body
    when there is a frozen phase), its training batches, loss and AdamW groups; the model's
    requires_grad flags are put back."""
    import torch

    from .lr_find import lr_find
    from .learner import freeze_body, param_groups

    model, recipe = learner.model, learner.recipe
    flags = [p.requires_grad for p in model.parameters()]
    try:
        if recipe.freeze_epochs > 0:
            freeze_body(model)
        template = torch.optim.AdamW(param_groups(model, recipe.weight_decay), lr=recipe.lr)
        start, end = args.lr_find_range
        return lr_find(
            model, learner.train_loader, learner.criterion, optimizer=template, start_lr=start, end_lr=end,
            num_it=args.lr_find_iters, device=learner.device,
            amp_dtype=learner.dtype if learner.dtype == torch.bfloat16 else None,  # fp16 would need a scaler
            channels_last=learner.channels_last,
        )
    finally:
        for param, flag in zip(model.parameters(), flags):
            param.requires_grad_(flag)


def after_training(args: argparse.Namespace, learner: Learner, meta: ModelInfo, history: list[dict[str, Any]],
                   lr_found: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Path]]:
    """Rank 0 only: the validation report. Prints the most confused pairs, writes the report folder and
    returns (summary for the model file's report, {name: file written})."""
    from . import interpretation, report

    procs = learner.procs
    logits, targets = learner.predict()  # the whole validation set, in order
    interp = interpretation.Interpretation(list(meta.classes), logits, targets)
    top = interp.top_losses(args.top_losses)
    images = report.top_loss_images(learner.valid_ds, top, meta.mean, meta.std)
    summary = interpretation.summary(interp, history=history, images=images, k=args.top_losses, lr_find=lr_found)
    files = report.write_report(report_dir(args), replace(meta, history=history), summary, images=images,
                                lr_find=lr_found)
    out = report_dir(args)
    for name, made in (("lr_find", lr_found is not None), ("show_batch", args.show_batch)):  # before training
        if made and (out / report.FILES[name]).is_file():
            files[name] = out / report.FILES[name]
    procs.print(report.format_most_confused(summary["most_confused"]))
    procs.print(f"report: {out}/ ({', '.join(sorted(path.name for path in files.values()))})")
    return summary, files


def _with_lr(recipe, lr: float):
    from dataclasses import replace

    return replace(recipe, lr=float(lr))
