"""The KASLR seed a real kernel boots with, set in QEMU's device tree.

QEMU's ``virt`` board writes a random ``/chosen/kaslr-seed`` (and
``rng-seed``) into the device tree it makes, so by default every boot
places the kernel elsewhere. For a run to be reproducible from its
``--kaslr-seed N``, the harness has QEMU dump that device tree once
(``-machine dumpdtb=FILE``, per machine shape), overwrites the two seeds in
place (the property sizes stay, so nothing else in the blob moves) and
boots with ``-dtb``. Seed 0 is not written: a zero ``kaslr-seed`` would
make the kernel fall back to the CPU's random-number instruction, so a run
with seed 0 boots with ``nokaslr`` instead (:mod:`pyharness.platform.qemu`).

The flattened device tree format: a header of big-endian words, then a
structure block of tokens (BEGIN_NODE name, PROP len nameoff value,
END_NODE, NOP, END), each padded to 4 bytes, property names in a strings
block.
"""

from __future__ import annotations

import hashlib
import struct

from pyharness.errors import HarnessError

FDT_MAGIC = 0xD00DFEED
_BEGIN_NODE, _END_NODE, _PROP, _NOP, _END = 1, 2, 3, 4, 9


class DeviceTreeError(HarnessError):
    """QEMU's device tree is not what the harness can set a seed in."""


def _align4(n: int) -> int:
    return (n + 3) & ~3


def chosen_properties(blob: bytes) -> dict[str, tuple[int, int]]:
    """``{name: (value offset, value length)}`` of ``/chosen``'s properties."""
    if len(blob) < 40 or struct.unpack_from(">I", blob, 0)[0] != FDT_MAGIC:
        raise DeviceTreeError("QEMU's dumped device tree has no FDT header")
    off_struct, off_strings = struct.unpack_from(">II", blob, 8)
    pos, path, found = off_struct, [], {}
    while pos + 4 <= len(blob):
        (token,) = struct.unpack_from(">I", blob, pos)
        pos += 4
        if token == _BEGIN_NODE:
            end = blob.index(b"\0", pos)
            path.append(blob[pos:end].decode("ascii", "replace"))
            pos = _align4(end + 1)
        elif token == _END_NODE:
            path.pop()
        elif token == _PROP:
            length, nameoff = struct.unpack_from(">II", blob, pos)
            pos += 8
            if path == ["", "chosen"]:
                name_end = blob.index(b"\0", off_strings + nameoff)
                name = blob[off_strings + nameoff:name_end].decode("ascii", "replace")
                found[name] = (pos, length)
            pos = _align4(pos + length)
        elif token == _NOP:
            continue
        elif token == _END:
            return found
        else:
            raise DeviceTreeError(f"QEMU's dumped device tree has an unknown token {token}")
    raise DeviceTreeError("QEMU's dumped device tree ends without its END token")


def compacted(blob: bytes) -> bytes:
    """The device tree without the free space QEMU leaves at its end (its
    dump is 1 MiB; the kernel does not boot with a blob that large)."""
    if len(blob) < 40 or struct.unpack_from(">I", blob, 0)[0] != FDT_MAGIC:
        raise DeviceTreeError("QEMU's dumped device tree has no FDT header")
    off_struct, off_strings = struct.unpack_from(">II", blob, 8)
    size_strings, size_struct = struct.unpack_from(">II", blob, 32)
    end = _align4(max(off_struct + size_struct, off_strings + size_strings))
    out = bytearray(blob[:end])
    struct.pack_into(">I", out, 4, end)
    return bytes(out)


def device_tree_seed(seed: int) -> int:
    """The 64-bit ``kaslr-seed`` a run's ``--kaslr-seed N`` stands for: a
    hash of N, so that small seeds spread over the bits the kernel takes
    its offset from (it ignores the low ones)."""
    value = int.from_bytes(hashlib.sha256(f"kaslr-seed:{seed}".encode()).digest()[:8], "big")
    return value or 1


def seeded(blob: bytes, seed: int) -> bytes:
    """A copy of the device tree with ``/chosen/kaslr-seed`` from ``seed``
    (:func:`device_tree_seed`) and ``rng-seed`` filled from it too, so the
    run's randomness follows from the seed as far as the device tree goes."""
    if seed <= 0:
        raise DeviceTreeError(f"KASLR seed {seed}: give a positive seed (0 boots without "
                              "KASLR)")
    value = device_tree_seed(seed)
    chosen = chosen_properties(blob)
    if "kaslr-seed" not in chosen:
        raise DeviceTreeError("QEMU's device tree has no /chosen/kaslr-seed to set; this "
                              "QEMU cannot boot a kernel at a chosen KASLR offset")
    out = bytearray(blob)
    offset, length = chosen["kaslr-seed"]
    if length != 8:
        raise DeviceTreeError(f"/chosen/kaslr-seed is {length} bytes, not 8")
    out[offset:offset + 8] = value.to_bytes(8, "big")
    if "rng-seed" in chosen:
        offset, length = chosen["rng-seed"]
        stream = b""
        counter = 0
        while len(stream) < length:
            stream += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
            counter += 1
        out[offset:offset + length] = stream[:length]
    return bytes(out)
