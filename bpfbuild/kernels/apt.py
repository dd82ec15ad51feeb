"""apt with bpfbuild's own configuration: its own sources list, package lists and
download cache under the user's cache, so the machine's apt sources are never read or
changed and no root is needed. Used to fetch distribution kernels and source packages.

    apt = Apt(["bookworm"], "arm64")
    apt.update()                                  # once; lists live in the cache
    version = apt.candidate("linux-image-cloud-arm64")
    deb = apt.download("linux-image-6.1.0-37-cloud-arm64", version, folder)
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tarfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import safefs
from ..cache import cache_root, locked, own_folder
from ..errors import BpfBuildError

MIRROR_ENV = "BPFBUILD_DEBIAN_MIRROR"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
KNOWN_SUITES = ("bullseye", "bookworm", "bookworm-backports", "trixie", "trixie-backports")
"""Debian suites bpfbuild may ask for: 5.10 kernels, 6.1, 6.12 (trixie and
bookworm-backports), and the newer series of trixie-backports (7.x)."""
LISTS_MAX_AGE = 7 * 24 * 3600
"""Package lists older than this are refreshed before a new resolution."""


class AptError(BpfBuildError):
    """apt could not resolve or fetch a package."""


def debian_mirror() -> str:
    return os.environ.get(MIRROR_ENV, DEFAULT_MIRROR).rstrip("/")


@dataclass(frozen=True)
class Package:
    """One binary or source package version as the lists describe it."""

    name: str
    version: str
    fields: dict[str, str]


class Apt:
    """apt-get/apt-cache for some Debian suites and one Debian arch, configured only
    through command-line options, with state in <cache>/apt/<arch>-<suites>[-src]."""

    def __init__(
        self,
        suites: Sequence[str],
        debian_arch: str,
        sources: bool = False,
        root: Path | None = None,
    ) -> None:
        unknown = [s for s in suites if s not in KNOWN_SUITES]
        if unknown or not suites:
            raise AptError(
                f"unknown Debian suite {', '.join(unknown) or '(none)'}",
                hint="known suites: " + ", ".join(KNOWN_SUITES),
            )
        if not re.fullmatch(r"[a-z0-9]+", debian_arch):
            raise AptError(
                f"invalid Debian architecture {debian_arch!r}",
                hint="use a Debian arch name such as amd64 or arm64",
            )
        self.suites = tuple(sorted(set(suites)))
        self.arch = debian_arch
        self.sources = sources
        name = f"{debian_arch}-{'+'.join(self.suites)}" + ("-src" if sources else "")
        self.dir = (root or cache_root()) / "apt" / name

    # -- configuration ------------------------------------------------------

    def sources_lines(self) -> list[str]:
        """The sources list, one line per suite (and deb-src lines when asked)."""
        mirror = debian_mirror()
        lines = []
        for suite in self.suites:
            lines.append(f"deb [signed-by={KEYRING}] {mirror} {suite} main")
            if self.sources:
                lines.append(f"deb-src [signed-by={KEYRING}] {mirror} {suite} main")
        return lines

    def options(self) -> list[str]:
        d = self.dir
        options = {
            "Dir::Etc::sourcelist": d / "sources.list",
            "Dir::Etc::sourceparts": d / "sources.list.d",
            "Dir::Etc::preferences": d / "preferences",
            "Dir::Etc::preferencesparts": d / "preferences.d",
            "Dir::State::Lists": d / "lists",
            "Dir::State::status": d / "status",
            "Dir::Cache": d / "cache",
            "Debug::NoLocking": "1",  # our own folders; lock them ourselves
            "APT::Architecture": self.arch,
            "APT::Architectures": self.arch,
            "Acquire::Languages": "none",
            "APT::Get::List-Cleanup": "0",
        }
        if os.geteuid() == 0:
            # apt drops to _apt for downloads, which cannot write under /root.
            options["APT::Sandbox::User"] = "root"
        return [arg for key, value in options.items() for arg in ("-o", f"{key}={value}")]

    def _prepare(self) -> None:
        # In the cache's marked root, through safefs: no link there is followed.
        apt_root = own_folder("apt", self.dir.parent.parent)
        try:
            for sub in (
                "lists/partial",
                "cache/archives/partial",
                "sources.list.d",
                "preferences.d",
            ):
                safefs.make_folders(apt_root, self.dir / sub, relative=False)
            if safefs.read_regular(self.dir / "status") is None:
                safefs.write_file(apt_root, self.dir / "status", b"", relative=False)
            text = ("\n".join(self.sources_lines()) + "\n").encode()
            listing = self.dir / "sources.list"
            if safefs.read_regular(listing) != text:
                safefs.write_file(apt_root, listing, text, relative=False)
        except safefs.UnsafePathError as err:
            raise AptError(err.message, hint=err.hint) from None
        except OSError as err:
            raise AptError(
                f"cannot write apt's state in {self.dir}: {err.strerror}",
                hint="make the cache writable, or set $BPFBUILD_CACHE_DIR",
            ) from None

    # -- commands -----------------------------------------------------------

    def _run(self, tool: str, *args: str, cwd: Path | None = None) -> str:
        binary = shutil.which(tool)
        if not binary:
            raise AptError(
                f"{tool} not found: bpfbuild fetches Debian packages with apt",
                hint="run on Debian or Ubuntu (apt-get install apt)",
            )
        if not Path(KEYRING).is_file():
            raise AptError(
                f"{KEYRING} is missing: cannot check Debian's signatures",
                hint="apt-get install debian-archive-keyring",
            )
        done = subprocess.run(
            [binary, *self.options(), *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            env=dict(os.environ, LC_ALL="C"),
        )
        if done.returncode != 0:
            message = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise AptError(f"`{tool} {' '.join(args)}` failed: {message}", hint=self.network_hint())
        return done.stdout

    def network_hint(self) -> str:
        return (
            "check that this machine reaches "
            + debian_mirror()
            + " (or set $"
            + MIRROR_ENV
            + " to a Debian mirror); bpfbuild's own sources list is:  "
            + "  |  ".join(self.sources_lines())
        )

    def lists_age(self) -> float | None:
        """Seconds since the lists were fetched, or None when never."""
        stamp = self.dir / "lists" / ".updated"
        try:
            return time.time() - stamp.stat().st_mtime
        except OSError:
            return None

    def update(self, force: bool = False) -> None:
        """Fetch the package lists when they are missing, old, or when forced."""
        with locked("apt", self.dir.name, self.dir.parent.parent):
            age = self.lists_age()
            if not force and age is not None and age < LISTS_MAX_AGE:
                return
            self._prepare()
            self._run("apt-get", "update", "-q")
            # apt-get update exits 0 when it fetched no list at all (it only warns).
            lists = self.dir / "lists"
            kinds = ["*_Packages*"] + (["*_Sources*"] if self.sources else [])
            if not all(any(lists.glob(kind)) for kind in kinds):
                raise AptError(
                    f"no package list of Debian {', '.join(self.suites)} could be fetched",
                    hint=self.network_hint(),
                )
            (lists / ".updated").touch()

    def show(self, package: str, version: str | None = None) -> Package | None:
        """The record of package (at version, else the candidate), or None if unknown."""
        self.update()
        spec = f"{package}={version}" if version else package
        try:
            text = self._run("apt-cache", "show", "--no-all-versions", spec)
        except AptError:
            return None
        fields = _parse_record(text)
        if "Package" not in fields:
            return None
        return Package(fields["Package"], fields.get("Version", ""), fields)

    def package_names(self, prefix: str) -> list[str]:
        """The names of the binary packages that start with prefix."""
        self.update()
        return sorted(self._run("apt-cache", "pkgnames", prefix).split())

    def candidate(self, package: str) -> str | None:
        record = self.show(package)
        return record.version if record else None

    def download(self, package: str, version: str, folder: Path) -> Path:
        """Download one .deb into folder (apt checks it against the signed lists)."""
        self.update()
        folder.mkdir(parents=True, exist_ok=True)
        self._run("apt-get", "download", "-q", f"{package}={version}", cwd=folder)
        found = sorted(folder.glob(f"{package}_*.deb"))
        if not found:
            raise AptError(
                f"apt-get download {package}={version} produced no .deb", hint=self.network_hint()
            )
        return found[-1]

    def download_source(self, package: str, version: str | None, folder: Path) -> list[Path]:
        """Download a source package's files (.dsc, tarballs) into folder."""
        if not self.sources:
            raise AptError("this Apt has no deb-src lines", hint="create it with sources=True")
        self.update()
        folder.mkdir(parents=True, exist_ok=True)
        spec = f"{package}={version}" if version else package
        self._run("apt-get", "source", "--download-only", "-q", spec, cwd=folder)
        return sorted(p for p in folder.iterdir() if p.is_file())


@functools.total_ordering
class DebianVersion:
    """A Debian version ([epoch:]upstream[-revision]) ordered as dpkg orders them."""

    def __init__(self, text: str) -> None:
        self.text = text
        epoch, _, rest = text.rpartition(":") if ":" in text else ("0", "", text)
        upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "0")
        self.key = (int(epoch) if epoch.isdigit() else 0, upstream, revision)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DebianVersion) and self._compare(other) == 0

    def __lt__(self, other: DebianVersion) -> bool:
        return self._compare(other) < 0

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"DebianVersion({self.text!r})"

    def _compare(self, other: DebianVersion) -> int:
        if self.key[0] != other.key[0]:
            return -1 if self.key[0] < other.key[0] else 1
        for mine, theirs in zip(self.key[1:], other.key[1:], strict=True):
            if order := _compare_part(mine, theirs):
                return order
        return 0


def _compare_part(a: str, b: str) -> int:
    """dpkg's comparison of an upstream version or revision: runs of non-digits compare
    character by character (`~` before anything, even the end; letters before other
    characters), runs of digits compare as numbers."""

    def weight(c: str) -> int:
        if c == "~":
            return -1
        if c.isalpha():
            return ord(c)
        return ord(c) + 256

    while a or b:
        text_a = re.match(r"[^0-9]*", a)[0]  # type: ignore[index]
        text_b = re.match(r"[^0-9]*", b)[0]  # type: ignore[index]
        a, b = a[len(text_a) :], b[len(text_b) :]
        for i in range(max(len(text_a), len(text_b))):
            wa = weight(text_a[i]) if i < len(text_a) else 0
            wb = weight(text_b[i]) if i < len(text_b) else 0
            if wa != wb:
                return -1 if wa < wb else 1
        digits_a = re.match(r"[0-9]*", a)[0]  # type: ignore[index]
        digits_b = re.match(r"[0-9]*", b)[0]  # type: ignore[index]
        a, b = a[len(digits_a) :], b[len(digits_b) :]
        if int(digits_a or 0) != int(digits_b or 0):
            return -1 if int(digits_a or 0) < int(digits_b or 0) else 1
    return 0


def _parse_record(text: str) -> dict[str, str]:
    """The first RFC 822 record of apt-cache output, continuation lines joined."""
    fields: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        if line[0] in " \t" and key:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            fields[key] = value.strip()
    return fields


def extract_deb(deb: Path, destination: Path, members: Sequence[str] = ()) -> None:
    """Extract a .deb's data archive (or only the named members) into destination;
    bpfbuild.archive refuses any member that would leave the folder."""
    from ..archive import unpack

    data = _deb_member(deb, "data.tar")
    try:
        archive = tarfile.open(fileobj=data)
    except tarfile.TarError as err:
        raise AptError(
            f"{deb.name}: its data archive is unreadable ({err})",
            hint="delete it and fetch again (`bpfbuild cache clean`)",
        ) from None
    with archive:
        unpack(
            archive,
            destination,
            members or None,
            origin=deb.name,
            hint="this package is not a Debian package bpfbuild can use: delete it "
            "(`bpfbuild cache clean`) and fetch again from a trusted mirror",
        )


def _deb_member(deb: Path, prefix: str):
    """The file object of the ar member named prefix* (data.tar.xz, .zst, ...)."""
    import io

    with open(deb, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise AptError(
                f"{deb} is not a Debian package (no ar header)", hint="delete it and fetch again"
            )
        while True:
            header = f.read(60)
            if len(header) < 60:
                break
            name = header[:16].decode().strip().rstrip("/")
            size = int(header[48:58].decode().strip())
            body = f.read(size)
            if size % 2:
                f.read(1)
            if name.startswith(prefix):
                if name.endswith(".zst"):
                    return io.BytesIO(_unzstd(body))
                return io.BytesIO(body)
    raise AptError(f"{deb} has no {prefix}* member", hint="delete it and fetch again")


def _unzstd(data: bytes) -> bytes:
    """zstd is not in Python's standard library before 3.14: use the zstd tool."""
    tool = shutil.which("zstd")
    if not tool:
        raise AptError("zstd is needed to unpack this package", hint="apt-get install zstd")
    done = subprocess.run([tool, "-dc"], input=data, capture_output=True)
    if done.returncode:
        raise AptError(
            "zstd could not unpack a package member: "
            + done.stderr.decode(errors="replace").strip(),
            hint="delete the cached .deb and fetch again",
        )
    return done.stdout
