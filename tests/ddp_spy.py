"""Run train.py unchanged, as __main__, writing down which process saves a model file (see test_distributed).

    torchrun --nproc_per_node 2 tests/ddp_spy.py ARGS...   # = torchrun ... train.py ARGS..., plus a log in $SAVE_LOG
"""
import os
import runpy
import sys
from pathlib import Path

import dlcourse.served.modelfile as modelfile

TRAIN_PY = str(Path(__file__).resolve().parent.parent / "train.py")
original_save = modelfile.save_model_file


def logged_save(path, *args, **kwargs):
    with open(os.environ["SAVE_LOG"], "a") as log:
        log.write(f"rank {os.environ.get('RANK')} wrote {path}\n")
    return original_save(path, *args, **kwargs)


modelfile.save_model_file = logged_save  # train.py imports it from the module when it saves
sys.argv = [TRAIN_PY, *sys.argv[1:]]
runpy.run_path(TRAIN_PY, run_name="__main__")
