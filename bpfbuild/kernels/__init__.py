"""Kernels: the running host's kernel facts, and distribution kernels resolved, fetched and cached."""
