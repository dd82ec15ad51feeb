"""Tests of execsnoop: the BPF program in the kernel, then the loader end to end.

Run them with `sudo -E bpfbuild test` (build, verify, then pytest). The fixtures come
from bpfbuild's pytest plugin: bpf_object("execsnoop") opens and loads the built
output/<arch>/bpf/execsnoop.bpf.o, bpf_trigger makes events happen. A test that needs
root, or a kernel feature this machine lacks, is skipped with the reason.
"""

import os
import signal
import subprocess
from pathlib import Path

import pytest

OUR_COMM = Path("/proc/self/comm").read_text().strip()


def test_reports_execve_of_our_children(bpf_object, bpf_trigger):
    obj = bpf_object("execsnoop", globals={"target_ppid": os.getpid()})
    with obj.program("handle_execve").attach():
        pid = bpf_trigger.exec("/bin/true")
    events = obj.map("events").ringbuf_consume(decode="struct event")
    assert [e["pid"] for e in events] == [pid]
    # comm is still the parent's: sys_enter_execve fires before the new image replaces it.
    assert events[0] == {
        "pid": pid, "ppid": os.getpid(), "uid": os.getuid(), "comm": OUR_COMM,
        "filename": "/bin/true",
    }


def test_filter_leaves_out_other_parents(bpf_object, bpf_trigger):
    obj = bpf_object("execsnoop", globals={"target_ppid": 1})  # init's children only
    with obj.program("handle_execve").attach():
        pid = bpf_trigger.exec("/bin/true")
    events = obj.map("events").ringbuf_consume(decode="struct event")
    assert pid not in [e["pid"] for e in events]
    assert all(e["ppid"] == 1 for e in events)


def test_no_filter_reports_every_process(bpf_object, bpf_trigger):
    obj = bpf_object("execsnoop")
    with obj.program("handle_execve").attach():
        pid = bpf_trigger.exec("/bin/true")
    events = obj.map("events").ringbuf_consume(decode="struct event")
    assert pid in [e["pid"] for e in events]


# ---------------------------------------------------------------- the loader


@pytest.fixture
def loader(bpf_project):
    path = bpf_project.layout.executable("execsnoop")
    if not path.is_file():
        pytest.fail(f"{path} is not built: run `bpfbuild build`", pytrace=False)
    return path


def test_loader_usage(loader):
    for flag in ("-h", "--help"):
        result = subprocess.run([loader, flag], capture_output=True, text=True, check=False)
        assert result.returncode == 0
        assert result.stdout.startswith("usage:")
    result = subprocess.run([loader, "-d", "soon"], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "invalid duration 'soon'" in result.stderr


@pytest.mark.bpf_requires("root", "tracefs")
def test_loader_prints_execve_until_interrupted(loader):
    process = subprocess.Popen([loader, "-p", str(os.getpid()), "-d", "20"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    header = process.stdout.readline()  # printed once the program is attached
    assert header.split() == ["PID", "PPID", "UID", "COMM", "FILENAME"], process.stderr.read()
    subprocess.run(["/bin/true"], check=True)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert any(line.split()[1:2] == [str(os.getpid())] and line.endswith("/bin/true")
               for line in out.splitlines()), out
