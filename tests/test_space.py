"""`python -m dlcourse.hub space`: exactly the files a Space needs, its settings as the Spaces reference wants
them, large files in large-file storage, and the staged folder alone serving the Space as Spaces runs it."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file

from dlcourse.hub import space
from dlcourse.hub.__main__ import main as hub_main
from dlcourse.served.loading import load_model_file
from support.serving import EXAMPLES_DIR, ROOT, free_port

SPACE_ID = "someone/digits"
# Runs app.py as a Space does (`python app.py` from the Space's root), recording every file the process opens
# inside the repository that the staged folder was copied from: there must be none.
RUN_AS_SPACE = """
import os, runpy, sys
repository, environment, log = sys.argv[1:4]
opened = open(log, "w")
def watch(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.path.abspath(os.fsdecode(args[0]))
        if path.startswith(repository + os.sep) and not path.startswith(environment + os.sep):
            opened.write(path + "\\n"); opened.flush()
sys.addaudithook(watch)
sys.path.insert(0, os.getcwd())
sys.argv = ["app.py"]
runpy.run_path("app.py", run_name="__main__")
"""


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dlcourse.hub", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> tuple[Path, str]:
    """The Space staged from the command line, and what it printed."""
    folder = tmp_path_factory.mktemp("space") / "digits"
    run = run_cli("space", "--stage", str(folder))
    assert run.returncode == 0, run.stderr
    return folder, run.stdout


def staged_files(folder: Path) -> set[str]:
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}


def test_the_space_gets_its_files_and_no_development_ones(staged):
    folder, printed = staged
    files = staged_files(folder)
    assert {"app.py", "requirements.txt", "README.md", ".gitattributes", "dlcourse/ui/space.py",
            "dlcourse/hub/space.py", "model/model.pkl", "model/ideal_digits.pt", "examples/mnist-test-7.png",
            "data/mnist/t10k-images-idx3-ubyte.gz", "data/mnist/train-5k-labels-idx1-ubyte.gz"} <= files
    assert not [name for name in files if name.startswith(("tests/", "bench/", "support/", ".venv/", ".ci/",
                                                            "examples/web/", "train.py", ".git/"))
                or "__pycache__" in name or name.endswith((".pyc", ".pyi"))]
    assert files == set(space.space_files())  # the folder holds what the command lists, nothing more
    for name in files - {".gitattributes"}:
        assert (folder / name).read_bytes() == (ROOT / name).read_bytes(), name
    assert (folder / ".gitattributes").read_bytes() == (ROOT / "space" / ".gitattributes").read_bytes()
    assert not (ROOT / ".gitattributes").exists()  # this repository's clones keep their files as they are
    # One line a file: storage, size, name; the model and the MNIST archives to large-file storage.
    rows = {name: storage for storage, name in re.findall(r"^  (large|git) +[\d.]+ (?:B|kB|MB)  (\S+)$", printed, re.M)}
    assert set(rows) == files
    assert rows["model/model.pkl"] == rows["data/mnist/t10k-images-idx3-ubyte.gz"] == "large"
    assert rows["app.py"] == rows["dlcourse/ui/space.py"] == "git"
    assert re.search(rf"^staged {len(files)} files \([\d.]+ MB\) in .+; {list(rows.values()).count('large')} go "
                     "to large-file storage:$", printed, re.M)


def test_every_file_over_1_mb_and_every_binary_file_goes_to_large_file_storage(staged, tmp_path):
    """Checked twice: by the command's own rules, and by git itself reading the staged .gitattributes."""
    folder = shutil.copytree(staged[0], tmp_path / "space")
    files = sorted(staged_files(folder))
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    attributes = subprocess.run(["git", "check-attr", "filter", "--", *files], cwd=folder, capture_output=True,
                                text=True, check=True).stdout
    by_git = {line.split(": ")[0] for line in attributes.splitlines() if line.endswith(": filter: lfs")}
    patterns = space.lfs_patterns((folder / ".gitattributes").read_text())
    for name in files:
        data = (folder / name).read_bytes()
        binary = b"\0" in data[:8000]
        if len(data) > 10**6 or binary:
            assert name in by_git, f"{name} ({len(data)} bytes, binary {binary}) would go to plain git"
        assert space.goes_to_large_file_storage(folder / name, name, patterns) == (name in by_git or binary), name


def test_the_front_matter_follows_the_spaces_configuration_reference():
    settings = space.front_matter((ROOT / "README.md").read_text())
    import gradio

    assert settings["sdk"] == "gradio" and str(settings["sdk_version"]) == gradio.__version__
    assert space.pinned_gradio((ROOT / "requirements.txt").read_text()) == gradio.__version__
    assert (ROOT / settings["app_file"]).is_file()
    assert str(settings["python_version"]) == f"{sys.version_info.major}.{sys.version_info.minor}"  # the one tested
    assert len(settings["short_description"]) <= 60
    assert settings["license"] in space.HUB_LICENSES
    assert space.settings_problems(settings, (ROOT / "requirements.txt").read_text(), list(space.space_files())) == []


def test_settings_a_space_would_not_build_are_refused_in_one_line(tmp_path):
    settings = space.front_matter((ROOT / "README.md").read_text())
    broken = {**settings, "sdk_version": "5.0.0", "app_file": "main.py", "short_description": "x" * 61,
              "license": "apache", "colorFrom": "teal"}
    problems = space.settings_problems(broken, (ROOT / "requirements.txt").read_text(), list(space.space_files()))
    assert [problem.split()[0] for problem in problems] == [
        "sdk_version", "app_file", "short_description", "license", "colorFrom"]
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "old.txt").write_text("x")
    run = run_cli("space", "--stage", str(tmp_path / "full"))
    assert run.returncode == 1 and run.stderr.startswith("error: ") and len(run.stderr.splitlines()) == 1


def wait_for(url: str, server: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, f"the staged app exited with {server.returncode}:\n{log.read_text()[-3000:]}"
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the staged app did not serve within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def port_is_free(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def test_the_staged_folder_alone_serves_the_space_as_spaces_runs_it(staged, tmp_path):
    folder, _ = staged
    space_root = tmp_path / "home" / "user" / "app"  # where a Space keeps its files; nothing of the repository
    shutil.copytree(folder, space_root)
    from importlib.metadata import version

    pins = re.findall(r"^([\w-]+)(?:\[[^\]]*\])?==([\w.]+)", (space_root / "requirements.txt").read_text(), re.M)
    assert pins and all(version(name) == pinned for name, pinned in pins)  # this environment is the Space's
    port = 7860 if port_is_free(7860) else free_port()  # a Space's port, unless this machine already uses it
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "MODEL_", "GRADIO_"))}
    env.update(GRADIO_SERVER_NAME="0.0.0.0", GRADIO_SERVER_PORT=str(port), SYSTEM="spaces", SPACE_ID=SPACE_ID,
               GRADIO_ANALYTICS_ENABLED="False", HF_HUB_DISABLE_TELEMETRY="1")
    opened, log = tmp_path / "opened.txt", tmp_path / "app.log"
    with open(log, "w") as output:
        server = subprocess.Popen([sys.executable, "-I", "-c", RUN_AS_SPACE, str(ROOT), sys.prefix, str(opened)],
                                  cwd=space_root, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for(url, server, log)
        client = Client(url, verbose=False)
        assert client.predict(handle_file(EXAMPLES_DIR / "mnist-test-7.png"), api_name="/classify")["label"] == "7"
        fit = client.predict(dataset="lesson", a=1.1, b=1.1, c=1.1, loss="mse", lr=0.1, momentum=0.9, steps=200,
                             api_name="/fit_quadratic")
        from dlcourse.quadratic.api import fit_quadratic

        assert fit["final"] == fit_quadratic(dataset="lesson", a=1.1, b=1.1, c=1.1, loss="mse", lr=0.1,
                                             momentum=0.9, steps=200)["final"]
        label, *_ = client.predict(handle_file(EXAMPLES_DIR / "mnist-test-3.png"), "3 or 7", "L1",
                                   api_name="/pixel_similarity")
        assert label["label"] == "3"
        learned = client.predict(model="linear", lr=1, epochs=3, batch_size=256, seed=42, api_name="/learn_pixels")
        assert len(learned["valid_accuracy"]) == 3 and learned["valid_accuracy"][-1] > learned["baseline_accuracy"]
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert opened.read_text() == "", "the staged Space read files of the repository"
    # Known and open: on Spaces (SYSTEM=spaces) event loops that were already closed are garbage-collected
    # with "Exception ignored in: BaseEventLoop.__del__ ... Invalid file descriptor: -1" (harmless, logged only).
    # Any other traceback fails.
    tracebacks = log.read_text().split("Traceback (most recent call last):")[1:]
    assert [text[:300] for text in tracebacks if "Invalid file descriptor: -1" not in text.split("\n\n")[0]
            and "BaseEventLoop.__del__" not in text and "_close_self_pipe" not in text] == []


class StubSpaceApi:
    """Stands in for huggingface_hub.HfApi, which needs the internet: records what the command sends."""

    created: dict = {}
    files: list[str] = []
    commits: list[dict] = []
    variables: dict = {}

    def __init__(self, token=None):
        self.token = token

    def create_repo(self, repo_id, **kwargs):
        StubSpaceApi.created = {"repo_id": repo_id, **kwargs}
        return f"https://huggingface.co/spaces/{repo_id}"

    def list_repo_files(self, repo_id, **kwargs):
        assert kwargs.get("repo_type") == "space"
        return self.files

    def create_commit(self, repo_id, operations, **kwargs):  # read now: the staging folder is gone afterwards
        assert kwargs.get("repo_type") == "space"
        StubSpaceApi.commits.append({op.path_in_repo: (Path(op.path_or_fileobj).read_bytes()
                                                       if hasattr(op, "path_or_fileobj") else None)
                                     for op in operations})

    def add_space_variable(self, repo_id, key, value, **kwargs):
        StubSpaceApi.variables[key] = value


@pytest.fixture
def stub_hub(monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", StubSpaceApi)
    StubSpaceApi.created, StubSpaceApi.commits, StubSpaceApi.variables = {}, [], {}
    StubSpaceApi.files = ["README.md", "dlcourse/old_module.py", "examples/gone.png", "notes/mine.md", "model/extra.pkl"]
    return StubSpaceApi


def test_publishing_creates_a_gradio_cpu_space_and_uploads_the_staged_files_in_one_commit(stub_hub, staged, capsys,
                                                                                          monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    assert hub_main(["space", SPACE_ID, "--model-repo", "someone/pets"]) == 0
    assert capsys.readouterr().out.strip() == f"https://huggingface.co/spaces/{SPACE_ID}"
    assert stub_hub.created == {"repo_id": SPACE_ID, "repo_type": "space", "space_sdk": "gradio",
                                "space_hardware": "cpu-basic", "private": False, "exist_ok": True}
    (commit,) = stub_hub.commits
    uploaded = {name for name, content in commit.items() if content is not None}
    assert uploaded == staged_files(staged[0])
    assert commit["model/model.pkl"] == (ROOT / "model" / "model.pkl").read_bytes()
    # What an earlier upload left in the folders the command owns goes; the owner's own files stay.
    assert sorted(name for name, content in commit.items() if content is None) == [
        "dlcourse/old_module.py", "examples/gone.png"]
    assert stub_hub.variables == {"MODEL_REPO": "someone/pets"}


def test_no_token_or_no_network_is_one_line_and_exit_1(tmp_path):
    no_token = run_cli("space", SPACE_ID, env={"HF_TOKEN": "", "HF_HOME": str(tmp_path / "hf")})
    assert no_token.returncode == 1
    assert no_token.stderr.startswith("error: no Hugging Face token") and len(no_token.stderr.splitlines()) == 1
    offline = run_cli("space", SPACE_ID, env={"HF_TOKEN": "hf_test", "HF_HOME": str(tmp_path / "hf"),
                                              "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}"})
    assert offline.returncode == 1, offline.stdout
    assert offline.stderr.startswith(f"error: {SPACE_ID}: the Hub cannot be reached")
    assert offline.stderr.strip().endswith("nothing was uploaded.") and len(offline.stderr.splitlines()) == 1
    bad_name = run_cli("space", "not a space")
    assert bad_name.returncode == 1 and "is not a Space id" in bad_name.stderr


def test_a_students_fastai_export_is_served_by_the_staged_space(tmp_path):
    """Make it yours: --model puts the student's model in place of the default, in the weights-only format."""
    from fastai.vision.all import ImageDataLoaders, Resize, vision_learner
    from trainkit import make_image_folder

    data = make_image_folder(tmp_path / "data", per_class=4, nested=False)
    dls = ImageDataLoaders.from_folder(data, valid_pct=0.25, item_tfms=Resize(32), bs=4, num_workers=0, device="cpu")
    vision_learner(dls, "test_resnet", pretrained=False).export(tmp_path / "export.pkl")
    assert hub_main(["space", "--stage", str(tmp_path / "staged"), "--model", str(tmp_path / "export.pkl")]) == 0
    served = tmp_path / "staged" / "model" / "model.pkl"
    info, _ = load_model_file(served)
    assert info.classes == ["circle", "square", "triangle"] and info.origin.startswith("fastai export")
    import torch

    torch.load(served, weights_only=True)  # our format: opens without unpickling any object
    assert hub_main(["space", "--stage", str(tmp_path / "again"), "--model", str(ROOT / "README.md")]) == 1


def test_staging_needs_neither_torch_nor_gradio(tmp_path):
    """The GitHub workflow installs huggingface_hub alone: staging and publishing must not import the app's stack."""
    blocked = "import runpy, sys\nfor name in ('torch', 'gradio', 'timm', 'numpy', 'PIL'): sys.modules[name] = None\n" \
              f"sys.argv = ['dlcourse.hub', 'space', '--stage', {str(tmp_path / 'staged')!r}]\n" \
              "runpy.run_module('dlcourse.hub', run_name='__main__')"
    run = subprocess.run([sys.executable, "-c", blocked], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "staged" / "model" / "model.pkl").is_file()


def readme_block_after(marker: str) -> list[str]:
    """The command lines of the README's first bash block after `marker`, comments dropped."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", readme[readme.index(marker):], re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_the_readmes_git_route_gives_the_space_a_history_the_hub_accepts(tmp_path):
    """The README's git commands, run on a clone of this repository's last commit (all but the push, which needs
    the Hub): one commit, and no file over 1 MB or binary left in plain git."""
    if shutil.which("git-lfs") is None:
        pytest.fail("git-lfs is not installed: `apt-get install git-lfs` (.ci/run installs it)")
    commands = readme_block_after("**With git instead.**")
    assert commands[0].startswith("git clone . ../your-space") and commands[-1].startswith("git push ")
    identity = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost", "GIT_COMMITTER_NAME": "t",
                "GIT_COMMITTER_EMAIL": "t@localhost"}
    script = "\n".join(f"{line} || exit 1" for line in commands[:-1]).replace("../your-space",
                                                                             str(tmp_path / "your-space"))
    run = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, **identity})
    assert run.returncode == 0, run.stderr[-2000:]
    clone = tmp_path / "your-space"
    git = lambda *args: subprocess.run(["git", *args], cwd=clone, capture_output=True, check=True).stdout  # noqa: E731
    assert git("rev-list", "--count", "hf-space").strip() == b"1"
    pointers = 0
    for line in git("ls-tree", "-r", "-l", "hf-space").decode().splitlines():
        _, _, blob, size, name = line.split(maxsplit=4)
        content = git("cat-file", "blob", blob)
        assert int(size) < 10**6, f"{name}: {size} bytes in plain git"
        if content.startswith(b"version https://git-lfs.github.com/spec/v1"):
            pointers += 1
        else:
            assert b"\0" not in content[:8000], f"{name} is binary and in plain git"
    assert pointers >= 20  # the model, the MNIST files, the example pictures
