"""Tests of kconv: each object in the kernel with the tally library linked into it,
then the loaders end to end.

Run them with `sudo -E bpfbuild test` (build, verify, then pytest). The fixtures come
from bpfbuild's pytest plugin: bpf_object("execcount") opens and loads the built
output/<arch>/bpf/execcount.bpf.o, bpf_trigger makes events happen. A test that needs
root, or a kernel feature this machine lacks, is skipped with the reason.
"""

import subprocess
from pathlib import Path

import pytest

OUR_COMM = Path("/proc/self/comm").read_text().strip()


def tally_of(obj):
    """The library's map as {program name: count}."""
    return {key["comm"]: count
            for key, count in obj.map("tally").items(decode=int, key_decode="btf")}


def test_execcount_tallies_execs_by_program(bpf_object, bpf_trigger):
    obj = bpf_object("execcount")
    with obj.program("count_exec").attach():
        for _ in range(3):
            bpf_trigger.exec("/bin/true")
    assert tally_of(obj).get("true", 0) >= 3  # tally_current(), from the library
    assert obj.get_global("execs") >= 3


def test_forkcount_reads_the_librarys_map_through_its_extern(bpf_object, bpf_trigger):
    obj = bpf_object("forkcount")
    with obj.program("count_fork").attach():
        bpf_trigger.exec("/bin/true")  # this process forks it
    tally = tally_of(obj)
    assert tally.get(OUR_COMM, 0) >= 1, tally
    # busiest is the highest count forkcount read from the library's map itself.
    assert obj.get_global("busiest") >= tally[OUR_COMM] >= 1
    assert obj.get_global("forks") >= 1
    assert obj.get_global("last_child") > 0  # read with BPF_CORE_READ(child, pid)


def test_each_object_has_its_own_tally(bpf_object, bpf_trigger):
    execs, forks = bpf_object("execcount"), bpf_object("forkcount")
    with execs.program("count_exec").attach():
        bpf_trigger.exec("/bin/true")
    assert "true" in tally_of(execs)
    assert tally_of(forks) == {}  # never attached: its copy of the map stayed empty


# ---------------------------------------------------------------- the loaders


@pytest.fixture(params=["execcount", "forkcount"])
def loader(request, bpf_project):
    path = bpf_project.layout.executable(request.param)
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


def rows(output):
    """The tally a loader printed, as {program name: count}."""
    lines = output.splitlines()
    start = lines.index(next(line for line in lines if line.split() == ["COMM", "COUNT"]))
    return {line.split()[0]: int(line.split()[1]) for line in lines[start + 1:]}


@pytest.mark.bpf_requires("root", "tracefs")
def test_execcount_counts_the_programs_a_command_starts(bpf_project):
    loader = bpf_project.layout.executable("execcount")
    done = subprocess.run([loader, "--", "sh", "-c", "/bin/true; /bin/true; /bin/true"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[1]) >= 4  # "execs: N": sh and three /bin/true
    assert rows(done.stdout).get("true", 0) >= 3, done.stdout


@pytest.mark.bpf_requires("root")
def test_forkcount_counts_the_forks_of_a_command(bpf_project):
    loader = bpf_project.layout.executable("forkcount")
    done = subprocess.run([loader, "--", "sh", "-c", "/bin/true; /bin/true; exit 3"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 3, done.stderr  # the command's status
    counts = rows(done.stdout)
    assert counts.get("sh", 0) >= 2 and counts.get("forkcount", 0) >= 1, done.stdout
