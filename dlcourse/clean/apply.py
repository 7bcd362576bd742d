"""Apply the cleaner's decisions without losing a file, and undo them.

Every apply writes `cleaned.csv` in the data folder (fastai's name): one row per image train.py should use,
its label, and whether it validates, so `train.py --data PATH --csv cleaned.csv` trains on the cleaned labels
with the same split. With `move`, the files move too: a deleted image into `removed/<data folder's name>/`
beside the data folder (never unlinked), a relabelled one into its new class folder when folders are the
labels. Each move is written to the log (`cleaned-log.jsonl`, in the data folder) before it happens and again
after, each line flushed to disk, so a crash leaves every file either where it was or moved and logged;
`undo` puts back the last apply's files and cleaned.csv from the log. A name already taken gets a suffix
(`_1`, `_2`, ...): nothing is ever overwritten.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BadInput, shown
from .items import CleanData, Item

CLEANED_CSV = "cleaned.csv"
LOG_FILE = "cleaned-log.jsonl"
REMOVED_FOLDER = "removed"
CSV_HEADER = ("fname", "label", "is_valid")  # train.py --csv reads columns 0 and 1 and is_valid by default
KEEP, DELETE = "keep", "delete"


@dataclass
class Move:
    """One file moved: where from, where to (both relative to the data folder), its label before and after
    ("" once it is in removed/)."""

    source: str
    target: str
    label_before: str
    label_after: str

    @property
    def removed(self) -> bool:
        return self.label_after == ""


@dataclass
class Outcome:
    """What an apply or an undo did, for the terminal and the page."""

    moves: list[Move] = field(default_factory=list)
    deleted: int = 0  # images left out of cleaned.csv
    relabelled: int = 0  # images whose label changed in cleaned.csv
    already: int = 0  # decisions an earlier apply carried out already
    csv_written: bool = False
    undo: bool = False
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.undo:
            return (f"{len(self.moves)} file(s) moved back; {CLEANED_CSV} "
                    f"{'as it was before that apply' if self.csv_written else 'left as it is'}.") + \
                "".join(f" {note}" for note in self.notes)
        moved = sum(not m.removed for m in self.moves)
        removed = sum(m.removed for m in self.moves)
        parts = [f"{self.deleted} deleted", f"{self.relabelled} relabelled"]
        if self.moves:
            parts.append(f"{removed} moved into removed/, {moved} into their new class folder")
        if self.already:
            parts.append(f"{self.already} already done by an earlier apply")
        return "; ".join(parts) + (f". {CLEANED_CSV} written." if self.csv_written else f". {CLEANED_CSV} unchanged.") + \
            "".join(f" {note}" for note in self.notes)


# ------------------------------------------------------------------ decisions


def read_decisions(path: str | Path) -> dict[str, str]:
    """A decisions CSV: file (relative to the data folder) and action (keep, delete, or a class name), with
    a header naming the columns `file` and `action`, or without a header as the first two columns. An empty
    action is keep."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    except FileNotFoundError:
        raise BadInput(f"no decisions file {path}.") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise BadInput(f"{path} cannot be read as a CSV file ({error}).") from None
    if not rows:
        raise BadInput(f"{path} is empty: give one row per image, its file and action (keep, delete or a class).")
    header = [cell.strip().lower() for cell in rows[0]]
    has_header = "file" in header and "action" in header
    file_at, action_at = (header.index("file"), header.index("action")) if has_header else (0, 1)
    decisions = {}
    for line, row in enumerate(rows[1:] if has_header else rows, start=2 if has_header else 1):
        name = row[file_at].strip() if file_at < len(row) else ""
        if not name:
            raise BadInput(f"{path}, line {line}: no file name.")
        decisions[Path(name).as_posix()] = row[action_at].strip() if action_at < len(row) else ""
    return decisions


def check_decisions(data: CleanData, decisions: dict[str, str]) -> None:
    """BadInput for the first decision that cannot be applied: an unknown action, a class given to an image
    that cannot be read. Files are checked by `apply` (one an earlier apply moved is not an error)."""
    actions = {KEEP, DELETE, *data.classes}
    by_file = data.by_file()
    for file, action in decisions.items():
        if (action or KEEP) not in actions:
            raise BadInput(f"{file}: the action {shown(action)} is none of keep, delete or a class "
                           f"({', '.join(data.classes[:10])}{' ...' if len(data.classes) > 10 else ''}).")
        item = by_file.get(file)
        if item is not None and item.problem and action not in (KEEP, DELETE, ""):
            raise BadInput(f"{file} cannot be read ({item.problem}): keep or delete it; it has no label to change.")


# ------------------------------------------------------------------ apply


def apply(data: CleanData, decisions: dict[str, str], move: bool = False) -> Outcome:
    """Carry out `decisions` ({file: action}) on `data`: write cleaned.csv and, with `move`, move the files.
    `data.items` and `data.unreadable` are updated to where the files are now."""
    check_decisions(data, decisions)
    log = Log(data.root)
    outcome = Outcome()
    deleted, relabel = set(), {}
    planned: list[tuple[Item, str, str]] = []  # (item, target file, label after)
    by_file, moved_before = data.by_file(), log.moved_live()
    for file, action in decisions.items():
        action = action or KEEP
        item = by_file.get(file)
        if item is None:
            if file in moved_before:
                outcome.already += 1
                continue
            raise BadInput(f"{file}: no such image in {data.root} (file names are relative to the data folder).")
        if action == KEEP or (action == item.label and not item.problem):
            continue
        if action == DELETE:
            deleted.add(file)
            if move:
                planned.append((item, removed_file(data.root, file), ""))
        else:
            relabel[file] = action
            if move and data.labels_from == "folders":
                planned.append((item, class_file(data, file, action), action))
    if move and relabel and data.labels_from != "folders":
        outcome.notes.append(f"Labels come from {'the CSV' if data.labels_from == 'csv' else 'file names'}: "
                             "relabelled images stay where they are; cleaned.csv has their new labels.")

    outcome.deleted, outcome.relabelled = len(deleted), len(relabel)
    kept = [Item(i.file, relabel.get(i.file, i.label), i.split, key=i.key) for i in data.items if i.file not in deleted]
    cleaned = data.root / CLEANED_CSV
    before = cleaned.read_text(encoding="utf-8") if cleaned.is_file() else None
    if not planned:  # nothing more to do when an earlier apply did it all: applying twice changes nothing
        text = cleaned_csv_text(kept, {})
        if text == before or (outcome.already and before is not None and not deleted and not relabel):
            return outcome

    number = log.begin("apply", csv_before=before)
    for item, target, label_after in planned:
        target = free_name(data.root, target)
        outcome.moves.append(log.move(number, Move(item.file, target, item.label, label_after), data.root))
    text = cleaned_csv_text(kept, {m.source: m.target for m in outcome.moves})  # each file where it is now
    write_atomically(cleaned, text)
    log.end(number, csv_after=digest(text))
    outcome.csv_written = True
    _follow(data, outcome.moves, relabel, deleted, move)
    return outcome


def _follow(data: CleanData, moves: list[Move], relabel: dict[str, str], deleted: set[str], moved: bool) -> None:
    """Update `data` to the files' new places and labels after a move (the page then has nothing left to decide
    about them); without one the folder is as it was, and the decisions stand."""
    if not moved:
        return
    targets = {m.source: m for m in moves}
    data.items = [item for item in data.items if item.file not in deleted]
    data.unreadable = [item for item in data.unreadable if item.file not in deleted]
    for item in data.items:
        if item.file in targets:
            item.file, item.label = targets[item.file].target, targets[item.file].label_after
        elif item.file in relabel:  # labels from names or a CSV: the file stays, cleaned.csv has its label
            item.label = relabel[item.file]


def cleaned_csv_text(items: list[Item], renamed: dict[str, str]) -> str:
    """cleaned.csv: fname, label, is_valid; one row per image, named where it is (after `renamed`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for item in items:
        writer.writerow([renamed.get(item.file, item.file), item.label, "True" if item.split == "valid" else "False"])
    return out.getvalue()


def removed_file(root: Path, file: str) -> str:
    """Where a deleted image goes: removed/<data folder>/<its path> beside the data folder."""
    folder = Path(os.path.abspath(root))
    return relative_to_root(folder.parent / REMOVED_FOLDER / (folder.name or "data") / file, root)


def class_file(data: CleanData, file: str, label: str) -> str:
    """The file's path with its class folder replaced by `label`'s (below train/ or valid/ when the data has them)."""
    parts = file.split("/")
    at = 1 if data.own_split else 0
    return "/".join([*parts[:at], label, *parts[at + 1:]])


def free_name(root: Path, file: str) -> str:
    """`file`, or with _1, _2, ... before its extension when that name is taken."""
    path = root / file
    candidate, n = path, 0
    while candidate.exists() or candidate.is_symlink():
        n += 1
        candidate = path.with_name(f"{path.stem}_{n}{path.suffix}")
    return relative_to_root(candidate, root)


def relative_to_root(path: Path, root: Path) -> str:
    return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(root))).as_posix()


# ------------------------------------------------------------------ undo


def undo(root: str | Path) -> Outcome:
    """Reverse the last apply not yet undone: its moves, last first, and cleaned.csv as it was before it."""
    root = Path(root)
    log = Log(root)
    entry = log.last_live_apply()
    if entry is None:
        raise BadInput(f"nothing to undo: {root / LOG_FILE} records no apply that is not undone already.")
    number = log.begin("undo", of=entry["number"])
    outcome = Outcome(undo=True)
    for move in reversed(log.moves_of(entry["number"])):
        at, home = root / move.target, root / move.source
        if not at.exists():
            if not home.exists():
                outcome.notes.append(f"{move.target} is missing; it was not moved back.")
            continue  # moved back already, or the crash came before the move
        back = free_name(root, move.source)
        if back != move.source:
            outcome.notes.append(f"{move.source} is taken: {move.target} went back as {back}.")
        outcome.moves.append(log.move(number, Move(move.target, back, move.label_after, move.label_before), root))
        _prune_empty(at.parent, root if not move.removed else Path(os.path.abspath(root)).parent)
    cleaned = root / CLEANED_CSV
    now = cleaned.read_text(encoding="utf-8") if cleaned.is_file() else None
    if now is not None and entry.get("csv_after") and digest(now) != entry["csv_after"]:
        outcome.notes.append(f"{CLEANED_CSV} was changed after that apply: left as it is.")
    elif entry.get("csv_before") is None:
        if now is not None:
            cleaned.unlink()  # the apply created it; its rows are in the log
        outcome.csv_written = True
    else:
        write_atomically(cleaned, entry["csv_before"])
        outcome.csv_written = True
    log.end(number)
    return outcome


def _prune_empty(folder: Path, stop: Path) -> None:
    """Remove `folder` and its parents below `stop` while they are empty (those an apply made for its moves)."""
    folder, stop = Path(os.path.abspath(folder)), Path(os.path.abspath(stop))
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return  # not empty
        folder = folder.parent


# ------------------------------------------------------------------ the log


class Log:
    """The data folder's apply/undo log: JSON lines, each flushed to disk before the next step.

    {"begin": "apply"|"undo", "number": n, ...}, then for each move {"number", "move": "start"|"done",
    "source", "target", "label_before", "label_after"}, then {"end": n}. A line cut off by a crash is ignored."""

    def __init__(self, root: Path):
        self.path = Path(root) / LOG_FILE
        self.lines = self._read()

    def _read(self) -> list[dict]:
        if not self.path.is_file():
            return []
        lines = []
        for text in self.path.read_text(encoding="utf-8").splitlines():
            try:
                lines.append(json.loads(text))
            except json.JSONDecodeError:
                continue  # the last line of a crashed write
        return lines

    def write(self, line: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.lines.append(line)

    def begin(self, kind: str, **details) -> int:
        number = 1 + max((line["number"] for line in self.lines if "begin" in line), default=0)
        self.write({"begin": kind, "number": number, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **details})
        return number

    def end(self, number: int, **details) -> None:
        self.write({"end": number, **details})

    def move(self, number: int, move: Move, root: Path) -> Move:
        """Move one file, logged before and after; never over an existing file."""
        record = {"number": number, "source": move.source, "target": move.target,
                  "label_before": move.label_before, "label_after": move.label_after}
        source, target = root / move.source, root / move.target
        if target.exists():
            raise BadInput(f"{move.target} exists; not moved over it.")
        self.write({"move": "start", **record})
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(source, target)  # atomic: the file is in one place or the other
        except OSError as error:
            raise BadInput(f"could not move {move.source} to {move.target} ({error.strerror}); the moves before it are "
                           "done and logged: --undo puts them back, or apply again to go on.") from None
        self.write({"move": "done", **record})
        return move

    def _applies(self) -> set[int]:
        return {line["number"] for line in self.lines if line.get("begin") == "apply"}

    def _undone(self) -> set[int]:
        begins = {line["number"]: line for line in self.lines if "begin" in line}
        ended = {line["end"] for line in self.lines if "end" in line}
        return {begins[n]["of"] for n in ended if n in begins and begins[n]["begin"] == "undo"}

    def last_live_apply(self) -> dict | None:
        undone = self._undone()
        applies = [line for line in self.lines if line.get("begin") == "apply" and line["number"] not in undone]
        if not applies:
            return None
        entry = dict(applies[-1])
        entry.update(next((line for line in self.lines if line.get("end") == entry["number"]), {}))
        return entry

    def moves_of(self, number: int) -> list[Move]:
        """The moves an apply started (a crash may have come before or after the file moved: undo looks)."""
        return [Move(line["source"], line["target"], line["label_before"], line["label_after"])
                for line in self.lines if line.get("move") == "start" and line["number"] == number]

    def moved_live(self) -> set[str]:
        """The files that applies not undone moved (a decision about one of them is done already)."""
        live = self._applies() - self._undone()
        return {line["source"] for line in self.lines if line.get("move") == "start" and line["number"] in live
                and (self.path.parent / line["target"]).exists()}


def write_atomically(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, flush it to disk, then rename it over `path`."""
    staging = path.with_name(f".{path.name}.writing")
    with open(staging, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(staging, path)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
