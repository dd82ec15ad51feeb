"""The build stage: bpfbuild.toml -> project model -> toolchain -> steps -> doit tasks -> run.

Data flows one way: this package imports neither bpfbuild.verify nor bpfbuild.vm (not
even inside a function), and bpfbuild.kernels imports none of pipeline, verify and vm
(tests/test_layers.py checks both). A stage above adds its steps through one hook, the
step sources a run is given (tasks.StepSource; bpfbuild.verify.steps provides those of
`bpfbuild verify`)."""
