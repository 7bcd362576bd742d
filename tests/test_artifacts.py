"""The weights-only artifact helper both model.pkl and ideal_digits.pt use: a round trip, atomic writes, and
refusal of anything foreign, outdated, tampered or able to run code, with messages that name the artifact."""
from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT
from payloads import RunsExec, RunsShell
from dlcourse import artifacts
from dlcourse.errors import BadInput

KIND = artifacts.Format("test-artifact", 3, called="a test artifact", missing="No test artifact at {path}. Make one.",
                        remedy="Remake it with `make-it`.")
META = {"name": "digits", "sizes": [1, 2.5, None, True], "nested": {"deep": ("a", "b")}, "example": torch.arange(4)}


def tensors() -> dict[str, torch.Tensor]:
    grid = torch.arange(12, dtype=torch.float64).reshape(3, 4)
    return {"weight": torch.linspace(-1, 1, 10), "grid.t": grid.t(),  # a non-contiguous view
            "count": torch.tensor(7, dtype=torch.int64), "empty": torch.zeros(0, 3), "mask": torch.tensor([True, False])}


@pytest.fixture
def saved(tmp_path):
    return artifacts.save(tmp_path / "thing.pt", KIND, META, tensors())


def test_round_trip_gives_the_same_meta_and_tensors_in_the_common_layout(saved):
    meta, loaded = artifacts.load(saved, KIND)
    assert meta.keys() == META.keys() and torch.equal(meta["example"], META["example"])
    assert {key: value for key, value in meta.items() if key != "example"} == {
        "name": "digits", "sizes": [1, 2.5, None, True], "nested": {"deep": ("a", "b")}}
    expected = tensors()
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[name], tensor) and loaded[name].dtype == tensor.dtype for name, tensor in expected.items())
    record = torch.load(saved, weights_only=True)
    assert list(record) == ["format", "format_version", "meta", "state_dict", "weights_sha256"]
    assert (record["format"], record["format_version"]) == ("test-artifact", 3)
    assert record["weights_sha256"] == artifacts.tensors_digest(expected)
    assert [path.name for path in saved.parent.iterdir()] == ["thing.pt"]  # no .partial left behind


def test_the_checksum_covers_names_shapes_dtypes_and_bytes():
    base = {"w": torch.tensor([1.0, 2.0])}
    variants = [{"v": torch.tensor([1.0, 2.0])}, {"w": torch.tensor([[1.0, 2.0]])}, {"w": torch.tensor([1.0, 2.0], dtype=torch.float64)},
                {"w": torch.tensor([1.0, 2.0000002])}, {"w": torch.tensor([1.0, 2.0]), "b": torch.zeros(0)}]
    assert len({artifacts.tensors_digest(base), *(artifacts.tensors_digest(v) for v in variants)}) == 1 + len(variants)
    assert artifacts.tensors_digest(base) == artifacts.tensors_digest({"w": torch.tensor([1.0, 2.0])})


@pytest.mark.parametrize("change", ["value", "renamed", "added", "dtype"])
def test_changed_tensors_fail_their_checksum(saved, change):
    record = torch.load(saved, weights_only=True)
    weights = record["state_dict"]
    if change == "value":
        weights["weight"][3] += 1e-6
    elif change == "renamed":
        weights["bias"] = weights.pop("weight")
    elif change == "added":
        weights["extra"] = torch.zeros(1)
    else:
        weights["weight"] = weights["weight"].double()
    torch.save(record, saved)
    with pytest.raises(BadInput) as refused:
        artifacts.load(saved, KIND)
    assert str(refused.value) == f"{saved} was modified after it was written: its weights do not match their checksum."


def test_wrong_marker_version_and_layout_are_refused_in_one_line(tmp_path, saved):
    record = torch.load(saved, weights_only=True)
    cases = {
        "plain.pt": ({"weight": torch.zeros(2)}, "is not a test artifact of this project (no 'test-artifact' marker)."),
        "other.pt": (record | {"format": "dlcourse-model"}, "is not a test artifact of this project"),
        "list.pt": ([1, 2], "is not a test artifact of this project"),
        "old.pt": (record | {"format_version": 2}, "has format version 2; this app reads 3. Remake it with `make-it`."),
        "newer.pt": (record | {"format_version": "4" * 10_000}, "has format version '44444"),  # shortened
        "nometa.pt": ({k: v for k, v in record.items() if k != "meta"}, "is damaged: its metadata or weights are missing."),
        "notdict.pt": (record | {"state_dict": [torch.zeros(1)]}, "is damaged: its metadata or weights are missing."),
        "values.pt": (record | {"state_dict": {"weight": [1.0, 2.0]}}, "is damaged: its weights are not all named tensors."),
    }
    for name, (content, message) in cases.items():
        torch.save(content, tmp_path / name)
        with pytest.raises(BadInput) as refused:
            artifacts.load(tmp_path / name, KIND)
        assert str(refused.value).startswith(f"{tmp_path / name} {message}") and "\n" not in str(refused.value), name
        assert len(str(refused.value)) < 300


def test_missing_unreadable_and_truncated_files_are_refused_in_one_line(tmp_path, saved):
    with pytest.raises(BadInput) as missing:
        artifacts.load(tmp_path / "absent.pt", KIND)
    assert str(missing.value) == f"No test artifact at {tmp_path / 'absent.pt'}. Make one."
    with pytest.raises(BadInput, match="No test artifact"):
        artifacts.load(tmp_path, KIND)  # a folder is no file
    text = tmp_path / "notes.pt"
    text.write_text("hello, not tensors")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(saved.read_bytes()[:600])
    for path in (text, truncated):
        with pytest.raises(BadInput, match=r"is not a test artifact that can be read \(|refused unread") as refused:
            artifacts.load(path, KIND)
        assert "\n" not in str(refused.value)


def test_values_torch_could_not_load_back_are_refused_before_anything_is_written(tmp_path):
    path = tmp_path / "thing.pt"
    with pytest.raises(BadInput, match=r"meta\['versions'\]\['torch'\] is a TorchVersion; a test artifact holds plain"):
        artifacts.save(path, KIND, {"versions": {"torch": torch.__version__}}, tensors())
    with pytest.raises(BadInput, match=r"meta\['where'\] is a PosixPath"):
        artifacts.save(path, KIND, {"where": Path("x")}, tensors())
    with pytest.raises(BadInput, match=r"meta\['nested'\]: the key PosixPath\('k'\) is a PosixPath, not a plain value"):
        artifacts.save(path, KIND, {"nested": {Path("k"): 1}}, tensors())
    assert list(tmp_path.iterdir()) == []


# A save that fails half-way (here: the file size limit, as a full disk would) keeps the old file whole.
FAILING_SAVE = """
import resource, signal, sys, torch
from dlcourse import artifacts
kind = artifacts.Format("test-artifact", 3, called="a test artifact", missing="none at {path}")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writing past the limit fails with EFBIG instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
try:
    artifacts.save(sys.argv[1], kind, {"new": True}, {"big": torch.ones(1_000_000)})
except Exception as error:
    print("save failed:", type(error).__name__, error)
else:
    print("saved")
"""


def test_a_save_that_fails_half_way_keeps_the_old_file_and_leaves_no_partial(tmp_path):
    path = artifacts.save(tmp_path / "thing.pt", KIND, {"new": False}, {"small": torch.ones(10)})
    before = path.read_bytes()
    run = subprocess.run([sys.executable, "-c", FAILING_SAVE, str(path)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0 and run.stdout.startswith("save failed:"), run.stdout + run.stderr[-2000:]
    assert path.read_bytes() == before and artifacts.load(path, KIND)[0] == {"new": False}
    assert [p.name for p in tmp_path.iterdir()] == ["thing.pt"]
    # and a save that completes replaces it whole
    artifacts.save(path, KIND, {"new": True}, {"big": torch.ones(1_000_000)})
    assert artifacts.load(path, KIND)[0] == {"new": True} and [p.name for p in tmp_path.iterdir()] == ["thing.pt"]


# Loads each file with an audit hook watching for processes and shells; prints what was refused and why.
HOSTILE_LOAD = """
import json, sys
from dlcourse import artifacts
kind = artifacts.Format("test-artifact", 3, called="a test artifact", missing="none at {path}", remedy="Remake it.")
events = []
watched = ("os.system", "subprocess.Popen", "os.posix_spawn", "os.exec", "os.fork", "os.spawn")
sys.addaudithook(lambda event, args: events.append(event) if event in watched else None)
refusals = {}
for path in sys.argv[1:]:
    try:
        artifacts.load(path, kind)
    except artifacts.RefusedPickle as error:
        refusals[path] = [str(error), error.reason]
print(json.dumps({"events": events, "refusals": refusals}))
"""


def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path):
    shell, executed = tmp_path / "shell-ran", tmp_path / "exec-ran"
    record = {"format": "test-artifact", "format_version": 3, "meta": {"hook": RunsShell(shell)},
              "state_dict": {"w": RunsExec(executed)}, "weights_sha256": ""}
    files = [tmp_path / "torch-save.pt", *(tmp_path / f"pickle-{protocol}.pt" for protocol in (2, 4, 5))]
    torch.save(record, files[0])
    for path, protocol in zip(files[1:], (2, 4, 5)):
        path.write_bytes(pickle.dumps(record, protocol=protocol))
    run = subprocess.run([sys.executable, "-c", HOSTILE_LOAD, *map(str, files)], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["events"] == [] and not shell.exists() and not executed.exists()
    assert set(result["refusals"]) == set(map(str, files))
    for path, (message, reason) in result["refusals"].items():
        assert message.startswith(f"{path} was refused unread: it holds Python objects") and "\n" not in message
        assert "Nothing in it was executed" in message and message.endswith(") Remake it.")
    assert result["refusals"][str(files[0])][1] == "unsupported GLOBAL posix.system whose module posix is blocked"
    # The payloads are live: an ordinary unpickling runs them. The helper never does that.
    pickle.loads(files[1].read_bytes())
    assert shell.exists() and executed.exists()


def test_the_helper_imports_neither_of_its_users_nor_gradio_and_does_no_work_at_import():
    code = ("import sys, dlcourse.artifacts; users = [m for m in sys.modules if m.startswith(('dlcourse.served', "
            "'dlcourse.pixels', 'gradio'))]; print(users)")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == "[]", run.stderr[-2000:]
