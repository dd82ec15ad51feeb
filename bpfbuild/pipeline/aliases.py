"""App aliases: relative links output/<arch>/ALIAS -> APP, made atomically; links that
an older config made and the current one no longer names are removed."""

from __future__ import annotations

import inspect
import os
from collections.abc import Collection
from pathlib import Path
from typing import ClassVar

from .actions import PARTIAL, call_signature, signature_once


@signature_once
def make_alias(link: str, app: str) -> None:
    """Create link as a relative symlink to app (a file beside it): written as
    LINK.partial, then renamed over link, so a reader never sees it missing or wrong."""
    partial = link + PARTIAL
    if os.path.lexists(partial):
        os.unlink(partial)
    Path(link).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(app, partial)
    os.replace(partial, link)


def stale_aliases(arch_dir: str, aliases: Collection[str], apps: Collection[str]) -> list[Path]:
    """Links in arch_dir that point at one of the apps' executables (a bare name: the
    only kind make_alias creates) but are no longer a configured alias. Nothing else,
    and no link that points elsewhere, is ever listed."""
    folder = Path(arch_dir)
    if not folder.is_dir():
        return []
    stale = []
    for entry in folder.iterdir():
        if entry.name in aliases or entry.name.endswith(PARTIAL) or not entry.is_symlink():
            continue  # a configured alias, or one being made (removed by the next build)
        target = os.readlink(entry)
        if "/" not in target and target in apps:
            stale.append(entry)
    return sorted(stale)


class NoStaleAliases:
    """doit up-to-date check of the removal task: nothing to remove."""

    fastpath_covered = True
    """Stale links come from a bpfbuild.toml edit, which the no-op stamp sees."""
    __signature__: ClassVar[inspect.Signature]

    def __call__(self, arch_dir: str, aliases: tuple[str, ...], apps: tuple[str, ...]) -> bool:
        return not stale_aliases(arch_dir, aliases, apps)


NoStaleAliases.__signature__ = call_signature(NoStaleAliases)
no_stale_aliases = NoStaleAliases()


@signature_once
def remove_stale_aliases(arch_dir: str, aliases: tuple[str, ...], apps: tuple[str, ...]) -> None:
    """Unlink the stale alias links (the links themselves, never what they point at)."""
    for link in stale_aliases(arch_dir, aliases, apps):
        os.unlink(link)
