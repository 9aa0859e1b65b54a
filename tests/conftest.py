"""Fixtures every test can use: the local stack and per-test isolated settings.

- `stack` (session): makes sure the local stack is up (the same as `piaoxi stack up`,
  idempotent: services already running are left alone) and returns the base `Settings`.
  The stack's home is `PIAOXI_HOME` when set (environment or the repository's `.env`),
  else `<repo>/.piaoxi`; its ports come from the same settings. A stack already running
  from that home is reused; a port taken by anything else fails the session with a message
  naming the service, the port and its log file (and, when the port belongs to another
  checkout's stack, that stack's home). A second checkout then either shares that stack
  (`PIAOXI_HOME=<its home>`: safe, every test is isolated by its prefixes and database) or
  runs its own with other ports (README, "Two stacks on one machine"). No silent adoption:
  a stack is only reused through its home, where its credentials and pid files are.
- `settings` (function): a fresh isolated `Settings` on that stack: topic prefix
  `t<hex>.`, its own Postgres database `piaoxi_t<hex>`, index prefix `t<hex>`, consumer
  groups `t<hex>-workers` / `t<hex>-projector`. Afterwards the database is dropped and
  the topics and search indices with its prefixes are deleted.
  Child processes get it with `env={**os.environ, **settings.as_env()}`.
- `make_settings` (function): a factory for more isolated settings in one test
  (`make_settings()`, or `make_settings(pool_size=1)` with overrides); each is cleaned up
  like `settings` after the test.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from piaoxi.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def stack_settings(**overrides: Any) -> Settings:
    """The base settings of the local stack the tests use (see module docstring)."""
    env_file = ROOT / ".env"
    from_file: dict[str, str | None] = {}
    if env_file.is_file():
        from dotenv import dotenv_values

        from_file = dotenv_values(env_file)
    values: dict[str, Any] = {}
    if "PIAOXI_HOME" not in os.environ and not from_file.get("PIAOXI_HOME"):
        values["home"] = ROOT / ".piaoxi"
    values.update(overrides)
    return Settings(_env_file=env_file if env_file.is_file() else None, **values)


@pytest.fixture(scope="session")
def stack() -> Settings:
    """The running local stack (started when needed); its base settings."""
    from piaoxi.stack import LocalStack, StackError

    local = LocalStack(stack_settings())
    try:
        local.up()
    except StackError as exc:
        pytest.exit(f"the local stack is not available: {exc}", returncode=3)
    return local.settings_for_clients()


@pytest.fixture
def make_settings(stack: Settings) -> Iterator[Callable[..., Settings]]:
    """A factory of isolated settings, each with its own database (all removed afterwards)."""
    from piaoxi.stack import create_database, drop_isolated, isolated_settings

    made: list[Settings] = []

    def make(**overrides: Any) -> Settings:
        isolated = isolated_settings(stack)
        if overrides:
            isolated = isolated.model_copy(update=overrides)
        create_database(isolated)
        made.append(isolated)
        return isolated

    yield make
    for isolated in made:
        drop_isolated(isolated)


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Fresh isolated settings on the local stack: own topics, database, index, groups."""
    return make_settings()
