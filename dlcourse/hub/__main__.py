"""The Hub from the command line:

    python -m dlcourse.hub space USER/NAME [--model FILE] [--model-repo USER/NAME]   # publish the Space itself
    python -m dlcourse.hub space --stage DIR [--model FILE]                          # its files, no network
    python -m dlcourse.hub stage MODEL_FILE DIR [--repo USER/NAME] [--report-dir DIR]   # a model repo's files
    python -m dlcourse.hub push MODEL_FILE USER/NAME [--report-dir DIR]                 # the same files, uploaded
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import BadInput
from . import space
from .model_repo import push_to_hub, stage


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m dlcourse.hub", description="Publish the Space, or a model, "
                                     "on the Hugging Face Hub.", epilog=__doc__.split("\n\n")[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    publishing = commands.add_parser(
        "space", help="create the Space when missing (Gradio, free CPU) and upload exactly the files it needs, "
                      "in one commit; with --stage, write them into a folder instead (no network)")
    publishing.add_argument("repo", nargs="?", metavar="USER/NAME", help="the Space (needed unless --stage)")
    publishing.add_argument("--stage", metavar="DIR", help="write the Space's files into this new or empty folder, "
                                                            "print each with its size and storage, upload nothing")
    publishing.add_argument("--model", metavar="FILE", help="serve this model file (train.py's, or a fastai "
                                                             "learn.export()) instead of model/model.pkl")
    publishing.add_argument("--model-repo", metavar="USER/NAME", help="set the Space's MODEL_REPO variable: it "
                                                                       "serves that Hub model repo's model.pkl")
    publishing.add_argument("--private", action="store_true", help="create the Space private")
    staging = commands.add_parser("stage", help="write into DIR exactly the files a model push uploads (no network)")
    staging.add_argument("model_file")
    staging.add_argument("dir", help="a new or empty folder")
    staging.add_argument("--repo", default="", metavar="USER/NAME", help="the repo the model card names")
    pushing = commands.add_parser("push", help="upload those files to a Hub model repo (created if needed)")
    pushing.add_argument("model_file")
    pushing.add_argument("repo", metavar="USER/NAME")
    for command in (staging, pushing):
        command.add_argument("--report-dir", metavar="DIR",
                             help="the report figures to include (train.py's reports/<model>/); default: redrawn "
                                  "from the model file's own report")
    args = parser.parse_args(argv)
    if args.command == "space" and not (args.repo or args.stage):
        parser.error("space needs USER/NAME, or --stage DIR")
    return args


def report_files(report_dir: str | None) -> dict[str, Path] | None:
    """The report figures train.py wrote into `report_dir`, by name; None without a folder."""
    if not report_dir:
        return None
    from ..training.report import FILES

    return {name: Path(report_dir) / file for name, file in FILES.items() if (Path(report_dir) / file).is_file()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.command == "space" and args.stage:
            space.print_staged(space.stage_space(args.stage, args.model), Path(args.stage))
        elif args.command == "space":
            print(space.publish(args.repo, args.model, args.model_repo, args.private))
        elif args.command == "stage":
            for name in stage(args.model_file, args.dir, args.repo, report_files(args.report_dir)):
                print(Path(args.dir) / name)
        else:
            print(push_to_hub(args.repo, args.model_file, report_files=report_files(args.report_dir)))
    except BadInput as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
