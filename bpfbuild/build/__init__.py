"""The build pipeline: config, project model, toolchain, doit tasks and actions, engine."""
