"""Tests of the libbpf binding and the pytest plugin on real objects in the real kernel.

The objects are compiled once per session from tests/fixtures/plugin/*.bpf.c into a
fake project (bpfbuild.toml + output/<arch>/bpf/NAME.bpf.o), so that the plugin finds
them as it would in a user's project. Plugin behaviour (fixtures, skips, failures) is
checked by running pytest on small test files in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from bpfutil import compile_bpf, generate_vmlinux_header
from buildutil import needs_bpf, require_bpf, require_tracefs

from bpfbuild.arch import host_arch
from bpfbuild.pipeline.layout import Layout
from bpfbuild.testing.btf import FormatLayout
from bpfbuild.testing.libbpf import (
    BpfError,
    BpfObject,
    BpfUnsupportedError,
    RingBuffer,
    num_possible_cpus,
)

pytest_plugins = ["pytester"]

FIXTURES = Path(__file__).parent / "fixtures" / "plugin"
REPO = Path(__file__).parent.parent
XDP_DROP, XDP_PASS = 1, 2
ETH_IPV4 = bytes(12) + b"\x08\x00"
ETH_ARP = bytes(12) + b"\x08\x06"

pytestmark = needs_bpf


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fake bpfbuild project holding every fixture object, built for the host arch."""
    require_bpf()
    root = tmp_path_factory.mktemp("project")
    (root / "bpfbuild.toml").write_text("")
    layout = Layout(root, host_arch().name)
    layout.include_dir.mkdir(parents=True)
    layout.bpf_object("x").parent.mkdir(parents=True)
    generate_vmlinux_header(layout.include_dir)
    for source in sorted(FIXTURES.glob("*.bpf.c")):
        compile_bpf(source, layout.bpf_object("x").parent, layout.include_dir)
    subprocess.run(
        ["cc", "-O2", "-g", str(FIXTURES / "add_numbers.c"), "-o", str(root / "add_numbers")],
        check=True,
    )
    return root


def open_object(project: Path, name: str) -> BpfObject:
    return BpfObject.open(Layout(project, host_arch().name).bpf_object(name))


@pytest.fixture
def xdp(project: Path) -> Iterator[BpfObject]:
    with open_object(project, "xdp_count") as obj:
        obj.load()
        yield obj


@pytest.fixture
def tracefs() -> None:
    require_tracefs()


# ------------------------------------------------------------- direct API


def test_xdp_test_run_and_per_cpu_counter(xdp: BpfObject) -> None:
    program = xdp.program("xdp_count")
    packet = ETH_IPV4 + bytes(86)
    result = program.test_run(data_in=packet, repeat=10)
    assert result.retval == XDP_PASS
    assert result.data_out == packet
    assert result.duration_ns >= 0
    per_cpu = xdp.map("pkt_count").lookup(0, decode=int)
    assert len(per_cpu) == num_possible_cpus()
    assert sum(per_cpu) == 10


def test_hash_map_struct_values_decoded_by_btf(xdp: BpfObject) -> None:
    program = xdp.program("xdp_count")
    program.test_run(data_in=ETH_IPV4 + bytes(50))
    program.test_run(data_in=ETH_IPV4 + bytes(86))
    program.test_run(data_in=ETH_ARP + bytes(28))
    stats = dict(xdp.map("stats").items(decode="btf", key_decode=int))
    assert stats == {
        0x0800: {"packets": 2, "bytes": 164, "last_len": 100, "tag": "new"},
        0x0806: {"packets": 1, "bytes": 42, "last_len": 42, "tag": "new"},
    }
    layout = xdp.btf.struct("pkt_stats")
    assert layout.decode(xdp.map("stats").lookup(0x0806))["bytes"] == 42
    user_layout = FormatLayout("<QQH", ["packets", "bytes", "last_len"])
    assert xdp.map("stats").lookup(0x0800, decode=user_layout)["last_len"] == 100


def test_map_update_delete_iterate(xdp: BpfObject) -> None:
    stats = xdp.map("stats")
    assert len(stats) == 0
    stats.update(1, {"packets": 5, "tag": "manual"})
    stats[2] = bytes(stats.value_size)
    assert sorted(stats.keys(decode=int)) == [1, 2]
    assert stats.lookup(1, decode="btf") == {
        "packets": 5,
        "bytes": 0,
        "last_len": 0,
        "tag": "manual",
    }
    assert 2 in stats and 3 not in stats
    assert stats.delete(2) is True
    assert stats.delete(2) is False
    assert [key for key in stats.keys(decode=int)] == [1]
    with pytest.raises(KeyError):
        stats[3]
    with pytest.raises(BpfError, match="key is 2 bytes, expected 4"):
        stats.lookup(b"\0\0")


def test_per_cpu_update_sets_each_cpu(xdp: BpfObject) -> None:
    counters = xdp.map("pkt_count")
    counters.update(0, list(range(num_possible_cpus())))
    assert counters.lookup(0, decode=int) == list(range(num_possible_cpus()))
    counters.update(0, 7)
    assert counters.lookup(0, decode=int) == [7] * num_possible_cpus()


@pytest.mark.parametrize(
    ("max_len", "length", "verdict"),
    [
        (0, 200, XDP_PASS),
        (64, 60, XDP_PASS),
        (64, 100, XDP_DROP),
    ],
)
def test_rodata_global_changes_behaviour(
    project: Path, max_len: int, length: int, verdict: int
) -> None:
    with open_object(project, "xdp_count") as obj:
        obj.set_global("max_len", max_len)
        obj.load()
        assert obj.get_global("max_len") == max_len
        assert obj.program("xdp_count").test_run(ETH_IPV4 + bytes(length - 14)).retval == verdict
        assert obj.get_global("dropped") == (verdict == XDP_DROP)
        with pytest.raises(BpfError, match="frozen once loaded"):
            obj.set_global("max_len", 1)


def test_socket_filter_test_run(project: Path) -> None:
    with open_object(project, "sockfilter") as obj:
        obj.load()
        program = obj.program("keep_ipv4")
        ipv4 = ETH_IPV4 + bytes(86)
        # The socket filter sees the packet after the Ethernet header.
        assert program.test_run(ipv4).retval == len(ipv4) - 14
        assert program.test_run(ETH_ARP + bytes(28)).retval == 0


def test_test_run_input_errors(xdp: BpfObject) -> None:
    with pytest.raises(BpfError) as caught:
        xdp.program("xdp_count").test_run(ETH_IPV4 + bytes(86), data_size_out=10)
    assert caught.value.errno == 28  # ENOSPC
    assert "data_size_out" in (caught.value.hint or "")


def test_tracepoint_ring_buffer_events(project: Path, tracefs: None) -> None:
    with open_object(project, "execve_tp") as obj:
        obj.load()
        obj.set_global("filter_ppid", os.getpid())  # .bss: settable after load
        with obj.program("on_execve").attach():
            child = subprocess.Popen(["/bin/true"])
            child.wait()
        events = obj.map("events").ringbuf_consume(decode="struct exec_event")
        assert {"pid": child.pid, "ppid": os.getpid(), "filename": "/bin/true"}.items() <= next(
            e for e in events if e["pid"] == child.pid
        ).items()
        assert all(e["ppid"] == os.getpid() for e in events)
        assert obj.get_global("seen") == len(events)


def test_ring_buffer_poll_with_callback(project: Path, tracefs: None) -> None:
    with open_object(project, "execve_tp") as obj:
        obj.set_global("filter_ppid", os.getpid())  # before load: the initial value
        obj.load()
        pids: list[int] = []
        with (
            obj.program("on_execve").attach(),
            RingBuffer(
                obj.map("events"), lambda e: pids.append(e["pid"]), decode="struct exec_event"
            ) as ring,
        ):
            child = threading.Thread(target=subprocess.run, args=(["/bin/true"],))
            child.start()
            for _ in range(50):
                ring.poll(timeout_ms=100)
                if pids:
                    break
            child.join()
        assert len(pids) == 1


def test_ring_buffer_callback_exception_propagates(project: Path, tracefs: None) -> None:
    with open_object(project, "execve_tp") as obj:
        obj.set_global("filter_ppid", os.getpid())
        obj.load()
        with obj.program("on_execve").attach():
            subprocess.run(["/bin/true"], check=True)

        def fail(_record: bytes) -> None:
            raise ValueError("from callback")

        with (
            RingBuffer(obj.map("events"), fail) as ring,
            pytest.raises(ValueError, match="from callback"),
        ):
            ring.consume()


def test_uprobe_on_compiled_binary(project: Path) -> None:
    binary = project / "add_numbers"
    with open_object(project, "uprobe_add") as obj:
        obj.load()
        with (
            obj.program("on_add").attach_uprobe(binary, "add_numbers"),
            obj.program("on_add_return").attach_uprobe(binary, "add_numbers", retprobe=True),
        ):
            run = subprocess.run(
                [str(binary), "3", "4"], capture_output=True, text=True, check=True
            )
        assert run.stdout == "7\n"
        last_call = obj.map("last_call").lookup(0, decode="btf")
        assert {k: last_call[k] for k in ("a", "b", "result")} == {"a": 3, "b": 4, "result": 7}
        assert obj.get_global("calls") == 1
        subprocess.run([str(binary), "1", "1"], check=True, capture_output=True)
        assert obj.get_global("calls") == 1, "destroying the link detaches the uprobe"


def test_fentry_refused_is_unsupported_with_log(project: Path) -> None:
    with open_object(project, "fentry_unlink") as obj:
        try:
            obj.load()
        except BpfUnsupportedError as exc:
            assert exc.errno == 1  # EPERM despite root
            assert "fentry/do_unlinkat" in exc.message
            assert "on_unlink" in exc.libbpf_log
        else:
            pytest.skip("this kernel allows fentry: nothing refused to test")


def test_kprobe_attach_without_kprobes_is_unsupported(project: Path) -> None:
    if Path("/sys/bus/event_source/devices/kprobe").exists():
        pytest.skip("this kernel has kprobes: nothing refused to test")
    with open_object(project, "kprobe_unlink") as obj:
        obj.load()
        with pytest.raises(BpfUnsupportedError) as caught:
            obj.program("on_unlink_kprobe").attach()
        assert caught.value.hint == "this kernel has no kprobe support"


def test_missing_object_and_unknown_names(project: Path, tmp_path: Path) -> None:
    with pytest.raises(BpfError) as caught:
        BpfObject.open(tmp_path / "nope.bpf.o")
    assert caught.value.hint == "run `bpfbuild build`"
    with open_object(project, "xdp_count") as obj:
        with pytest.raises(BpfError) as caught:
            obj.program("nope")
        assert caught.value.hint == "programs: xdp_count"
        with pytest.raises(BpfError, match="no map 'nope'"):
            obj.map("nope")
        with pytest.raises(BpfError, match="not loaded"):
            obj.program("xdp_count").test_run(ETH_IPV4)


def test_garbage_file_open_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.bpf.o"
    garbage.write_bytes(b"not an ELF file")
    with pytest.raises(BpfError) as caught:
        BpfObject.open(garbage)
    assert "open" in caught.value.message
    assert caught.value.libbpf_log, "libbpf's own message is captured"


# ------------------------------------------------------------- the plugin

PLUGIN_TESTS = """
import os
import pytest

XDP_DROP, XDP_PASS = 1, 2
PACKET = bytes(12) + b"\\x08\\x00" + bytes(86)


def test_xdp_with_globals(bpf_object):
    obj = bpf_object("xdp_count", globals={"max_len": 64})
    assert obj.program("xdp_count").test_run(PACKET, repeat=3).retval == XDP_DROP
    assert sum(obj.map("pkt_count").lookup(0, decode=int)) == 3


def test_open_without_load(bpf_object):
    obj = bpf_object("xdp_count", load=False)
    assert not obj.loaded
    obj.set_global("max_len", 1000)
    obj.load()
    assert obj.program("xdp_count").test_run(PACKET).retval == XDP_PASS


def test_project_found(bpf_project, bpf_object_path):
    assert (bpf_project.root / "bpfbuild.toml").is_file()
    assert bpf_object_path("xdp_count").name == "xdp_count.bpf.o"


def test_execve_events(bpf_object, bpf_trigger):
    obj = bpf_object("execve_tp", globals={"filter_ppid": os.getpid()})
    with obj.program("on_execve").attach():
        pid = bpf_trigger.exec("/bin/true")
    events = obj.map("events").ringbuf_consume(decode="struct exec_event")
    assert [e["pid"] for e in events] == [pid]


def test_fentry_in_fixture(bpf_object):
    bpf_object("fentry_unlink")
    raise AssertionError("fentry loaded: this kernel allows it")


def test_fentry_in_test_body(bpf_object):
    obj = bpf_object("fentry_unlink", load=False)
    obj.load()
    raise AssertionError("fentry loaded: this kernel allows it")


def test_kprobe_attach(bpf_object):
    obj = bpf_object("kprobe_unlink")
    if os.path.exists("/sys/bus/event_source/devices/kprobe"):
        pytest.skip("kprobes present")
    obj.program("on_unlink_kprobe").attach()
    raise AssertionError("kprobe attached without kprobe support")


def test_not_built(bpf_object):
    bpf_object("never_built")


@pytest.mark.bpf_requires("root", "btf")
def test_requires_met():
    pass


@pytest.mark.bpf_requires("no_such_feature")
def test_requires_unknown():
    pass
"""


def run_plugin(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.RunResult:
    """pytest in a subprocess with only bpfbuild's plugin (entry point installed or not)."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    )
    return pytester.runpytest_subprocess("-p", "bpfbuild.testing.pytest_plugin", "-rA", "-v")


@pytest.fixture
def plugin_project(
    pytester: pytest.Pytester, project: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """pytester's folder made a project: the plugin finds bpfbuild.toml above the tests."""
    pytester.makefile(".toml", bpfbuild="")
    (pytester.path / "output").symlink_to(project / "output")
    monkeypatch.delenv("BPFBUILD_PROJECT", raising=False)
    return pytester.path


def test_plugin_end_to_end(
    pytester: pytest.Pytester, plugin_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every fixture, the skips and the failures; the plugin mounts tracefs if needed."""
    pytester.makepyfile(test_objects=PLUGIN_TESTS)
    result = run_plugin(pytester, monkeypatch)
    result.stdout.fnmatch_lines_random(
        [
            "*test_xdp_with_globals PASSED*",
            "*test_open_without_load PASSED*",
            "*test_project_found PASSED*",
            "*test_execve_events PASSED*",
            "*test_fentry_in_fixture SKIPPED*",
            "*test_fentry_in_test_body SKIPPED*",
            "*test_kprobe_attach SKIPPED*",
            "*test_not_built FAILED*",
            "*test_requires_met PASSED*",
            "*test_requires_unknown ERROR*",
            "BPF object 'never_built' is not built (*never_built.bpf.o is missing): run `bpfbuild build`",
            "*unknown bpf_requires feature 'no_such_feature'; known: root, btf*",
        ]
    )
    skips = [line for line in result.outlines if line.startswith("SKIPPED")]
    fentry_skips = [
        line for line in skips if 'SEC("fentry/do_unlinkat") despite privileges' in line
    ]
    assert len(skips) == 3 and len(fentry_skips) == 2
    assert all("EPERM" in line for line in fentry_skips)
    result.assert_outcomes(passed=5, skipped=3, failed=1, errors=1)


def test_plugin_project_from_environment(
    pytester: pytest.Pytester, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BPFBUILD_PROJECT", str(project))
    pytester.makepyfile(
        test_env=f"""
        def test_root(bpf_project, bpf_object_path):
            assert bpf_project.root.name == {project.name!r}
            assert bpf_object_path("sockfilter").is_file()
    """
    )
    run_plugin(pytester, monkeypatch).assert_outcomes(passed=1)


def test_plugin_without_project_fails_clearly(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BPFBUILD_PROJECT", raising=False)
    pytester.makepyfile(
        test_none="""
        def test_needs_project(bpf_object):
            bpf_object("xdp_count")
    """
    )
    result = run_plugin(pytester, monkeypatch)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no bpfbuild.toml found*BPFBUILD_PROJECT*"])
