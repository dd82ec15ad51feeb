"""App aliases: relative links output/<arch>/ALIAS -> APP, made atomically; links that
an older config made and the current one no longer names are removed."""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from doit.exceptions import TaskFailed

from .. import safefs
from .actions import PARTIAL, signature_once
from .steps import Command


@dataclass(frozen=True)
class AliasArgs:
    """make_alias's argument."""

    link: str
    """Absolute path of the alias: output/<arch>/ALIAS."""
    app: str
    """The app's name: the link's text (its executable is beside the link)."""
    cwd: str
    """The project root."""

    @property
    def commands(self) -> tuple[Command, ...]:
        return (Command(("ln", "-sfn", self.app, os.path.relpath(self.link, self.cwd))),)


@signature_once
def make_alias(args: AliasArgs) -> TaskFailed | None:
    """Create the link as a relative symlink to the app (a file beside it): written as
    LINK.partial, then renamed over link, so a reader never sees it missing or wrong.
    Its folder is checked (safefs); a folder where the link goes fails the step."""
    link, app = args.link, args.app
    partial = link + PARTIAL
    try:
        safefs.prepare_file(args.cwd, partial)
        if os.path.lexists(partial):
            os.unlink(partial)
        safefs.prepare_file(args.cwd, link)
        os.symlink(app, partial)
        os.replace(partial, link)
    except safefs.UnsafePathError as err:
        return TaskFailed(err.describe())
    except OSError as err:
        return TaskFailed(safefs.refusal(args.cwd, link, err).describe())
    return None


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


@dataclass(frozen=True)
class StaleAliasArgs:
    """remove_stale_aliases's argument, and no_stale_aliases's."""

    arch_dir: str
    """output/<arch>/, absolute."""
    aliases: tuple[str, ...]
    """The aliases the config names: kept."""
    apps: tuple[str, ...]
    """The apps: a link to one of them that is no configured alias is stale."""
    cwd: str
    """The project root."""

    @property
    def commands(self) -> tuple[Command, ...]:
        return ()  # which links are stale is known only when it runs


@signature_once
def no_stale_aliases(args: StaleAliasArgs) -> bool:
    """doit up-to-date check of the removal step: nothing to remove."""
    return not stale_aliases(args.arch_dir, args.aliases, args.apps)


no_stale_aliases.fastpath_covered = (  # type: ignore[attr-defined]
    True  # stale links come from a bpfbuild.toml edit, which the stamp sees
)


@signature_once
def remove_stale_aliases(args: StaleAliasArgs) -> None:
    """Unlink the stale alias links (the links themselves, never what they point at)."""
    for link in stale_aliases(args.arch_dir, args.aliases, args.apps):
        os.unlink(link)
