"""Train an image classifier with timm and write the model file the Space serves.

    python train.py --data path/to/images                       # one sub-folder per class, pretrained resnet18
    python train.py --data path/to/images --label-re '^(.+)_\\d+\\.jpg$' --arch convnext_tiny
    python train.py --data path/to/images --csv labels.csv      # fastai's from_csv: file name, label[, is_valid]
    python train.py --data mnist --arch resnet10t --no-pretrained --img-size 32 --epochs 20 --batch-size 128 --lr 3e-3 --wd 0.05
    torchrun --standalone --nproc_per_node 2 train.py --data ...   # DDP: several GPUs (NCCL) or CPU processes (gloo)
    python train.py --data path/to/images --show-batch --lr-find  # look first: a batch, the lr finder; no training
    python train.py --data path/to/images --lr-find valley        # train with the finder's valley suggestion
    python train.py --data path/to/images --resume                # continue an interrupted run from model/model.ckpt
    python train.py --data path/to/images --keep best --keep-metric accuracy   # keep the best epoch, not the last

The flow, top to bottom: data -> model and its input config -> fastai's fine_tune (freeze, unfreeze with
discriminative learning rates, one-cycle), a checkpoint at every epoch's end (model/model.ckpt, beside --out)
-> validation report (reports/<model>/: confusion matrix, most confused, top losses, curves) -> model file
(model/model.pkl, loads with torch.load(weights_only=True), the report's summary inside) -> Hub.
The pieces live in dlcourse/training/. Under torchrun only rank 0 prints, writes and pushes;
--batch-size is per process (the global batch is batch size x processes) and --lr is used as given.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace

from dlcourse.errors import BadInput

KEEP_METRICS = ("valid_loss", "accuracy", "error_rate")  # as dlcourse.training.learner.KEEP_METRICS (a test checks)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="train.py",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from dlcourse.training.data import add_data_arguments

    add_data_arguments(p)

    m = p.add_argument_group("model")
    m.add_argument("--arch", default="resnet18",
                   help="any timm model name, e.g. resnet18, resnet10t, convnext_tiny, efficientnet_b0 (default %(default)s)")
    m.add_argument("--pretrained", action=argparse.BooleanOptionalAction, default=True,
                   help="start from the weights timm downloads from the Hugging Face Hub, or from random weights "
                        "(default: pretrained)")
    m.add_argument("--weights", metavar="FILE",
                   help="start from this local timm/PyTorch checkpoint (.safetensors, .pth, .bin) instead of the "
                        "Hub's; its head is replaced to fit the classes")
    m.add_argument("--img-size", type=int,
                   help="input size in pixels (default: the model's pretrained config, e.g. 224)")
    m.add_argument("--in-chans", type=int, choices=(1, 3),
                   help="input channels: 1 trains grayscale as it is, 3 repeats it into RGB "
                        "(default: 1 for --data mnist, 3 otherwise); the model file records it")

    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int, default=5, help="epochs training the whole network (default %(default)s)")
    t.add_argument("--freeze-epochs", type=int,
                   help="epochs training only the new head first (default: 1 when pretrained, 0 from scratch)")
    t.add_argument("--lr", type=float, default=2e-3,
                   help="peak learning rate of the one-cycle schedule, AdamW (default %(default)s); fine-tuning "
                        "pretrained weights, halved for the unfrozen phase, as fastai's fine_tune")
    t.add_argument("--lr-mult", type=float, default=100.0,
                   help="fine-tuning pretrained weights, the unfrozen phase's discriminative rates: the body at "
                        "lr / 2 / LR_MULT, the head at lr / 2, as fastai's fine_tune(lr_mult=...); 1 gives every "
                        "layer the same rate (default %(default)g)")
    t.add_argument("--batch-size", type=int, default=64,
                   help="images per step per process; under torchrun the global batch is this times the number "
                        "of processes (default %(default)s)")
    t.add_argument("--wd", type=float, default=0.01, help="AdamW weight decay (default %(default)s)")
    t.add_argument("--label-smoothing", type=float, default=0.1,
                   help="label smoothing of the cross-entropy loss, for training and validation (default %(default)s)")
    t.add_argument("--workers", type=int,
                   help="data loading processes per training process (default: the CPU cores per process, less "
                        "one, at most 8)")
    t.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                   help="auto: CUDA when available (default %(default)s)")
    t.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True,
                   help="mixed precision on CUDA: bf16 where the GPU supports it, else fp16 (default: on); "
                        "CPU trains in float32")
    t.add_argument("--compile", action="store_true",
                   help="run the training steps through torch.compile (needs a C++ compiler on the CPU); the "
                        "first steps wait for the compilation, later ones run faster where the model allows")
    t.add_argument("--decode", choices=("workers", "device"), default="workers",
                   help="where training JPEGs are decoded and augmented: workers: in the loader processes "
                        "(torchvision's decoder into tensors, the faster way on a CPU, measured); device: in the "
                        "training process on its device, nvJPEG on a GPU a batch at a time, for when the loader "
                        "cannot keep up with the GPU (not yet measured on one) (default %(default)s)")

    a = p.add_argument_group("augmentation (defaults differ for photos and for --data mnist digits)")
    a.add_argument("--crop-scale", type=float, nargs="+", metavar="S",
                   help="RandomResizedCrop area range MIN [MAX] (default: 0.35 1 for photos; digits are not "
                        "cropped); 0 turns cropping off")
    a.add_argument("--flip", action=argparse.BooleanOptionalAction,
                   help="random horizontal flips (default: on for photos, off for digits)")
    a.add_argument("--rotate", type=float, help="random rotation up to this many degrees (default 10)")
    a.add_argument("--translate", type=float, help="random shift up to this share of the size (default: 0 photos, 0.1 digits)")
    a.add_argument("--zoom", type=float, help="random scaling by 1 +- this (default: 0 photos, 0.1 digits)")
    a.add_argument("--shear", type=float, help="random shear up to this many degrees (default: 0 photos, 10 digits)")
    a.add_argument("--elastic", type=float,
                   help="elastic distortion strength, alpha at 28 px, scaled with the size (default: 0 photos, "
                        "34 digits, as Simard et al. for MNIST); applied to half the images")
    a.add_argument("--ink", type=float, nargs=4, metavar=("STROKE_WIDTH", "FADE", "BROKEN_STROKES", "EDGE_CLUTTER"),
                   help="how often a digit's ink varies as people's pictures vary it, before the steps above: strokes "
                        "a pixel wider or narrower, greyer ink, gaps in the strokes, clutter at the picture's edge "
                        "(default: 0 0 0 0; docs/training.md)")

    o = p.add_argument_group("output, checkpoints and resuming")
    o.add_argument("--out", default="model/model.pkl", help="the model file to write (default %(default)s)")
    o.add_argument("--keep", choices=("last", "best"), default="last",
                   help="the epoch whose weights go into the model file: the last, or the best by --keep-metric "
                        "(fastai's SaveModelCallback); the file, its report and model card give that epoch's "
                        "figures (default %(default)s)")
    o.add_argument("--keep-metric", choices=KEEP_METRICS, default="valid_loss",
                   help="what --keep best compares: valid_loss and error_rate lower, accuracy higher (default %(default)s)")
    o.add_argument("--checkpoint-dir", metavar="DIR",
                   help="where the checkpoint written at every epoch's end goes, named after --out (default: "
                        "beside --out: model/model.ckpt). On Colab or Kaggle, a mounted drive: it outlives the machine")
    o.add_argument("--resume", nargs="?", const=True, metavar="CHECKPOINT",
                   help="continue an interrupted run from its checkpoint (bare: the one --out and --checkpoint-dir "
                        "name) with the same data and settings; the model file is the one an uninterrupted run "
                        "writes. A checkpoint of other data or settings is refused, naming the difference")
    o.add_argument("--push-to-hub", metavar="USER/NAME",
                   help="also upload the model file and a model card to this Hub model repo (created if needed); "
                        "token from HF_TOKEN or `hf auth login`")
    from dlcourse.training import insight

    insight.add_arguments(p)
    args = p.parse_args(argv)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from dlcourse.training import distributed

    procs = None
    try:
        procs = distributed.start(args.device)
        train(args, procs)
        return 0
    except BadInput as error:
        if procs is None or procs.is_main:
            print(f"error: {error}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if procs is not None:
            distributed.stop(procs)


def train(args: argparse.Namespace, procs) -> None:
    # Imported here so that `train.py --help` answers at once.
    from dlcourse.clean.items import cleaner_command
    from dlcourse.hub.model_repo import hub_token, push_to_hub
    from dlcourse.served.augment import INK_STEPS
    from dlcourse.served.modelfile import ModelInfo, save_model_file
    from dlcourse.served.preprocess import create_transform
    from dlcourse.training import checkpoint, distributed, insight
    from dlcourse.training.data import data_options, fingerprint, load_data_from_args
    from dlcourse.training.export import command_line, describe, pick_examples, versions
    from dlcourse.training.learner import Learner, Recipe, check_arch, create_model, input_config, seed_everything
    from dlcourse.training.transforms import default_augment

    started, cpu_started = time.perf_counter(), time.process_time()
    check_arch(args.arch)  # fail in a second, not after reading the data
    crop_scale = _crop_scale(args.crop_scale)
    if args.epochs < 0 or (args.freeze_epochs or 0) < 0 or args.epochs + (args.freeze_epochs or 0) == 0:
        raise BadInput("nothing to train: give --epochs (and --freeze-epochs) a positive number.")
    if args.batch_size < 1 or args.lr <= 0 or args.lr_mult <= 0:
        raise BadInput("--batch-size, --lr and --lr-mult must be positive.")
    if args.resume and (args.lr_find or args.show_batch):
        raise BadInput("--resume continues a run; --lr-find and --show-batch look before one starts: not both.")
    checkpoint_path = checkpoint.path_for(args.out, args.checkpoint_dir)
    resume_path = checkpoint_path if args.resume is True else args.resume
    if args.push_to_hub and procs.is_main and not hub_token():
        print(f"warning: --push-to-hub {args.push_to_hub} but no Hugging Face token (HF_TOKEN or `hf auth login`): "
              "the model file will be written, the upload will fail.", file=sys.stderr, flush=True)
    seed_everything(args.seed)

    # 1. The data: classes, a training and a validation set of uint8 images.
    data = load_data_from_args(args)
    procs.print(data.summary())

    # 2. The model, and the input it expects: size, channels, normalisation.
    pretrained = bool(args.pretrained or args.weights)
    in_chans = args.in_chans or (1 if data.preprocessing == "mnist" else 3)
    model = create_model(args.arch, len(data.classes), in_chans, pretrained, args.weights)
    meta = ModelInfo(arch=args.arch, classes=data.classes, in_chans=in_chans, **input_config(model, in_chans, args.img_size),
                     preprocessing=data.preprocessing)

    # 3. The recipe: augmentations for training; validation sees images as the app will (create_transform(meta)).
    augment = default_augment(
        data.preprocessing, crop_scale=crop_scale, flip=args.flip, rotate=args.rotate,
        translate=args.translate, zoom=args.zoom, shear=args.shear, elastic=args.elastic,
        **dict(zip(INK_STEPS, args.ink or ())),
    )
    recipe = Recipe(
        epochs=args.epochs,
        freeze_epochs=args.freeze_epochs if args.freeze_epochs is not None else (1 if pretrained else 0),
        lr=args.lr, batch_size=args.batch_size, weight_decay=args.wd, label_smoothing=args.label_smoothing,
        workers=args.workers if args.workers is not None else distributed.default_workers(procs.local_world_size),
        amp=args.amp, seed=args.seed, compile=args.compile, decode=args.decode,
        pretrained=pretrained, lr_mult=args.lr_mult, keep=args.keep, keep_metric=args.keep_metric,
    )
    learner = Learner(model, data.train.with_transform(create_transform(meta, augment)),
                      data.valid.with_transform(create_transform(meta)), recipe, procs)
    procs.print(describe(meta, recipe, augment, pretrained, procs, learner.dtype))

    # Look first when asked: a training batch as the model receives it, the learning-rate finder.
    lr_found = insight.before_training(args, learner, meta)
    if insight.stops_before_training(args):
        return
    recipe = learner.recipe  # --lr-find valley|steep may have set the learning rate

    # 4. Train: the head alone, then everything; a table line and a checkpoint per epoch. Resuming, from
    #    where the checkpoint stands, once it is known to come from this data and these settings.
    run_settings = checkpoint.settings(meta, recipe, augment, os.path.basename(args.weights) if args.weights else None,
                                       procs.world_size)
    data_fingerprint = fingerprint(data)
    if resume_path:
        checkpoint.resume(resume_path, learner, run_settings, data_fingerprint)
    writer = checkpoint.Writer(checkpoint_path)  # in the background, while the next epoch trains
    history = learner.fit(after_epoch=lambda: writer.write(learner, run_settings, data_fingerprint))
    writer.wait()
    final = learner.use_kept_epoch()  # the last epoch, or with --keep best the best one (its weights in the model)
    meta.kept_epoch = final["epoch"]

    # 5. Report (rank 0): confusion matrix, most confused pairs, top losses, curves -> the report folder;
    #    a compact summary of it goes into the model file, with a few small validation images per class that
    #    the model gets right: the Classify tab's examples.
    report_files = {}
    if procs.is_main:
        meta.report, report_files = insight.after_training(args, learner, meta, history, lr_found)
        meta.examples = pick_examples(data.valid, meta, learner.predict)

    # 6. Export: one self-describing file, written by rank 0 only.
    if procs.is_main:
        meta = replace(
            meta,
            metrics={k: final[k] for k in ("valid_loss", "error_rate", "accuracy")} | {"valid_size": len(data.valid)},
            trained_on=data.description,
            valid_split=data.split,
            train_size=len(data.train),
            valid_size=len(data.valid),
            skipped_files=len(data.skipped),
            pretrained=pretrained,
            weights=os.path.basename(args.weights) if args.weights else None,
            recipe=recipe.as_dict() | {"world_size": procs.world_size, "global_batch_size": recipe.batch_size * procs.world_size,
                                       "device": procs.device.type, "amp_dtype": str(learner.dtype).replace("torch.", "") if learner.dtype else "float32"},
            augment=augment.as_dict(),
            history=history,
            train_seconds=round(time.perf_counter() - started, 1),
            cpu_seconds=round(time.process_time() - cpu_started, 1),  # this process's CPU time, all its threads
            created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            command=command_line(procs),
            versions=versions(),
        )
        path = save_model_file(args.out, learner.state_dict(), meta)
        size_mb = path.stat().st_size / 2**20
        kept = f"epoch {final['epoch']} (best {args.keep_metric}): " if args.keep == "best" else ""
        procs.print(f"{kept}accuracy {final['accuracy']:.4f} (error_rate {final['error_rate']:.4f}) on {data.split}; "
                    f"{meta.train_seconds / 60:.1f} min in all ({meta.cpu_seconds / 60:.1f} CPU-min); "
                    f"wrote {path} ({size_mb:.1f} MB)")
        if args.data != "mnist":
            procs.print(f"the images it finds hardest, to keep, delete or relabel (docs/cleaning.md): "
                        f"{cleaner_command(data_options(args), path)}")

        # 7. Publish.
        if args.push_to_hub:
            url = push_to_hub(args.push_to_hub, path, report_files=report_files)
            procs.print(f"pushed to {url}; serve it in the Space with MODEL_REPO={args.push_to_hub}")
    distributed.barrier(procs)


def _crop_scale(values: list[float] | None) -> tuple[float, float] | None | bool:
    if values is None:
        return None  # the data kind's default
    if len(values) > 2 or not all(0 <= v <= 1 for v in values):
        raise BadInput("--crop-scale takes MIN [MAX] between 0 and 1 (0 alone: no cropping).")
    if values == [0] or values == [0.0]:
        return False
    low, high = (values[0], 1.0) if len(values) == 1 else values
    if not 0 < low <= high:
        raise BadInput(f"--crop-scale {low} {high}: MIN must be above 0 and at most MAX.")
    return (low, high)


if __name__ == "__main__":
    sys.exit(main())
