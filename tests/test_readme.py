"""The README runs top to bottom, as written, as a new user runs it.

What runs
---------
:func:`test_readme_runs_top_to_bottom` goes down README.md once, in order, in a fresh
folder with a fresh ``HOME`` and none of the developer's ``POWERFIT_*``, ``MLFLOW_*``
or ``XDG_*`` variables (so no ``POWERFIT_DATA_HOME``: the published data come from
the copy embedded in powerfit, and nothing is downloaded):

* every ```bash block, and every ``$ ...`` command of a ```console block
  (continuation lines joined), in ``bash -euo pipefail``; variables a block exports
  stay set for the later blocks, as in the reader's shell;
* every ```python block, in one Python session (a reader's interpreter: names
  defined by an earlier block, such as ``configs``, stay defined).

Each must succeed. The harness adds nothing a reader would not do; it leaves out
what the environment running the tests has already done or is doing: in the quick
start, creating the virtual environment and ``pip install`` (the tests run in an
installed environment: ``.venv/bin/`` is the running interpreter's folder) and
``python -m pytest`` (the suite this test is part of); and ``source
.venv/bin/activate`` (the running interpreter's folder is first on the ``PATH``).

Opting out
----------
Put ``<!-- readme-test: skip (reason) -->`` on the line right before a block's fence
(an HTML comment: GitHub does not show it): for blocks that need hardware or servers
a test machine lacks (a CUDA GPU, PostgreSQL and MLflow servers, Spark). The block is
then not run, and the reason is listed by :func:`test_skipped_blocks_say_why`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SKIP_MARKER = re.compile(r"<!--\s*readme-test:\s*skip\s*\((?P<reason>.*)\)\s*-->")

#: Commands of the quick start that the environment running the tests has done.
_DONE_BY_THE_TEST_ENVIRONMENT = re.compile(
    r"^(python3 -m venv \S+|\S*pip install .*|\S*python -m pytest.*|source \.venv/bin/activate)$"
)


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
    """The ``$ ...`` commands of a console block (continuations joined)."""
    commands: list[str] = []
    lines = block.text.splitlines()
    for index, line in enumerate(lines):
        if not line.startswith("$ "):
            continue
        command, j = line[2:], index
        while command.endswith("\\") and j + 1 < len(lines):
            j += 1
            command = command[:-1].rstrip() + " " + lines[j].strip()
        commands.append(command)
    return commands


def shell_script(block: Block) -> str:
    """What the harness runs of a bash or console block (see the module docstring)."""
    if block.lang == "console":
        return "\n".join(console_commands(block)) + "\n"
    kept = []
    for line in block.text.splitlines():
        parts = [p.strip() for p in line.split(" && ")]
        parts = [p for p in parts if not _DONE_BY_THE_TEST_ENVIRONMENT.match(p)]
        kept.append(" && ".join(p.replace(".venv/bin/", "") for p in parts))
    return "\n".join(kept) + "\n"


def readme_steps(text: str) -> list[tuple[str, Block]]:
    """The steps of the README in order: ('shell' | 'python', block), skipped left out."""
    steps = []
    for block in readme_blocks(text):
        if block.skip is not None:
            continue
        if block.lang in ("bash", "console"):
            steps.append(("shell", block))
        elif block.lang == "python":
            steps.append(("python", block))
    return steps


#: Runs the steps given as JSON on stdin: shell steps in bash (exports carried to the
#: next), Python steps in this one interpreter. Stops at the first failure.
_DRIVER = r"""
import json, os, subprocess, sys, tempfile
steps = json.load(sys.stdin)
env = dict(os.environ)
namespace = {"__name__": "__main__"}
for kind, line, text in steps:
    print(f"=== README line {line} ({kind})", flush=True)
    if kind == "shell":
        with tempfile.NamedTemporaryFile(suffix=".env") as saved:
            script = text + f'\nenv -0 > {saved.name}\n'
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env)
            if done.returncode != 0:
                sys.exit(f"README line {line}: exit status {done.returncode}")
            pairs = open(saved.name, "rb").read().split(b"\0")
        env = dict(p.decode().split("=", 1) for p in pairs if b"=" in p)
    else:
        sys.stdout.flush()
        exec(compile(text, f"README.md, block at line {line}", "exec"), namespace)
"""


def _user_env(home: Path) -> dict[str, str]:
    """The environment of a new user: a fresh HOME and no powerfit/MLflow/XDG settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("POWERFIT_", "MLFLOW_", "XDG_")) and k != "HOME"
    }
    env["HOME"] = str(home)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.mark.slow
def test_readme_runs_top_to_bottom(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "clone"
    work.mkdir()
    steps = readme_steps(README.read_text(encoding="utf-8"))
    payload = json.dumps([(kind, b.line, shell_script(b) if kind == "shell" else b.text)
                          for kind, b in steps])  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", _DRIVER],
        input=payload,
        cwd=work,
        env=_user_env(home),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:]
    # One store: what the demo registered is what the tour found, under the fresh HOME.
    store = home / ".local" / "share" / "powerfit"
    assert (store / "powerfit.db").exists() and (store / "mlflow.db").exists()
    assert not (work / "mlflow.db").exists() and not (work / "mlruns").exists()
    # Nothing was downloaded: the published data are the embedded copy.
    assert not (home / ".cache" / "powerfit" / "mayaki2025").exists()
    assert "Traceback" not in out


def test_skipped_blocks_say_why():
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    skipped = {b.line: b.skip for b in blocks if b.skip is not None}
    for line, reason in skipped.items():
        assert re.search(r"needs (a CUDA GPU|Spark|a PostgreSQL|the whole test suite)", reason), (
            f"README line {line}: skip reason {reason!r} names no hardware or server"
        )
    runnable = readme_steps(README.read_text(encoding="utf-8"))
    assert sum(kind == "python" for kind, _ in runnable) >= 4
    assert len(skipped) <= 4


def test_blocks_are_found_and_the_marker_is_read():
    text = (
        "intro\n\n```python\nprint(1)\n```\n\n"
        "<!-- readme-test: skip (needs a GPU) -->\n```python\nimport torch\n```\n"
        "```console\n$ powerfit estimate \\\n    --profile x\nout\n```\n"
        "```bash\npython3 -m venv .venv && .venv/bin/pip install -e '.[test]' && "
        ".venv/bin/powerfit demo\n.venv/bin/python -m pytest\n```\n"
    )
    one, two, three, four = readme_blocks(text)
    assert (one.lang, one.line, one.text, one.skip) == ("python", 3, "print(1)\n", None)
    assert two.skip == "needs a GPU"
    assert console_commands(three) == ["powerfit estimate --profile x"]
    assert shell_script(three) == "powerfit estimate --profile x\n"
    assert shell_script(four) == "powerfit demo\n\n"
    assert [kind for kind, _ in readme_steps(text)] == ["python", "shell", "shell"]
