"""`vsplade-train`: the training distribution's command line (typer)."""

from __future__ import annotations

import typer

from .commands import captions, merge_captions, train
from .eval.command import eval_command

app = typer.Typer(help="Train, caption and evaluate V-SPLADE models.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]})


def _version(value: bool):
    if value:
        from importlib.metadata import version

        typer.echo(version("vsplade-training"))
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="More logging; tracebacks on errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
):
    import logging

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


app.command("train")(train)
app.command("captions")(captions)
app.command("merge-captions")(merge_captions)
app.command("eval")(eval_command)


def main() -> None:
    # the same one-line error contract as `vsplade` (usage errors exit 2, no tracebacks)
    from vsplade.cli import run_app

    run_app(app, "vsplade-train")


if __name__ == "__main__":
    main()
