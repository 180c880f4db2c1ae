"""The `medbench` command line: each command a thin call into the modules."""

from __future__ import annotations

import errno
import sys
from pathlib import Path

import typer

from medbench import __version__
from medbench.commands import audit, cache, leaderboard, runner, scoring, validate
from medbench.commands import parse as parse_cmd
from medbench.commands import prompts as prompts_cmd
from medbench.commands.convert import convert_app
from medbench.errors import MedbenchError, SpecError, printable

app = typer.Typer(
    name="medbench",
    help="Measure how fragile vision-language models are on medical images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"medbench {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Measure how fragile vision-language models are on medical images."""


app.command()(validate.validate)
app.command()(validate.schema)
app.command()(runner.plan)
app.command()(prompts_cmd.prompts)
app.command()(runner.run)
app.command()(scoring.score)
app.command("tiny-model")(runner.tiny_model)
app.add_typer(runner.check_app, name="check")
app.add_typer(cache.app, name="cache")
app.command()(leaderboard.publish)
app.command()(leaderboard.verify)
app.add_typer(leaderboard.site_app, name="site")
app.add_typer(convert_app, name="convert")


app.command()(parse_cmd.parse)
app.command("audit-parse")(audit.audit_parse)


def main() -> None:
    """Entry point: user errors print their message and exit 2 (specs) or 1, with no traceback."""
    try:
        app()
    except SpecError as e:
        print(printable(str(e)), file=sys.stderr)
        sys.exit(2)
    except MedbenchError as e:
        print(printable(f"error: {e}"), file=sys.stderr)
        sys.exit(1)
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = Path(e.filename).parent if e.filename else Path.cwd()
        print(
            printable(
                f"error: no space left on the device while writing {e.filename or 'a file'}. "
                f"Free space in {where} and run again: the answers cached so far are kept."
            ),
            file=sys.stderr,
        )
        sys.exit(1)
