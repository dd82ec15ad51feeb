"""The names of a project's files and folders that bpfbuild reads and writes: its
configuration, the outputs folder and the build state. Imports nothing: the fast
path (fastpath.py) reads them before anything else is imported."""

CONFIG_NAME = "bpfbuild.toml"
"""The project's configuration; the folder holding it is the project root."""
OUTPUT_DIR = "output"
"""Build outputs, one folder per arch: output/<arch>/."""
COMPILE_COMMANDS = "compile_commands.json"
"""The compile database at the project root, for the arch built (the host's first):
the one output outside output/."""
STATE_DIR = ".bpfbuild"
"""Build state (the files below): never shipped, safe to delete."""

LOCK_NAME = "lock"
"""STATE_DIR/lock: held by the one build that runs in a project at a time."""
DB_NAME = "doit.sqlite"
"""STATE_DIR/doit.sqlite: doit's record of what each step was last run from."""
STAMP_NAME = "fastpath.stamp"
"""STATE_DIR/fastpath.stamp: what the last successful build depended on (fastpath.py)."""
TOOLCHAIN_CACHE_NAME = "toolchain.json"
"""STATE_DIR/toolchain.json: the tools' versions and probes, keyed by their stat."""
OUTPUTS_NAME = "outputs.json"
"""STATE_DIR/outputs.json: every output the last build's steps can make (its dead outputs
are removed at the start of the next build)."""
