"""The `piaoxi` command: one Typer app whose sub-commands live beside the code they drive.

Each command module keeps its heavy imports (faust, OCR engines, torch) inside the command
functions, so `piaoxi --help` stays fast.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

from piaoxi.log import configure_logging
from piaoxi.settings import get_settings

app = typer.Typer(
    name="piaoxi",
    help="piaoxi (漂洗): wash scans of Chinese historical documents into searchable text.",
    no_args_is_help=True,
    add_completion=False,
    # Docstrings are wrapped at 88 columns in the source: markdown joins their lines into
    # paragraphs instead of breaking them again wherever the source did.
    rich_markup_mode="markdown",
)


@app.callback()
def _root() -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)


def _register() -> None:
    """Let every module in `piaoxi.commands` attach its commands.

    A command module defines `register(app: typer.Typer) -> None`; modules are visited in
    name order, so adding a command never means editing this file.
    """
    import piaoxi.commands as commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        try:
            module = importlib.import_module(f"piaoxi.commands.{info.name}")
            register = getattr(module, "register", None)
            if register is not None:
                register(app)
        except Exception as exc:
            # one broken command module must not take the others (e.g. `stack`) down
            print(
                f"piaoxi: command module piaoxi.commands.{info.name} failed to load: "
                f"{type(exc).__name__}: {exc}",
                file=sys.stderr,
            )


_register()


def main() -> None:
    app()


if __name__ == "__main__":  # `python -m piaoxi.cli`, as well as the `piaoxi` script
    main()
