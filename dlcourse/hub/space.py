"""The Space itself on the Hub: exactly the files a Space needs to build and run app.py, staged into a folder
or uploaded in one commit.

A Space installs requirements.txt and runs app.py from its own root, with none of the repository's
development files (tests, benchmarks, environments, caches). The Hub keeps large and binary files in its
large-file storage (Git LFS or Xet) and refuses them in plain git, so `stage_space` says which files go there.
Importing this module needs neither torch nor Gradio: a CI job with huggingface_hub alone can publish.
"""
from __future__ import annotations

import fnmatch
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInput, shown
from .model_repo import hub_token

ROOT = Path(__file__).resolve().parents[2]
# What the Space needs, as patterns relative to the repository's root (README.md is the Space's card, its front
# matter the Space's settings; docs/ keeps the README's links working on the Space's page).
SPACE_FILES = ("app.py", "requirements.txt", "README.md", "dlcourse/**/*.py",
               "model/model.pkl", "model/ideal_digits.pt", "examples/*.png", "data/mnist/*", "docs/*.md")
# The Space's own .gitattributes (large-file storage), kept out of this repository's root: see that file.
GITATTRIBUTES = ("space/.gitattributes", ".gitattributes")
SERVED_MODEL = "model/model.pkl"
# Files the command put there before and owns: one of these that a new upload lacks is deleted with it.
MANAGED_FOLDERS = ("dlcourse/", "examples/", "data/mnist/", "docs/")
HARDWARE = "cpu-basic"  # the free CPU Space
# The Hub's own rules for what goes to large-file storage: its .gitattributes patterns, any file of 10 MiB or
# more, and binary content (the Hub looks at a file's first 512 bytes, as huggingface_hub sends them).
LFS_MIN_BYTES = 10 * 2**20
SAMPLE_BYTES = 512
SHORT_DESCRIPTION_MAX = 60  # a Space card's one line
# Colours and licence ids the Spaces configuration reference accepts (huggingface.co/docs/hub/spaces-config-reference,
# and the licence list of huggingface.co/docs/hub/repositories-licenses).
CARD_COLOURS = ("red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray")
HUB_LICENSES = frozenset("""
    apache-2.0 mit openrail bigscience-openrail-m creativeml-openrail-m bigscience-bloom-rail-1.0 bigcode-openrail-m
    afl-3.0 artistic-2.0 bsl-1.0 bsd bsd-2-clause bsd-3-clause bsd-3-clause-clear c-uda cc cc0-1.0 cc-by-2.0
    cc-by-2.5 cc-by-3.0 cc-by-4.0 cc-by-sa-3.0 cc-by-sa-4.0 cc-by-nc-2.0 cc-by-nc-3.0 cc-by-nc-4.0 cc-by-nd-4.0
    cc-by-nc-nd-3.0 cc-by-nc-nd-4.0 cc-by-nc-sa-2.0 cc-by-nc-sa-3.0 cc-by-nc-sa-4.0 cdla-sharing-1.0
    cdla-permissive-1.0 cdla-permissive-2.0 wtfpl ecl-2.0 epl-1.0 epl-2.0 etalab-2.0 eupl-1.1 eupl-1.2 agpl-3.0
    gfdl gpl gpl-2.0 gpl-3.0 lgpl lgpl-2.1 lgpl-3.0 isc h-research intel-research lppl-1.3c ms-pl apple-ascl
    apple-amlr mpl-2.0 odc-by odbl openrail++ osl-3.0 postgresql ofl-1.1 ncsa unlicense zlib pddl lgpl-lr
    deepfloyd-if-license llama2 llama3 llama3.1 llama3.2 llama3.3 llama4 gemma unknown other
""".split())
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")


@dataclass(frozen=True)
class StagedFile:
    name: str  # path in the Space, with forward slashes
    size: int  # bytes
    large: bool  # goes to the Hub's large-file storage


def space_files(root: Path = ROOT) -> dict[str, Path]:
    """The files a Space needs: {name in the Space: file in this repository}, sorted by name; caches and
    compiled files left out."""
    found = {GITATTRIBUTES[1]: root / GITATTRIBUTES[0]}
    for pattern in SPACE_FILES:
        for path in root.glob(pattern):
            if path.is_file() and "__pycache__" not in path.parts:
                found[path.relative_to(root).as_posix()] = path
    return dict(sorted(found.items()))


def lfs_patterns(gitattributes: str) -> list[str]:
    """The patterns a .gitattributes sends to LFS (`filter=lfs`), in order."""
    patterns = []
    for line in gitattributes.splitlines():
        fields = line.split()
        if fields and not fields[0].startswith("#") and "filter=lfs" in fields[1:]:
            patterns.append(fields[0])
    return patterns


def matches(name: str, pattern: str) -> bool:
    """A gitattributes pattern against a path: one without a slash matches the file name at any depth."""
    if "/" not in pattern.rstrip("/"):
        return fnmatch.fnmatchcase(name.rsplit("/", 1)[-1], pattern)
    return fnmatch.fnmatchcase(name, pattern.replace("**/", "*"))


def goes_to_large_file_storage(path: Path, name: str, patterns: list[str]) -> bool:
    """Whether the Hub keeps this file in its large-file storage: a .gitattributes pattern, its size, or binary content."""
    if any(matches(name, pattern) for pattern in patterns) or path.stat().st_size >= LFS_MIN_BYTES:
        return True
    with open(path, "rb") as file:
        return b"\0" in file.read(SAMPLE_BYTES)


def front_matter(readme: str) -> dict:
    """The Space's settings: the YAML block at the top of its README.md."""
    import yaml  # huggingface_hub's own dependency

    match = re.match(r"^---\n(.*?)\n---\n", readme, re.S)
    if not match:
        raise BadInput("README.md has no front matter (a --- block at its top): a Space reads its settings there.")
    settings = yaml.safe_load(match.group(1))
    if not isinstance(settings, dict):
        raise BadInput("README.md's front matter is not a set of `key: value` settings.")
    return settings


def pinned_gradio(requirements: str) -> str | None:
    """The Gradio version requirements.txt pins (`gradio==X` or `gradio[extras]==X`), or None."""
    match = re.search(r"^gradio(\[[^\]]*\])?==([\w.]+)", requirements, re.M)
    return match.group(2) if match else None


def settings_problems(settings: dict, requirements: str, files: list[str]) -> list[str]:
    """What a Space would build wrong or refuse in these settings, each in a few words; empty when none."""
    problems = []
    if settings.get("sdk") != "gradio":
        problems.append(f"sdk is {shown(settings.get('sdk'))}, not gradio")
    pinned = pinned_gradio(requirements)
    if str(settings.get("sdk_version")) != pinned:
        problems.append(f"sdk_version {shown(settings.get('sdk_version'))} is not the gradio requirements.txt pins "
                        f"({pinned})")
    if settings.get("app_file") not in files:
        problems.append(f"app_file {shown(settings.get('app_file'))} is not among the Space's files")
    if not re.fullmatch(r"3\.\d+(\.\d+)?", str(settings.get("python_version", ""))):
        problems.append(f"python_version {shown(settings.get('python_version'))} is not a Python 3 version")
    description = settings.get("short_description", "")
    if not isinstance(description, str) or len(description) > SHORT_DESCRIPTION_MAX:
        problems.append(f"short_description has {len(str(description))} characters; a Space card shows "
                        f"{SHORT_DESCRIPTION_MAX}")
    if settings.get("license") not in HUB_LICENSES:
        problems.append(f"license {shown(settings.get('license'))} is not a licence id the Hub knows")
    for key in ("colorFrom", "colorTo"):
        if settings.get(key) not in CARD_COLOURS:
            problems.append(f"{key} {shown(settings.get(key))} is not one of {', '.join(CARD_COLOURS)}")
    if not settings.get("title"):
        problems.append("title is missing")
    return problems


def stage_space(folder: str | Path, model: str | Path | None = None, root: Path = ROOT) -> list[StagedFile]:
    """Write into `folder` (new or empty) exactly the files a Space upload sends, and say what each is.

    `model` (a train.py model file or a fastai export) is served instead of the repository's model/model.pkl;
    an export goes in this project's weights-only format. BadInput for settings a Space would not build."""
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise BadInput(f"{folder} is not an empty folder: staging writes exactly the files a Space receives, "
                       "so it needs a new or empty one.")
    sources = space_files(root)
    problems = settings_problems(front_matter((root / "README.md").read_text(encoding="utf-8")),
                                 (root / "requirements.txt").read_text(encoding="utf-8"), list(sources))
    if problems:
        raise BadInput("README.md's Space settings: " + "; ".join(problems) + ".")
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in sources.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, folder / name)
    if model is not None:
        place_model(Path(model), folder / SERVED_MODEL)
    patterns = lfs_patterns((folder / ".gitattributes").read_text(encoding="utf-8"))
    return [StagedFile(name, (folder / name).stat().st_size, goes_to_large_file_storage(folder / name, name, patterns))
            for name in sources]


def place_model(model: Path, destination: Path) -> None:
    """A student's model as the Space's model/model.pkl, checked first: the app must be able to serve it."""
    from ..served import fastai_export
    from ..served.loading import load_model_file

    load_model_file(model)  # BadInput, in one line, for anything the app would refuse at start-up
    if fastai_export.looks_like_export(model):
        fastai_export.convert(model, destination)
    else:
        shutil.copyfile(model, destination)


def publish(repo_id: str, model: str | Path | None = None, model_repo: str | None = None, private: bool = False,
            token: str | None = None) -> str:
    """Create the Space `repo_id` when missing (Gradio, free CPU) and upload, in one commit, exactly the files
    `stage_space` writes; files this command uploaded before and no longer sends are deleted in the same commit.
    `model_repo` sets the Space's MODEL_REPO variable. The Space's URL; BadInput, in one line, for a missing
    token, an unreachable Hub or any other Hub failure: nothing is half-uploaded (a commit is all or nothing)."""
    check_repo_id(repo_id)
    token = token or hub_token()
    if not token:
        raise BadInput(f"no Hugging Face token (set HF_TOKEN or run `hf auth login`): nothing was uploaded to {repo_id}.")
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    with tempfile.TemporaryDirectory(prefix="dlcourse-space-") as folder:
        staged = {file.name for file in stage_space(folder, model)}
        api = HfApi(token=token)
        try:
            api.create_repo(repo_id, repo_type="space", space_sdk="gradio", space_hardware=HARDWARE,
                            private=private, exist_ok=True)
            stale = [name for name in api.list_repo_files(repo_id, repo_type="space")
                     if name.startswith(MANAGED_FOLDERS) and name not in staged]
            api.create_commit(
                repo_id, [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(Path(folder) / name))
                          for name in sorted(staged)] + [CommitOperationDelete(path_in_repo=name) for name in stale],
                repo_type="space", commit_message="Publish the Space with python -m dlcourse.hub space")
            if model_repo:
                api.add_space_variable(repo_id, "MODEL_REPO", model_repo)
        except Exception as error:  # unreachable Hub, bad token, no rights, bad name: all said in one line
            raise BadInput(f"{repo_id}: {hub_failure(error)}; nothing was uploaded.") from None
    return f"https://huggingface.co/spaces/{repo_id}"


def check_repo_id(repo_id: str) -> None:
    if not REPO_ID.match(repo_id or ""):
        raise BadInput(f"{shown(repo_id)} is not a Space id: give USER/NAME (letters, digits, '-', '_', '.').")


def hub_failure(error: BaseException) -> str:
    """An exception from huggingface_hub in a few words: an unreachable Hub said as such."""
    chain = [error]
    while chain[-1].__cause__ or chain[-1].__context__:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)
    detail = " ".join(str(error).split())[:200]
    if any("Connect" in type(link).__name__ or "Timeout" in type(link).__name__
           or (isinstance(link, OSError) and not isinstance(link, FileNotFoundError)) for link in chain):
        return f"the Hub cannot be reached ({type(error).__name__}: {detail})"
    return f"the Hub refused ({type(error).__name__}: {detail})"


def print_staged(staged: list[StagedFile], folder: Path, out=sys.stdout) -> None:
    large = [file for file in staged if file.large]
    total = sum(file.size for file in staged)
    print(f"staged {len(staged)} files ({human(total)}) in {folder}; {len(large)} go to large-file storage:", file=out)
    for file in staged:
        print(f"  {'large' if file.large else 'git':5}  {human(file.size):>9}  {file.name}", file=out)


def human(size: int) -> str:
    if size < 1000:
        return f"{size} B"
    return f"{size / 1e3:.1f} kB" if size < 1e6 else f"{size / 1e6:.1f} MB"
