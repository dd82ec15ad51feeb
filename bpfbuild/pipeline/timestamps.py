"""When a file's stat proves it unchanged: git's "racy" rule, the one home of the clock
granularity every check of the build state uses (imports nothing: the no-op fast path
imports it before anything else).

A file's times come from a clock that lags by up to a timer tick, and some file systems
keep whole seconds. A stat taken in the same tick as the file's last change cannot see
a second change in that tick (same size, same times): a record of a file's stat vouches
for its content only when the file is older than the record by more than the clock's
granularity. A file that is not is "racy": its content must be compared.
"""

from __future__ import annotations

RACE_MARGIN_NS = 20_000_000
"""The granularity of file times on a file system that keeps nanoseconds: a timer tick
is 1-10 ms; 20 ms leaves room."""
COARSE_RACE_MARGIN_NS = 2_000_000_000
"""The same for a file system that keeps whole seconds (FAT keeps 2 s)."""


def margin(time_ns: int) -> int:
    """The granularity to allow for a file time: wider when it is a whole second."""
    return COARSE_RACE_MARGIN_NS if time_ns % 1_000_000_000 == 0 else RACE_MARGIN_NS


def is_racy(time_ns: int, at_ns: int) -> bool:
    """True when a file last changed at time_ns (its mtime or ctime) could change again
    without its stat showing it, as far as a stat taken at at_ns can tell."""
    return time_ns >= at_ns - margin(time_ns)


def newest_time(st) -> int:
    """The later of a stat's mtime and ctime (an mtime may be set in the future)."""
    return max(st.st_mtime_ns, st.st_ctime_ns)
