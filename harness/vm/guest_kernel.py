"""The kernel the VM boots.

By default Debian's ``linux-image-amd64`` for this release: the package it depends on
(``linux-image-6.1.0-N-amd64``) is fetched with ``apt-get download``, unpacked with
``dpkg -x`` and indexed with ``depmod -b`` (the package ships no modules.dep).  A user's
own kernel works too (``--kernel PATH``): a kernel .deb (``make bindeb-pkg``), an unpacked
tree (``boot/vmlinuz-*`` and ``lib/modules/<release>``), or a bare image (bzImage or
vmlinux) whose virtio, 9p and SELinux are built in.

QEMU's microvm machine boots an uncompressed ELF vmlinux with a PVH entry point (about
twice as fast as ``-M pc`` under TCG); it is decompressed from the bzImage here.  An image
without PVH boots with ``-M pc`` instead.

Each kernel is unpacked once into the cache, keyed by package version or by the hash of
the user's file; the unpacking happens in a staging folder renamed into place at the end,
so an interrupted fetch leaves nothing that looks complete.
"""

from __future__ import annotations

import bz2
import lzma
import os
import re
import struct
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

from harness import debian
from harness.vm import cache_dir, digest, staging as _staging

META_PACKAGE = "linux-image-amd64"
XEN_ELFNOTE_PHYS32_ENTRY = 18


@dataclass
class GuestKernel:
    image: Path               # what QEMU boots: a vmlinux (microvm) or a bzImage (pc)
    machine: str              # "microvm" or "pc"
    release: str              # uname -r inside the guest
    modules: Path | None      # lib/modules/<release> (depmod'ed), or None: all built in
    config: Path | None       # its config-<release>, linked into the guest's /boot
    source: str               # where it came from, for the report

    def describe(self) -> dict:
        return {"kernel": self.release, "kernel_source": self.source, "machine": self.machine}


def default() -> GuestKernel:
    """Debian's linux-image for this release (fetched on first use, then from the cache)."""
    debian.ensure("kmod")
    deps = [d for d in debian.depends(META_PACKAGE) if d.startswith("linux-image-")]
    if not deps:
        debian.candidate(META_PACKAGE)          # updates the package lists if they lack it
        deps = [d for d in debian.depends(META_PACKAGE) if d.startswith("linux-image-")]
    if not deps:
        raise RuntimeError(f"apt knows no {META_PACKAGE}: cannot fetch the default guest kernel")
    package = deps[0]
    version = debian.candidate(package)
    if version is None:
        raise RuntimeError(f"apt has no candidate version of {package}")
    target = cache_dir() / "kernels" / f"{package}_{version}"
    if not (target / ".complete").exists():
        with _staging(target) as stage:
            print(f"sockspec: fetching the guest kernel {package} {version}", flush=True)
            deb = debian.download(package, version, str(stage))
            _unpack_deb(Path(deb), stage)
    return _from_tree(target, f"Debian {package} {version}")


def from_path(path: Path) -> GuestKernel:
    """A kernel the user built: a .deb, an unpacked tree, or a bare image."""
    path = path.resolve()
    if path.is_dir():
        return _from_tree(path, str(path), writable=False)
    if not path.is_file():
        raise RuntimeError(f"--kernel {path}: no such file or folder")
    if path.name.endswith(".deb"):
        debian.ensure("kmod")
        target = cache_dir() / "kernels" / f"user-{digest(path)}"
        if not (target / ".complete").exists():
            with _staging(target) as stage:
                _unpack_deb(path, stage, keep=True)
        return _from_tree(target, str(path))
    return _from_image(path, None, None, str(path))


# ---------------------------------------------------------------- unpacking


def _unpack_deb(deb: Path, stage: Path, keep: bool = False) -> None:
    subprocess.run(["dpkg-deb", "-x", str(deb), str(stage)], check=True)
    if not keep:
        deb.unlink()
    for moddir in (stage / "lib" / "modules").glob("*"):
        subprocess.run(["depmod", "-b", str(stage), moddir.name], check=True)
    for vmlinuz in (stage / "boot").glob("vmlinuz-*"):
        vmlinux = stage / "boot" / ("vmlinux-" + vmlinuz.name.removeprefix("vmlinuz-"))
        data = extract_vmlinux(vmlinuz.read_bytes())
        if data is not None:
            vmlinux.write_bytes(data)


def _from_tree(tree: Path, source: str, writable: bool = True) -> GuestKernel:
    images = sorted((tree / "boot").glob("vmlinuz-*"))
    if not images:
        raise RuntimeError(f"{tree}: no boot/vmlinuz-* in this kernel tree")
    bz = images[-1]
    release = bz.name.removeprefix("vmlinuz-")
    modules = tree / "lib" / "modules" / release
    if not modules.is_dir():
        modules = None
    elif not (modules / "modules.dep").exists():
        if not writable and not os.access(modules, os.W_OK):
            raise RuntimeError(f"{modules} has no modules.dep (run depmod -b {tree} {release})")
        subprocess.run(["depmod", "-b", str(tree), release], check=True)
    config = tree / "boot" / f"config-{release}"
    vmlinux = tree / "boot" / f"vmlinux-{release}"
    return _from_image(bz, modules, config if config.exists() else None, source,
                       vmlinux=vmlinux if vmlinux.exists() else None)


def _from_image(image: Path, modules: Path | None, config: Path | None, source: str,
                vmlinux: Path | None = None) -> GuestKernel:
    data = image.read_bytes()
    if data[:4] == b"\x7fELF":          # already a vmlinux
        vmlinux, release = image, _release_in(data)
    else:
        release = bzimage_release(data)
        if vmlinux is None:
            target = cache_dir() / "kernels" / f"vmlinux-{digest(image)}"
            if not target.exists():
                elf = extract_vmlinux(data)
                if elf is not None:
                    tmp = target.with_suffix(".tmp")
                    tmp.write_bytes(elf)
                    os.rename(tmp, target)
            vmlinux = target if target.exists() else None
    if release is None:
        raise RuntimeError(f"{image}: cannot find the kernel release in this image")
    if vmlinux is not None and has_pvh_entry(vmlinux.read_bytes()):
        return GuestKernel(vmlinux, "microvm", release, modules, config, source)
    if data[:4] == b"\x7fELF":
        raise RuntimeError(f"{image}: an ELF kernel without a PVH entry point cannot be booted "
                           "directly; pass its bzImage")
    return GuestKernel(image, "pc", release, modules, config, source)


# ---------------------------------------------------------------- image formats


def bzimage_release(data: bytes) -> str | None:
    """The release string of a bzImage (setup header's kernel_version pointer)."""
    if data[0x202:0x206] != b"HdrS":
        return None
    offset = struct.unpack_from("<H", data, 0x20E)[0] + 0x200
    text = data[offset:offset + 256].split(b"\0")[0].decode(errors="replace")
    return text.split()[0] if text else None


def _release_in(data: bytes) -> str | None:
    m = re.search(rb"Linux version (\S+) \(", data)
    return m.group(1).decode() if m else None


_MAGICS = [(b"\xfd7zXZ\x00", "xz"), (b"\x1f\x8b\x08", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"),
           (b"BZh", "bzip2"), (b"\x5d\x00\x00", "lzma")]


def extract_vmlinux(data: bytes) -> bytes | None:
    """The ELF vmlinux inside a bzImage (its compressed payload, decompressed), or None."""
    if data[0x202:0x206] != b"HdrS":
        return None
    setup_sects = data[0x1F1] or 4
    start = (setup_sects + 1) * 512
    offset, length = struct.unpack_from("<II", data, 0x248)
    payload = data[start + offset:start + offset + length]
    for magic, kind in _MAGICS:
        if payload.startswith(magic):
            out = _decompress(kind, payload)
            return out if out and out[:4] == b"\x7fELF" else None
    return None


def _decompress(kind: str, payload: bytes) -> bytes | None:
    if kind == "xz":
        return lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(payload)
    if kind == "lzma":
        return lzma.LZMADecompressor(lzma.FORMAT_ALONE).decompress(payload)
    if kind == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(payload)
    if kind == "bzip2":
        return bz2.BZ2Decompressor().decompress(payload)
    if kind == "zstd":
        debian.ensure("zstd")
        r = subprocess.run(["zstd", "-dc"], input=payload, capture_output=True)
        return r.stdout or None
    return None


def has_pvh_entry(elf: bytes) -> bool:
    """The ELF image carries Xen's PHYS32_ENTRY note: QEMU can boot it directly (PVH)."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:      # ELF64 only
        return False
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", elf, phoff + i * phentsize)
        if p_type != 4:                            # PT_NOTE
            continue
        pos, end = p_offset, p_offset + p_filesz
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            name = elf[pos + 12:pos + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and ntype == XEN_ELFNOTE_PHYS32_ENTRY:
                return True
            pos += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False
