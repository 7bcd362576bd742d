"""The README and docs/ stay true to the repository: every relative link (and #anchor) resolves, and every
command that names one of the repository's scripts or modules names one that exists."""
from __future__ import annotations

import importlib.machinery
import importlib.util
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 320

FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*(\S*)")
INLINE_CODE = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\[[^\]\n]*\]\(([^()\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")
SHELL_BLOCKS = {"", "bash", "sh", "shell", "console"}
SEPARATORS = {"&&", "||", "|", ";", "&", "(", ")", "`"}
# A path in backticks under one of these folders names a file of the repository (a glob may name several).
# An entry of the README's tree: file names (`a.py, b.py`) or a folder (`served/`, `data/mnist/`).
ENTRY = re.compile(r"((?:[\w-]+/)*[\w-]+(?:\.\w+|/)(?:, (?:[\w-]+/)*[\w-]+(?:\.\w+|/))*)(?=\s|$)")
REPO_PATH = re.compile(r"^(?:dlcourse|bench|tests|support|examples|\.ci)/[\w./*-]*\.\w+$")


def split_markdown(text: str) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The prose lines (code blocks blanked) and each fenced block's (language, lines)."""
    prose, blocks, fence, language, lines = [], [], None, "", []
    for line in text.splitlines():
        match = FENCE.match(line)
        if fence is None and match:
            fence, language, lines = match.group(2), match.group(3).lower(), []
            prose.append("")
        elif fence is not None and line.strip().startswith(fence):
            blocks.append((language, lines))
            fence = None
            prose.append("")
        elif fence is not None:
            lines.append(line)
            prose.append("")
        else:
            prose.append(line)
    return prose, blocks


def heading_anchors(markdown: Path) -> set[str]:
    """The #anchors GitHub gives a file's headings: lower case, punctuation dropped, spaces as hyphens."""
    anchors: set[str] = set()
    for line in split_markdown(markdown.read_text(encoding="utf-8"))[0]:
        match = HEADING.match(line)
        if not match:
            continue
        title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", match.group(1))  # a link's text only
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        anchor, n = slug, 0
        while anchor in anchors:
            n += 1
            anchor = f"{slug}-{n}"
        anchors.add(anchor)
    return anchors


def link_problems(doc: Path, prose: list[str]) -> list[str]:
    found = []
    for number, line in enumerate(prose, 1):
        for target in LINK.findall(INLINE_CODE.sub("code", line)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto: ...
                continue
            path, _, anchor = target.partition("#")
            resolved = (doc.parent / path).resolve() if path else doc
            if not resolved.exists():
                found.append(f"{doc.name}:{number}: link to {target}: no such file")
            elif anchor and (resolved.suffix != ".md" or anchor not in heading_anchors(resolved)):
                found.append(f"{doc.name}:{number}: link to {target}: no heading #{anchor} there")
    return found


def commands(code: str) -> list[list[str]]:
    """The simple commands of a shell snippet, each as its words (comments, pipes and `$(...)` split off)."""
    found = []
    for line in code.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        try:
            words = list(lexer)
        except ValueError:  # an unclosed quote: output or prose, not a command
            continue
        current: list[str] = []
        for word in words + [";"]:
            if word in SEPARATORS:
                found.append(current)
                current = []
            else:
                current.append(word)
    return [command for command in found if command]


def module_exists(name: str, root: Path) -> bool:
    """Whether `python -m name` finds a module to run, found without importing anything."""
    top, *rest = name.split(".")
    spec = importlib.machinery.PathFinder.find_spec(top, [str(root)]) or importlib.util.find_spec(top)
    for part in rest:
        if spec is None or spec.submodule_search_locations is None:
            return False
        spec = importlib.machinery.PathFinder.find_spec(part, list(spec.submodule_search_locations))
    if spec is None:
        return False
    if spec.submodule_search_locations is not None:  # a package runs its __main__
        return importlib.machinery.PathFinder.find_spec("__main__", list(spec.submodule_search_locations)) is not None
    return True


def script_problems(command: list[str], root: Path) -> list[str]:
    """What a command names in the repository that is not there: a script, a module, a test file, a -r file."""
    while command and re.match(r"^\w+=", command[0]):  # VAR=value before the command
        command = command[1:]
    if not command:
        return []
    program, args = Path(command[0]).name, command[1:]
    found = []
    if program == "pip" or program.startswith("pip3"):
        found += [f"pip -r {args[i + 1]}: no such file" for i, arg in enumerate(args[:-1])
                  if arg == "-r" and not (root / args[i + 1]).is_file()]
    elif re.fullmatch(r"python[\d.]*", program):
        options_with_a_value = {i + 1 for i, arg in enumerate(args) if arg in ("-X", "-W")}  # -X importtime
        for i, arg in enumerate(args):
            if arg == "-c":
                break
            if i in options_with_a_value:
                continue
            if arg == "-m" and i + 1 < len(args):
                if not module_exists(args[i + 1], root):
                    found.append(f"python -m {args[i + 1]}: no such module to run")
                elif args[i + 1] == "pytest":
                    found += missing_test_files(args[i + 2:], root)
                break
            if not arg.startswith("-"):
                if not (root / arg).is_file():
                    found.append(f"python {arg}: no such script")
                break
    elif program == "pytest":
        found += missing_test_files(args, root)
    elif program == "torchrun":
        script = next((arg for arg in args if arg.endswith(".py")), None)
        if script and not (root / script).is_file():
            found.append(f"torchrun {script}: no such script")
    return found


def missing_test_files(args: list[str], root: Path) -> list[str]:
    paths = [arg.split("::")[0] for arg in args if not arg.startswith("-")]
    return [f"pytest {path}: no such test file" for path in paths if not (root / path).exists()]


def problems(doc: Path, root: Path = ROOT) -> list[str]:
    """Every broken link, anchor, script, module or repository path in one Markdown file."""
    prose, blocks = split_markdown(doc.read_text(encoding="utf-8"))
    found = link_problems(doc, prose)
    snippets = ["\n".join(lines) for language, lines in blocks if language in SHELL_BLOCKS]
    inline = [code for line in prose for code in INLINE_CODE.findall(line)]
    for snippet in snippets + inline:
        for command in commands(snippet):
            found += [f"{doc.name}: {problem}" for problem in script_problems(command, root)]
    for code in inline:
        if REPO_PATH.match(code) and not any(root.glob(code)):
            found.append(f"{doc.name}: `{code}`: no such file in the repository")
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: str(doc.relative_to(ROOT)))
def test_links_and_commands_resolve(doc):
    found = problems(doc)
    assert not found, "\n".join(found)


def test_readme_stays_short():
    lines = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; depth belongs in docs/ (at most {README_MAX_LINES})"


def test_every_doc_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert [doc.name for doc in DOCS[1:] if f"(docs/{doc.name})" not in readme] == []


def what_is_where(readme: str) -> list[str]:
    """The paths the README's "What is where" tree names: an entry's names (`a.py, b.py` or `folder/`) sit
    before its description, indented two spaces under their folder."""
    section = readme.split("\n## What is where", 1)[1]
    tree = split_markdown(section)[1][0][1]
    paths, folders = [], []  # folders: (indent, path) of the entries above
    for line in tree:
        indent = len(line) - len(line.lstrip())
        match = ENTRY.match(line.strip())
        if not match:
            continue  # a description carried over from the line above
        names = match.group(1)
        folders = [(depth, folder) for depth, folder in folders if depth < indent]
        parent = folders[-1][1] if folders else ""
        for name in names.split(", "):
            paths.append(parent + name)
        if names.endswith("/") and "," not in names:
            folders.append((indent, parent + names))
    return paths


def test_what_is_where_matches_the_tree():
    named = what_is_where((ROOT / "README.md").read_text(encoding="utf-8"))
    assert [path for path in named if not (ROOT / path).exists()] == []
    rooms = {f"{path.relative_to(ROOT)}/" for path in (ROOT / "dlcourse").iterdir() if (path / "__init__.py").exists()}
    assert sorted(rooms - set(named)) == [], "every folder of dlcourse/ has a line in the README's What is where"


def test_the_checks_catch_what_breaks(tmp_path):
    """Each kind of breakage in a doc is reported, so the tests above can fail."""
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "real.py").write_text("")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text("# Other page\n\n## A section, with `code`\n")
    doc = tmp_path / "docs" / "page.md"
    doc.write_text(
        "# Page\n\n"
        "Good: [other](other.md), [section](other.md#a-section-with-code), [here](#page), [web](https://x.org/y).\n"
        "Bad: [gone](missing.md), [no such heading](other.md#nowhere), [up](../nothing/readme.md).\n"
        "Inline: `python bench/real.py`, `python bench/gone_inline.py`, `bench/gone_path.py`.\n\n"
        "```bash\n"
        "python bench/real.py --fast   # a comment naming python bench/not_a_command.py\n"
        "OMP_NUM_THREADS=1 .venv/bin/python bench/gone.py && python -m dlcourse.no_such_module\n"
        "python -m http.server 8000 -d examples/web\n"
        "torchrun --nproc_per_node 2 \\\n    gone_train.py --data mnist\n"
        "X=$(python -c 'import sys' | python -m dlcourse) && pytest tests/test_gone.py::test_x -q\n"
        "pip install -r requirements-gone.txt\n"
        "```\n"
    )
    assert problems(doc, root=tmp_path) == [
        "page.md:4: link to missing.md: no such file",
        "page.md:4: link to other.md#nowhere: no heading #nowhere there",
        "page.md:4: link to ../nothing/readme.md: no such file",
        "page.md: python bench/gone.py: no such script",
        "page.md: python -m dlcourse.no_such_module: no such module to run",
        "page.md: torchrun gone_train.py: no such script",
        "page.md: python -m dlcourse: no such module to run",
        "page.md: pytest tests/test_gone.py: no such test file",
        "page.md: pip -r requirements-gone.txt: no such file",
        "page.md: python bench/gone_inline.py: no such script",
        "page.md: `bench/gone_path.py`: no such file in the repository",
    ]
