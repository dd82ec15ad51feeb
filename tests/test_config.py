"""bpfbuild.toml parsing: valid files, and every error with its file, line, key and hint."""

from __future__ import annotations

from pathlib import Path

import pytest

from bpfbuild.arch import ARCHES
from bpfbuild.build.config import BuildConfig, load_config
from bpfbuild.errors import ConfigError


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
    config = load_config(write_config(tmp_path, """
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
"""))
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
    config = load_config(write_config(tmp_path, 'build.static = false\napp.tool.sources = ["src/t.c"]\n'))
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
    ("malformed-toml", '[project]\nname = "x"\n[build\nstatic = true\n',
     "3: invalid TOML", "fix the TOML syntax at that line"),
    ("malformed-toml-at-end", "[build]\nbpf_cflags = [\n",
     "2: invalid TOML", "fix the TOML syntax at that line"),
    ("bare-word-value", "[build]\nstatic = yes\n",
     "2: invalid TOML", "fix the TOML syntax"),
    ("unknown-table", '[project]\nname = "x"\n\n[bogus]\nkey = 1\n',
     "4: unknown table or key 'bogus'", "valid top-level tables: app, build, libbpf, object, project, toolchain"),
    ("unknown-top-key", 'name = "x"\n',
     "1: unknown table or key 'name'", "valid top-level tables"),
    ("unknown-project-key", '[project]\nname = "x"\nversion = "1.0"\n',
     "3: unknown key 'project.version'", "valid keys: name"),
    ("unknown-build-key", "[build]\nstatic = true\noptimise = 3\n",
     "3: unknown key 'build.optimise'", "valid keys: arches, bpf_cflags, cflags"),
    ("unknown-app-key", '[app.tool]\nsources = ["src/t.c"]\nmain = "src/t.c"\n',
     "3: unknown key 'app.tool.main'", "valid keys: aliases, bpf, cflags, ldflags, libs, sources"),
    ("unknown-dotted-key", "build.optimize = 2\n",
     "1: unknown key 'build.optimize'", "valid keys"),
    ("bool-as-string", '[build]\nstatic = "yes"\n',
     "2: 'build.static' must be true or false, not str 'yes'", "change the value of 'build.static'"),
    ("bool-as-int-dotted", "build.strip = 1\n",
     "1: 'build.strip' must be true or false, not int 1", "change the value of 'build.strip'"),
    ("pch-unknown-word", '[build]\nstatic = true\npch = "sometimes"\n',
     "3: 'build.pch' must be true, false or \"auto\", not 'sometimes'", "change the value of 'build.pch'"),
    ("pch-as-int", "[build]\npch = 1\n",
     "2: 'build.pch' must be true or false or a string, not int 1", "change the value of 'build.pch'"),
    ("list-as-string", '[build]\narches = "x86_64"\n',
     "2: 'build.arches' must be an array", "change the value of 'build.arches'"),
    ("list-item-type", '[build]\n\nbpf_cflags = ["-DA", 3]\n',
     "3: 'build.bpf_cflags' must be a string, not int 3", "change the value of 'build.bpf_cflags'"),
    ("name-as-int", "[project]\nname = 3\n",
     "2: 'project.name' must be a string, not int 3", "change the value of 'project.name'"),
    ("table-as-int", "build = 3\n",
     "1: 'build' must be a table", "change the value of 'build'"),
    ("app-as-string", 'app = "tool"\n',
     "1: 'app' must be a table", "change the value of 'app'"),
    ("app-entry-as-list", 'app.tool = ["src/t.c"]\n',
     "1: 'app.tool' must be a table", "change the value of 'app.tool'"),
    ("vmlinux-as-int", "[vmlinux]\narm64 = 5\n",
     "2: 'vmlinux.arm64' must be a string", "change the value of 'vmlinux.arm64'"),
    ("unknown-arch", '[build]\nstatic = true\narches = ["x86_64", "sparc"]\n',
     "3: unknown arch 'sparc'", f"valid arches: {ALL_ARCHES}"),
    ("unknown-vmlinux-arch", '[vmlinux]\nsparc64 = "vmlinux-sparc.h"\n',
     "2: unknown arch 'sparc64'", f"valid arches: {ALL_ARCHES}"),
]


@pytest.mark.parametrize("text, message, hint",
                         [case[1:] for case in CONFIG_ERRORS],
                         ids=[case[0] for case in CONFIG_ERRORS])
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
