"""The steps of a project, and how they become doit tasks: one StepBuilder per arch makes
the steps of vmlinux.h, its PCH, BPF objects, skeletons, user objects and apps (steps.py
is the model); other stages add theirs through step sources; to_doit turns each step
into a doit task dict, and run_step is the action of every one of them."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import replace
from pathlib import Path
from typing import Any

from doit.exceptions import TaskFailed

from ..arch import bpf_target_flags, host_arch
from ..errors import ToolchainError
from . import actions, aliases, header_cache, libbpf_source
from .actions import (
    BpfCompileArgs,
    BpfLinkArgs,
    CopyArgs,
    JsonArgs,
    LinkArgs,
    PchArgs,
    SkeletonArgs,
    ToolArgs,
    VmlinuxArgs,
    signature_once,
)
from .config import PCH_AUTO_MIN
from .depfile import existing_deps
from .elfcheck import ElfExpectation, bpf_expectation, bpftool_expectation, native_expectation
from .layout import OUTPUT_DIR, Layout
from .names import COMPILE_COMMANDS
from .project import BpfObject, Project
from .search import SEARCH_KEY, NothingShadows, lookup_record
from .state import INPUTS_KEY, ConfigChanged, TargetsAsRecorded, inputs_as_read, snapshot_inputs
from .steps import Command, Fallback, Step, StepRun, step_line, task_id
from .toolchain import BPF_CPU, Tool, Toolchain, pch_keeps_bytes

PCH_NOT_READY = "vmlinux.h.pch is not ready yet: this compile parses vmlinux.h (the same object)"
"""What `-v` says under a BPF compile that runs while the PCH is being built."""


COMPILER_ENV = (
    "CPATH",
    "C_INCLUDE_PATH",
    "LIBRARY_PATH",
    "COMPILER_PATH",
    "GCC_EXEC_PREFIX",
    "CCC_OVERRIDE_OPTIONS",
    "SOURCE_DATE_EPOCH",
)
"""Variables the compilers and linkers read besides their argv (include and library
search folders, clang's argv rewriting, a reproducible build's date): part of every
compile and link step's key when set, so that changing one rebuilds what it affects."""


class StepBuilder:
    """Makes the steps of one project for one arch.

    Every input and output is absolute (doit may run from another folder, as the
    repo's dodo.py does); commands run in the project root with relative paths, so
    diagnostics and depfiles name `src/...`; -ffile-prefix-map turns the root that
    the compilers still record (DW_AT_comp_dir, BTF line info) into `.`, so objects,
    skeletons and executables are the same bytes wherever the project lives.
    """

    def __init__(self, project: Project, toolchain: Toolchain, prefix: str = "") -> None:
        self.project = project
        self.toolchain = toolchain
        self.arch = toolchain.arch
        self.layout = Layout(project.root, self.arch.name)
        self.prefix = prefix
        self.cwd = str(project.root)
        """Where every command of a step runs."""
        self.show_arch = len(project.arches) > 1
        self._uses_pch: dict[str, bool] = {}

    # -- naming and the parts every step has ---------------------------------

    def id(self, kind: str, item: str) -> str:
        """The id of a step of this arch, e.g. `bpf:x86_64/hello`."""
        return task_id(kind, item, self.arch.name, self.prefix)

    def rel(self, path: Path) -> str:
        """path as the commands name it: relative to the root where they run; absolute
        outside it (a libbpf tree fetched into the user's cache)."""
        root = self.project.root
        return str(path.relative_to(root) if path.is_relative_to(root) else path)

    def step(self, kind: str, item: str, label: str | None, shown: str, **fields: Any) -> Step:
        """A step of this arch; fields are Step's others (action, args, inputs...)."""
        return Step(
            id=self.id(kind, item),
            kind=kind,
            arch=self.arch.name,
            label=label,
            shown=shown,
            several_arches=self.show_arch,
            **fields,
        )

    @property
    def cc(self) -> Tool:
        """The arch's C compiler; find_toolchain looks for one whenever this arch has
        user space to build."""
        if self.toolchain.cc is None:
            arch = self.arch
            raise ToolchainError(
                f"no C compiler for {arch.name}",
                hint=f"apt-get install {' '.join(arch.user_space_packages)}",
            )
        return self.toolchain.cc

    @functools.cached_property
    def _expectations(self) -> dict[str, ElfExpectation | None]:
        toolchain, env = self.toolchain, dict(os.environ)
        return {
            "bpf": bpf_expectation(self.arch, toolchain.clang.path, env),
            "bpftool": bpftool_expectation(self.arch, toolchain.bpftool.path),
            # no C compiler for a cross arch without apps: nothing native to check
            "cc": native_expectation(self.arch, toolchain.cc.path, self.arch == host_arch(), env)
            if toolchain.cc
            else None,
        }

    def expect(self, tool: str) -> ElfExpectation | None:
        """The ELF arch the output of tool ("bpf", "bpftool", "cc") must have."""
        return self._expectations[tool]

    def changed(self, tool: str, argv: Sequence[str], **extra: object) -> dict[str, object]:
        """A step's config: rebuild when the tool's path or version, the arch or the
        command change."""
        found = getattr(self.toolchain, tool.replace("-", "_"))
        config: dict[str, object] = {
            "tool": found.path,
            "version": found.version,
            "arch": self.arch.name,
            "argv": list(argv),
            **extra,
        }
        if tool in ("clang", "cc"):
            read = {name: os.environ[name] for name in COMPILER_ENV if name in os.environ}
            if read:  # only when set: a key that did not change keeps its old records
                config["env"] = read
        return config

    # -- steps ---------------------------------------------------------------

    def vmlinux(self) -> Step:
        """vmlinux.h from BTF (bpftool btf dump) or copied from a ready header. For a
        Debian kernel ([vmlinux] arm64 = "debian:6.1"), the BTF is the one cut out of
        its image in the user's cache, and the kernel's provenance (package, version,
        the .deb's SHA-256) is part of the step's config and written beside the header
        as vmlinux.h.source.json."""
        source = self.project.vmlinux[self.arch.name]
        header = str(self.layout.vmlinux_header)
        source_path = str(source.file(self.project.root))
        fields: dict[str, Any]
        if source.is_header:
            fields = {
                "action": actions.copy_file,
                "args": CopyArgs(source_path, header, self.cwd),
                "outputs": (header,),
                "config": {"copy": source.path},
            }
        else:
            bpftool = self.toolchain.bpftool
            argv = [bpftool.path, "btf", "dump", "file", source_path, "format", "c"]
            provenance = source.kernel.provenance() if source.kernel else None
            args = VmlinuxArgs(
                Command(tuple(argv), stdout=self.rel(self.layout.vmlinux_header)),
                self.cwd,
                header,
                source_path,
                (bpftool.path, bpftool.version),
                provenance,
            )
            kernel = {"kernel": provenance} if provenance else {}
            fields = {
                "action": actions.generate_vmlinux,
                "args": args,
                "outputs": (header, args.provenance_record) if provenance else (header,),
                "config": self.changed("bpftool", argv, **kernel),
            }
        return self.step(
            "vmlinux",
            "vmlinux.h",
            "GEN",
            self.rel(self.layout.vmlinux_header),
            inputs=(source_path,),
            **fields,
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
            *bpf_target_flags(self.arch),
            f"-mcpu={BPF_CPU}",  # the BPF ISA of every kernel bpfbuild targets (toolchain.BPF_CPU)
            # Linux 6.19+ uses tagged anonymous members (`struct ns_tree;` inside a union),
            # which bpftool writes into vmlinux.h as they are: without the extension clang
            # reads them as empty declarations and drops their fields (wrong sizes and
            # offsets). Objects of other headers come out byte-identical.
            "-fms-extensions",
            "-Wno-microsoft-anon-tag",
            "-I",
            self.rel(self.layout.include_dir),  # vmlinux.h for this arch
            *[f"-I{d}" for d in self.project.include_dirs],
            *toolchain.libbpf.cflags,  # <bpf/bpf_helpers.h>
        ]
        for directory in toolchain.system_include_dirs:
            argv += ["-idirafter", directory]  # <linux/*.h>: -target bpf drops multiarch dirs
        return argv + self.project.config.build.bpf_cflags + list(obj.bpf_cflags if obj else ())

    def vmlinux_pch(self) -> Step:
        """vmlinux.h precompiled once per arch and flag set: parsing its ~3 MB is most
        of each BPF compile. Objects come out byte-identical to a build without it.
        No compile waits for it (see bpf_compile)."""
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
        return self.step(
            "pch",
            "vmlinux.h.pch",
            "PCH",
            self.rel(pch),
            action=actions.build_pch,
            args=PchArgs(
                Command(tuple(argv)),
                self.cwd,
                str(pch),
                str(key_file),
                self.pch_key,
                str(layout.vmlinux_header),
            ),
            inputs=(str(layout.vmlinux_header),),
            outputs=(str(pch), str(key_file)),
            config=self.changed("clang", argv),
        )

    def pch_first(self) -> Step:
        """No action: the BPF compiles wait for this step, and it for vmlinux.h, as the
        PCH does. When vmlinux.h is done, doit queues the ready tasks FIFO, so the PCH
        is queued before this step releases the compiles: it starts first, and the
        other jobs compile without it meanwhile. Always up to date: it runs nothing."""
        return self.step(
            "order",
            "pch-first",
            None,
            "",
            order_only=(self.id("vmlinux", "vmlinux.h"),),
            checks=(True,),
            doc=f"starts the PCH of {self.arch.name} before the BPF compiles",
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
        digest (content.CONTENT_DIGEST). Once per arch: every BPF step of the arch
        passes it to its fallback's check."""
        clang = self.toolchain.clang
        # Without the project's folder (-ffile-prefix-map): the machine-wide cache
        # shares one relocatable PCH between projects.
        flags = [
            flag.replace(str(self.project.root), "<root>")
            for flag in [*self.bpf_flags(), *self.relocatable_pch_flags()]
        ]
        return header_cache.key_of(clang.path, clang.version, flags)

    def uses_pch(self, source: str) -> bool:
        """Only a source whose first read is vmlinux.h (its first directive includes it,
        or a project header whose first directive does: project.pch_verdicts) can take
        the PCH: one that defines macros first (BPF_NO_PRESERVE_ACCESS_INDEX...) or uses
        uapi headers instead must see exactly what it asked for. With pch = "auto", none
        does when fewer than PCH_AUTO_MIN can. Each source is read once."""
        if not self._uses_pch:
            pch = self.project.config.build.pch
            # An object with flags of its own would need a PCH of its own: its sources
            # parse vmlinux.h themselves (the PCH key holds the flags it was built with).
            flagged = {
                s for o in self.project.bpf_objects.values() if o.bpf_cflags for s in o.sources
            }
            if not pch_keeps_bytes(self.toolchain.clang):
                pch = False
            verdicts = self.project.pch_verdicts() if pch is not False else {}
            takers = {
                source: pch is not False and source not in flagged and verdicts[source] is None
                for source in self.project.bpf_sources
            }
            if pch == "auto" and sum(takers.values()) < PCH_AUTO_MIN:
                takers = dict.fromkeys(takers, False)
            self._uses_pch.update(takers)
        return self._uses_pch[source]

    @functools.cached_property
    def _first_sources(self) -> dict[str, str]:
        """The first source of each object -> the object's name."""
        return {obj.source: name for name, obj in self.project.bpf_objects.items()}

    def bpf_unit(self, source: str) -> tuple[str, Path, Path]:
        """The step item, clang's object and the depfile of one BPF source. An object's
        first source keeps the object's name (bpf:<arch>/NAME, bpf/NAME.tmp.bpf.o); its
        other sources and the libraries' are named by their path (bpf/sources/...)."""
        layout, owner = self.layout, self._first_sources.get(source)
        if owner is not None:
            return owner, layout.bpf_compiled(owner), layout.bpf_depfile(owner)
        return source, layout.bpf_source_object(source), layout.bpf_source_depfile(source)

    def bpf_compile_argv(
        self, obj: BpfObject | None, pch: bool = True, source: str = ""
    ) -> list[str]:
        """The clang command for one BPF source (obj's first by default): with obj's
        own bpf_cflags (obj is None for a [bpflib]'s source); with pch, the one that
        takes the precompiled vmlinux.h when the source can."""
        layout = self.layout
        source = source or (obj.source if obj else "")
        _, compiled, depfile = self.bpf_unit(source)
        pch_flags = []
        if pch and self.uses_pch(source):
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
            actions.partial(self.rel(depfile)),
            "-c",
            source,
            "-o",
            actions.partial(self.rel(compiled)),
        ]

    def bpf_compile(self, obj: BpfObject | None, source: str = "") -> Step:
        """One BPF source compiled (obj's first by default; obj is None for a
        [bpflib]'s source). When it can take the PCH, the step's command takes it, and
        its fallback (the same object) parses vmlinux.h: no compile waits for the PCH,
        so on a clean build the other cores compile while one builds it."""
        layout = self.layout
        source = source or (obj.source if obj else "")
        item, compiled, depfile = self.bpf_unit(source)
        argv = self.bpf_compile_argv(obj, source=source)
        targets = (str(compiled), str(depfile))
        whole = obj is not None and len(obj.sources) == 1 and not obj.libs
        args = BpfCompileArgs(
            Command(tuple(argv)), self.cwd, targets, self.expect("bpf"), source, whole
        )
        # vmlinux.h itself, not the 15 MB PCH: the PCH changes only with vmlinux.h
        # or the flags, which this step tracks already.
        inputs = [str(self.project.root / source)]
        fallback = None
        if self.uses_pch(source):
            inputs.append(str(layout.vmlinux_header))
            direct = Command(tuple(self.bpf_compile_argv(obj, pch=False, source=source)))
            fallback = Fallback(
                replace(args, command=direct),
                functools.partial(
                    actions.pch_ready,
                    str(layout.vmlinux_pch_key),
                    self.pch_key,
                    str(layout.vmlinux_header),
                ),
                PCH_NOT_READY,
            )
        headers = self._headers(depfile, *inputs)
        inputs += headers
        return self.step(
            "bpf",
            item,
            "BPF",
            source,
            action=actions.compile_bpf,
            args=args,
            fallback=fallback,
            inputs=tuple(inputs),
            headers=headers,
            outputs=targets,
            depfile=targets[1],
            source=source,
            config=self.changed("clang", argv),
            order_only=(
                self.id("order", "pch-first")
                if self.needs_pch()
                else self.id("vmlinux", "vmlinux.h"),
                *self.libbpf_header_steps(),
            ),
        )

    @property
    def cross_endian(self) -> bool:
        """BPF objects of the other byte order (s390x's bpfeb on a little-endian host):
        libbpf 1.1's linker and skeleton generator refuse them."""
        return self.arch.bpf_target != host_arch().bpf_target

    def link_inputs(self, obj: BpfObject) -> list[Path]:
        """What `bpftool gen object` links into obj, in order: clang's objects of its own
        sources, then of the sources of each library its libs name."""
        sources = [*obj.sources]
        sources += [s for lib in obj.libs for s in self.project.bpf_libs[lib].sources]
        return [self.bpf_unit(source)[1] for source in sources]

    def bpf_link(self, obj: BpfObject) -> Step:
        """`bpftool gen object` (libbpf's BPF static linker): the object's compiled
        sources and its libraries' in one object, each extern resolved against the
        others; also drops DWARF, keeps BTF. A cross-endian object is the compiled one
        as is (with its DWARF)."""
        inputs, linked = self.link_inputs(obj), self.layout.bpf_object(obj.name)
        fields: dict[str, Any]
        if self.cross_endian:
            if len(inputs) > 1:
                raise ToolchainError(
                    f"object '{obj.name}' links {len(inputs)} BPF objects, and libbpf's "
                    f"linker cannot link {self.arch.name}'s {self.arch.bpf_target} objects "
                    f"on this {host_arch().bpf_target} host",
                    hint=f"build {self.arch.name} on a host of its byte order, or make "
                    f"'{obj.name}' of one source",
                )
            fields = {
                "action": actions.copy_file,
                "args": CopyArgs(self.rel(inputs[0]), self.rel(linked), self.cwd),
                "config": {"copy": "cross-endian"},
            }
        else:
            argv = [
                self.toolchain.skeleton_bpftool.path,
                "gen",
                "object",
                actions.partial(self.rel(linked)),
                *[self.rel(path) for path in inputs],
            ]
            fields = {
                "action": actions.link_bpf,
                "args": BpfLinkArgs(
                    Command(tuple(argv)),
                    self.cwd,
                    (str(linked),),
                    self.expect("bpftool"),
                    obj.name,
                    tuple(self.rel(path) for path in inputs),
                ),
                "config": self.changed("skeleton_bpftool", argv[3:]),
            }
        return self.step(
            "bpfobj",
            obj.name,
            "GENOBJ",
            self.rel(linked),
            inputs=tuple(str(path) for path in inputs),
            outputs=(str(linked),),
            **fields,
        )

    def skeleton(self, obj: BpfObject) -> Step:
        linked = self.layout.bpf_object(obj.name)
        header = self.layout.skeleton_header(obj.skeleton_header)
        argv = [
            self.toolchain.skeleton_bpftool.path,
            "gen",
            "skeleton",
            self.rel(linked),
            "name",
            obj.skeleton_name,
        ]
        return self.step(
            "skel",
            obj.name,
            "SKEL",
            self.rel(header),
            action=actions.generate_skeleton,
            args=SkeletonArgs(
                Command(tuple(argv), stdout=self.rel(header)),
                self.cwd,
                (str(header),),
                None,
                self.rel(linked),
                self.toolchain.skeleton_bpftool,
            ),
            inputs=(str(linked),),
            outputs=(str(header),),
            config=self.changed("skeleton_bpftool", argv[3:]),
        )

    def user_compile_argv(self, source: str, app: str | None = None) -> list[str]:
        """The cc command for one user source; with app, for that app's own flags."""
        layout, toolchain, build = self.layout, self.toolchain, self.project.config.build
        app_cflags = list(self.project.apps[app].cflags) if app else []
        return [
            self.cc.path,
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

    def user_compile(self, source: str, app: str | None = None) -> Step:
        layout = self.layout
        argv = self.user_compile_argv(source, app)
        depfile = layout.user_depfile(source, app)
        headers = self._headers(depfile, str(self.project.root / source))
        targets = (str(layout.user_object(source, app)), str(depfile))
        shown = f"{app}:{source}" if app else source  # an app's own object of source
        return self.step(
            "cc",
            f"{app}/{source}" if app else source,
            "CC",
            shown,
            action=actions.run_tool,
            args=ToolArgs(Command(tuple(argv)), self.cwd, targets, self.expect("cc")),
            inputs=(str(self.project.root / source), *headers),
            headers=headers,
            outputs=targets,
            depfile=targets[1],
            source=source,
            config=self.changed("cc", argv),
            # Order only: on a first build there is no depfile yet to say which
            # skeletons a source includes; afterwards the depfile has them.
            order_only=(
                *[self.id("skel", name) for name in self.project.skeletons_included(source)],
                *self.libbpf_header_steps(),
            ),
        )

    def link(self, app_name: str) -> Step:
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
            self.cc.path,
            *(linker.flags if linker else ()),  # [build] linker: -fuse-ld=mold...
            "-o",
            actions.partial(self.rel(executable)),
            *objects,
            *(["-static"] if build.static else []),  # one file to deploy, no runtime deps
            *other_flags,
            *libs,
            *app.libs,  # [app.NAME] libs, after libbpf's
        ]
        strip = None
        if build.strip and toolchain.strip:  # toolchains_for() checked that strip exists
            strip = Command(
                (toolchain.strip.path, "--strip-all", actions.partial(self.rel(executable)))
            )
        return self.step(
            "link",
            app_name,
            "LD",
            self.rel(executable),
            action=actions.link_executable,
            args=LinkArgs(
                Command(tuple(argv)),
                strip,
                self.cwd,
                str(executable),
                build.static,
                self.expect("cc"),
            ),
            inputs=(
                *[str(layout.user_object(source, owner)) for source in app.sources],
                *libraries,
                *self.libbpf_archive_dep(),
            ),
            outputs=(str(executable),),
            config=self.changed(
                "cc",
                argv,
                strip=bool(strip),
                linker=[linker.path, linker.version] if linker else None,
            ),
        )

    def _headers(self, depfile: Path, *declared: str) -> tuple[str, ...]:
        """Every file its previous compile read (existing_deps) but its declared inputs
        (the source...)."""
        return tuple(sorted(existing_deps(self.project.root, depfile) - set(declared)))

    def needs_pch(self) -> bool:
        return any(self.uses_pch(source) for source in self.project.bpf_sources)

    def pch_steps(self) -> list[str]:
        """The PCH step's id when this arch has one: no compile waits for it, so a run
        of only some steps (an app, the verification) has to name it."""
        return [self.id("pch", "vmlinux.h.pch")] if self.needs_pch() else []

    # -- libbpf from [libbpf] source, and aliases ----------------------------

    def libbpf_header_steps(self) -> list[str]:
        """Ids of the steps that install libbpf's headers (none with pkg-config):
        every compile waits for them before its first run."""
        tree = self.toolchain.libbpf.tree
        return [self.id("libbpf-h", header) for header in tree.headers] if tree else []

    def libbpf_archive_dep(self) -> list[str]:
        """libbpf.a as a link dependency: a libbpf edit relinks every app."""
        archive = self.toolchain.libbpf.archive
        return [str(self.project.root / archive)] if archive else []

    def libbpf_header(self, header: str) -> Step:
        """One public header copied to output/<arch>/libbpf/include/bpf/ (make
        install_headers), where -I finds it ahead of the system's <bpf/...>."""
        tree = self._libbpf_tree
        source = str(tree.src / header)
        installed = str(self.layout.libbpf_include_dir / "bpf" / header)
        return self.step(
            "libbpf-h",
            header,
            "INSTALL",
            self.rel(Path(installed)),
            action=actions.copy_file,
            args=CopyArgs(source, installed, self.cwd),
            inputs=(source,),
            outputs=(installed,),
        )

    @property
    def _libbpf_tree(self) -> libbpf_source.LibbpfTree:
        """[libbpf] source: asked for only by the steps that build it."""
        tree = self.toolchain.libbpf.tree
        assert tree is not None, "libbpf is not built from source"
        return tree

    def libbpf_compile(self, source: str) -> Step:
        """One libbpf source compiled as libbpf's Makefile does, for this arch."""
        tree, layout = self._libbpf_tree, self.layout
        path = self.rel(tree.root / source)
        depfile = layout.libbpf_depfile(source)
        headers = self._headers(depfile, str(self.project.root / path))
        targets = (str(layout.libbpf_object(source)), str(depfile))
        argv = [
            self.cc.path,
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
        return self.step(
            "libbpf-cc",
            Path(source).name,
            "CC",
            path,
            action=actions.run_tool,
            args=ToolArgs(Command(tuple(argv)), self.cwd, targets, self.expect("cc")),
            inputs=(str(self.project.root / path), *headers),
            headers=headers,
            outputs=targets,
            depfile=targets[1],
            source=path,
            config=self.changed("cc", argv),
        )

    def libbpf_archive(self) -> Step:
        """libbpf.a from this arch's libbpf objects."""
        tree, layout = self._libbpf_tree, self.layout
        archive = layout.libbpf_archive
        objects = [self.rel(layout.libbpf_object(source)) for source in tree.sources]
        ar = self.toolchain.ar
        assert ar is not None, "find_toolchain finds ar when libbpf is built from source"
        argv = [ar.path, "rcsD", actions.partial(self.rel(archive)), *objects]
        return self.step(
            "libbpf-ar",
            "libbpf.a",
            "AR",
            self.rel(archive),
            action=actions.archive_library,
            args=ToolArgs(Command(tuple(argv)), self.cwd, (str(archive),), None),
            inputs=tuple(str(layout.libbpf_object(source)) for source in tree.sources),
            outputs=(str(archive),),
            config={"ar": ar.path, "argv": argv},
        )

    def alias(self, app_name: str, alias: str) -> Step:
        """output/<arch>/ALIAS -> APP, a relative link beside the executable."""
        link = self.layout.executable(alias)
        return self.step(
            "alias",
            alias,
            "LN",
            self.rel(link),
            action=aliases.make_alias,
            args=aliases.AliasArgs(str(link), app_name, self.cwd),
            order_only=(self.id("link", app_name),),
            outputs=(str(link),),
            # the outputs' check records the link itself (state.file_state)
            config={"alias_of": app_name},
        )

    def stale_alias_removal(self) -> Step:
        """Removes the alias links a former config made (only links to an app)."""
        apps = self.project.apps
        keep = tuple(a for app in apps.values() for a in app.aliases)
        args = aliases.StaleAliasArgs(str(self.layout.arch_dir), keep, tuple(apps), self.cwd)
        return self.step(
            "unalias",
            "stale",
            "UNALIAS",
            f"{self.rel(self.layout.arch_dir)}/",
            action=aliases.remove_stale_aliases,
            args=args,
            # after the alias links are made: never beside one being renamed into place
            order_only=tuple(self.id("alias", a) for a in keep),
            checks=((aliases.no_stale_aliases, (args,)),),
        )

    def steps(self) -> Iterator[Step]:
        """The build's own steps of this arch."""
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
        for lib in self.project.bpf_libs.values():
            for source in lib.sources:
                yield self.bpf_compile(None, source)
        for obj in self.project.bpf_objects.values():
            for source in obj.sources:
                yield self.bpf_compile(obj, source)
            yield self.bpf_link(obj)
            if not self.cross_endian:
                yield self.skeleton(obj)
        for source, owner in self.user_units():
            yield self.user_compile(source, owner)
        for app_name, app in self.project.apps.items():
            yield self.link(app_name)
            for alias in app.aliases:
                yield self.alias(app_name, alias)
        yield self.stale_alias_removal()


OWN_KINDS = frozenset(
    {
        "vmlinux",
        "pch",
        "order",
        "bpf",
        "bpfobj",
        "skel",
        "cc",
        "link",
        "libbpf-h",
        "libbpf-cc",
        "libbpf-ar",
        "alias",
        "unalias",
        "compdb",
        "app",
    }
)
"""The kinds of the build's own steps (StepBuilder's, the compile database, the app
groups), whatever the command: the outputs of these are recorded as the build's, and
one no such step makes any more is removed (state.remove_dead_outputs). Steps that a
stage adds (a verification's reports) are its own business."""


def own_outputs(steps: Iterable[Step], root: Path) -> dict[str, str]:
    """Every output of the build's own steps (OWN_KINDS), relative to root, with the id
    of the step that makes it."""
    outputs = {}
    for step in steps:
        if step.kind in OWN_KINDS:
            for output in step.outputs:
                relative = os.path.relpath(output, root)
                if not relative.startswith(".."):
                    outputs[relative] = step.id
    return outputs


def without_inputs(steps: Iterable[Step], gone: AbstractSet[str]) -> list[Step]:
    """The steps with the paths of gone (dead outputs just removed) no longer among
    their inputs, as if their previous depfiles had not named them: a compile that
    still includes one fails as it would in a clean build."""
    if not gone:
        return list(steps)
    return [
        replace(
            step,
            inputs=tuple(p for p in step.inputs if p not in gone),
            headers=tuple(p for p in step.headers if p not in gone),
        )
        if not gone.isdisjoint(step.inputs)
        else step
        for step in steps
    ]


StepSource = Callable[[StepBuilder], Iterable[Step]]
"""Steps another stage adds to each arch's build (bpfbuild.verify's verification): a
callable given the arch's StepBuilder (its project, toolchain, layout and ids)."""


def compile_database(builder: StepBuilder, steps: Iterable[Step]) -> Step:
    """compile_commands.json at the project root: one entry per BPF and user source,
    the commands of the compile steps. BPF entries are the commands without the PCH
    (a step's plain arguments: the same object; an editor's clang may not read clang
    14's PCH). One step for the project whatever the arch, so a build for another arch
    rewrites the file (its commands differ)."""
    root = builder.project.root
    entries = []
    for step in steps:
        args = step.plain_args
        if step.kind in ("bpf", "cc") and isinstance(args, ToolArgs) and step.source:
            entries.append(
                {
                    "directory": args.cwd,
                    "file": str(root / step.source),
                    "arguments": list(args.command.argv),
                    "output": step.outputs[0],
                }
            )
    database = str(root / COMPILE_COMMANDS)
    return Step(
        id=task_id("compdb", COMPILE_COMMANDS, prefix=builder.prefix),
        kind="compdb",
        arch=builder.arch.name,
        label="GEN",
        shown=COMPILE_COMMANDS,
        action=actions.write_json,
        args=JsonArgs(database, entries, builder.cwd),
        outputs=(database,),
        config={"entries": entries},
    )


def project_steps(
    project: Project,
    toolchains: Sequence[Toolchain],
    prefix: str = "",
    sources: Sequence[StepSource] = (),
) -> Iterator[Step]:
    """Every step of a project for every arch, with those the step sources add, then
    the compile database and one `app:NAME` group per app."""
    builders = [StepBuilder(project, toolchain, prefix) for toolchain in toolchains]
    if not builders:
        return
    compdb_builder = next((b for b in builders if b.arch == host_arch()), builders[0])
    compiles: list[Step] = []
    for builder in builders:
        for step in builder.steps():
            if builder is compdb_builder:
                compiles.append(step)
            yield step
        for source in sources:
            yield from source(builder)
    yield compile_database(compdb_builder, compiles)
    pch_steps = [name for builder in builders for name in builder.pch_steps()]  # first
    for app_name, app in project.apps.items():
        yield Step(
            id=task_id("app", app_name, prefix=prefix),
            kind="app",
            arch=None,
            order_only=(
                *pch_steps,
                *[b.id("link", app_name) for b in builders],
                *[b.id("alias", alias) for b in builders for alias in app.aliases],
            ),
            doc=f"build app {app_name} for " + ", ".join(b.arch.name for b in builders),
        )


# -- the doit backend: a step as a doit task ------------------------------------------

GENERATED_KEY = "bpfbuild-generated"
"""The key of a compile task's doit `meta` that holds the generated headers it waits
for through a task_dep ([build] generated headers no task names as a target)."""
RUN_KEY = "bpfbuild"
"""The key of a task's doit `meta` that holds its StepRun (run_of reads it)."""


def to_doit(step: Step) -> dict[str, Any]:
    """The doit task dict of a step; the one place that knows doit's task keys. Every
    step with an action is up to date only while its outputs are as recorded."""
    basename, _, name = step.id.partition(":")
    run = StepRun(step)
    uptodate: list[Any] = [ConfigChanged(step.config)] if step.config is not None else []
    uptodate += step.checks
    if step.depfile and step.source and step.args is not None:
        root = step.args.cwd
        uptodate.append(NothingShadows(root, os.path.join(root, step.source)))
    task: dict[str, Any] = {
        "basename": basename,
        "name": name,
        "title": task_title,
        "meta": {RUN_KEY: run},
        "actions": [(run_step, (run,))] if step.action else None,
        "file_dep": list(step.inputs),
        "targets": list(step.outputs),
        "task_dep": list(step.order_only),
        "uptodate": [*uptodate, TargetsAsRecorded()] if step.action else uptodate,
    }
    if step.doc:
        task["doc"] = step.doc
    return task


@signature_once
def run_step(run: StepRun, task: Any) -> Any:
    """The doit action of every step: its action on the arguments its run takes (the
    ones the reporter printed). Before it, the inputs are snapshotted; after it, for a
    compile, the headers its depfile names become inputs (so the next build finds the
    same inputs and runs nothing), and the state of every input as the tools read it
    goes into the task's values, for StateDB to record (an input edited while the step
    ran is recorded as such: the next build runs the step again). doit passes `task`
    by name."""
    args = run.start()
    step = run.step
    assert step.action is not None
    # headers made by the project's own tasks that it waits for without naming them
    # (engine.wait_for_generated): read by this step, so snapshotted with its inputs
    before = snapshot_inputs([*task.file_dep, *task.meta.get(GENERATED_KEY, ())])
    result = step.action(args)
    if isinstance(result, TaskFailed):
        return result
    if step.depfile:  # what it reads now, not what it read before, and where it looked
        task.file_dep.difference_update(step.headers)
        task.file_dep.update(existing_deps(Path(args.cwd), Path(step.depfile)))
        source = os.path.join(args.cwd, step.source) if step.source else ""
        lookup = lookup_record(
            args.commands[0].argv, args.cwd, task.file_dep, source, before.started_ns
        )
        if lookup is not None:
            task.values[SEARCH_KEY] = lookup
    own_outputs = os.path.join(args.cwd, OUTPUT_DIR, "")
    task.values[INPUTS_KEY] = inputs_as_read(task.file_dep, before, own_outputs)
    return result


def run_of(task: Any) -> StepRun | None:
    """The StepRun of a doit task made by to_doit; None for another (a dodo.py's own)."""
    meta = task.meta
    return meta.get(RUN_KEY) if meta else None


def step_of(task: Any) -> Step | None:
    """The step of a doit task made by to_doit; None for another."""
    run = run_of(task)
    return run.step if run else None


def task_title(task: Any) -> str:
    """doit title of every bpfbuild task: its kbuild-style line, else its name."""
    step = step_of(task)
    return step_line(step) if step and step.label else task.name


def project_tasks(
    project: Project,
    toolchains: Sequence[Toolchain],
    prefix: str = "",
    sources: Sequence[StepSource] = (),
) -> Iterator[dict[str, Any]]:
    """The doit tasks of project_steps."""
    return map(to_doit, project_steps(project, toolchains, prefix, sources))
