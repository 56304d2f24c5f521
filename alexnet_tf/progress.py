"""Progress bars for long data work: tqdm when enabled, a silent stand-in otherwise."""

from __future__ import annotations

from typing import Any


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str, enabled: bool = True, unit: str = "img") -> Any:
    """A tqdm bar over `total` items (or an object with the same update/close that prints nothing)."""
    if not enabled:
        return _Silent()
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True)
