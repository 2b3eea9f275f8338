"""`vsplade-train`: the training distribution's command line (typer)."""

from __future__ import annotations

import typer

from .commands import captions, merge_captions, train
from .eval.command import eval_command

app = typer.Typer(help="Train, caption and evaluate V-SPLADE models.", no_args_is_help=True, add_completion=False)

app.command("train")(train)
app.command("captions")(captions)
app.command("merge-captions")(merge_captions)
app.command("eval")(eval_command)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
