"""The build stage: bpfbuild.toml -> project model -> toolchain -> steps -> doit tasks -> run."""
