"""Verification in small emulated VMs: guest initramfs, qemu per arch, console protocol, timeouts."""
