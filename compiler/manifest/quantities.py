"""Human quantities in manifests: byte sizes ('1GiB', '512MB') and durations ('5m', '1h30m')."""

from __future__ import annotations

import re

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)\s*$")
_SIZE_UNITS = {
    "B": 1,
    "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
    "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40,
}
_DURATION_RE = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


#: Kubernetes quantities (``2Gi``, ``500M``, ``1k``) and units in the wrong case (``2gb``, ``512mib``).
_NEAR_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT])([iI]?)([bB]?)\s*$")


def parse_size(text: str) -> int:
    """'1GiB' -> 1073741824. Units: B, KB/MB/GB/TB (powers of 10), KiB/MiB/GiB/TiB (powers of 2).

    Kubernetes spellings (``2Gi``, ``500M``) are refused with the unit to write instead (``2GiB``,
    ``500MB``), not accepted: a size has one spelling in manifests, locks and reports, and ``B`` keeps
    it unmistakably bytes (``Gb`` is read as gigabits elsewhere)."""
    match = _SIZE_RE.match(str(text))
    if not match:
        raise ValueError(_size_hint(str(text)) or
                         f"{text!r} is not a size like '1GiB' or '512MB' (units: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)")
    value = float(match.group(1)) * _SIZE_UNITS[match.group(2)]
    if value <= 0:
        raise ValueError(f"{text!r}: a size must be positive")
    return int(value)


def _size_hint(text: str) -> str | None:
    """The size ``text`` most likely means, said as what to write (None: no good guess)."""
    near = _NEAR_SIZE_RE.match(text)
    if not near:
        return None
    number, prefix, binary, byte = near.groups()
    prefix = prefix.upper()
    if binary:
        write = f"{number}{prefix}iB"
        if not byte:  # 2Gi: Kubernetes
            return f"{text!r} is a Kubernetes quantity: write {write!r} ({prefix}i is {prefix}iB, powers of 2)"
        return f"{text!r}: units are case-sensitive: write {write!r}"
    decimal, binary_unit = f"{number}{prefix}B", f"{number}{prefix}iB"
    if not byte:  # 500M: Kubernetes decimal
        return f"{text!r} is a Kubernetes quantity: write {decimal!r} (powers of 10) or {binary_unit!r} (powers of 2)"
    return f"{text!r}: units are case-sensitive: write {decimal!r} (powers of 10) or {binary_unit!r} (powers of 2)"


def parse_duration(text: str) -> int:
    """'1h30m' -> 5400 seconds. Units h, m, s, largest first (Prometheus style)."""
    match = _DURATION_RE.match(str(text))
    if not text or not match or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration like '5m', '1h30m' or '30s'")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds
