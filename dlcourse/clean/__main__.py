"""Clean a data set the course's way: the images the model finds hardest first; keep, delete or relabel them.

    python -m dlcourse.clean --data PATH --model model/model.pkl             # a local page (Gradio) to click through
    python -m dlcourse.clean --data PATH --model model/model.pkl --list 50   # no browser: the 50 highest losses as CSV
    python -m dlcourse.clean --data PATH --apply decisions.csv [--move]     # file,action rows: keep, delete or a class
    python -m dlcourse.clean --data PATH --undo                             # put back what the last apply changed

The data options are train.py's (--label-re, --csv, --valid-pct, --seed, ...): give the ones you trained
with, and the cleaner sees the same images, labels and split. Applying writes cleaned.csv in the data folder
(train.py --data PATH --csv cleaned.csv trains on it); --move also moves deleted images into removed/ beside
the data folder and relabelled ones into their new class folder, each move logged for --undo.
docs/cleaning.md has the details.
"""
from __future__ import annotations

import argparse
import sys

from ..errors import BadInput

DEFAULT_PORT = 7861


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from ..training.data import add_data_arguments

    parser = argparse.ArgumentParser(prog="python -m dlcourse.clean", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(parser)
    what = parser.add_argument_group("what to do (default: open the page)")
    what.add_argument("--model", metavar="FILE",
                      help="the model file that ranks the images: train.py's model.pkl or a fastai export "
                           "(needed for the page and --list)")
    what.add_argument("--list", type=int, metavar="N",
                      help="print the N images of the highest loss as CSV (file, label, predicted, probability, loss, "
                           "split, problem), then every unreadable image with its reason")
    what.add_argument("--split", choices=("train", "valid"), help="--list only this split (default: both)")
    what.add_argument("--apply", metavar="DECISIONS_CSV",
                      help="apply a CSV of file and action (keep, delete or a class name) as the page does")
    what.add_argument("--move", action="store_true",
                      help="with --apply: move the files too (deleted ones into removed/, relabelled ones into "
                           "their class folder)")
    what.add_argument("--undo", action="store_true", help="undo the last apply (files and cleaned.csv)")
    what.add_argument("--port", type=int, default=DEFAULT_PORT, help="the page's port on 127.0.0.1 (default %(default)s)")
    what.add_argument("--workers", type=int, default=0,
                      help="processes decoding images while the model ranks them (default %(default)s: in this one)")
    args = parser.parse_args(argv)
    if sum(map(bool, (args.list is not None, args.apply, args.undo))) > 1:
        parser.error("give one of --list, --apply and --undo")
    if args.move and not args.apply:
        parser.error("--move goes with --apply")
    if (args.list is not None or not (args.apply or args.undo)) and not args.model:
        parser.error("--model is needed to rank the images (the page, --list)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.undo:
            from .apply import undo

            outcome = undo(args.data)
            print(outcome.summary())
            return 0
        from .items import open_data

        data = open_data(args)
        if args.apply:
            from .apply import apply, read_decisions

            outcome = apply(data, read_decisions(args.apply), args.move)
            print(outcome.summary())
            return 0
        classifier = open_model(args.model, data)
        if args.list is not None:
            from .ranking import listing, rank

            sys.stdout.write(listing(data, rank(data, classifier, workers=args.workers), args.list, args.split))
            return 0
        serve(args, data, classifier)
        return 0
    except BadInput as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def open_model(path: str, data):
    """The classifier of a model file, refused when its classes are not the data's."""
    from ..served.classifier import Classifier
    from .items import check_model_classes

    classifier = Classifier.from_file(path)
    check_model_classes(classifier.classes, data.classes, path)
    return classifier


def serve(args: argparse.Namespace, data, classifier) -> None:
    """The page on 127.0.0.1 until Ctrl+C."""
    from ..ui.clean import launch
    from .items import open_data
    from .session import CleanSession

    session = CleanSession(data, classifier, reload=lambda: open_data(args), workers=args.workers)
    print(f"{data.description}: {len(data.items):,} images, {len(data.unreadable)} unreadable")
    launch(session, args.port)


if __name__ == "__main__":
    sys.exit(main())
