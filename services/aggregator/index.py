"""State keyed by (site, key) that also answers "everything of this site" without a scan.

The aggregator's per-event work must depend on the event's own site and category, not on how
many sites, nodes and alerts the world holds: a hosted aggregator serves thousands of homes.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import TypeVar

__all__ = ["SiteIndex"]

V = TypeVar("V")


class SiteIndex(MutableMapping[tuple[str, str], V]):
    """A mapping of ``(site, key)`` to values, grouped by site."""

    def __init__(self) -> None:
        self._by_site: dict[str, dict[str, V]] = {}
        self._len = 0

    def __getitem__(self, key: tuple[str, str]) -> V:
        site, inner = key
        return self._by_site[site][inner]

    def __setitem__(self, key: tuple[str, str], value: V) -> None:
        site, inner = key
        group = self._by_site.setdefault(site, {})
        if inner not in group:
            self._len += 1
        group[inner] = value

    def __delitem__(self, key: tuple[str, str]) -> None:
        site, inner = key
        group = self._by_site[site]
        del group[inner]
        self._len -= 1
        if not group:
            del self._by_site[site]

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple) or len(key) != 2:
            return False
        group = self._by_site.get(key[0])
        return group is not None and key[1] in group

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for site, group in self._by_site.items():
            for inner in group:
                yield site, inner

    def __len__(self) -> int:
        return self._len

    def of_site(self, site: str) -> dict[str, V]:
        """A copy of one site's entries, safe to iterate while the index changes."""
        return dict(self._by_site.get(site, {}))

    def sites(self) -> list[str]:
        return list(self._by_site)
