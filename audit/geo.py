"""Where an address is, from a MaxMind-format database the firm supplies (GeoIP2/GeoLite2
City or Country, or any .mmdb with the same fields), read with MaxMind's own `geoip2`.

    geo = open_geo("/var/lib/GeoIP/GeoLite2-City.mmdb")
    geo.locate("203.0.113.9") -> Location(country="US", latitude=…, longitude=…) | None

Nothing is fetched: no database, no geo checks. A Country database gives the
country only (new-country checks, no impossible travel).
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from functools import lru_cache

log = logging.getLogger("leakguard.geo")

EARTH_KM = 6371.0


@dataclass(frozen=True)
class Location:
    country: str  # ISO 3166 code, "" when the database does not say
    latitude: float | None = None
    longitude: float | None = None

    @property
    def has_point(self) -> bool:
        return self.latitude is not None and self.longitude is not None


class GeoDatabase:
    def __init__(self, path: str) -> None:
        import geoip2.database  # loaded only when a firm configures a database

        self.path = path
        self._reader = geoip2.database.Reader(path)
        kind = self._reader.metadata().database_type.lower()
        self._lookup = self._reader.country if "country" in kind else self._reader.city
        self._lock = threading.Lock()  # the reader is not documented as thread-safe

    def locate(self, ip: str) -> Location | None:
        import geoip2.errors

        try:
            with self._lock:
                found = self._lookup(ip)
        except (geoip2.errors.AddressNotFoundError, ValueError):
            return None
        place = getattr(found, "location", None)
        return Location(
            found.country.iso_code or "",
            getattr(place, "latitude", None),
            getattr(place, "longitude", None),
        )


@lru_cache(maxsize=4)
def open_geo(path: str) -> GeoDatabase | None:
    """The database at `path`, opened once; None (and one logged error) if it cannot be."""
    try:
        return GeoDatabase(path)
    except Exception as err:  # missing file, not an mmdb, geoip2 not installed
        log.error("geoip database %s cannot be used (%s): no geo login checks", path, err)
        return None


def distance_km(a: Location, b: Location) -> float:
    """Great-circle distance (haversine)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a.latitude, a.longitude, b.latitude, b.longitude))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_KM * math.asin(math.sqrt(h))
