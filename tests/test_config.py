"""bpfbuild.toml parsing: valid files, and every error with its file, line, key and hint."""

from __future__ import annotations

from pathlib import Path

import pytest

from bpfbuild.arch import ARCHES
from bpfbuild.errors import ConfigError
from bpfbuild.pipeline.config import BuildConfig, load_config


def write_config(folder: Path, text: str) -> Path:
    path = folder / "bpfbuild.toml"
    path.write_text(text)
    return path


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, ""))
    assert config.name == tmp_path.name
    assert config.build == BuildConfig()
    assert config.build.static is True
    assert config.build.include_dirs == ["src", "include"]
    assert config.build.pch == "auto"
    assert config.vmlinux == {} and config.apps == {}


def test_every_documented_key(tmp_path: Path) -> None:
    config = load_config(
        write_config(
            tmp_path,
            """
[project]
name = "mytool"

[build]
arches = ["x86_64", "aarch64"]
static = false
strip = true
bpf_cflags = ["-DDEBUG"]
cflags = ["-Wextra"]
ldflags = ["-Wl,-z,now"]
pch = false
include_dirs = ["src", "inc"]

[vmlinux]
arm64 = "btf/vmlinux-arm64"

[app.mytool]
bpf = ["src/mytool.bpf.c"]
sources = ["src/main.c", "src/util.c"]
""",
        )
    )
    assert config.name == "mytool"
    assert config.build.arches == ["x86_64", "aarch64"]
    assert (config.build.static, config.build.strip) == (False, True)
    assert config.build.bpf_cflags == ["-DDEBUG"]
    assert config.build.cflags == ["-Wextra"]
    assert config.build.ldflags == ["-Wl,-z,now"]
    assert config.build.include_dirs == ["src", "inc"]
    assert config.build.pch is False
    assert config.vmlinux == {"arm64": "btf/vmlinux-arm64"}
    assert config.apps["mytool"].bpf == ["src/mytool.bpf.c"]
    assert config.apps["mytool"].sources == ["src/main.c", "src/util.c"]


def test_dotted_keys_are_the_same_as_tables(tmp_path: Path) -> None:
    config = load_config(
        write_config(tmp_path, 'build.static = false\napp.tool.sources = ["src/t.c"]\n')
    )
    assert config.build.static is False
    assert config.apps["tool"].sources == ["src/t.c"]


def test_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "bpfbuild.toml")
    assert "not found" in caught.value.message
    assert "bpfbuild init" in caught.value.hint


ALL_ARCHES = ", ".join(ARCHES)

# (id, bpfbuild.toml, the message after "bpfbuild.toml:", a part of the hint)
CONFIG_ERRORS = [
    (
        "malformed-toml",
        '[project]\nname = "x"\n[build\nstatic = true\n',
        "3: invalid TOML",
        "fix the TOML syntax at that line",
    ),
    (
        "malformed-toml-at-end",
        "[build]\nbpf_cflags = [\n",
        "2: invalid TOML",
        "fix the TOML syntax at that line",
    ),
    ("bare-word-value", "[build]\nstatic = yes\n", "2: invalid TOML", "fix the TOML syntax"),
    (
        "unknown-table",
        '[project]\nname = "x"\n\n[bogus]\nkey = 1\n',
        "4: unknown table or key 'bogus'",
        "valid top-level tables: app, bpflib, build, libbpf, object, project, toolchain",
    ),
    ("unknown-top-key", 'name = "x"\n', "1: unknown table or key 'name'", "valid top-level tables"),
    (
        "unknown-project-key",
        '[project]\nname = "x"\nversion = "1.0"\n',
        "3: unknown key 'project.version'",
        "valid keys: name",
    ),
    (
        "unknown-build-key",
        "[build]\nstatic = true\noptimise = 3\n",
        "3: unknown key 'build.optimise'",
        "valid keys: arches, bpf_cflags, cflags",
    ),
    (
        "unknown-app-key",
        '[app.tool]\nsources = ["src/t.c"]\nmain = "src/t.c"\n',
        "3: unknown key 'app.tool.main'",
        "valid keys: aliases, bpf, cflags, ldflags, libs, sources",
    ),
    ("unknown-dotted-key", "build.optimize = 2\n", "1: unknown key 'build.optimize'", "valid keys"),
    (
        "bool-as-string",
        '[build]\nstatic = "yes"\n',
        "2: 'build.static' must be true or false, not str 'yes'",
        "change the value of 'build.static'",
    ),
    (
        "bool-as-int-dotted",
        "build.strip = 1\n",
        "1: 'build.strip' must be true or false, not int 1",
        "change the value of 'build.strip'",
    ),
    (
        "pch-unknown-word",
        '[build]\nstatic = true\npch = "sometimes"\n',
        "3: 'build.pch' must be true, false or \"auto\", not 'sometimes'",
        "change the value of 'build.pch'",
    ),
    (
        "pch-as-int",
        "[build]\npch = 1\n",
        "2: 'build.pch' must be true or false or a string, not int 1",
        "change the value of 'build.pch'",
    ),
    (
        "list-as-string",
        '[build]\narches = "x86_64"\n',
        "2: 'build.arches' must be an array",
        "change the value of 'build.arches'",
    ),
    (
        "list-item-type",
        '[build]\n\nbpf_cflags = ["-DA", 3]\n',
        "3: 'build.bpf_cflags' must be a string, not int 3",
        "change the value of 'build.bpf_cflags'",
    ),
    (
        "name-as-int",
        "[project]\nname = 3\n",
        "2: 'project.name' must be a string, not int 3",
        "change the value of 'project.name'",
    ),
    ("table-as-int", "build = 3\n", "1: 'build' must be a table", "change the value of 'build'"),
    ("app-as-string", 'app = "tool"\n', "1: 'app' must be a table", "change the value of 'app'"),
    (
        "app-entry-as-list",
        'app.tool = ["src/t.c"]\n',
        "1: 'app.tool' must be a table",
        "change the value of 'app.tool'",
    ),
    (
        "vmlinux-as-int",
        "[vmlinux]\narm64 = 5\n",
        "2: 'vmlinux.arm64' must be a string",
        "change the value of 'vmlinux.arm64'",
    ),
    (
        "unknown-arch",
        '[build]\nstatic = true\narches = ["x86_64", "sparc"]\n',
        "3: unknown arch 'sparc'",
        f"valid arches: {ALL_ARCHES}",
    ),
    (
        "unknown-vmlinux-arch",
        '[vmlinux]\nsparc64 = "vmlinux-sparc.h"\n',
        "2: unknown arch 'sparc64'",
        f"valid arches: {ALL_ARCHES}",
    ),
    (
        "duplicated-arch",
        '[build]\narches = ["arm64", "x86_64", "aarch64"]\n',
        "2: arch 'aarch64' is listed twice in 'build.arches' (as 'arm64')",
        "list each arch once",
    ),
    (
        "app-name-is-an-output-folder",
        '[app.verify]\nsources = ["src/v.c"]\n',
        "1: 'verify' is not a valid app name: output/<arch>/verify/ is a folder",
        "none of: bpf, include",
    ),
    (
        "app-name-with-a-slash",
        '[app."a/b"]\nsources = ["src/v.c"]\n',
        "1: 'a/b' is not a valid app name: it must be a C identifier",
        "use letters, digits",
    ),
    (
        "app-name-not-ascii",
        '[app."café"]\nsources = ["src/v.c"]\n',
        "1: 'café' is not a valid app name",
        "use letters, digits",
    ),
    (
        "source-outside",
        '[app.tool]\n\nsources = ["../../etc/x.c"]\n',
        "3: 'app.tool.sources': '../../etc/x.c' is outside the project folder (it resolves to /",
        "copy or move the file into it",
    ),
    (
        "vmlinux-outside",
        '[vmlinux]\narm64 = "/boot/vmlinux"\n',
        "2: 'vmlinux.arm64': '/boot/vmlinux' is outside the project folder",
        "copy or move",
    ),
    (
        "vmlinux-kernel-btf-escape",
        '[vmlinux]\nx86_64 = "/sys/kernel/btf/../../../etc/passwd"\n',
        "2: 'vmlinux.x86_64': '/sys/kernel/btf/../../../etc/passwd' is outside the project folder",
        "copy or move",
    ),
    (
        "include-dir-outside",
        '[build]\ninclude_dirs = ["..", "src"]\n',
        "2: 'build.include_dirs': '..' is outside the project folder",
        "copy or move",
    ),
    (
        "baseline-absolute",
        '[verify]\nbaseline = "/tmp/b.json"\n',
        "2: 'verify.baseline': '/tmp/b.json' is outside the project folder",
        "copy or move",
    ),
    (
        "max-insn-share-zero",
        "[verify]\nmax_insn_share = 0\n",
        "2: 'verify.max_insn_share' must be more than 0 and at most 1, not 0.0",
        "e.g. 0.5",
    ),
    (
        "max-growth-negative",
        "[verify]\nmax_growth = -0.5\n",
        "2: 'verify.max_growth' must be 0 or more, not -0.5",
        "e.g. 10",
    ),
    (
        "rodata-bool",
        "[verify.rodata.obj]\nflag = true\n",
        "2: 'verify.rodata.obj.flag' must be an integer, not bool True",
        "change the value",
    ),
]


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bpfbuild.toml"
    path.write_bytes(b'[project]\n\n# caf\xe9\nname = "x"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.message == f"{path}:3: not UTF-8 text (byte 0xe9)"
    assert "save the file as UTF-8" in caught.value.hint


def test_paths_inside_the_project_and_the_kernel_btf_are_accepted(tmp_path: Path) -> None:
    config = load_config(
        write_config(
            tmp_path,
            (
                '[build]\ninclude_dirs = ["src/../include", "./src"]\n'
                '[vmlinux]\nx86_64 = "/sys/kernel/btf/vmlinux"\narm64 = "debian:6.1"\n'
                '[verify]\nmax_insn_share = 1\nmax_growth = 0\nbaseline = "ci/baseline.json"\n'
            ),
        )
    )
    assert config.build.include_dirs == ["src/../include", "./src"]
    assert config.vmlinux == {"x86_64": "/sys/kernel/btf/vmlinux", "arm64": "debian:6.1"}
    assert (config.verify.max_insn_share, config.verify.max_growth) == (1.0, 0.0)


def test_a_path_through_a_link_out_of_the_project_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "p"
    (root / "src").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (root / "src" / "lib").symlink_to(tmp_path / "elsewhere")
    path = write_config(root, '[app.tool]\nsources = ["src/lib/x.c"]\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.message == (
        f"{path}:2: 'app.tool.sources': 'src/lib/x.c' is outside "
        f"the project folder (it resolves to {tmp_path.resolve()}/elsewhere/x.c)"
    )


@pytest.mark.parametrize(
    "text, message, hint",
    [case[1:] for case in CONFIG_ERRORS],
    ids=[case[0] for case in CONFIG_ERRORS],
)
def test_config_error(tmp_path: Path, text: str, message: str, hint: str) -> None:
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.message.startswith(f"{path}:{message}"), caught.value.message
    assert hint in caught.value.hint
    assert "\n" not in caught.value.message


def test_int_is_accepted_where_a_number_is_expected(tmp_path: Path) -> None:
    """TOML writes 10 and 10.0 differently; a float field takes both."""
    config = load_config(write_config(tmp_path, "[verify]\nmax_growth = 10\n"))
    assert config.verify.max_growth == 10.0
    assert isinstance(config.verify.max_growth, float)


def test_uname_spelling_of_an_arch_is_accepted(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, '[build]\narches = ["aarch64", "amd64"]\n'))
    assert config.build.arches == ["aarch64", "amd64"]
