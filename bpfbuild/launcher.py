"""Entry point of the `bpfbuild` command: a no-op `bpfbuild build` is answered from the
last successful build's stamp (build/fastpath.py) before click or doit is imported;
everything else goes to the command line in cli.py.

Ctrl-C before a command's body runs (imports, the fast path, click's parsing) has
nothing to undo: it prints one line and exits 130 (early_interrupt). A command then
takes Ctrl-C as KeyboardInterrupt (cli.handle_errors), which stops its steps. Python's
own start-up, before this module's first line, is Python's."""

from __future__ import annotations

import os
import signal
import sys


def early_interrupt(signum: int, frame: object) -> None:
    """SIGINT before a command runs: one line, exit 130, no traceback."""
    try:
        os.write(2, b"interrupted\n")
    except OSError:
        pass
    os._exit(130)


signal.signal(signal.SIGINT, early_interrupt)

from .pipeline import fastpath  # noqa: E402 - after the handler: Ctrl-C while it imports

STDOUT_CLOSED = (
    "error: standard output is closed\n"
    "hint: give bpfbuild somewhere to write: `>/dev/null` drops its output\n"
)


def _standard_files() -> bool:
    """Open /dev/null on standard input or error when closed, so that no file bpfbuild
    opens takes their number (a child writing its errors would write into it); False
    when standard output is closed."""
    closed = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            closed.append(fd)
    for fd in closed:
        null = os.open(os.devnull, os.O_RDWR)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
    return 1 not in closed


def main() -> int | None:
    """Exit 0 at once when the stamp vouches for this build; else run the full CLI."""
    if not _standard_files():
        os.write(2, STDOUT_CLOSED.encode())
        return 1
    # the check may rewrite the stamp: Ctrl-C waits for it (a few milliseconds)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        reason = fastpath.check(sys.argv[1:])
    except Exception as err:  # noqa: BLE001 - any doubt falls back to the full graph
        reason = f"{type(err).__name__}: {err}"
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    if reason is None:
        fastpath.trace("hit")
        return 0
    if sys.argv[1:2] == ["build"]:
        fastpath.trace(f"miss ({reason})")
    from .cli import main as cli_main
    from .cli import report

    try:
        return cli_main()
    except Exception as err:  # noqa: BLE001 - raised outside a command (click's own code)
        report(err)
