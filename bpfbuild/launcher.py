"""Entry point of the `bpfbuild` command: a no-op `bpfbuild build` is answered from the
last successful build's stamp (build/fastpath.py) before click or doit is imported;
everything else goes to the command line in cli.py."""

from __future__ import annotations

import sys

from .pipeline import fastpath


def main() -> int | None:
    """Exit 0 at once when the stamp vouches for this build; else run the full CLI."""
    try:
        reason = fastpath.check(sys.argv[1:])
    except Exception as err:  # noqa: BLE001 - any doubt falls back to the full graph
        reason = f"{type(err).__name__}: {err}"
    if reason is None:
        fastpath.trace("hit")
        return 0
    if sys.argv[1:2] == ["build"]:
        fastpath.trace(f"miss ({reason})")
    from .cli import main as cli_main
    from .cli import report_bug

    try:
        return cli_main()
    except Exception as err:  # noqa: BLE001 - raised outside a command (click's own code)
        report_bug(err)
