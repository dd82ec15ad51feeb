"""One line per VM: redrawn in place on a terminal (booting, verifying n/m, done,
seconds), printed once when the VM ends otherwise (CI logs stay short)."""

from __future__ import annotations

import sys
import threading
from typing import TextIO


class VmProgress:
    """The VM lines of one run, shared by the threads that run the VMs."""

    def __init__(self, stream: TextIO | None = None, live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.lines: dict[str, str] = {}
        self.drawn = 0
        self.lock = threading.Lock()

    def update(self, label: str, state: str) -> None:
        """A VM's state changed; on a terminal its line is redrawn."""
        with self.lock:
            self.lines[label] = f"  VM      {label}: {state}"
            if self.live:
                self._redraw()

    def finish(self, label: str, summary: str) -> None:
        """A VM ended: its last line, printed in both modes."""
        with self.lock:
            self.lines[label] = f"  VM      {label}: {summary}"
            if self.live:
                self._redraw()
            else:
                self.stream.write(self.lines[label] + "\n")
                self.stream.flush()

    def _redraw(self) -> None:
        # Move up over the lines drawn last time, then rewrite all of them.
        text = f"\x1b[{self.drawn}F" if self.drawn else ""
        text += "".join(f"\x1b[2K{line}\n" for line in self.lines.values())
        self.drawn = len(self.lines)
        self.stream.write(text)
        self.stream.flush()


progress = VmProgress()
"""The process's VM lines (bpfbuild runs one verify per process)."""
