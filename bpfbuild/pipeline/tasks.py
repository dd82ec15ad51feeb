"""The task graph: doit task dicts for vmlinux.h, BPF objects, skeletons, user objects and apps."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..arch import host_arch
from ..errors import ToolchainError
from . import actions, aliases, libbpf_source
from .bpfcheck import require_programs
from .config import PCH_AUTO_MIN
from .depfile import existing_deps
from .elfcheck import bpf_expectation, bpftool_expectation, native_expectation
from .layout import Layout
from .project import KERNEL_BTF, BpfObject, Project
from .state import ConfigChanged, TargetsAsRecorded
from .toolchain import BPF_CPU, Toolchain

if TYPE_CHECKING:  # bpfbuild.vm is imported only by the commands that verify in VMs
    from ..vm.targets import Target, VerifyPlan

TaskDict = dict


def task_name(kind: str, item: str, arch: str | None = None, prefix: str = "") -> str:
    """The full doit name of a bpfbuild task: `bpf:x86_64/hello`; with no arch, `app:hello`.
    prefix names the project when a dodo.py holds several (`execsnoop.bpf:...`)."""
    return f"{prefix}{kind}:{arch}/{item}" if arch else f"{prefix}{kind}:{item}"


@dataclass(frozen=True)
class Command:
    """One command of a step, as `-v` prints it: a line that pastes into a shell."""

    argv: tuple[str, ...]
    stdout: str | None = None
    """The file the command's stdout is written to (bpftool btf dump, gen skeleton)."""

    def shell(self) -> str:
        line = shlex.join(self.argv)
        return f"{line} > {shlex.quote(self.stdout)}" if self.stdout else line


class TaskFactory:
    """Creates the tasks of one project for one arch.

    Every file_dep and target is absolute (doit may run from another folder, as the
    repo's dodo.py does); commands run in the project root with relative paths, so
    diagnostics and depfiles name `src/...`; -ffile-prefix-map turns the root that
    the compilers still record (DW_AT_comp_dir, BTF line info) into `.`, so objects,
    skeletons and executables are the same bytes wherever the project lives.
    """

    def __init__(
        self,
        project: Project,
        toolchain: Toolchain,
        prefix: str = "",
        verify: bool | VerifyPlan = False,
    ) -> None:
        self.project = project
        self.toolchain = toolchain
        self.arch = toolchain.arch
        self.layout = Layout(project.root, self.arch.name)
        self.prefix = prefix
        self.show_arch = len(project.arches) > 1
        self._headers_include_skeletons: bool | None = None
        self._uses_pch: dict[str, bool] = {}
        # verify: True (the running kernel) or a VerifyPlan (kernels x arches).
        self.plan = None if isinstance(verify, bool) else verify
        # Loading programs in the running kernel: only its own arch.
        self.verify_tasks = (
            bool(verify) and self.arch == host_arch() and (self.plan is None or self.plan.host)
        )
        self.vm_targets = self.plan.vms(self.arch.name) if self.plan else []

    # -- naming and display -------------------------------------------------

    def name(self, kind: str, item: str) -> str:
        """Full doit task name of this arch, e.g. `bpf:x86_64/hello`."""
        return task_name(kind, item, self.arch.name, self.prefix)

    def rel(self, path: Path) -> str:
        return str(path.relative_to(self.project.root))

    def _task(
        self,
        kind: str,
        item: str,
        label: str,
        shown: str,
        commands: list[Command],
        uptodate: list | None = None,
        **task,
    ) -> TaskDict:
        """A task dict; its meta holds what the reporter shows (see step_line), and its
        uptodate always ends with the check that its targets are as recorded."""
        basename = f"{self.prefix}{kind}"
        return {
            "basename": basename,
            "name": self.name(kind, item)[len(basename) + 1 :],
            "title": task_title,
            "meta": {
                "kind": kind,
                "label": label,
                "shown": shown,
                "arch": self.arch.name,
                "several_arches": self.show_arch,
                "commands": commands,
                "cwd": str(self.project.root),
            },
            "uptodate": [*(uptodate or []), TargetsAsRecorded()],
            **task,
        }

    @functools.cached_property
    def _expect(self) -> dict[str, dict]:
        """The `expect` argument of each kind of action: the ELF arch its output must have."""
        toolchain, env = self.toolchain, dict(os.environ)
        return {
            "bpf": {"expect": bpf_expectation(self.arch, toolchain.clang.path, env)},
            "bpftool": {"expect": bpftool_expectation(self.arch, toolchain.bpftool.path)},
            # no C compiler for a cross arch without apps: nothing native to check
            "cc": {
                "expect": native_expectation(
                    self.arch, toolchain.cc.path, self.arch == host_arch(), env
                )
            }
            if toolchain.cc
            else {},
        }

    def _changed(self, tool: str, argv: list[str], **extra) -> ConfigChanged:
        """Rebuild when the tool's path or version, the arch or the command change."""
        found = getattr(self.toolchain, tool.replace("-", "_"))
        return ConfigChanged(
            {
                "tool": found.path,
                "version": found.version,
                "arch": self.arch.name,
                "argv": argv,
                **extra,
            }
        )

    # -- tasks ---------------------------------------------------------------

    def vmlinux(self) -> TaskDict:
        """vmlinux.h from BTF (bpftool btf dump) or copied from a ready header. For a
        Debian kernel ([vmlinux] arm64 = "debian:6.1"), the BTF is the one cut out of
        its image in the user's cache, and the kernel's provenance (package, version,
        the .deb's SHA-256) is part of the task's state and written beside the header
        as vmlinux.h.source.json."""
        source = self.project.vmlinux[self.arch.name]
        header = str(self.layout.vmlinux_header)
        source_path = str(source.file(self.project.root))
        targets = [header]
        if source.is_header:
            action = (actions.copy_file, (source_path, header))
            commands = [Command(("cp", source_path, header))]
            changed = ConfigChanged({"copy": source.path})
        else:
            argv = [self.toolchain.bpftool.path, "btf", "dump", "file", source_path, "format", "c"]
            bpftool = self.toolchain.bpftool
            action = (
                actions.generate_vmlinux,
                (
                    tuple(argv),
                    str(self.project.root),
                    header,
                    source_path,
                    (bpftool.path, bpftool.version),
                ),
            )
            commands = [Command(tuple(argv), stdout=self.rel(self.layout.vmlinux_header))]
            kernel = {"kernel": source.kernel.provenance()} if source.kernel else {}
            changed = self._changed("bpftool", argv, **kernel)
        task_actions = [action]
        if source.kernel:
            record = header + ".source.json"
            targets.append(record)
            task_actions.append((write_provenance, (record, source.kernel.provenance())))
        return self._task(
            "vmlinux",
            "vmlinux.h",
            "GEN",
            self.rel(self.layout.vmlinux_header),
            commands,
            actions=task_actions,
            file_dep=[source_path],
            targets=targets,
            uptodate=[changed],
        )

    def reproducible_flags(self) -> list[str]:
        """The same bytes wherever the project lives (as bpf2go pins them): debug info
        and __FILE__ name the root `.`, not its absolute path (DW_AT_comp_dir, BTF line
        info); no compiler version string in a .comment section."""
        return [f"-ffile-prefix-map={self.project.root}=.", "-fno-ident"]

    def bpf_flags(self, obj: BpfObject | None = None) -> list[str]:
        """clang and its flags for every BPF compile of this arch (and for the
        precompiled vmlinux.h, which must be built with the very same flags); with
        obj, that object's own [object.NAME] bpf_cflags come last."""
        toolchain = self.toolchain
        argv = [
            toolchain.clang.path,
            "-g",  # BTF + line info: CO-RE and verifier source lines
            "-O2",  # the verifier rejects unoptimized BPF
            "-Wall",
            *self.reproducible_flags(),
            "-target",
            self.arch.bpf_target,  # BPF byte order must match the kernel's
            f"-D__TARGET_ARCH_{self.arch.target_arch}",  # bpf_tracing.h picks PT_REGS by arch
            f"-mcpu={BPF_CPU}",  # the BPF ISA of every kernel bpfbuild targets (toolchain.BPF_CPU)
            "-I",
            self.rel(self.layout.include_dir),  # vmlinux.h for this arch
            *[f"-I{d}" for d in self.project.include_dirs],
            *toolchain.libbpf.cflags,  # <bpf/bpf_helpers.h>
        ]
        for directory in toolchain.system_include_dirs:
            argv += ["-idirafter", directory]  # <linux/*.h>: -target bpf drops multiarch dirs
        return argv + self.project.config.build.bpf_cflags + list(obj.bpf_cflags if obj else ())

    def vmlinux_pch(self) -> TaskDict:
        """vmlinux.h precompiled once per arch and flag set: parsing its ~3 MB is most
        of each BPF compile. Objects come out byte-identical to a build without it.
        No compile waits for it (see actions.compile_bpf)."""
        layout = self.layout
        pch, key_file = layout.vmlinux_pch, layout.vmlinux_pch_key
        argv = [
            *self.bpf_flags(),
            *self.relocatable_pch_flags(),
            "-x",
            "c-header",
            self.rel(layout.vmlinux_header),
            "-o",
            actions.partial(self.rel(pch)),
        ]
        return self._task(
            "pch",
            "vmlinux.h.pch",
            "PCH",
            self.rel(pch),
            [Command(tuple(argv))],
            actions=[
                (
                    actions.build_pch,
                    (
                        tuple(argv),
                        str(self.project.root),
                        str(pch),
                        str(key_file),
                        self.pch_key,
                        str(layout.vmlinux_header),
                    ),
                )
            ],
            file_dep=[str(layout.vmlinux_header)],
            targets=[str(pch), str(key_file)],
            uptodate=[self._changed("clang", argv)],
        )

    def pch_first(self) -> TaskDict:
        """No action: the BPF compiles wait for this task, and it for vmlinux.h, as the
        PCH does. When vmlinux.h is done, doit queues the ready tasks FIFO, so the PCH
        is queued before this task releases the compiles: it starts first, and the
        other jobs compile without it meanwhile. Always up to date: it runs nothing."""
        return {
            "basename": f"{self.prefix}order",
            "name": self.name("order", "pch-first")[len(f"{self.prefix}order") + 1 :],
            "actions": None,
            "task_dep": [self.name("vmlinux", "vmlinux.h")],
            "uptodate": [True],
            "doc": f"starts the PCH of {self.arch.name} before the BPF compiles",
        }

    def relocatable_pch_flags(self, use: bool = False) -> list[str]:
        """A PCH records the path of vmlinux.h, and the compiles that take it need that
        file. Made relocatable, with the project as its sysroot, it records
        `output/<arch>/include/vmlinux.h` and finds it in the project that uses it,
        so one PCH serves every project (the machine-wide cache) and a moved one.
        Objects are the same bytes. A compile that takes it (use) names the same
        sysroot, and keeps /usr/local/include, which a sysroot drops, in its place
        among the system folders."""
        sysroot = ["-isysroot", str(self.project.root)]
        if use:
            return [*sysroot, "-isystem", "/usr/local/include"]
        return ["-Xclang", "-relocatable-pch", *sysroot]

    @functools.cached_property
    def pch_key(self) -> str:
        """Names the flags and clang a PCH was built with; the key file adds vmlinux.h's
        digest (content.CONTENT_DIGEST). Once per arch: every BPF task of the arch
        passes it to its action."""
        clang = self.toolchain.clang
        # Without the project's folder (-ffile-prefix-map): the machine-wide cache
        # shares one relocatable PCH between projects.
        flags = [
            flag.replace(str(self.project.root), "<root>")
            for flag in [*self.bpf_flags(), *self.relocatable_pch_flags()]
        ]
        text = json.dumps([clang.path, clang.version, flags])
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def uses_pch(self, obj: BpfObject) -> bool:
        """Only sources whose first directive includes vmlinux.h can take the PCH:
        one that defines macros first (BPF_NO_PRESERVE_ACCESS_INDEX...) or uses uapi
        headers instead must see exactly what it asked for. With pch = "auto", none
        does when fewer than PCH_AUTO_MIN can. Each source is read once."""
        if not self._uses_pch:
            pch = self.project.config.build.pch
            # An object with flags of its own would need a PCH of its own: it parses
            # vmlinux.h itself (the PCH key holds the flags it was built with).
            takers = {
                name: pch is not False
                and not o.bpf_cflags
                and includes_vmlinux_first(self.project.root / o.source)
                for name, o in self.project.bpf_objects.items()
            }
            if pch == "auto" and sum(takers.values()) < PCH_AUTO_MIN:
                takers = dict.fromkeys(takers, False)
            self._uses_pch.update(takers)
        return self._uses_pch[obj.name]

    def bpf_compile_argv(self, obj: BpfObject, pch: bool = True) -> list[str]:
        """The clang command for one BPF object; with pch, the one that takes the
        precompiled vmlinux.h when the source can."""
        layout = self.layout
        pch_flags = []
        if pch and self.uses_pch(obj):
            pch_flags = [
                *self.relocatable_pch_flags(use=True),
                "-include-pch",
                self.rel(layout.vmlinux_pch),
                # clang checks the header's mtime; the key file checks its
                # content instead (actions.pch_ready), so a touch cannot fail
                "-Xclang",
                "-fno-validate-pch",
            ]
        return [
            *self.bpf_flags(obj),
            *pch_flags,
            "-MD",
            "-MP",
            "-MF",
            actions.partial(self.rel(layout.bpf_depfile(obj.name))),
            "-c",
            obj.source,
            "-o",
            actions.partial(self.rel(layout.bpf_compiled(obj.name))),
        ]

    def bpf_compile(self, obj: BpfObject) -> TaskDict:
        layout = self.layout
        argv = self.bpf_compile_argv(obj)
        targets = [str(layout.bpf_compiled(obj.name)), str(layout.bpf_depfile(obj.name))]
        # vmlinux.h itself, not the 15 MB PCH: the PCH changes only with vmlinux.h
        # or the flags, which this task tracks already.
        file_dep = self._header_deps(obj.source, layout.bpf_depfile(obj.name))
        direct_argv = pch = None
        if self.uses_pch(obj):
            file_dep.append(str(layout.vmlinux_header))
            direct_argv = tuple(self.bpf_compile_argv(obj, pch=False))
            pch = (str(layout.vmlinux_pch_key), self.pch_key, str(layout.vmlinux_header))
        return self._task(
            "bpf",
            obj.name,
            "BPF",
            obj.source,
            [Command(tuple(argv))],
            actions=[
                (
                    actions.compile_bpf,
                    (
                        tuple(argv),
                        direct_argv,
                        str(self.project.root),
                        tuple(targets),
                        targets[1],
                        pch,
                    ),
                    self._expect["bpf"],
                ),
                (require_programs, (targets[0], obj.source)),
            ],
            file_dep=file_dep,
            task_dep=[
                self.name("order", "pch-first")
                if self.needs_pch()
                else self.name("vmlinux", "vmlinux.h"),
                *self.libbpf_header_tasks(),
            ],
            targets=targets,
            uptodate=[self._changed("clang", argv)],
        )

    @property
    def cross_endian(self) -> bool:
        """BPF objects of the other byte order (s390x's bpfeb on a little-endian host):
        libbpf 1.1's linker and skeleton generator refuse them."""
        return self.arch.bpf_target != host_arch().bpf_target

    def bpf_link(self, obj: BpfObject) -> TaskDict:
        """`bpftool gen object`: static linking of BPF; also drops DWARF, keeps BTF.
        A cross-endian object is the compiled one as is (with its DWARF)."""
        compiled, linked = self.layout.bpf_compiled(obj.name), self.layout.bpf_object(obj.name)
        if self.cross_endian:
            return self._task(
                "bpfobj",
                obj.name,
                "GENOBJ",
                self.rel(linked),
                [Command(("cp", self.rel(compiled), self.rel(linked)))],
                actions=[(actions.copy_file, (str(compiled), str(linked)))],
                file_dep=[str(compiled)],
                targets=[str(linked)],
                uptodate=[ConfigChanged({"copy": "cross-endian"})],
            )
        argv = [
            self.toolchain.bpftool.path,
            "gen",
            "object",
            actions.partial(self.rel(linked)),
            self.rel(compiled),
        ]
        return self._task(
            "bpfobj",
            obj.name,
            "GENOBJ",
            self.rel(linked),
            [Command(tuple(argv))],
            actions=[
                (
                    actions.run_tool,
                    (tuple(argv), str(self.project.root), (str(linked),)),
                    self._expect["bpftool"],
                )
            ],
            file_dep=[str(compiled)],
            targets=[str(linked)],
            uptodate=[self._changed("bpftool", argv[3:4])],
        )

    def skeleton(self, obj: BpfObject) -> TaskDict:
        linked, header = self.layout.bpf_object(obj.name), self.layout.skeleton_header(obj.name)
        argv = [
            self.toolchain.bpftool.path,
            "gen",
            "skeleton",
            self.rel(linked),
            "name",
            obj.skeleton_name,
        ]
        return self._task(
            "skel",
            obj.name,
            "SKEL",
            self.rel(header),
            [Command(tuple(argv), stdout=self.rel(header))],
            actions=[
                (
                    actions.run_tool,
                    (tuple(argv), str(self.project.root), (str(header),), str(header)),
                )
            ],
            file_dep=[str(linked)],
            targets=[str(header)],
            uptodate=[self._changed("bpftool", argv[3:])],
        )

    def user_compile_argv(self, source: str, app: str | None = None) -> list[str]:
        """The cc command for one user source; with app, for that app's own flags."""
        layout, toolchain, build = self.layout, self.toolchain, self.project.config.build
        app_cflags = list(self.project.apps[app].cflags) if app else []
        return [
            toolchain.cc.path,
            "-g",
            "-O2",
            "-Wall",
            *self.reproducible_flags(),
            "-I",
            self.rel(layout.include_dir),  # NAME.skel.h
            *[f"-I{d}" for d in self.project.include_dirs],
            *toolchain.libbpf.cflags,
            *toolchain.cflags,  # $CFLAGS, then bpfbuild.toml: later wins
            *build.cflags,
            *app_cflags,  # [app.NAME] cflags: last
            "-MD",
            "-MP",
            "-MF",
            actions.partial(self.rel(layout.user_depfile(source, app))),
            "-c",
            source,
            "-o",
            actions.partial(self.rel(layout.user_object(source, app))),
        ]

    def object_app(self, app_name: str) -> str | None:
        """Whose objects an app links: its own (user/<app>/) when it has cflags, else
        the shared ones every app without flags links."""
        return app_name if self.project.apps[app_name].cflags else None

    def user_units(self) -> list[tuple[str, str | None]]:
        """Each user-space object to compile: (source, the app whose own flags it takes,
        or None for the shared object of every app without flags of its own)."""
        units = {
            (source, self.object_app(app.name))
            for app in self.project.apps.values()
            for source in app.sources
        }
        return sorted(units, key=lambda unit: (unit[1] or "", unit[0]))

    def user_compile(self, source: str, app: str | None = None) -> TaskDict:
        layout = self.layout
        argv = self.user_compile_argv(source, app)
        depfile = layout.user_depfile(source, app)
        targets = [str(layout.user_object(source, app)), str(depfile)]
        shown = f"{app}:{source}" if app else source  # an app's own object of source
        return self._task(
            "cc",
            f"{app}/{source}" if app else source,
            "CC",
            shown,
            [Command(tuple(argv))],
            actions=[
                (
                    actions.compile_with_depfile,
                    (tuple(argv), str(self.project.root), tuple(targets), targets[1]),
                    self._expect["cc"],
                )
            ],
            file_dep=self._header_deps(source, depfile),
            # Order only: on a first build there is no depfile yet to say which
            # skeletons a source includes; afterwards the depfile has them.
            task_dep=[self.name("skel", name) for name in self.skeletons_needed(source)]
            + self.libbpf_header_tasks(),
            targets=targets,
            uptodate=[self._changed("cc", argv)],
        )

    def skeletons_needed(self, source: str) -> list[str]:
        """Skeletons a user source must wait for: those it names in `#include
        "NAME.skel.h"`; all of them when a project header includes one (a source may
        reach it indirectly). Waiting for fewer lets user code compile beside BPF."""
        if self._headers_include_skeletons is None:
            root = self.project.root
            self._headers_include_skeletons = any(
                _SKELETON_INCLUDE.search(header.read_text(errors="replace"))
                for folder in self.project.include_dirs
                for header in (root / folder).rglob("*.h")
            )
        if self._headers_include_skeletons:
            return list(self.project.bpf_objects)
        text = (self.project.root / source).read_text(errors="replace")
        return [
            name for name in _SKELETON_INCLUDE.findall(text) if name in self.project.bpf_objects
        ]

    def link(self, app_name: str) -> TaskDict:
        app, layout, toolchain = self.project.apps[app_name], self.layout, self.toolchain
        build = self.project.config.build
        executable = layout.executable(app_name)
        owner = self.object_app(app_name)
        objects = [self.rel(layout.user_object(source, owner)) for source in app.sources]
        # --static also lists libbpf's private deps (libelf, zlib) for static linking;
        # the archives they resolve to are inputs of the link (a rebuilt libbpf.a relinks)
        other_flags = [*toolchain.ldflags, *build.ldflags, *app.ldflags]
        libs, libraries = toolchain.link_libraries(build.static, [*other_flags, *app.libs])
        linker = toolchain.linker
        argv = [
            toolchain.cc.path,
            *(linker.flags if linker else ()),  # [build] linker: -fuse-ld=mold...
            "-o",
            actions.partial(self.rel(executable)),
            *objects,
            *(["-static"] if build.static else []),  # one file to deploy, no runtime deps
            *other_flags,
            *libs,
            *app.libs,  # [app.NAME] libs, after libbpf's
        ]
        strip_argv = None
        commands = [Command(tuple(argv))]
        if build.strip:  # toolchains_for() checked that strip exists
            strip_argv = (
                toolchain.strip.path,
                "--strip-all",
                actions.partial(self.rel(executable)),
            )
            commands.append(Command(strip_argv))
        return self._task(
            "link",
            app_name,
            "LD",
            self.rel(executable),
            commands,
            actions=[
                (
                    actions.link_executable,
                    (
                        tuple(argv),
                        str(self.project.root),
                        str(executable),
                        build.static,
                        strip_argv,
                    ),
                    self._expect["cc"],
                )
            ],
            file_dep=[str(layout.user_object(source, owner)) for source in app.sources]
            + libraries
            + self.libbpf_archive_dep(),
            targets=[str(executable)],
            uptodate=[
                self._changed(
                    "cc",
                    argv,
                    strip=bool(strip_argv),
                    linker=[linker.path, linker.version] if linker else None,
                )
            ],
        )

    # -- verification (only for the running kernel's arch) -----------------

    def verifier_runner(self) -> TaskDict:
        """bpfverify, the static C program that loads each BPF program in the kernel:
        static so that it also runs in a bare initramfs with no Python."""
        from ..verify.runner import RUNNER_SOURCE, build_runner_command

        runner = self.layout.verifier_runner
        argv = build_runner_command(
            self.toolchain.cc.path,
            Path(actions.partial(self.rel(runner))),
            RUNNER_SOURCE,
            cflags=self.toolchain.libbpf.cflags,
            ldflags=self.toolchain.libbpf.static_libs,
        )
        return self._task(
            "tool",
            "bpfverify",
            "CC",
            self.rel(runner),
            [Command(tuple(argv))],
            actions=[
                (
                    actions.run_tool,
                    (tuple(argv), str(self.project.root), (str(runner),)),
                    self._expect["cc"],
                )
            ],
            file_dep=[
                str(RUNNER_SOURCE),
                *self.toolchain.link_libraries(True, [])[1],
                *self.libbpf_archive_dep(),
            ],
            targets=[str(runner)],
            task_dep=self.libbpf_header_tasks(),
            uptodate=[self._changed("cc", argv)],
        )

    def verify(self, obj: BpfObject) -> TaskDict:
        """Load every program of one object in the running kernel; save the report.
        Up to date while the object, the runner and the kernel (release, BTF) are."""
        layout = self.layout
        rodata = self.project.config.verify.rodata.get(obj.name, {})
        report = layout.verify_report(obj.name)
        bpf_object, runner = layout.bpf_object(obj.name), layout.verifier_runner
        return self._task(
            "verify",
            obj.name,
            "VERIFY",
            self.rel(bpf_object),
            [
                Command(
                    (
                        self.rel(runner),
                        "--log-dir",
                        self.rel(layout.verify_dir(obj.name)),
                        *[f"--set={k}={v}" for k, v in rodata.items()],
                        self.rel(bpf_object),
                    )
                )
            ],
            actions=[
                (
                    actions.verify_object,
                    (
                        str(runner),
                        str(bpf_object),
                        str(layout.verify_dir(obj.name)),
                        rodata,
                        obj.name,
                        self.arch.name,
                        str(report),
                    ),
                )
            ],
            file_dep=[str(bpf_object), str(runner), KERNEL_BTF],
            # `bpfbuild verify` on a fresh tree: the PCH (no compile waits for it)
            task_dep=self.pch_tasks(),
            targets=[str(report)],
            uptodate=[
                ConfigChanged({"kernel": platform.release(), "rodata": rodata}),
                (actions.report_complete, (str(report),)),
            ],
        )

    def vm_verify(self, target: Target) -> TaskDict:
        """Boot target's kernel once with every object of this arch and save their
        reports. Up to date while the objects, the runner and the kernel image are."""
        from ..vm.initramfs import GuestObject
        from ..vm.session import VmJob

        layout, kernel = self.layout, target.kernel
        folder = layout.vm_verify_dir(kernel.release)
        rodata = self.project.config.verify.rodata
        objects = tuple(
            GuestObject(name, layout.bpf_object(name), rodata.get(name, {}))
            for name in self.project.bpf_objects
        )
        job = VmJob(
            spec=target.spec,
            arch=self.arch.name,
            image=str(kernel.image),
            runner=str(layout.verifier_runner),
            objects=objects,
            log_root=str(folder),
            reports={o.name: str(folder / f"{o.name}.json") for o in objects},
            timeout=self.project.config.verify.timeout,
        )
        return {
            "basename": f"{self.prefix}vmverify",
            "name": f"{self.arch.name}/{kernel.release}",
            "doc": f"verify every object of {self.arch.name} in a VM of {target.spec}",
            # No kbuild line: the VM's progress line (bpfbuild.vm.progress) says it all.
            "actions": [(actions.verify_in_vm, (job,))],
            "file_dep": [str(o.path) for o in objects]
            + [str(layout.verifier_runner), str(kernel.image)],
            "task_dep": self.pch_tasks(),
            "targets": list(job.reports.values()),
            "uptodate": [
                ConfigChanged(
                    {
                        "kernel": kernel.provenance(),
                        "release": kernel.release,
                        "rodata": {o.name: o.rodata for o in objects},
                    }
                )
            ],
        }

    # -- the compile database for editors (clangd) --------------------------

    def compile_commands(self) -> TaskDict:
        """compile_commands.json at the project root: one entry per BPF and user
        source, from the argv builders the compile tasks use. BPF entries are the
        commands without the PCH (the same object; an editor's clang may not read
        clang 14's PCH). One task for the project whatever the arch, so a build for
        another arch rewrites the file (its commands differ)."""
        root = str(self.project.root)
        entries = [
            {
                "directory": root,
                "file": str(self.project.root / obj.source),
                "arguments": self.bpf_compile_argv(obj, pch=False),
                "output": str(self.layout.bpf_compiled(obj.name)),
            }
            for obj in self.project.bpf_objects.values()
        ] + [
            {
                "directory": root,
                "file": str(self.project.root / source),
                "arguments": self.user_compile_argv(source, app),
                "output": str(self.layout.user_object(source, app)),
            }
            for source, app in self.user_units()
        ]
        database = self.project.root / COMPILE_COMMANDS
        return {
            "basename": f"{self.prefix}compdb",
            "name": COMPILE_COMMANDS,
            "title": task_title,
            "meta": {
                "kind": "compdb",
                "label": "GEN",
                "shown": COMPILE_COMMANDS,
                "arch": self.arch.name,
                "several_arches": False,
                "commands": [],
                "cwd": root,
            },
            "actions": [(actions.write_json, (str(database), entries))],
            "targets": [str(database)],
            "uptodate": [ConfigChanged({"entries": entries})],
        }

    def _header_deps(self, source: str, depfile: Path) -> list[str]:
        """The source plus every file its previous compile read (see existing_deps)."""
        root = self.project.root
        return sorted({str(root / source)} | existing_deps(root, depfile))

    def needs_pch(self) -> bool:
        return any(self.uses_pch(obj) for obj in self.project.bpf_objects.values())

    def pch_tasks(self) -> list[str]:
        """The PCH task's name when this arch has one: no compile waits for it, so a
        run of only some tasks (an app, the verification) has to name it."""
        return [self.name("pch", "vmlinux.h.pch")] if self.needs_pch() else []

    # -- libbpf from [libbpf] source, and aliases ----------------------------

    def libbpf_header_tasks(self) -> list[str]:
        """Names of the tasks that install libbpf's headers (none with pkg-config):
        every compile waits for them before its first run."""
        tree = self.toolchain.libbpf.tree
        return [self.name("libbpf-h", header) for header in tree.headers] if tree else []

    def libbpf_archive_dep(self) -> list[str]:
        """libbpf.a as a link dependency: a libbpf edit relinks every app."""
        archive = self.toolchain.libbpf.archive
        return [str(self.project.root / archive)] if archive else []

    def libbpf_header(self, header: str) -> TaskDict:
        """One public header copied to output/<arch>/libbpf/include/bpf/ (make
        install_headers), where -I finds it ahead of the system's <bpf/...>."""
        tree = self.toolchain.libbpf.tree
        source = str(tree.src / header)
        installed = str(self.layout.libbpf_include_dir / "bpf" / header)
        return self._task(
            "libbpf-h",
            header,
            "INSTALL",
            self.rel(Path(installed)),
            [Command(("cp", source, installed))],
            actions=[(actions.copy_file, (source, installed))],
            file_dep=[source],
            targets=[installed],
        )

    def libbpf_compile(self, source: str) -> TaskDict:
        """One libbpf source compiled as libbpf's Makefile does, for this arch."""
        tree, layout = self.toolchain.libbpf.tree, self.layout
        path = self.rel(tree.root / source)
        depfile = layout.libbpf_depfile(source)
        targets = [str(layout.libbpf_object(source)), str(depfile)]
        argv = [
            self.toolchain.cc.path,
            *libbpf_source.compile_flags(self.rel(tree.root)),
            "-MD",
            "-MP",
            "-MF",
            actions.partial(self.rel(depfile)),
            "-c",
            path,
            "-o",
            actions.partial(self.rel(layout.libbpf_object(source))),
        ]
        return self._task(
            "libbpf-cc",
            Path(source).name,
            "CC",
            path,
            [Command(tuple(argv))],
            actions=[
                (
                    actions.compile_with_depfile,
                    (tuple(argv), str(self.project.root), tuple(targets), targets[1]),
                    self._expect["cc"],
                )
            ],
            file_dep=self._header_deps(path, depfile),
            targets=targets,
            uptodate=[self._changed("cc", argv)],
        )

    def libbpf_archive(self) -> TaskDict:
        """libbpf.a from this arch's libbpf objects."""
        tree, layout = self.toolchain.libbpf.tree, self.layout
        archive = layout.libbpf_archive
        objects = [self.rel(layout.libbpf_object(source)) for source in tree.sources]
        argv = [self.toolchain.ar.path, "rcsD", actions.partial(self.rel(archive)), *objects]
        return self._task(
            "libbpf-ar",
            "libbpf.a",
            "AR",
            self.rel(archive),
            [Command(tuple(argv))],
            actions=[(libbpf_source.archive, (tuple(argv), str(self.project.root), str(archive)))],
            file_dep=[str(layout.libbpf_object(source)) for source in tree.sources],
            targets=[str(archive)],
            uptodate=[ConfigChanged({"ar": self.toolchain.ar.path, "argv": argv})],
        )

    def alias(self, app_name: str, alias: str) -> TaskDict:
        """output/<arch>/ALIAS -> APP, a relative link beside the executable."""
        link = self.layout.executable(alias)
        return self._task(
            "alias",
            alias,
            "LN",
            self.rel(link),
            [Command(("ln", "-sfn", app_name, self.rel(link)))],
            actions=[(aliases.make_alias, (str(link), app_name))],
            task_dep=[self.name("link", app_name)],
            targets=[str(link)],
            # the target check records the link itself (state.file_state)
            uptodate=[ConfigChanged({"alias_of": app_name})],
        )

    def stale_alias_removal(self) -> TaskDict:
        """Removes the alias links a former config made (only links to an app)."""
        apps = self.project.apps
        keep = tuple(a for app in apps.values() for a in app.aliases)
        args = (str(self.layout.arch_dir), keep, tuple(apps))
        return self._task(
            "unalias",
            "stale",
            "UNALIAS",
            f"{self.rel(self.layout.arch_dir)}/",
            [],  # which links are stale is known only when it runs (no command to show)
            actions=[(aliases.remove_stale_aliases, args)],
            # after the alias links are made: never beside one being renamed into place
            task_dep=[self.name("alias", a) for a in keep],
            uptodate=[(aliases.no_stale_aliases, args)],
        )

    def tasks(self) -> Iterator[TaskDict]:
        tree = self.toolchain.libbpf.tree
        for header in tree.headers if tree else ():
            yield self.libbpf_header(header)
        yield self.vmlinux()
        if self.needs_pch():
            yield self.vmlinux_pch()
            yield self.pch_first()
        if self.cross_endian and self.project.apps:
            raise ToolchainError(
                f"bpftool cannot generate skeletons of {self.arch.name}'s "
                f"{self.arch.bpf_target} objects on this {host_arch().bpf_target} host, "
                "so apps cannot be built for it",
                hint=f"build only BPF objects for {self.arch.name} (a project without apps)",
            )
        if tree:  # defined before the BPF objects: the bulk of a clean build's work
            for source in tree.sources:
                yield self.libbpf_compile(source)
            yield self.libbpf_archive()
        for obj in self.project.bpf_objects.values():
            yield self.bpf_compile(obj)
            yield self.bpf_link(obj)
            if not self.cross_endian:
                yield self.skeleton(obj)
        for source, app in self.user_units():
            yield self.user_compile(source, app)
        for app_name, app in self.project.apps.items():
            yield self.link(app_name)
            for alias in app.aliases:
                yield self.alias(app_name, alias)
        yield self.stale_alias_removal()
        if self.verify_tasks or self.vm_targets:
            yield self.verifier_runner()
        if self.verify_tasks:
            for obj in self.project.bpf_objects.values():
                yield self.verify(obj)
        for target in self.vm_targets:
            yield self.vm_verify(target)


COMPILE_COMMANDS = "compile_commands.json"
"""The compile database at the project root, for the arch built (the host's first)."""
_SKELETON_INCLUDE = re.compile(r'#\s*include\s*[<"](\w+)\.skel\.h[>"]')
_VMLINUX_INCLUDE = re.compile(r'\s*#\s*include\s*[<"]vmlinux\.h[>"]')


def includes_vmlinux_first(source: Path) -> bool:
    """True when the first preprocessor directive of source is #include vmlinux.h."""
    try:
        text = source.read_text(errors="replace")
    except OSError:
        return False
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    for line in text.splitlines():
        line = line.split("//", 1)[0].strip()
        if line:
            return bool(_VMLINUX_INCLUDE.match(line))
    return False


def write_provenance(path: str, provenance: dict) -> None:
    """Record where vmlinux.h came from (a doit action; written atomically)."""
    partial = actions.partial(path)
    Path(partial).write_text(json.dumps(provenance, indent=1, sort_keys=True) + "\n")
    os.replace(partial, path)


def step_line(meta: dict, indent: str = "  ") -> str:
    """The kbuild-style line of a step, from its task's meta: `  BPF     src/x.bpf.c`,
    naming the arch when the project builds several. With indent="", one space
    separates label and path (`BPF src/x.bpf.c`), as inside a sentence."""
    label = f"{meta['label']:<8}" if indent else f"{meta['label']} "
    suffix = f" ({meta['arch']})" if meta["several_arches"] else ""
    return f"{indent}{label}{meta['shown']}{suffix}"


def task_title(task) -> str:
    """doit title of every bpfbuild task: its kbuild-style line."""
    return step_line(task.meta) if task.meta else task.name


def project_tasks(
    project: Project,
    toolchains: list[Toolchain],
    prefix: str = "",
    verify: bool | VerifyPlan = False,
) -> Iterator[TaskDict]:
    """All tasks of a project for every arch, plus one `app:NAME` group per app;
    with verify, also the verification tasks of the host arch, and with a
    VerifyPlan those of its kernels and arches."""
    factories = [TaskFactory(project, toolchain, prefix, verify) for toolchain in toolchains]
    for factory in factories:
        yield from factory.tasks()
    if factories:
        yield next((f for f in factories if f.arch == host_arch()), factories[0]).compile_commands()
    pch_tasks = [name for factory in factories for name in factory.pch_tasks()]  # first
    for app_name in project.apps:
        yield {
            "basename": f"{prefix}app",
            "name": app_name,
            "actions": None,
            "task_dep": pch_tasks
            + [task_name("link", app_name, t.arch.name, prefix) for t in toolchains]
            + [
                task_name("alias", alias, t.arch.name, prefix)
                for t in toolchains
                for alias in project.apps[app_name].aliases
            ],
            "doc": f"build app {app_name} for " + ", ".join(t.arch.name for t in toolchains),
        }
