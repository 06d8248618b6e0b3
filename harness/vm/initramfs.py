"""The VM's initramfs: Debian's static busybox, the modules that reach the host's root
(virtio-mmio or virtio-pci, 9p), and ``init.sh`` as /init.  Nothing else: the guest runs
the host's own programs once stage 1 has switched into the host root (see init.sh).

Written as an uncompressed newc cpio archive (the kernel unpacks it fastest), cached by
the hash of everything in it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from harness import debian
from harness.vm import HERE, cache_dir, digest

BUSYBOX = Path("/bin/busybox")
# What stage 1 needs to mount the host root: the virtio transports and 9p over virtio.
WANTED = ["virtio_mmio", "virtio_pci", "9pnet_virtio", "9p"]


def modules_in_order(moddir: Path | None, wanted=WANTED) -> list[str]:
    """Paths (relative to ``moddir``) of the wanted modules and their dependencies, each
    after what it needs; built-in modules are left out."""
    if moddir is None:
        return []
    deps: dict[str, list[str]] = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        mod, _, rest = line.partition(":")
        deps[mod] = rest.split()
    by_name = {Path(m).name.split(".ko")[0].replace("-", "_"): m for m in deps}
    order: list[str] = []

    def add(mod: str) -> None:
        if mod in order:
            return
        for d in reversed(deps.get(mod, [])):   # modules.dep lists the deepest last
            add(d)
        order.append(mod)

    for name in wanted:
        mod = by_name.get(name.replace("-", "_"))
        if mod is not None:                     # absent: built in (or not built at all)
            add(mod)
    return order


def _cpio_entry(name: str, mode: int, data: bytes = b"", ino: int = 0,
                rdev: tuple[int, int] = (0, 0)) -> bytes:
    """One newc record: ino mode uid gid nlink mtime size devmajor devminor rdevmajor
    rdevminor namesize check, each 8 hex digits."""
    name_b = name.encode() + b"\0"
    header = b"070701" + b"".join(f"{v:08x}".encode() for v in (
        ino, mode, 0, 0, 1, 0, len(data), 0, 0, *rdev, len(name_b), 0))
    out = header + name_b
    out += b"\0" * (-len(out) % 4)
    out += data
    out += b"\0" * (-len(out) % 4)
    return out


def build(moddir: Path | None) -> Path:
    """The initramfs for a kernel whose modules are in ``moddir`` (cached by content)."""
    debian.ensure("busybox-static")
    init = HERE / "init.sh"
    modules = modules_in_order(moddir)
    key = digest(BUSYBOX, init, *[moddir / m for m in modules], "\n".join(modules))
    target = cache_dir() / "initramfs" / f"initramfs-{key}.cpio"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    blob = bytearray()
    for ino, d in enumerate(("bin", "dev", "proc", "sys", "newroot", "modules"), start=1):
        blob += _cpio_entry(d, stat.S_IFDIR | 0o755, ino=ino)
    blob += _cpio_entry("dev/console", stat.S_IFCHR | 0o600, ino=7, rdev=(5, 1))
    entries: list[tuple[str, int, bytes]] = []
    entries.append(("bin/busybox", stat.S_IFREG | 0o755, BUSYBOX.read_bytes()))
    entries.append(("init", stat.S_IFREG | 0o755, init.read_bytes()))
    listing = []
    for i, m in enumerate(modules):
        name = f"modules/{i:02d}-{Path(m).name}"
        entries.append((name, stat.S_IFREG | 0o644, (moddir / m).read_bytes()))
        listing.append("/" + name)
    entries.append(("modules/order", stat.S_IFREG | 0o644, ("\n".join(listing) + "\n").encode()))
    for ino, (name, mode, data) in enumerate(entries, start=8):
        blob += _cpio_entry(name, mode, data, ino)
    blob += _cpio_entry("TRAILER!!!", 0)
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(bytes(blob))
    os.rename(tmp, target)
    return target
