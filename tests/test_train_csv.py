"""train.py --csv: labels from a CSV as fastai's ImageDataLoaders.from_csv reads them (CPU, seconds)."""
from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

import train as train_script
from dlcourse.served.classifier import Classifier
from dlcourse.training.data import CsvLabels, load_data
from trainkit import FAST, SHAPES, run_train, shape_image


def make_csv_folder(root: Path, per_class: int = 8) -> Path:
    """root/images/<n>.png, shapes in a random order, and root/labels.csv: fname,label,is_valid (every 4th valid)."""
    rng = random.Random(5)
    (root / "images").mkdir(parents=True)
    rows = ["fname,label,is_valid"]
    for n in range(per_class * len(SHAPES)):
        shape = SHAPES[n % len(SHAPES)]
        shape_image(shape, rng).save(root / "images" / f"{n}.png")
        rows.append(f"images/{n}.png,{shape},{'True' if n % 4 == 3 else 'False'}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def items(dataset) -> set[tuple[str, int]]:
    return {(Path(path).name, target) for path, target in zip(dataset.paths, dataset.targets)}


def test_train_py_csv_end_to_end_counts_bad_rows(tmp_path):
    root = make_csv_folder(tmp_path / "data")
    (root / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    with (root / "labels.csv").open("a") as csv:
        csv.write("images/missing.png,circle,False\n"  # no such file
                  "images/0.png,,False\n"  # no label
                  "images/1.png,square,maybe\n"  # neither true nor false
                  "images/2.png\n"  # a short row
                  "\n"  # a blank line is no row
                  "images/broken.png,circle,False\n")  # unreadable image: counted with the image files
    out = tmp_path / "model.pkl"
    run = run_train(["--data", str(root), "--csv", "labels.csv", *FAST, "--out", str(out)], cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "3 classes, 18 training and 6 validation images (validation: the rows marked in its is_valid column)" in run.stdout
    assert "skipped 4 CSV rows that could not be used (e.g. line 26: no file images/missing.png; line 27: no label; " \
           "line 28: is_valid is 'maybe', not true or false)" in run.stdout
    assert "skipped 1 unreadable image file (e.g. images/broken.png:" in run.stdout
    meta = torch.load(out, weights_only=True)["meta"]  # the file's own record
    assert meta["classes"] == list(SHAPES) and meta["valid_size"] == 6 and meta["skipped_files"] == 1
    assert "labels from labels.csv, column 'label'" in meta["trained_on"]
    assert len(Classifier.from_file(out).predict(shape_image("circle", random.Random(9)))) == 3


def test_same_split_and_classes_as_fastai_from_csv(tmp_path):
    """fastai's own from_csv on the same folder and CSV: the same training and validation images, the same vocab."""
    from fastai.vision.all import ImageDataLoaders

    root = make_csv_folder(tmp_path / "data")
    ours = load_data(str(root), csv_labels=CsvLabels(Path("labels.csv")))
    dls = ImageDataLoaders.from_csv(root, "labels.csv", valid_col="is_valid", item_tfms=None, bs=4, num_workers=0,
                                    device="cpu")
    assert ours.classes == list(dls.vocab)
    for mine, theirs in ((ours.train, dls.train_ds), (ours.valid, dls.valid_ds)):
        labels = theirs.tls[1]  # fastai's own encoding of each row's label
        assert items(mine) == {(Path(name).name, int(labels[i])) for i, name in enumerate(theirs.items.fname)}


def test_columns_by_name_or_index_and_a_random_split(tmp_path):
    root = tmp_path / "data"
    rng = random.Random(1)
    (root / "pics").mkdir(parents=True)
    lines = ["id;kind;file"]  # semicolons, as pandas would tell from the header for fastai
    for n in range(30):
        shape = SHAPES[n % 3]
        shape_image(shape, rng).save(root / "pics" / f"{shape}-{n}.png")
        lines.append(f"{n};{shape.upper()};pics/{shape}-{n}.png")
    (tmp_path / "meta.csv").write_text("\n".join(lines))  # outside the data folder: read as given
    by_name = load_data(str(root), csv_labels=CsvLabels(tmp_path / "meta.csv", "file", "kind"), valid_pct=0.2, seed=3)
    by_index = load_data(str(root), csv_labels=CsvLabels(tmp_path / "meta.csv", "2", "1"), valid_pct=0.2, seed=3)
    assert by_name.classes == by_index.classes == ["CIRCLE", "SQUARE", "TRIANGLE"]
    assert (len(by_name.train), len(by_name.valid)) == (24, 6) and "20% of the images at random, seed 3" in by_name.split
    assert items(by_name.valid) == items(by_index.valid)
    assert items(load_data(str(root), csv_labels=CsvLabels(tmp_path / "meta.csv", "file", "kind"), seed=4).valid) \
        != items(by_name.valid)


def _write(root: Path, text: str) -> None:
    (root / "labels.csv").write_text(text)


@pytest.mark.parametrize(
    "csv_text, extra, message",
    [
        (None, ["--csv", "nowhere.csv"], "no CSV file nowhere.csv"),
        ("fname,label\n", [], "a header and no rows"),
        ("fname,label\nimages/0.png,circle\n", ["--label-col", "breed"], "--label-col breed: the CSV has no such column"),
        ("fname,label,is_valid\nimages/0.png,circle,True\nimages/1.png,square,True\n", [],
         "marks every usable image for validation"),
        ("fname,label\nnope.png,circle\nimages/1.png,\n", [], "no row of labels.csv names an image"),
        ("fname,label,is_valid\nimages/0.png,circle,False\nimages/1.png,square,False\nimages/2.png,triangle,True\n", [],
         "labels no training row has: triangle"),
    ],
    ids=["no-csv", "no-rows", "no-such-column", "all-valid", "no-usable-row", "unknown-valid-label"],
)
def test_bad_csv_is_one_clear_line(tmp_path, capsys, csv_text, extra, message):
    root = make_csv_folder(tmp_path / "data", per_class=1)
    if csv_text is not None:
        _write(root, csv_text)
    args = ["--data", str(root), *(extra if "--csv" in extra else ["--csv", "labels.csv", *extra]), *FAST,
            "--out", str(tmp_path / "never.pkl")]
    assert train_script.main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (tmp_path / "never.pkl").exists()


def test_csv_with_mnist_or_label_re_is_refused(tmp_path, capsys):
    root = make_csv_folder(tmp_path / "data", per_class=1)
    for data, extra, message in (("mnist", [], "--csv gives the labels of the images in the --data folder"),
                                 (str(root), ["--label-re", "(.+)"], "without --label-re")):
        assert train_script.main(["--data", data, "--csv", "labels.csv", *extra, *FAST]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
