"""The README stays true: its settings table is the generated one, CI runs its test command."""

from __future__ import annotations

import re
from pathlib import Path

from piaoxi.settings import TABLE_END, TABLE_START, settings_table

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_settings_table_is_the_generated_one() -> None:
    start = README.index(TABLE_START) + len(TABLE_START)
    end = README.index(TABLE_END)
    assert README[start:end].strip() == settings_table().strip(), (
        "README settings table is stale: run `piaoxi settings table --write README.md`"
    )


def test_readme_shows_the_two_commands_before_the_settings() -> None:
    first_block = re.search(r"```sh\n(.*?)```", README, re.S)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands == ["make run", "make test"]
    assert README.index("make run") < README.index(TABLE_START)


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    lines = [line.strip() for line in ci.splitlines() if line.strip()]
    assert "set -euo pipefail" in lines
    assert "make test" in lines
