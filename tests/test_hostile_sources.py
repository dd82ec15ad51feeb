"""Hostile sources: what editors leave beside a project's files is ignored (no error, no
step, the fast path still answers); anything but a regular file where bpfbuild expects
a source, a header or a BTF file (a FIFO, a device, a socket, a folder, a link to
nothing or a loop), a name that is not UTF-8, and two sources with one output are each
an `error:` naming it and what it is, with a `hint:`, never a hang (a FIFO is never
opened) nor a traceback. After each case, the hostile file removed, a build gives the
bytes of a clean build."""

from __future__ import annotations

import os
import shutil
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from buildutil import ARCH
from hostileutil import KEPT, Lab, assert_error, make_lab

pytestmark = pytest.mark.usefixtures("lab")

LOCK_TARGET = "user@host.1234:1700000000"
"""What Emacs's lock link `.#NAME` points to: nothing that exists."""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    cache = tmp_path_factory.mktemp("cache")
    return make_lab(tmp_path_factory.mktemp("lab"), dict(os.environ, BPFBUILD_CACHE_DIR=str(cache)))


# -- what a case makes ------------------------------------------------------------------


def lock_link(path: Path) -> None:
    path.symlink_to(LOCK_TARGET)


def copy_of(source: str) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.write_bytes((path.parent.parent / source).read_bytes())

    return make


def some_bytes(path: Path) -> None:
    path.write_bytes(b"\x00vim swap\x00")


def fifo(path: Path) -> None:
    os.mkfifo(path)


def char_device(path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mknod of a device needs root")
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 5))  # as /dev/zero: never ends


def unix_socket(path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))


def folder(path: Path) -> None:
    path.mkdir()
    (path / "inside.h").write_text("#define INSIDE 1\n")


def dangling(path: Path) -> None:
    path.symlink_to("nowhere")


def loop(path: Path) -> None:
    path.symlink_to(path.name)


# -- editors' leftovers: ignored --------------------------------------------------------


@dataclass(frozen=True)
class Leftover:
    path: str
    make: Callable[[Path], None]
    fast: bool = True
    """The fast path still answers (the folder's listing is unchanged but leftovers)."""


LEFTOVERS = [
    Leftover("src/.#hello.c", lock_link),
    Leftover("src/.#hello.bpf.c", lock_link),
    Leftover("src/.#hello.h", lock_link),
    Leftover("src/.#new.bpf.c", lock_link),
    Leftover("src/#hello.c#", copy_of("src/hello.c")),
    Leftover("src/#hello.bpf.c#", copy_of("src/hello.bpf.c")),
    Leftover("src/#hello.h#", copy_of("src/hello.h")),
    Leftover("src/.hello.c.swp", some_bytes),
    Leftover("src/.hello.bpf.c.swo", some_bytes),
    Leftover("src/.hello.h.swx", some_bytes),
    Leftover("src/.hello.h.swn", some_bytes),
    Leftover("src/hello.c~", copy_of("src/hello.c")),
    Leftover("src/hello.bpf.c~", copy_of("src/hello.bpf.c")),
    Leftover("src/hello.h~", copy_of("src/hello.h")),
    Leftover("src/4913", some_bytes),
    Leftover("src/.goutputstream-Q1W2E3", some_bytes),
    Leftover("src/hello.c.kate-swp", some_bytes),
    Leftover("include/sub/.#extra.h", lock_link),
    Leftover("include/sub/extra.h~", copy_of("sub/extra.h")),
    Leftover("include/sub/.extra.h.swp", some_bytes),
    Leftover("include/.#x.h", lock_link),
    Leftover("src/.#hello.c.fifo.h", fifo),  # a leftover's name, whatever it is
    # not leftovers, but not what discovery reads either: ignored, never opened
    Leftover("src/notes", fifo, fast=False),
    Leftover("src/dev", char_device, fast=False),
    Leftover("src/sock", unix_socket, fast=False),
    Leftover("src/link", dangling, fast=False),
    Leftover("src/README.md", some_bytes, fast=False),
]


@pytest.mark.parametrize("leftover", LEFTOVERS, ids=[c.path for c in LEFTOVERS])
def test_editors_leftovers_are_ignored(lab: Lab, leftover: Leftover) -> None:
    before = lab.snapshot()
    try:
        leftover.make(lab.root / leftover.path)
        traced = dict(lab.env, BPFBUILD_TRACE="1")
        run = lab.run("build", env=traced, timeout=30)  # a FIFO read would hang
        assert run.returncode == 0, run.describe()
        assert run.steps == [], run.describe()
        assert ("fastpath: hit" in run.stderr) == leftover.fast, run.describe()
        (lab.root / ".bpfbuild" / "fastpath.stamp").unlink()
        full = lab.run("build", env=traced, timeout=30)  # the build graph ignores it too
        assert full.returncode == 0 and full.steps == [], full.describe()
        listed = lab.run("list")
        assert listed.returncode == 0 and leftover.path.split("/")[-1] not in listed.stdout
    finally:
        lab.restore(before)
    lab.assert_clean_build()


# -- what is not a regular file where one is expected: an error naming its kind ---------

KINDS = [
    ("fifo", fifo, "a FIFO (named pipe)"),
    ("char-device", char_device, "a character device"),
    ("socket", unix_socket, "a socket"),
    ("folder", folder, "a folder"),
    ("dangling-link", dangling, "a symbolic link to nothing"),
    ("link-loop", loop, "a symbolic link loop"),
]
HEADER_HINT = "bpfbuild reads every *.h of the include folders (src, include)"
PLACES = [
    ("src/odd.c", "not a source file", "remove or rename src/odd.c: every src/*.c is compiled"),
    (
        "src/odd.bpf.c",
        "not a source file",
        "remove or rename src/odd.bpf.c: every src/*.c is compiled",
    ),
    ("src/odd.h", "not a header", f"remove or rename src/odd.h: {HEADER_HINT}"),
    ("include/odd.h", "not a header", f"remove or rename include/odd.h: {HEADER_HINT}"),
    ("include/sub/odd.h", "not a header", f"remove or rename include/sub/odd.h: {HEADER_HINT}"),
]


@dataclass(frozen=True)
class Odd:
    id: str
    make: Callable[[Lab], None]
    error: str
    hint: str
    args: tuple[str, ...] = ("build",)


def at(path: str, make: Callable[[Path], None]) -> Callable[[Lab], None]:
    def setup(lab: Lab) -> None:
        (lab.root / path).parent.mkdir(parents=True, exist_ok=True)
        make(lab.root / path)

    return setup


def with_toml(text: str, *makes: tuple[str, Callable[[Path], None]]) -> Callable[[Lab], None]:
    def setup(lab: Lab) -> None:
        for path, make in makes:
            at(path, make)(lab)
        with open(lab.root / "bpfbuild.toml", "a") as toml:
            toml.write(text)

    return setup


def in_build(line: str, *makes: tuple[str, Callable[[Path], None]]) -> Callable[[Lab], None]:
    """A line added to the project's [build] table, and files made."""

    def setup(lab: Lab) -> None:
        for path, make in makes:
            at(path, make)(lab)
        toml = lab.root / "bpfbuild.toml"
        toml.write_text(toml.read_text().replace("[build]\n", f"[build]\n{line}\n", 1))

    return setup


def text(content: str) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.write_text(content)

    return make


def empty(path: Path) -> None:
    path.write_bytes(b"")


NOT_UTF8 = os.fsdecode(b"w\xffx")

ODD = [
    *[
        Odd(f"{kind}-{path}", at(path, make), f"{path} is {what}, {role}", hint)
        for kind, make, what in KINDS
        for path, role, hint in PLACES
    ],
    *[
        Odd(
            f"not-utf8-{shown}",
            at(path, text("int x;\n")),
            f"{shown}: the file name is not UTF-8 (byte 0xff)",
            "rename it with UTF-8 characters only",
        )
        for path, shown in [
            (f"src/{NOT_UTF8}.c", "src/w\\xffx.c"),
            (f"src/{NOT_UTF8}.bpf.c", "src/w\\xffx.bpf.c"),
            (f"src/{NOT_UTF8}.h", "src/w\\xffx.h"),
            (f"include/{NOT_UTF8}.h", "include/w\\xffx.h"),
            (f"include/{NOT_UTF8}/x.h", "include/w\\xffx/x.h"),
        ]
    ],
    *[
        Odd(
            f"app-source-{kind}",
            with_toml('[app.hello]\nsources = ["src/hello.c", "lib/odd.c"]\n', ("lib/odd.c", make)),
            f"app 'hello' lists 'lib/odd.c', which is {what}, not a file",
            "replace lib/odd.c with a regular file, or fix [app.hello] sources",
        )
        for kind, make, what in KINDS
        if kind not in ("folder", "link-loop")
    ],
    Odd(
        "app-source-folder",
        with_toml('[app.hello]\nsources = ["src/hello.c", "lib/odd.c"]\n', ("lib/odd.c", folder)),
        "app 'hello' lists 'lib/odd.c', which is a folder, not a file",
        "list the files in [app.hello] sources",
    ),
    *[
        Odd(
            f"object-source-{kind}",
            with_toml('[object.hello]\nsources = ["bpf/odd.bpf.c"]\n', ("bpf/odd.bpf.c", make)),
            f"'object.hello.sources': 'bpf/odd.bpf.c' is {what}",
            "list regular files",
        )
        for kind, make, what in KINDS
        if kind not in ("folder", "link-loop")
    ],
    *[
        Odd(
            f"vmlinux-{kind}",
            with_toml(f'[vmlinux]\n{ARCH} = "btf/odd"\n', ("btf/odd", make)),
            f'[vmlinux] {ARCH} = "btf/odd": {what}',
            "give a BTF file",
        )
        for kind, make, what in [*KINDS, ("empty", empty, "an empty file, not BTF")]
        if kind != "link-loop"
    ],
    *[
        # the configuration's paths are resolved (to refuse those that leave the
        # project) before they are read: a loop is said there
        Odd(
            f"{table}-link-loop",
            with_toml(toml, (path, loop)),
            f"{path} is a symbolic link loop",
            "remove or replace the link: it leads, through others or itself, back to itself",
        )
        for table, toml, path in [
            ("app-source", '[app.hello]\nsources = ["src/hello.c", "lib/odd.c"]\n', "lib/odd.c"),
            ("object-source", '[object.hello]\nsources = ["bpf/odd.bpf.c"]\n', "bpf/odd.bpf.c"),
            ("vmlinux", f'[vmlinux]\n{ARCH} = "btf/odd"\n', "btf/odd"),
            ("libbpf-source", '[libbpf]\nsource = "lb"\n', "lb"),
        ]
    ],
    Odd(
        "include-dirs-link-loop",
        in_build('include_dirs = ["src", "inc"]', ("inc", loop)),
        "inc is a symbolic link loop",
        "remove or replace the link",
    ),
    *[
        Odd(
            f"src-is-{kind}",
            at(
                "src",
                lambda path, make=make: (os.rename(path, path.with_name("src.kept")), make(path)),
            ),
            f"/src is {what}, not a folder",
            "move it away: bpfbuild discovers the sources in the folder src/",
        )
        for kind, make, what in [
            ("fifo", fifo, "a FIFO (named pipe)"),
            ("file", text("x"), "a file"),
            ("dangling-link", dangling, "a symbolic link to nothing"),
        ]
    ],
    Odd(
        "header-linked-to-a-fifo",
        lambda lab: (os.mkfifo(lab.root / "pipe"), (lab.root / "src/odd.h").symlink_to("../pipe")),
        "src/odd.h is a FIFO (named pipe), not a header",
        f"remove or rename src/odd.h: {HEADER_HINT}",
    ),
    Odd(
        "source-linked-to-a-folder",
        lambda lab: ((lab.root / "lib").mkdir(), (lab.root / "src/odd.c").symlink_to("../lib")),
        "src/odd.c is a folder, not a source file",
        "remove or rename src/odd.c: every src/*.c is compiled",
    ),
    Odd(
        "bpf-source-linked-to-a-socket",
        lambda lab: (
            unix_socket(lab.root / "sock"),
            (lab.root / "src/odd.bpf.c").symlink_to("../sock"),
        ),
        "src/odd.bpf.c is a socket, not a source file",
        "remove or rename src/odd.bpf.c: every src/*.c is compiled",
    ),
    # two sources, one output
    Odd(
        "user-objects-clash",
        with_toml(
            '[app.hello]\nsources = ["src/hello.c", "lib/x/y.c", "lib/x__y.c"]\n',
            ("lib/x/y.c", text("int y;\n")),
            ("lib/x__y.c", text("int xy;\n")),
        ),
        f"user sources lib/x/y.c and lib/x__y.c would both be compiled to "
        f"output/{ARCH}/user/lib__x__y.c.o",
        "rename one of them",
    ),
    Odd(
        "user-objects-clash-in-src",
        with_toml(
            '[app.hello]\nsources = ["src/hello.c", "src/a/b.c", "src/a__b.c"]\n',
            ("src/a/b.c", text("int b;\n")),
            ("src/a__b.c", text("int ab;\n")),
        ),
        f"user sources src/a/b.c and src/a__b.c would both be compiled to "
        f"output/{ARCH}/user/src__a__b.c.o",
        "rename one of them",
    ),
    Odd(
        "objects-differing-by-case",
        lambda lab: [
            (lab.root / f"src/{name}.bpf.c").write_text((lab.root / "src/hello.bpf.c").read_text())
            for name in ("P", "p")
        ],
        "objects 'P' and 'p' have the same skeleton header guard __P_BPF_SKEL_H__",
        "give one of them its own skel_name in [object.P] or [object.p]",
    ),
    Odd(
        "two-sources-one-object",
        with_toml(
            '[app.extra]\nbpf = ["bpf/hello.bpf.c"]\nsources = ["src/hello.c"]\n',
            ("bpf/hello.bpf.c", text("int x;\n")),
        ),
        "two BPF sources make object 'hello': src/hello.bpf.c and bpf/hello.bpf.c",
        "rename one of them",
    ),
]


@pytest.mark.parametrize("odd", ODD, ids=[o.id for o in ODD])
def test_what_is_not_a_regular_file_is_an_error_naming_it(lab: Lab, odd: Odd) -> None:
    before = lab.snapshot()
    try:
        odd.make(lab)
        run = lab.run(*odd.args, timeout=30)  # a FIFO opened would hang
        assert_error(run.output, run.returncode, 1, odd.error, odd.hint)
        assert "symbolic link to nothing" not in run.stderr or "dangling" in odd.id, run.stderr
    finally:
        lab.restore(before)
    lab.assert_clean_build()


OWN = [
    ("bpf-depfile", f"output/{ARCH}/bpf/hello.bpf.d", fifo),
    (
        "bpf-depfile-garbage",
        f"output/{ARCH}/bpf/hello.bpf.d",
        lambda p: p.write_bytes(bytes(range(256))),
    ),
    ("user-depfile", f"output/{ARCH}/user/src__hello.c.d", fifo),
    ("bpf-object", f"output/{ARCH}/bpf/hello.bpf.o", fifo),
    ("skeleton", f"output/{ARCH}/include/hello.skel.h", fifo),
    ("vmlinux-header", f"output/{ARCH}/include/vmlinux.h", fifo),
    ("executable", f"output/{ARCH}/hello", fifo),
    ("compile-database", "compile_commands.json", fifo),
    ("fast-path-stamp", ".bpfbuild/fastpath.stamp", fifo),
]


@pytest.mark.parametrize("name,path,make", OWN, ids=[o[0] for o in OWN])
def test_a_fifo_or_garbage_in_place_of_an_output_is_rebuilt_never_read(
    lab: Lab, name: str, path: str, make: Callable[[Path], None]
) -> None:
    """bpfbuild's own files replaced by a FIFO (or garbage): never waited on, rebuilt."""
    target = lab.root / path
    if os.path.lexists(target):
        target.unlink()
    make(target)
    run = lab.run("build", timeout=60)
    assert run.returncode == 0, run.describe()
    assert "Traceback" not in run.output
    if name != "fast-path-stamp":
        assert target.is_file() and not target.is_symlink(), run.describe()
    lab.assert_clean_build()


def test_an_error_from_scratch_leaves_no_output(tmp_path: Path, lab: Lab) -> None:
    """From an empty output/, a FIFO header stops the build before any step: nothing is
    written, and the next build is a clean build."""
    root = tmp_path / "hello"
    shutil.copytree(lab.root, root, symlinks=True, ignore=shutil.ignore_patterns(*KEPT))
    os.mkfifo(root / "src" / "pipe.h")
    fresh = Lab(root, lab.clean, lab.env)
    run = fresh.run("build", timeout=30)
    assert_error(run.output, run.returncode, 1, "src/pipe.h is a FIFO (named pipe)", "remove")
    assert not (root / "output").exists()
    (root / "src" / "pipe.h").unlink()
    fresh.assert_clean_build()


def test_the_tables_are_long() -> None:
    assert len(LEFTOVERS) + len(ODD) + len(OWN) >= 100
