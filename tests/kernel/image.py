"""Builds the guest image for the cifs.ko tests: a Debian kernel and a small busybox initramfs.

The host has no cifs module and cannot use KVM, so the tests boot Debian's own kernel under qemu's software
emulation. Nothing is installed on the host for the guest: the kernel and busybox packages are fetched with
`apt-get download` into the cache and unpacked with `dpkg-deb -x`.

Two kernels: the host's release (Debian 12, cifs.ko 6.1; the system's apt sources) and, for the features newer
clients have (POSIX file types, creating special files and symlinks as reparse points), Debian unstable's
(`suite="sid"`). Unstable is read through a private apt configuration under the cache directory (its own
sources, lists and package cache, signatures checked against the system's debian-archive-keyring), so the
host's apt sources stay as they are. Newer Debian kernels come split into linux-binary-*, linux-modules-* and
linux-base-* packages under /usr/lib/modules/<version>/; older ones are one package with /boot and /lib/modules.

What ends up in the base initramfs (newc cpio, uncompressed, since the guest decompresses slowly under TCG):
- /bin/busybox from busybox-static, with a symlink per applet;
- the modules listed in GUEST_MODULES plus everything their "depends=" modinfo fields pull in, under
  /lib/modules/<version>/, and /modules.load listing them in load order (dependencies first);
- /dev/console, so that the kernel can give the first process a console before devtmpfs is mounted.

The guest's /init, the test script and its settings are not part of it: the runner (vm.py) appends them as a
second cpio archive per run. The base archive is cached per kernel version (and IMAGE_RECIPE) in
.cache/vm/<version>-r<recipe>/ and rebuilt only when missing.

Run by hand: `python -m tests.kernel.image` (prints the paths). scripts/vm/build.sh does the same after
installing the host tools.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.kernel.cpio import CpioWriter

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE_DIR = REPO_ROOT / ".cache" / "vm"
LOCKTEST_SOURCE = Path(__file__).resolve().parent / "locktest.c"
FILETEST_SOURCE = Path(__file__).resolve().parent / "filetest.c"
POSIXCHECK_SOURCE = Path(__file__).resolve().parent / "posixcheck.c"

# Bump when the content of the base archive changes, so old caches are not reused.
IMAGE_RECIPE = 1
STABLE = "stable"  # the host's own release, through the system's apt sources
SID = "sid"
_SID_SOURCES = """Types: deb
URIs: http://deb.debian.org/debian
Suites: sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

KERNEL_METAPACKAGE = "linux-image-amd64"
BUSYBOX_PACKAGE = "busybox-static"

# Modules the guest loads explicitly. The cifs "softdep=" entries on 6.1 are bare algorithm names that modprobe
# ignores, and the guest has no working modprobe anyway, so the crypto templates cifs asks for (signing: cmac,
# hmac(sha256); 3.1.1 preauth: sha512; encryption: ccm, gcm) are listed by hand. Built-in ones (hmac, sha256,
# aes, md5, cbc on Debian) are skipped via modules.builtin.
GUEST_MODULES = (
    "virtio_pci",
    "virtio_net",
    "ctr",
    "ecb",
    "cmac",
    "ccm",
    "gcm",
    "ghash_generic",
    "sha512_generic",
    "nls_utf8",
    "cifs",
)
# Generic crypto modules that newer kernels no longer have as modules (folded into the library or gcm/sha512).
OPTIONAL_GUEST_MODULES = frozenset({"ghash_generic", "sha512_generic"})

# Host commands the build and the runner need, with the Debian package that provides each.
HOST_TOOLS = {
    "qemu-system-x86_64": "qemu-system-x86",
    "ip": "iproute2",
    "gcc": "gcc",
    "dpkg-deb": "dpkg",
}
# libc.a for the static lock helper; not a command, so checked by path.
STATIC_LIBC = {"/usr/lib/x86_64-linux-gnu/libc.a": "libc6-dev"}

_MODINFO_DEPENDS = re.compile(rb"\0depends=([^\0]*)\0")
_DEPENDS_LINE = re.compile(r"^\s*Depends:\s*(linux-image-\S+)\s*$", re.MULTILINE)
_ANY_DEPENDS = re.compile(r"^\s*Depends:\s*(\S+)\s*$", re.MULTILINE)


@dataclasses.dataclass(frozen=True)
class VmImage:
    kernel_version: str
    kernel: Path
    initrd: Path
    locktest: Path
    filetest: Path | None = None  # copy_file_range, FICLONE, hole punching, SEEK_DATA/SEEK_HOLE
    posixcheck: Path | None = None  # the POSIX semantics sweep (test_cifs_posix_sweep.py)


class ImageBuildError(RuntimeError):
    pass


def _run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)


def _apt_install(packages: list[str]) -> None:
    if not packages:
        return
    print(f"installing host packages: {' '.join(packages)}", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    argv = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "--no-install-recommends", *packages]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        # The package lists may be missing or stale; refresh once and retry.
        subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "update"], env=env, capture_output=True,
                       check=False)
        result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ImageBuildError(f"apt-get install {' '.join(packages)} failed:\n{result.stderr[-2000:]}")


def ensure_host_tools(extra_packages: dict[str, str] | None = None) -> None:
    """Installs the Debian packages behind any missing host command (extra_packages: command -> package)."""
    wanted = dict(HOST_TOOLS)
    wanted.update(extra_packages or {})
    missing = sorted({package for command, package in wanted.items() if shutil.which(command) is None})
    missing += sorted({package for path, package in STATIC_LIBC.items() if not Path(path).exists()})
    _apt_install(missing)


class Apt:
    """apt-get/apt-cache, either with the system's sources or with a private configuration for one suite."""

    def __init__(self, suite: str, cache_dir: Path) -> None:
        self.suite = suite
        self.options: list[str] = []
        if suite != STABLE:
            root = cache_dir / f"apt-{suite}"
            for directory in ("etc", "lists/partial", "archives/partial"):
                (root / directory).mkdir(parents=True, exist_ok=True)
            (root / "etc" / f"{suite}.sources").write_text(_SID_SOURCES)
            self.options = [
                "-o", "Dir::Etc::SourceList=/dev/null", "-o", f"Dir::Etc::SourceParts={root / 'etc'}",
                "-o", f"Dir::State::Lists={root / 'lists'}", "-o", f"Dir::Cache={root}",
                "-o", "Dir::State::status=/dev/null", "-o", "APT::Architectures=amd64",
                "-o", "Acquire::Languages=none",
            ]
            self._lists = root / "lists"

    def run(self, tool: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return _run([tool, *self.options, *args], cwd=cwd)

    def update(self) -> None:
        self.run("apt-get", "update")

    def ensure_lists(self) -> None:
        if self.options and not any(self._lists.glob("*Packages*")):
            self.update()

    def depends(self, package: str) -> str:
        self.ensure_lists()
        result = self.run("apt-cache", "depends", package)
        if result.returncode != 0 or "Depends:" not in result.stdout:
            self.update()
            result = self.run("apt-cache", "depends", package)
        return result.stdout


def resolve_kernel_package(apt: Apt) -> str:
    """Returns the versioned linux-image package that the metapackage currently depends on."""
    output = apt.depends(KERNEL_METAPACKAGE)
    match = _DEPENDS_LINE.search(output)
    if match:
        return match.group(1)
    raise ImageBuildError(f"cannot resolve {KERNEL_METAPACKAGE} in {apt.suite}: {output}")


def kernel_packages(apt: Apt, kernel_package: str, kernel_version: str) -> list[str]:
    """The package itself, plus the linux-{binary,modules,base}-<version> parts it depends on (newer kernels)."""
    parts = [name for name in _ANY_DEPENDS.findall(apt.depends(kernel_package))
             if name.endswith(kernel_version) and name != kernel_package]
    return [kernel_package, *parts]


def _download(apt: Apt, package: str, debs_dir: Path) -> Path:
    """Fetches package's .deb into debs_dir (once) without installing it."""
    debs_dir.mkdir(parents=True, exist_ok=True)
    # apt-get download names files <name>_<version>_<arch>.deb with ':' escaped as %3a.
    existing = sorted(debs_dir.glob(f"{package}_*.deb"))
    if existing:
        return existing[-1]
    result = apt.run("apt-get", "download", package, cwd=debs_dir)
    if result.returncode != 0:
        apt.update()
        result = apt.run("apt-get", "download", package, cwd=debs_dir)
    existing = sorted(debs_dir.glob(f"{package}_*.deb"))
    if result.returncode != 0 or not existing:
        raise ImageBuildError(f"apt-get download {package} failed: {result.stderr[-2000:]}")
    return existing[-1]


def _extract(deb: Path, dest: Path) -> None:
    result = _run(["dpkg-deb", "-x", str(deb), str(dest)])
    if result.returncode != 0:
        raise ImageBuildError(f"dpkg-deb -x {deb} failed: {result.stderr}")


def _read_module(path: Path) -> bytes:
    """Returns the plain ELF bytes of a module; busybox insmod is given uncompressed files only."""
    data = path.read_bytes()
    if path.name.endswith(".ko.xz"):
        return lzma.decompress(data)
    if path.name.endswith(".ko.gz"):
        return gzip.decompress(data)
    if path.name.endswith(".ko"):
        return data
    raise ImageBuildError(f"unsupported module compression: {path}")


def _module_name(file_name: str) -> str:
    base = file_name.split(".ko", 1)[0]
    return base.replace("-", "_")


def select_modules(modules_dir: Path, roots: tuple[str, ...]) -> list[tuple[str, Path]]:
    """Returns (relative path, file) for roots and their dependencies, dependencies first.

    Debian's package has no modules.dep (depmod runs at install time), so dependencies come from each module's
    own modinfo "depends=" string.
    """
    index: dict[str, Path] = {}
    for path in (modules_dir / "kernel").rglob("*.ko*"):
        index[_module_name(path.name)] = path
    builtin = set()
    builtin_list = modules_dir / "modules.builtin"
    if builtin_list.exists():
        builtin = {_module_name(Path(line).name) for line in builtin_list.read_text().split()}

    ordered: list[tuple[str, Path]] = []
    done: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in done:
            return
        if name in chain:
            raise ImageBuildError(f"module dependency cycle: {' -> '.join(chain + (name,))}")
        if name not in index:
            if name in builtin or name in OPTIONAL_GUEST_MODULES:
                done.add(name)
                return
            raise ImageBuildError(f"module {name} not found under {modules_dir}")
        match = _MODINFO_DEPENDS.search(_read_module(index[name]))
        for dependency in (match.group(1).decode().split(",") if match else []):
            if dependency:
                visit(dependency.replace("-", "_"), chain + (name,))
        done.add(name)
        relative = index[name].relative_to(modules_dir).as_posix()
        relative = relative.removesuffix(".xz").removesuffix(".gz")
        ordered.append((relative, index[name]))

    for root in roots:
        visit(root, ())
    return ordered


def _busybox_applets(busybox: Path) -> list[str]:
    result = _run([str(busybox), "--list"])
    if result.returncode != 0:
        raise ImageBuildError(f"{busybox} --list failed: {result.stderr}")
    return [name for name in result.stdout.split() if name and "/" not in name]


def _build_base_archive(kernel_root: Path, busybox_root: Path, kernel_version: str) -> bytes:
    archive = CpioWriter()
    for directory in ("proc", "sys", "dev", "tmp", "mnt", "run", "etc", "root"):
        archive.add_dir(directory)
    archive.add_char_device("dev/console", 5, 1)
    archive.add_char_device("dev/null", 1, 3, perm=0o666)

    busybox = busybox_root / "bin" / "busybox"
    archive.add_path("bin/busybox", busybox, perm=0o755)
    for applet in _busybox_applets(busybox):
        if applet != "busybox":
            archive.add_symlink(f"bin/{applet}", "busybox")
    archive.add_symlink("sbin", "bin")
    archive.add_symlink("usr/bin", "../bin")
    archive.add_symlink("usr/sbin", "../bin")

    modules_dir = _kernel_file(kernel_root, f"modules/{kernel_version}")
    load_order = []
    for relative, source in select_modules(modules_dir, GUEST_MODULES):
        target = f"lib/modules/{kernel_version}/{relative}"
        archive.add_file(target, _read_module(source))
        load_order.append("/" + target)
    archive.add_file("modules.load", ("\n".join(load_order) + "\n").encode())
    archive.add_file("etc/kernel-version", (kernel_version + "\n").encode())
    # busybox tools look users up by id (ls -l, cp -a); a minimal passwd keeps their output stable.
    archive.add_file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
    archive.add_file("etc/group", b"root:x:0:\n")
    return archive.finish()


def _build_locktest(cache_dir: Path, source_path: Path = LOCKTEST_SOURCE) -> Path:
    """Compiles a guest helper statically (the guest has no libc), cached by source hash."""
    source = source_path.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:16]
    target = cache_dir / f"{source_path.stem}-{digest}"
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(f".tmp{os.getpid()}")
    result = _run(["gcc", "-static", "-O2", "-Wall", "-Werror", "-o", str(temporary), str(source_path)])
    if result.returncode != 0:
        raise ImageBuildError(f"compiling {source_path} failed:\n{result.stderr}")
    temporary.rename(target)
    return target


def _kernel_file(kernel_root: Path, relative: str) -> Path:
    """A path under /lib or, for newer packages, /usr/lib."""
    for prefix in ("usr/lib", "lib"):
        candidate = kernel_root / prefix / relative
        if candidate.exists():
            return candidate
    raise ImageBuildError(f"{relative} not found in the kernel packages")


def build_image(cache_dir: Path = DEFAULT_CACHE_DIR, install_tools: bool = True, suite: str = STABLE) -> VmImage:
    """Returns the cached image of `suite`'s current kernel, building it first if it is missing."""
    if install_tools:
        ensure_host_tools()
    apt = Apt(suite, cache_dir)
    kernel_package = resolve_kernel_package(apt)
    kernel_version = kernel_package.removeprefix("linux-image-")
    image_dir = cache_dir / f"{kernel_version}-r{IMAGE_RECIPE}"
    kernel = image_dir / "vmlinuz"
    initrd = image_dir / "initramfs-base.cpio"
    locktest = _build_locktest(cache_dir)
    filetest = _build_locktest(cache_dir, FILETEST_SOURCE)
    posixcheck = _build_locktest(cache_dir, POSIXCHECK_SOURCE)
    if kernel.exists() and initrd.exists():
        return VmImage(kernel_version, kernel, initrd, locktest, filetest, posixcheck)

    debs_dir = cache_dir / "debs"
    kernel_debs = [_download(apt, package, debs_dir)
                   for package in kernel_packages(apt, kernel_package, kernel_version)]
    busybox_deb = _download(Apt(STABLE, cache_dir), BUSYBOX_PACKAGE, debs_dir)
    with tempfile.TemporaryDirectory(prefix="smbsrv-vm-build-", dir=cache_dir) as scratch:
        kernel_root = Path(scratch) / "kernel"
        busybox_root = Path(scratch) / "busybox"
        for deb in kernel_debs:
            _extract(deb, kernel_root)
        _extract(busybox_deb, busybox_root)
        archive = _build_base_archive(kernel_root, busybox_root, kernel_version)
        old_layout = kernel_root / "boot" / f"vmlinuz-{kernel_version}"
        vmlinuz = old_layout if old_layout.exists() else _kernel_file(kernel_root, f"modules/{kernel_version}/vmlinuz")
        image_dir.mkdir(parents=True, exist_ok=True)
        # Write under temporary names and rename, so an interrupted or concurrent build never leaves a half
        # image behind.
        kernel_tmp = kernel.with_suffix(f".tmp{os.getpid()}")
        initrd_tmp = initrd.with_suffix(f".tmp{os.getpid()}")
        shutil.copyfile(vmlinuz, kernel_tmp)
        initrd_tmp.write_bytes(archive)
        kernel_tmp.rename(kernel)
        initrd_tmp.rename(initrd)
    return VmImage(kernel_version, kernel, initrd, locktest, filetest, posixcheck)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--no-install", action="store_true", help="do not apt-get install missing host tools")
    parser.add_argument("--suite", choices=(STABLE, SID), default=STABLE, help="whose kernel (default: the host's)")
    args = parser.parse_args(argv)
    try:
        image = build_image(args.cache_dir, install_tools=not args.no_install, suite=args.suite)
    except ImageBuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"kernel_version={image.kernel_version}")
    print(f"kernel={image.kernel}")
    print(f"initrd={image.initrd}")
    print(f"locktest={image.locktest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
