"""The `medbench` command line: each command a thin call into the modules.

Every error a user can cause ends in `Medbench.main`: printed as `where: what. What to do.`
(the shape of a spec error, with the option or the command as `where`), no traceback, and the
exit status of its kind: 2 for usage, spec and data errors, 1 for failed work
(`medbench.errors.EXIT_USAGE`, `EXIT_FAILED`).
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

# typer vendors click: the errors its parser raises are these, not `click`'s.
from typer._click import exceptions as click_errors
from typer._click.core import Command, Parameter
from typer.core import TyperGroup

from medbench import __version__
from medbench.commands import audit, cache, leaderboard, runner, scoring, validate
from medbench.commands import parse as parse_cmd
from medbench.commands import prompts as prompts_cmd
from medbench.commands.convert import convert_app
from medbench.errors import (
    EXIT_FAILED,
    MedbenchError,
    SpecError,
    UnknownIdError,
    UsageError,
    printable,
)

PROG = "medbench"
OPTION_OF_KIND = {
    "suite": "--suite",
    "model": "--model",
    "task": "--task",
    "prompt variant": "--variant",
    "executor": "--executor",
}
"""The option an unknown id most likely came from when the command line does not show it (a
default such as `--suite quickstart`)."""


class Medbench(TyperGroup):
    """The root command: reports every user error in one place (see the module docstring)."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        try:
            status = super().main(
                argv, prog_name, complete_var, False, windows_expand_args, **extra
            )
            status = status if isinstance(status, int) else 0
        except click_errors.NoArgsIsHelpError as e:
            e.show()
            status = e.exit_code
        except (click_errors.ClickException, MedbenchError) as e:
            _echo(report(e, argv, self))
            status = e.exit_code
        except typer.Abort:
            _echo("Aborted.")
            status = EXIT_FAILED
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            _echo(no_space(e))
            status = EXIT_FAILED
        if standalone_mode:
            sys.exit(status)
        return status


def _echo(text: str) -> None:
    print(printable(text), file=sys.stderr)


def report(
    error: click_errors.ClickException | MedbenchError, argv: list[str], root: Command
) -> str:
    """The lines that say what went wrong with the command `argv` runs, where, and what to do."""
    path, command = _command(root, argv)
    if isinstance(error, SpecError):
        return str(error)
    if isinstance(error, UsageError):
        where = error.where
        if not where and isinstance(error, UnknownIdError):
            given = _option_given(command, argv, error.value)
            where = given or _option_of_kind(command, error.kind) or ""
        return f"{where or path}: {error.problem}"
    if isinstance(error, click_errors.UsageError):
        return _parse_error(error, path)
    if isinstance(error, click_errors.ClickException):
        return f"error: {error.format_message()}"
    return f"error: {error}"


def _parse_error(error: click_errors.UsageError, path: str) -> str:
    """A click parsing error (an unknown option, a bad value) in the shape of the others."""
    see = f" See '{path} --help'."
    if isinstance(error, click_errors.NoSuchOption):
        near = sorted(error.possibilities or ())
        hint = f" Did you mean {' or '.join(near)}?" if near else ""
        return f"{error.option_name}: {path} has no such option.{hint}{see}"
    if isinstance(error, click_errors.MissingParameter) and error.param is not None:
        return f"{_name(error.param)}: {path} needs this {error.param.param_type_name}.{see}"
    if isinstance(error, click_errors.BadParameter) and error.param is not None:
        # typer words a failed conversion as pydantic does: "Value error, ..."
        problem = error.message.removeprefix("Value error, ")
        return f"{_name(error.param)}: {_sentence(problem)}{see}"
    return f"{path}: {_sentence(error.format_message())}{see}"


def no_space(e: OSError) -> str:
    where = Path(e.filename).parent if e.filename else Path.cwd()
    return (
        f"error: no space left on the device while writing {e.filename or 'a file'}. "
        f"Free space in {where} and run again: the answers cached so far are kept."
    )


def _command(root: Command, argv: list[str]) -> tuple[str, Command]:
    """The command `argv` names (`medbench cache prune`), and its click command."""
    path, command = [PROG], root
    for token in argv:
        sub = command.commands.get(token) if isinstance(command, TyperGroup) else None
        if sub is None:
            if not token.startswith("-"):
                break
            continue
        path.append(token)
        command = sub
    return " ".join(path), command


def _option_given(command: Command, argv: list[str], value: str) -> str | None:
    """The option `argv` gives `value` to (`-s nope`, `--suite=nope`), by its long name."""
    for before, token in zip(["", *argv], argv, strict=False):
        name, equals, given = token.partition("=")
        if equals and name.startswith("--") and given == value:
            option = _long(command, name)
        elif token == value and before.startswith("-") and "=" not in before:
            option = _long(command, before)
        else:
            continue
        if option is not None:
            return option
    return None


def _option_of_kind(command: Command, kind: str) -> str | None:
    option = OPTION_OF_KIND.get(kind)
    return option if option is not None and _long(command, option) == option else None


def _long(command: Command, option: str) -> str | None:
    for param in command.params:
        if option in (*param.opts, *param.secondary_opts):
            return _name(param)
    return None


def _name(param: Parameter) -> str:
    if param.param_type_name == "argument":
        return str(param.name)  # as the usage line shows it: `[specs]`
    return next((o for o in param.opts if o.startswith("--")), param.opts[0])


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "?", "!")) else f"{text}."


app = typer.Typer(
    name=PROG,
    cls=Medbench,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: flags print as `--score / --no-score` (rich mode adds `<bool>`), and `[ray]`
    # or `[@REV]` in a help text is text, not markup.
    rich_markup_mode=None,
    context_settings={"max_content_width": 120},
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
    """Measure how fragile vision-language models are on medical images.

    Exit status: 0 success; 2 a usage, spec or data error; 1 failed work.

    Example: medbench run specs --suite quickstart
    """


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
app.command()(leaderboard.republish)
app.add_typer(leaderboard.site_app, name="site")
app.add_typer(convert_app, name="convert")


app.command()(parse_cmd.parse)
app.command("audit-parse")(audit.audit_parse)


def main() -> None:
    """Entry point: `Medbench.main` prints user errors and exits with their status."""
    app()
