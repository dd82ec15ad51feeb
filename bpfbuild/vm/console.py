"""The result channel: what the guest's /init prints on the serial console, framed by
markers with a nonce of the run, and its parsing on the host.

    @@bpfbuild-<nonce> boot <uname -r>
    @@bpfbuild-<nonce> state <when> <file> <value>   kernel state after boot or an object
    @@bpfbuild-<nonce> object <name>
    {"kind":"runner",...}                 the runner's stdout, JSON lines
    @@bpfbuild-<nonce> exit <name> <status>
    @@bpfbuild-<nonce> log <name> <file>  then the file, gzip + base64
    @@bpfbuild-<nonce> end
    @@bpfbuild-<nonce> done               last: the guest is about to power off

Kernel messages and other console noise between them are kept only for the tail
shown when a VM fails. The nonce is in /init alone, so nothing else can forge a marker.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import secrets
from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Markers:
    """The marker prefix of one VM run."""

    nonce: str = field(default_factory=lambda: secrets.token_hex(8))

    @property
    def prefix(self) -> str:
        return f"@@bpfbuild-{self.nonce} "

    def line(self, *words: str) -> str:
        return self.prefix + " ".join(words)


@dataclass
class GuestObjectOutput:
    """What the guest reported for one object."""

    name: str
    stdout: str = ""
    """The runner's JSON lines."""
    status: int | None = None
    """The runner's exit status; None when the VM stopped before it ended."""
    logs: dict[str, bytes] = field(default_factory=dict)
    """File name (`<program>.log`, `<name>.stderr`) -> content."""


class ConsoleReader:
    """Parses the console line by line as the VM prints it."""

    TAIL_LINES = 40

    def __init__(self, markers: Markers) -> None:
        self.markers = markers
        self.release: str | None = None
        self.objects: dict[str, GuestObjectOutput] = {}
        self.done = False
        self.tail: deque[str] = deque(maxlen=self.TAIL_LINES)
        self._current: GuestObjectOutput | None = None
        self._log: tuple[GuestObjectOutput, str, list[str]] | None = None
        self.bad_logs: list[str] = []
        """`object/file` of each log whose text did not decode."""
        self.states: list[tuple[str, str, str]] = []
        """(when: `boot` or the object just verified, file, value) as /init printed them."""

    def feed(self, raw: str) -> str | None:
        """Take one console line; returns the event it marks (`boot`, `object`,
        `exit`, `done`) or None."""
        line = raw.rstrip("\r\n").replace("\r", "")
        prefix = self.markers.prefix
        if not line.startswith(prefix):
            at = line.find(prefix)
            if at > 0:  # a kernel message glued in front of a marker
                self.tail.append(line[:at])
                line = line[at:]
        if not line.startswith(prefix):
            if self._log is not None:
                self._log[2].append(line.strip())
            elif self._current is not None and line.startswith("{"):
                self._current.stdout += line + "\n"
            else:
                self.tail.append(line)
            return None
        words = line[len(prefix) :].split()
        kind, args = (words[0], words[1:]) if words else ("", [])
        if kind == "boot" and args:
            self.release = args[0]
        elif kind == "object" and args:
            self._current = self.objects.setdefault(args[0], GuestObjectOutput(args[0]))
        elif kind == "exit" and len(args) == 2 and args[0] in self.objects:
            self.objects[args[0]].status = int(args[1]) if args[1].isdigit() else 255
            self._current = None
        elif kind == "log" and len(args) == 2 and args[0] in self.objects:
            self._log = (self.objects[args[0]], args[1], [])
        elif kind == "end" and self._log is not None:
            owner, name, chunks = self._log
            try:
                owner.logs[name] = gzip.decompress(base64.b64decode("".join(chunks)))
            except (binascii.Error, OSError, EOFError):
                self.bad_logs.append(f"{owner.name}/{name}")
            self._log = None
        elif kind == "state" and len(args) >= 2:
            self.states.append((args[0], args[1], " ".join(args[2:])))
        elif kind == "done":
            self.done = True
        else:
            return None
        return kind

    def tail_text(self) -> str:
        return "\n".join(line for line in self.tail if line.strip())
