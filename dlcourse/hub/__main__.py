"""The Hub from the command line:

    python -m dlcourse.hub stage MODEL_FILE DIR [--repo USER/NAME] [--report-dir DIR]   # the files, no network
    python -m dlcourse.hub push MODEL_FILE USER/NAME [--report-dir DIR]                 # the same files, uploaded
"""
from __future__ import annotations

import sys
from pathlib import Path

from ..errors import BadInput
from .model_repo import push_to_hub, stage


def main(argv: list[str] | None = None) -> int:
    """`stage MODEL_FILE DIR`: write what a push uploads; `push MODEL_FILE USER/NAME`: upload it."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m dlcourse.hub", description="Stage or push a model repo on the Hub.")
    commands = parser.add_subparsers(dest="command", required=True)
    staging = commands.add_parser("stage", help="write into DIR exactly the files a push uploads (no network)")
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
    report_files = None
    if args.report_dir:
        from ..training.report import FILES

        report_files = {name: Path(args.report_dir) / file for name, file in FILES.items()
                        if (Path(args.report_dir) / file).is_file()}
    try:
        if args.command == "stage":
            for name in stage(args.model_file, args.dir, args.repo, report_files):
                print(Path(args.dir) / name)
        else:
            print(push_to_hub(args.repo, args.model_file, report_files=report_files))
    except BadInput as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
