"""The README's examples run as written, as a new user would run them.

What runs
---------
* Every ```python block of README.md, in a fresh temporary folder with a fresh
  ``HOME`` (so powerfit's default store and MLflow registry are those of a new user,
  ``~/.local/share/powerfit``), ``POWERFIT_DATA_HOME`` pointing at the published data
  and no ``POWERFIT_*``/``MLFLOW_*`` variable of the developer's. A block runs after
  the README's earlier Python blocks, in one script (a reader going down the page
  keeps ``configs``, ``mlflow``...), and must exit 0.
* Blocks that load a registered model run after the README's own steps to get one:
  ``powerfit ingest`` of the published files and ``powerfit fit --gpu a100`` twice
  (versions 1 and 2), into that default store.
* Every ``$ powerfit ...`` command of a ```console block (continuation lines joined),
  which must exit 0. Shell blocks of the quick start are not run: they install
  packages (network) or run the whole test suite.

Opting out
----------
Put ``<!-- readme-test: skip (reason) -->`` on the line right before a block's fence
(an HTML comment: GitHub does not show it). The test is then skipped with that
reason.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SKIP_MARKER = re.compile(r"<!--\s*readme-test:\s*skip\s*\((?P<reason>.*)\)\s*-->")

#: Snippets of blocks that need a registered model in the default registry.
NEEDS_MODEL = ("models:/",)

#: Snippets of blocks that read the published files from the default store.
NEEDS_STORE = ("open_store()",)


@dataclass(frozen=True)
class Block:
    """One fenced block of the README."""

    lang: str
    line: int  # 1-based line of the opening fence
    text: str
    skip: str | None  # reason of a readme-test: skip marker


def readme_blocks(text: str) -> list[Block]:
    """Fenced blocks of a Markdown text, with the skip marker right before each."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^(\s*)```(\w*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        indent, lang, start = fence.group(1), fence.group(2), i
        body: list[str] = []
        i += 1
        while i < len(lines) and not re.match(r"^\s*```\s*$", lines[i]):
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        before = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        marker = SKIP_MARKER.search(before)
        blocks.append(
            Block(lang, start + 1, "\n".join(body) + "\n", marker["reason"] if marker else None)
        )
        i += 1
    return blocks


def console_commands(block: Block) -> list[str]:
    """The ``$ powerfit ...`` commands of a console block (continuations joined)."""
    commands: list[str] = []
    lines = block.text.splitlines()
    for index, line in enumerate(lines):
        if not line.startswith("$ powerfit"):
            continue
        command, j = line[2:], index
        while command.endswith("\\") and j + 1 < len(lines):
            j += 1
            command = command[:-1].rstrip() + " " + lines[j].strip()
        commands.append(command)
    return commands


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))
PYTHON = [b for b in BLOCKS if b.lang == "python"]
CONSOLE = [(b, c) for b in BLOCKS if b.lang == "console" for c in console_commands(b)]


def _marks(block: Block, text: str) -> list[pytest.MarkDecorator]:
    marks = []
    if block.skip is not None:
        marks.append(pytest.mark.skip(reason=block.skip))
    if any(snippet in text for snippet in NEEDS_MODEL):
        marks.append(pytest.mark.slow)
    return marks


def _user_env(home: Path, data_home: Path) -> dict[str, str]:
    """The environment of a new user: a fresh HOME, the published data, nothing else."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("POWERFIT_", "MLFLOW_", "XDG_")) and k != "HOME"
    }
    env |= {"HOME": str(home), "POWERFIT_DATA_HOME": str(data_home), "OMP_NUM_THREADS": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture
def user(tmp_path, data_home):
    """(folder, environment) of a new user."""
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    return work, _user_env(home, data_home)


def _ingest_published(work: Path, env: dict[str, str], data_home: Path) -> None:
    """The README's ingest of the four published files into the default store."""
    processed = sorted((data_home / "mayaki2025" / "processed").glob("*.csv"))
    done = _run([sys.executable, "-m", "powerfit", "ingest", *map(str, processed)], work, env)
    assert done.returncode == 0, done.stderr


def _register_models(work: Path, env: dict[str, str], data_home: Path) -> None:
    """The README's steps to a registered model: ingest, then fit twice (versions 1, 2)."""
    _ingest_published(work, env, data_home)
    powerfit = [sys.executable, "-m", "powerfit"]
    for _ in range(2):
        done = _run([*powerfit, "fit", "--gpu", "a100", "--arch", "transformer"], work, env)
        assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "index",
    [
        pytest.param(i, id=f"python-line-{b.line}", marks=_marks(b, b.text))
        for i, b in enumerate(PYTHON)
    ],
)
def test_python_block_runs_as_written(index, user, data_home):
    work, env = user
    block = PYTHON[index]
    earlier = [b.text for b in PYTHON[:index] if b.skip is None]
    text = "\n".join([*earlier, block.text])
    if any(snippet in block.text for snippet in NEEDS_MODEL):
        _register_models(work, env, data_home)
    elif any(snippet in text for snippet in NEEDS_STORE):
        _ingest_published(work, env, data_home)
    script = work / "example.py"
    script.write_text(text, encoding="utf-8")
    done = _run([sys.executable, str(script)], work, env)
    assert done.returncode == 0, f"README line {block.line}:\n{done.stderr[-3000:]}"


@pytest.mark.parametrize(
    ("block", "command"),
    [pytest.param(b, c, id=f"console-line-{b.line}", marks=_marks(b, c)) for b, c in CONSOLE],
)
def test_console_command_runs_as_written(block, command, user):
    work, env = user
    args = shlex.split(command)
    done = _run([sys.executable, "-m", "powerfit", *args[1:]], work, env)
    assert done.returncode == 0, f"README line {block.line}: {command}\n{done.stderr[-3000:]}"


def test_blocks_are_found_and_the_marker_is_read():
    text = (
        "intro\n\n```python\nprint(1)\n```\n\n"
        "<!-- readme-test: skip (needs a GPU) -->\n```python\nimport torch\n```\n"
        "```console\n$ powerfit estimate \\\n    --profile x\nout\n```\n"
    )
    one, two, three = readme_blocks(text)
    assert (one.lang, one.line, one.text, one.skip) == ("python", 3, "print(1)\n", None)
    assert two.skip == "needs a GPU"
    assert console_commands(three) == ["powerfit estimate --profile x"]
    assert len(PYTHON) >= 4 and any("sklearn" in b.text for b in PYTHON)
    assert any("mlflow.pyfunc.load_model" in b.text for b in PYTHON)
