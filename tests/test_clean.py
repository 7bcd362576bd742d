"""The data cleaner without a browser: `python -m dlcourse.clean` on real PNG digits with planted mistakes,
ranked by a model train.py made, its decisions applied to cleaned.csv (which train.py then reads) and to the
files, never losing one, and undone exactly."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, PlantedDigits
from trainkit import FAST, make_image_folder, one_line_error, run_train

from dlcourse.clean import apply as applying
from dlcourse.served.classifier import Classifier
from dlcourse.served.images import load_image

FASTAI_27 = ROOT / "tests" / "data" / "fastai-2.7"


@pytest.fixture
def trained(planted_digits: PlantedDigits) -> PlantedDigits:
    return planted_digits


@pytest.fixture
def digits(trained: PlantedDigits, tmp_path: Path) -> Path:
    """A copy of the planted digits that a test may change."""
    return Path(shutil.copytree(trained.folder, tmp_path / "digits"))


def clean(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dlcourse.clean", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})


def rows_of(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def snapshot(*folders: Path) -> dict[str, str]:
    """Every file below the folders (relative to their parent) and a hash of its bytes."""
    found = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                found[path.relative_to(folder.parent).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def images_only(files: dict[str, str]) -> dict[str, str]:
    return {name: digest for name, digest in files.items() if not name.endswith((".csv", ".jsonl"))}


def write_decisions(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("file,action\n" + "".join(f"{file},{action}\n" for file, action in rows))
    return path


# ---------------------------------------------------------------- ranking


def test_train_py_prints_the_cleaners_command_and_it_lists_by_loss(trained: PlantedDigits):
    line = next(line for line in trained.output.splitlines() if "dlcourse.clean" in line)
    command = shlex.split(line[line.index("python -m dlcourse.clean"):])
    assert command[command.index("--data") + 1] == str(trained.folder)
    assert command[command.index("--model") + 1] == str(trained.model)

    run = clean(*command[3:], "--list", "20")
    assert run.returncode == 0, run.stderr
    rows = rows_of(run.stdout)
    ranked, unreadable = rows[:20], rows[20:]
    assert list(rows[0]) == ["file", "label", "predicted", "probability", "loss", "split", "problem"]
    losses = [float(row["loss"]) for row in ranked]
    assert losses == sorted(losses, reverse=True)
    assert "ranking by loss" in run.stderr  # the terminal's progress bar

    # Each loss is -log p(given label) of the app's own classifier on that file; the prediction its top class.
    classifier = Classifier.from_file(trained.model)
    for row in ranked[:5]:
        probs = classifier.predict(load_image(trained.folder / row["file"]))
        assert float(row["loss"]) == pytest.approx(-math.log(probs[row["label"]]), abs=2e-4)
        assert row["predicted"] == next(iter(probs))
        assert float(row["probability"]) == pytest.approx(probs[row["predicted"]], abs=2e-4)
        assert row["file"].split("/")[0] == row["label"]  # folder-labelled

    # The unreadable files come last, each with its reason; they are the planted broken ones.
    assert sorted(row["file"] for row in unreadable) == sorted(f for f, t in trained.planted.items() if t == "unreadable")
    assert all("not an image" in row["problem"] and row["loss"] == "" for row in unreadable)


def test_list_split_valid_is_train_py_s_validation_set(trained: PlantedDigits):
    from dlcourse.training.data import load_data

    run = clean("--data", str(trained.folder), "--model", str(trained.model), "--list", "1000", "--split", "valid")
    assert run.returncode == 0, run.stderr
    listed = {row["file"] for row in rows_of(run.stdout) if row["split"]}
    valid = load_data(str(trained.folder)).valid
    assert listed == {path.relative_to(trained.folder).as_posix() for path in valid.paths}
    assert all(row["split"] == "valid" for row in rows_of(run.stdout) if row["split"])


def test_a_fastai_export_ranks_as_its_learn_predict_answered(tmp_path: Path):
    """The committed fastai 2.7 export (vocab False/True, cats capitalised) on its own test images, folder-labelled."""
    expected = json.loads((FASTAI_27 / "predictions.json").read_text())
    for image in FASTAI_27.glob("*.png"):
        folder = tmp_path / "pets" / str(image.name[0].isupper())
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(image, folder / image.name)
    run = clean("--data", str(tmp_path / "pets"), "--valid-pct", "0.34", "--model", str(FASTAI_27 / "export.pkl"),
                "--list", "10")
    assert run.returncode == 0, run.stderr
    rows = rows_of(run.stdout)
    assert len(rows) == 6
    for row in rows:
        probs = dict(zip(expected["vocab"], expected["probs"][Path(row["file"]).name]))
        assert float(row["loss"]) == pytest.approx(-math.log(probs[row["label"]]), abs=1e-3)
        assert float(row["probability"]) == pytest.approx(max(probs.values()), abs=1e-3)


def test_a_file_spoilt_after_loading_is_listed_as_unreadable_not_ranked(trained: PlantedDigits, digits: Path):
    from dlcourse.clean.__main__ import open_model, parse_args
    from dlcourse.clean.items import open_data
    from dlcourse.clean.ranking import listing, rank

    data = open_data(parse_args(["--data", str(digits), "--model", str(trained.model)]))
    spoilt = data.items[5].file
    (digits / spoilt).write_bytes(b"not a picture")
    ranking = rank(data, open_model(str(trained.model), data), progress=False)
    rows = rows_of(listing(data, ranking, 1000))
    assert [row["problem"] for row in rows if row["file"] == spoilt] == [
        "This file is not an image that can be read. Please upload a PNG, JPEG, GIF, WebP, BMP or TIFF file."]
    assert len(rows) == len(data.items) + len(data.unreadable) == 300 + 3 + 2


def test_a_model_of_other_classes_is_refused_in_one_line_naming_them(trained: PlantedDigits):
    run = clean("--data", str(trained.folder), "--model", str(FASTAI_27 / "export.pkl"), "--list", "5")
    error = one_line_error(run)
    assert "'0', '1', '2'" in error and "'False', 'True'" in error
    assert "does not know" in error and "lacks" in error


@pytest.mark.parametrize("args, words", [
    (["--data", "mnist", "--model", "m.pkl"], "nothing to clean"),
    (["--data", "/nonexistent/folder", "--apply", "x.csv"], "no folder"),
    (["--data", "{digits}", "--apply", "{digits}/nothing.csv"], "no decisions file"),
])
def test_bad_input_is_one_line(trained: PlantedDigits, args, words):
    run = clean(*[arg.format(digits=trained.folder) for arg in args])
    assert words in one_line_error(run)


# ---------------------------------------------------------------- apply, move, undo


def test_apply_writes_cleaned_csv_that_train_py_reads_with_the_same_split(trained: PlantedDigits, digits: Path, tmp_path: Path):
    from dlcourse.training.data import CsvLabels, load_data

    before = snapshot(digits)
    original = load_data(str(digits))
    wrong = [file for file, truth in trained.planted.items() if truth.isdigit()][:3]
    photo = next(file for file, truth in trained.planted.items() if truth == "photo")
    decisions = write_decisions(tmp_path / "decisions.csv", [(wrong[0], trained.planted[wrong[0]]),
                                                             (wrong[1], trained.planted[wrong[1]]),
                                                             (photo, "delete"), (wrong[2], "keep")])
    run = clean("--data", str(digits), "--apply", str(decisions))
    assert run.returncode == 0, run.stderr
    assert "1 deleted; 2 relabelled" in run.stdout
    assert images_only(snapshot(digits)) == images_only(before)  # without --move no file moves

    rows = {row["fname"]: row for row in csv.DictReader((digits / "cleaned.csv").open())}
    assert photo not in rows
    assert rows[wrong[0]]["label"] == trained.planted[wrong[0]] and rows[wrong[2]]["label"] == wrong[2].split("/")[0]
    valid_before = {p.relative_to(digits).as_posix() for p in original.valid.paths}
    assert {name for name, row in rows.items() if row["is_valid"] == "True"} == valid_before - {photo}

    # train.py reads it as it is: the same images less the deleted one, the same validation set.
    show = run_train([*FAST, "--data", str(digits), "--csv", "cleaned.csv", "--show-batch", "--report-dir",
                      str(tmp_path / "report")], cwd=tmp_path)
    assert show.returncode == 0, show.stderr[-2000:]
    total = len(original.train) + len(original.valid) - 1
    assert f"{total:,} images in digits (labels from cleaned.csv" in show.stdout
    assert f"{len(valid_before - {photo})} validation images (validation: the rows marked in its is_valid column)" in show.stdout
    reread = load_data(str(digits), csv_labels=CsvLabels(Path("cleaned.csv")))
    labels = {path.relative_to(digits).as_posix(): reread.classes[target]
              for part in (reread.train, reread.valid) for path, target in zip(part.paths, part.targets)}
    assert labels[wrong[0]] == trained.planted[wrong[0]] and labels[wrong[2]] == wrong[2].split("/")[0]
    assert photo not in labels

    # Applying the same decisions again changes nothing.
    log = (digits / applying.LOG_FILE).read_text()
    again = clean("--data", str(digits), "--apply", str(decisions))
    assert again.returncode == 0 and "unchanged" in again.stdout
    assert (digits / applying.LOG_FILE).read_text() == log


def test_move_then_undo_puts_every_file_back_and_nothing_is_ever_lost(trained: PlantedDigits, digits: Path, tmp_path: Path):
    removed = digits.parent / "removed"
    wrong = [file for file, truth in trained.planted.items() if truth.isdigit()][:2]
    photo = next(file for file, truth in trained.planted.items() if truth == "photo")
    broken = next(file for file, truth in trained.planted.items() if truth == "unreadable")
    # A file of the same name already waits in the new class folder: the move must not overwrite it.
    clash = Path(digits / trained.planted[wrong[0]] / Path(wrong[0]).name)
    shutil.copy(digits / photo, clash)
    before = snapshot(digits)

    decisions = write_decisions(tmp_path / "decisions.csv", [(wrong[0], trained.planted[wrong[0]]),
                                                             (wrong[1], trained.planted[wrong[1]]),
                                                             (photo, "delete"), (broken, "delete")])
    run = clean("--data", str(digits), "--apply", str(decisions), "--move")
    assert run.returncode == 0, run.stderr
    after = snapshot(digits, removed)
    # Every file is still there, byte for byte, somewhere: nothing deleted, nothing overwritten.
    assert sorted(images_only(after).values()) == sorted(images_only(before).values())
    name = Path(wrong[0])
    assert f"digits/{trained.planted[wrong[0]]}/{name.stem}_1{name.suffix}" in after  # the suffix, not an overwrite
    assert after[f"digits/{trained.planted[wrong[0]]}/{name.name}"] == before[f"digits/{clash.relative_to(digits).as_posix()}"]
    assert f"digits/{trained.planted[wrong[1]]}/{Path(wrong[1]).name}" in after
    assert f"removed/digits/{photo}" in after and f"removed/digits/{broken}" in after
    assert not (digits / photo).exists() and not (digits / wrong[1]).exists()
    rows = {row["fname"]: row["label"] for row in csv.DictReader((digits / "cleaned.csv").open())}
    assert rows[f"{trained.planted[wrong[1]]}/{Path(wrong[1]).name}"] == trained.planted[wrong[1]]
    assert all((digits / fname).is_file() for fname in rows)  # cleaned.csv names each file where it is now

    # Applying again: already done, nothing moves, cleaned.csv stays.
    again = clean("--data", str(digits), "--apply", str(decisions), "--move")
    assert again.returncode == 0 and "4 already done" in again.stdout and "unchanged" in again.stdout
    assert snapshot(digits, removed) == after

    undone = clean("--data", str(digits), "--undo")
    assert undone.returncode == 0 and "4 file(s) moved back" in undone.stdout
    assert images_only(snapshot(digits)) == images_only(before)
    assert not (digits / "cleaned.csv").exists()  # that apply made it
    assert not removed.exists() or not any(removed.rglob("*.*"))
    assert "nothing to undo" in one_line_error(clean("--data", str(digits), "--undo"))


def test_a_crash_half_way_leaves_each_file_moved_and_logged_or_where_it_was(trained: PlantedDigits, digits: Path, monkeypatch):
    """The process dies (here: an exception where the third file would be renamed, as a kill would stop it)."""
    from dlcourse.clean.items import open_data
    from dlcourse.clean.__main__ import parse_args

    wrong = [file for file, truth in trained.planted.items() if truth.isdigit()][:4]
    before = snapshot(digits)
    real_rename, calls = os.rename, []

    def dies_on_the_third(source, target):
        calls.append(source)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        real_rename(source, target)

    monkeypatch.setattr(os, "rename", dies_on_the_third)
    data = open_data(parse_args(["--data", str(digits), "--apply", "x"]))
    with pytest.raises(KeyboardInterrupt):
        applying.apply(data, {file: trained.planted[file] for file in wrong}, move=True)
    monkeypatch.setattr(os, "rename", real_rename)

    log = [json.loads(line) for line in (digits / applying.LOG_FILE).read_text().splitlines()]
    started = [line for line in log if line.get("move") == "start"]
    assert len(started) == 3 and not any("end" in line for line in log)
    for line in started:  # each file moved and logged, or where it was
        assert (digits / line["target"]).exists() != (digits / line["source"]).exists()
    assert (digits / started[2]["source"]).exists()  # the one the crash stopped
    assert all((digits / file).exists() for file in wrong[3:])  # not reached

    # Undo puts back what moved; the folder is as it was.
    assert clean("--data", str(digits), "--undo").returncode == 0
    assert images_only(snapshot(digits)) == images_only(before)


def test_undo_after_a_crash_between_the_move_and_its_log_line(trained: PlantedDigits, digits: Path, monkeypatch):
    from dlcourse.clean.items import open_data
    from dlcourse.clean.__main__ import parse_args

    file = next(file for file, truth in trained.planted.items() if truth.isdigit())
    before = snapshot(digits)
    real_write = applying.Log.write

    def dies_before_done(self, line):
        if line.get("move") == "done":
            raise KeyboardInterrupt("killed")
        real_write(self, line)

    monkeypatch.setattr(applying.Log, "write", dies_before_done)
    with pytest.raises(KeyboardInterrupt):
        applying.apply(open_data(parse_args(["--data", str(digits), "--apply", "x"])), {file: "delete"}, move=True)
    monkeypatch.undo()
    assert not (digits / file).exists()  # moved, its "start" logged
    assert clean("--data", str(digits), "--undo").returncode == 0
    assert images_only(snapshot(digits)) == images_only(before)


def test_own_train_and_valid_folders_relabel_within_their_part(tmp_path: Path):
    data = tmp_path / "shapes"
    make_image_folder(data / "train", per_class=6, nested=False)
    make_image_folder(data / "valid", per_class=3, nested=False)
    decisions = write_decisions(tmp_path / "d.csv", [("valid/circle/circle_0.png", "square"),
                                                     ("train/square/square_1.png", "triangle")])
    run = clean("--data", str(data), "--apply", str(decisions), "--move")
    assert run.returncode == 0, run.stderr
    assert (data / "valid/square/circle_0.png").is_file() and (data / "train/triangle/square_1.png").is_file()
    rows = {row["fname"]: row for row in csv.DictReader((data / "cleaned.csv").open())}
    assert rows["valid/square/circle_0.png"] == {"fname": "valid/square/circle_0.png", "label": "square", "is_valid": "True"}
    assert clean("--data", str(data), "--undo").returncode == 0
    assert (data / "valid/circle/circle_0.png").is_file() and (data / "train/square/square_1.png").is_file()


def test_labels_from_file_names_change_in_cleaned_csv_only(tmp_path: Path):
    from trainkit import make_named_folder

    data = make_named_folder(tmp_path / "named")
    decisions = write_decisions(tmp_path / "d.csv", [("Tri_1.png", "square"), ("Tri_2.jpg", "delete")])
    run = clean("--data", str(data), "--label-re", r"^(.+)_\d+\.", "--apply", str(decisions), "--move")
    assert run.returncode == 0, run.stderr
    assert "stay where they are" in run.stdout
    assert (data / "Tri_1.png").is_file() and not (data / "Tri_2.jpg").exists()
    assert (tmp_path / "removed" / "named" / "Tri_2.jpg").is_file()
    rows = {row["fname"]: row["label"] for row in csv.DictReader((data / "cleaned.csv").open())}
    assert rows["Tri_1.png"] == "square" and "Tri_2.jpg" not in rows

    # The page's session, which forgets decisions carried out by a move, keeps that label for the next apply.
    from dlcourse.clean.__main__ import parse_args
    from dlcourse.clean.items import open_data

    assert clean("--data", str(data), "--undo").returncode == 0
    loaded = open_data(parse_args(["--data", str(data), "--label-re", r"^(.+)_\d+\.", "--apply", "x"]))
    applying.apply(loaded, {"Tri_1.png": "square"}, move=True)
    applying.apply(loaded, {"Round_Thing_1.png": "delete"}, move=False)  # a new cleaned.csv
    rows = {row["fname"]: row["label"] for row in csv.DictReader((data / "cleaned.csv").open())}
    assert rows["Tri_1.png"] == "square" and "Round_Thing_1.png" not in rows


@pytest.mark.parametrize("rows, words", [
    ([("0/nope.png", "delete")], "no such image"),
    ([("{file}", "seven")], "none of keep, delete or a class"),
    ([("{broken}", "3")], "keep or delete it"),
])
def test_decisions_that_cannot_be_applied_change_nothing(trained: PlantedDigits, digits: Path, tmp_path: Path, rows, words):
    file = next(file for file, truth in trained.planted.items() if truth.isdigit())
    broken = next(file for file, truth in trained.planted.items() if truth == "unreadable")
    before = snapshot(digits)
    decisions = write_decisions(tmp_path / "d.csv", [(f.format(file=file, broken=broken), a) for f, a in rows])
    assert words in one_line_error(clean("--data", str(digits), "--apply", str(decisions), "--move"))
    assert snapshot(digits) == before
