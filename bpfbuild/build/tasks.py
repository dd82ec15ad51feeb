"""The task graph: doit task dicts for vmlinux.h, BPF objects, skeletons, user objects and apps."""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import re
from collections.abc import Iterator
from pathlib import Path

from doit.tools import config_changed

from . import actions
from .depfile import existing_deps
from .layout import Layout
from ..arch import host_arch
from .config import PCH_AUTO_MIN
from .project import KERNEL_BTF, BpfObject, Project
from .toolchain import Toolchain

TaskDict = dict


class TaskFactory:
    """Creates the tasks of one project for one arch.

    Every file_dep and target is absolute (doit may run from another folder, as the
    repo's dodo.py does); commands run in the project root with relative paths, so
    diagnostics and depfiles name `src/...`; -ffile-prefix-map turns the root that
    the compilers still record (DW_AT_comp_dir, BTF line info) into `.`, so objects,
    skeletons and executables are the same bytes wherever the project lives.
    """

    def __init__(self, project: Project, toolchain: Toolchain, prefix: str = "",
                 verify: bool = False) -> None:
        self.project = project
        self.toolchain = toolchain
        self.arch = toolchain.arch
        self.layout = Layout(project.root, self.arch.name)
        self.prefix = prefix
        self.show_arch = len(project.arches) > 1
        self._headers_include_skeletons: bool | None = None
        self._uses_pch: dict[str, bool] = {}
        # Verification loads programs in the running kernel: only its own arch.
        self.verify_tasks = verify and self.arch == host_arch()

    # -- naming and display -------------------------------------------------

    def name(self, kind: str, item: str) -> str:
        """Full doit task name, e.g. `bpf:x86_64/hello`."""
        return f"{self.prefix}{kind}:{self.arch.name}/{item}"

    def rel(self, path: Path) -> str:
        return str(path.relative_to(self.project.root))

    def _task(self, kind: str, item: str, label: str, shown: str, commands: list[tuple], **task) -> TaskDict:
        suffix = f" ({self.arch.name})" if self.show_arch else ""
        return {
            "basename": f"{self.prefix}{kind}",
            "name": f"{self.arch.name}/{item}",
            "title": task_title,
            "meta": {"line": f"  {label:<8}{shown}{suffix}", "commands": commands,
                     "cwd": str(self.project.root)},
            **task,
        }

    def _changed(self, tool: str, argv: list[str], **extra) -> config_changed:
        """Rebuild when the tool's path or version, the arch or the command change."""
        found = getattr(self.toolchain, tool.replace("-", "_"))
        return config_changed({"tool": found.path, "version": found.version,
                               "arch": self.arch.name, "argv": argv, **extra})

    # -- tasks ---------------------------------------------------------------

    def vmlinux(self) -> TaskDict:
        """vmlinux.h from BTF (bpftool btf dump) or copied from a ready header."""
        source = self.project.vmlinux[self.arch.name]
        header = str(self.layout.vmlinux_header)
        source_path = str(self.project.root / source.path)
        if source.is_header:
            action = (actions.copy_file, (source_path, header))
            commands = [("cp", source_path, header)]
            changed = config_changed({"copy": source.path})
        else:
            argv = [self.toolchain.bpftool.path, "btf", "dump", "file", source_path, "format", "c"]
            bpftool = self.toolchain.bpftool
            action = (actions.generate_vmlinux, (tuple(argv), str(self.project.root), header,
                                                 source_path, (bpftool.path, bpftool.version)))
            commands = [(*argv, ">", header)]
            changed = self._changed("bpftool", argv)
        return self._task(
            "vmlinux", "vmlinux.h", "GEN", self.rel(self.layout.vmlinux_header), commands,
            actions=[action], file_dep=[source_path], targets=[header], uptodate=[changed],
        )

    def reproducible_flags(self) -> list[str]:
        """The same bytes wherever the project lives (as bpf2go pins them): debug info
        and __FILE__ name the root `.`, not its absolute path (DW_AT_comp_dir, BTF line
        info); no compiler version string in a .comment section."""
        return [f"-ffile-prefix-map={self.project.root}=.", "-fno-ident"]

    def bpf_flags(self) -> list[str]:
        """clang and its flags for every BPF compile of this arch (and for the
        precompiled vmlinux.h, which must be built with the very same flags)."""
        toolchain = self.toolchain
        argv = [
            toolchain.clang.path,
            "-g",                                  # BTF + line info: CO-RE and verifier source lines
            "-O2",                                 # the verifier rejects unoptimized BPF
            "-Wall",
            *self.reproducible_flags(),
            "-target", self.arch.bpf_target,       # BPF byte order must match the kernel's
            f"-D__TARGET_ARCH_{self.arch.target_arch}",  # bpf_tracing.h picks PT_REGS by arch
            "-I", self.rel(self.layout.include_dir),     # vmlinux.h for this arch
            *[f"-I{d}" for d in self.project.include_dirs],
            *toolchain.libbpf.cflags,              # <bpf/bpf_helpers.h>
        ]
        for directory in toolchain.system_include_dirs:
            argv += ["-idirafter", directory]      # <linux/*.h>: -target bpf drops multiarch dirs
        return argv + self.project.config.build.bpf_cflags

    def vmlinux_pch(self) -> TaskDict:
        """vmlinux.h precompiled once per arch and flag set: parsing its ~3 MB is most
        of each BPF compile. Objects come out byte-identical to a build without it.
        No compile waits for it (see actions.compile_bpf)."""
        layout = self.layout
        pch, key_file = layout.vmlinux_pch, layout.vmlinux_pch_key
        argv = [*self.bpf_flags(), *self.relocatable_pch_flags(), "-x", "c-header",
                self.rel(layout.vmlinux_header), "-o", actions.partial(self.rel(pch))]
        return self._task(
            "pch", "vmlinux.h.pch", "PCH", self.rel(pch), [tuple(argv)],
            actions=[(actions.build_pch, (tuple(argv), str(self.project.root), str(pch),
                                          str(key_file), self.pch_key,
                                          str(layout.vmlinux_header)))],
            file_dep=[str(layout.vmlinux_header)], targets=[str(pch), str(key_file)],
            uptodate=[self._changed("clang", argv)],
        )

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
        MD5. Once per arch: every BPF task of the arch passes it to its action."""
        clang = self.toolchain.clang
        # Without the project's folder (-ffile-prefix-map): the machine-wide cache
        # shares one relocatable PCH between projects.
        flags = [flag.replace(str(self.project.root), "<root>")
                 for flag in [*self.bpf_flags(), *self.relocatable_pch_flags()]]
        text = json.dumps([clang.path, clang.version, flags])
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def uses_pch(self, obj: BpfObject) -> bool:
        """Only sources whose first directive includes vmlinux.h can take the PCH:
        one that defines macros first (BPF_NO_PRESERVE_ACCESS_INDEX...) or uses uapi
        headers instead must see exactly what it asked for. With pch = "auto", none
        does when fewer than PCH_AUTO_MIN can. Each source is read once."""
        if not self._uses_pch:
            pch = self.project.config.build.pch
            takers = {name: pch is not False and includes_vmlinux_first(self.project.root / o.source)
                      for name, o in self.project.bpf_objects.items()}
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
            pch_flags = [*self.relocatable_pch_flags(use=True),
                         "-include-pch", self.rel(layout.vmlinux_pch),
                         # clang checks the header's mtime; the key file checks its
                         # content instead (actions.pch_ready), so a touch cannot fail
                         "-Xclang", "-fno-validate-pch"]
        return [
            *self.bpf_flags(),
            *pch_flags,
            "-MD", "-MP", "-MF", actions.partial(self.rel(layout.bpf_depfile(obj.name))),
            "-c", obj.source,
            "-o", actions.partial(self.rel(layout.bpf_compiled(obj.name))),
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
            "bpf", obj.name, "BPF", obj.source, [tuple(argv)],
            actions=[(actions.compile_bpf, (tuple(argv), direct_argv, str(self.project.root),
                                            tuple(targets), targets[1], pch))],
            file_dep=file_dep,
            task_dep=[self.name("vmlinux", "vmlinux.h")],
            targets=targets,
            uptodate=[self._changed("clang", argv)],
        )

    def bpf_link(self, obj: BpfObject) -> TaskDict:
        """`bpftool gen object`: static linking of BPF; also drops DWARF, keeps BTF."""
        compiled, linked = self.layout.bpf_compiled(obj.name), self.layout.bpf_object(obj.name)
        argv = [self.toolchain.bpftool.path, "gen", "object",
                actions.partial(self.rel(linked)), self.rel(compiled)]
        return self._task(
            "bpfobj", obj.name, "GENOBJ", self.rel(linked), [tuple(argv)],
            actions=[(actions.run_tool, (tuple(argv), str(self.project.root), (str(linked),)))],
            file_dep=[str(compiled)], targets=[str(linked)],
            uptodate=[self._changed("bpftool", argv[3:4])],
        )

    def skeleton(self, obj: BpfObject) -> TaskDict:
        linked, header = self.layout.bpf_object(obj.name), self.layout.skeleton_header(obj.name)
        argv = [self.toolchain.bpftool.path, "gen", "skeleton", self.rel(linked), "name", obj.skeleton_name]
        return self._task(
            "skel", obj.name, "SKEL", self.rel(header), [(*argv, ">", self.rel(header))],
            actions=[(actions.run_tool, (tuple(argv), str(self.project.root), (str(header),), str(header)))],
            file_dep=[str(linked)], targets=[str(header)],
            uptodate=[self._changed("bpftool", argv[3:])],
        )

    def user_compile_argv(self, source: str) -> list[str]:
        layout, toolchain, build = self.layout, self.toolchain, self.project.config.build
        return [
            toolchain.cc.path,
            "-g", "-O2", "-Wall",
            *self.reproducible_flags(),
            "-I", self.rel(layout.include_dir),    # NAME.skel.h
            *[f"-I{d}" for d in self.project.include_dirs],
            *toolchain.libbpf.cflags,
            *toolchain.cflags,                     # $CFLAGS, then bpfbuild.toml: later wins
            *build.cflags,
            "-MD", "-MP", "-MF", actions.partial(self.rel(layout.user_depfile(source))),
            "-c", source,
            "-o", actions.partial(self.rel(layout.user_object(source))),
        ]

    def user_compile(self, source: str) -> TaskDict:
        layout = self.layout
        argv = self.user_compile_argv(source)
        targets = [str(layout.user_object(source)), str(layout.user_depfile(source))]
        return self._task(
            "cc", source, "CC", source, [tuple(argv)],
            actions=[(actions.compile_with_depfile,
                      (tuple(argv), str(self.project.root), tuple(targets), targets[1]))],
            file_dep=self._header_deps(source, layout.user_depfile(source)),
            # Order only: on a first build there is no depfile yet to say which
            # skeletons a source includes; afterwards the depfile has them.
            task_dep=[self.name("skel", name) for name in self.skeletons_needed(source)],
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
                for folder in self.project.include_dirs for header in (root / folder).rglob("*.h"))
        if self._headers_include_skeletons:
            return list(self.project.bpf_objects)
        text = (self.project.root / source).read_text(errors="replace")
        return [name for name in _SKELETON_INCLUDE.findall(text) if name in self.project.bpf_objects]

    def link(self, app_name: str) -> TaskDict:
        app, layout, toolchain = self.project.apps[app_name], self.layout, self.toolchain
        build = self.project.config.build
        executable = layout.executable(app_name)
        objects = [self.rel(layout.user_object(source)) for source in app.sources]
        linker = toolchain.linker
        argv = [
            toolchain.cc.path,
            *(linker.flags if linker else ()),     # [build] linker: -fuse-ld=mold...
            "-o", actions.partial(self.rel(executable)),
            *objects,
            *(["-static"] if build.static else []),  # one file to deploy, no runtime deps
            *toolchain.ldflags, *build.ldflags,
            # --static also lists libbpf's private deps (libelf, zlib) for static linking
            *(toolchain.libbpf.static_libs if build.static else toolchain.libbpf.libs),
        ]
        strip_argv = None
        commands = [tuple(argv)]
        if build.strip:  # toolchains_for() checked that strip exists
            strip_argv = (toolchain.strip.path, "--strip-all", actions.partial(self.rel(executable)))
            commands.append(strip_argv)
        return self._task(
            "link", app_name, "LD", self.rel(executable), commands,
            actions=[(actions.link_executable,
                      (tuple(argv), str(self.project.root), str(executable), build.static, strip_argv))],
            file_dep=[str(layout.user_object(source)) for source in app.sources],
            targets=[str(executable)],
            uptodate=[self._changed("cc", argv, strip=bool(strip_argv),
                                    linker=[linker.path, linker.version] if linker else None)],
        )

    # -- verification (only for the running kernel's arch) -----------------

    def verifier_runner(self) -> TaskDict:
        """bpfverify, the static C program that loads each BPF program in the kernel:
        static so that it also runs in a bare initramfs with no Python."""
        from ..verify.runner import RUNNER_SOURCE
        from ..verify.report import build_runner_command

        runner = self.layout.verifier_runner
        argv = build_runner_command(
            self.toolchain.cc.path, Path(actions.partial(self.rel(runner))), RUNNER_SOURCE,
            cflags=self.toolchain.libbpf.cflags, ldflags=self.toolchain.libbpf.static_libs)
        return self._task(
            "tool", "bpfverify", "CC", self.rel(runner), [tuple(argv)],
            actions=[(actions.run_tool, (tuple(argv), str(self.project.root), (str(runner),)))],
            file_dep=[str(RUNNER_SOURCE)], targets=[str(runner)],
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
            "verify", obj.name, "VERIFY", self.rel(bpf_object),
            [(self.rel(runner), "--log-dir", self.rel(layout.verify_dir(obj.name)),
              *[f"--set={k}={v}" for k, v in rodata.items()], self.rel(bpf_object))],
            actions=[(actions.verify_object, (str(runner), str(bpf_object),
                      str(layout.verify_dir(obj.name)), rodata, obj.name, self.arch.name,
                      str(report)))],
            file_dep=[str(bpf_object), str(runner), KERNEL_BTF],
            # `bpfbuild verify` on a fresh tree: the PCH (no compile waits for it)
            task_dep=self.pch_tasks(),
            targets=[str(report)],
            uptodate=[config_changed({"kernel": platform.release(), "rodata": rodata}),
                      (actions.report_complete, (str(report),))],
        )

    # -- the compile database for editors (clangd) --------------------------

    def compile_commands(self) -> TaskDict:
        """compile_commands.json at the project root: one entry per BPF and user
        source, from the argv builders the compile tasks use. BPF entries are the
        commands without the PCH (the same object; an editor's clang may not read
        clang 14's PCH). One task for the project whatever the arch, so a build for
        another arch rewrites the file (its commands differ)."""
        root = str(self.project.root)
        entries = [
            {"directory": root, "file": str(self.project.root / obj.source),
             "arguments": self.bpf_compile_argv(obj, pch=False),
             "output": str(self.layout.bpf_compiled(obj.name))}
            for obj in self.project.bpf_objects.values()
        ] + [
            {"directory": root, "file": str(self.project.root / source),
             "arguments": self.user_compile_argv(source),
             "output": str(self.layout.user_object(source))}
            for source in sorted({s for app in self.project.apps.values() for s in app.sources})
        ]
        database = self.project.root / COMPILE_COMMANDS
        return {
            "basename": f"{self.prefix}compdb",
            "name": COMPILE_COMMANDS,
            "title": task_title,
            "meta": {"line": f"  {'GEN':<8}{COMPILE_COMMANDS}", "commands": [], "cwd": root},
            "actions": [(actions.write_json, (str(database), entries))],
            "targets": [str(database)],
            "uptodate": [config_changed({"entries": entries})],
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

    def tasks(self) -> Iterator[TaskDict]:
        yield self.vmlinux()
        if self.needs_pch():
            yield self.vmlinux_pch()
        for obj in self.project.bpf_objects.values():
            yield self.bpf_compile(obj)
            yield self.bpf_link(obj)
            yield self.skeleton(obj)
        sources = sorted({s for app in self.project.apps.values() for s in app.sources})
        for source in sources:
            yield self.user_compile(source)
        for app_name in self.project.apps:
            yield self.link(app_name)
        if self.verify_tasks:
            yield self.verifier_runner()
            for obj in self.project.bpf_objects.values():
                yield self.verify(obj)


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


def task_title(task) -> str:
    """doit title of every bpfbuild task: its kbuild-style line."""
    return task.meta["line"] if task.meta else task.name


def project_tasks(project: Project, toolchains: list[Toolchain], prefix: str = "",
                  verify: bool = False) -> Iterator[TaskDict]:
    """All tasks of a project for every arch, plus one `app:NAME` group per app;
    with verify, also the verification tasks of the host arch."""
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
            "task_dep": pch_tasks + [f"{prefix}link:{t.arch.name}/{app_name}" for t in toolchains],
            "doc": f"build app {app_name} for " + ", ".join(t.arch.name for t in toolchains),
        }
