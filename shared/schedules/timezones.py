"""Time zone names of recurrence schedules: azureml's Windows names, and IANA names as our extension.

azureml's ``TimeZone`` enum (``azureml.pipeline.core.schedule``) names zones the Windows way
("Pacific Standard Time"); the service did the zone math on Windows. We do it with :mod:`zoneinfo`,
so each Windows name maps to the IANA zone CLDR's ``windowsZones.xml`` gives for territory ``001``
(the zone Windows itself means by the name). CLDR's ids are kept as CLDR spells them (some are IANA
backward links such as ``Asia/Calcutta``; zoneinfo resolves them to the same rules).

Two names of azureml's enum are no longer in CLDR; they map to the zone CLDR last gave them:
``Mid-Atlantic Standard Time`` → ``Etc/GMT+2`` and ``Kamchatka Standard Time`` → ``Asia/Kamchatka``.

IANA names (``Europe/Berlin``) are accepted directly: users on Linux know their zone by that name,
and it removes a lookup table from their code.
"""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Mapping
from types import MappingProxyType
from zoneinfo import ZoneInfo

UTC_ZONE = ZoneInfo("Etc/UTC")
"""The zone of a recurrence without a time zone (azureml's default, ``TimeZone.UTC``)."""

# Windows name (value of azureml's TimeZone enum, in the enum's order) → IANA zone (CLDR, territory 001).
_WINDOWS_TO_IANA: dict[str, str] = {
    "Dateline Standard Time": "Etc/GMT+12",
    "UTC-11": "Etc/GMT+11",
    "Aleutian Standard Time": "America/Adak",
    "Hawaiian Standard Time": "Pacific/Honolulu",
    "Marquesas Standard Time": "Pacific/Marquesas",
    "Alaskan Standard Time": "America/Anchorage",
    "UTC-09": "Etc/GMT+9",
    "Pacific Standard Time (Mexico)": "America/Tijuana",
    "UTC-08": "Etc/GMT+8",
    "Pacific Standard Time": "America/Los_Angeles",
    "US Mountain Standard Time": "America/Phoenix",
    "Mountain Standard Time (Mexico)": "America/Mazatlan",
    "Mountain Standard Time": "America/Denver",
    "Central America Standard Time": "America/Guatemala",
    "Central Standard Time": "America/Chicago",
    "Easter Island Standard Time": "Pacific/Easter",
    "Central Standard Time (Mexico)": "America/Mexico_City",
    "Canada Central Standard Time": "America/Regina",
    "SA Pacific Standard Time": "America/Bogota",
    "Eastern Standard Time (Mexico)": "America/Cancun",
    "Eastern Standard Time": "America/New_York",
    "Haiti Standard Time": "America/Port-au-Prince",
    "Cuba Standard Time": "America/Havana",
    "US Eastern Standard Time": "America/Indianapolis",
    "Paraguay Standard Time": "America/Asuncion",
    "Atlantic Standard Time": "America/Halifax",
    "Venezuela Standard Time": "America/Caracas",
    "Central Brazilian Standard Time": "America/Cuiaba",
    "SA Western Standard Time": "America/La_Paz",
    "Pacific SA Standard Time": "America/Santiago",
    "Turks And Caicos Standard Time": "America/Grand_Turk",
    "Newfoundland Standard Time": "America/St_Johns",
    "Tocantins Standard Time": "America/Araguaina",
    "E. South America Standard Time": "America/Sao_Paulo",
    "SA Eastern Standard Time": "America/Cayenne",
    "Argentina Standard Time": "America/Buenos_Aires",
    "Greenland Standard Time": "America/Godthab",
    "Montevideo Standard Time": "America/Montevideo",
    "Saint Pierre Standard Time": "America/Miquelon",
    "Bahia Standard Time": "America/Bahia",
    "UTC-02": "Etc/GMT+2",
    "Mid-Atlantic Standard Time": "Etc/GMT+2",
    "Azores Standard Time": "Atlantic/Azores",
    "Cape Verde Standard Time": "Atlantic/Cape_Verde",
    "UTC": "Etc/UTC",
    "Morocco Standard Time": "Africa/Casablanca",
    "GMT Standard Time": "Europe/London",
    "Greenwich Standard Time": "Atlantic/Reykjavik",
    "W. Europe Standard Time": "Europe/Berlin",
    "Central Europe Standard Time": "Europe/Budapest",
    "Romance Standard Time": "Europe/Paris",
    "Central European Standard Time": "Europe/Warsaw",
    "W. Central Africa Standard Time": "Africa/Lagos",
    "Namibia Standard Time": "Africa/Windhoek",
    "Jordan Standard Time": "Asia/Amman",
    "GTB Standard Time": "Europe/Bucharest",
    "Middle East Standard Time": "Asia/Beirut",
    "Egypt Standard Time": "Africa/Cairo",
    "E. Europe Standard Time": "Europe/Chisinau",
    "Syria Standard Time": "Asia/Damascus",
    "West Bank Standard Time": "Asia/Hebron",
    "South Africa Standard Time": "Africa/Johannesburg",
    "FLE Standard Time": "Europe/Kiev",
    "Turkey Standard Time": "Europe/Istanbul",
    "Israel Standard Time": "Asia/Jerusalem",
    "Kaliningrad Standard Time": "Europe/Kaliningrad",
    "Libya Standard Time": "Africa/Tripoli",
    "Arabic Standard Time": "Asia/Baghdad",
    "Arab Standard Time": "Asia/Riyadh",
    "Belarus Standard Time": "Europe/Minsk",
    "Russian Standard Time": "Europe/Moscow",
    "E. Africa Standard Time": "Africa/Nairobi",
    "Iran Standard Time": "Asia/Tehran",
    "Arabian Standard Time": "Asia/Dubai",
    "Astrakhan Standard Time": "Europe/Astrakhan",
    "Azerbaijan Standard Time": "Asia/Baku",
    "Russia Time Zone 3": "Europe/Samara",
    "Mauritius Standard Time": "Indian/Mauritius",
    "Georgian Standard Time": "Asia/Tbilisi",
    "Caucasus Standard Time": "Asia/Yerevan",
    "Afghanistan Standard Time": "Asia/Kabul",
    "West Asia Standard Time": "Asia/Tashkent",
    "Ekaterinburg Standard Time": "Asia/Yekaterinburg",
    "Pakistan Standard Time": "Asia/Karachi",
    "India Standard Time": "Asia/Calcutta",
    "Sri Lanka Standard Time": "Asia/Colombo",
    "Nepal Standard Time": "Asia/Katmandu",
    "Central Asia Standard Time": "Asia/Almaty",
    "Bangladesh Standard Time": "Asia/Dhaka",
    "N. Central Asia Standard Time": "Asia/Novosibirsk",
    "Myanmar Standard Time": "Asia/Rangoon",
    "SE Asia Standard Time": "Asia/Bangkok",
    "Altai Standard Time": "Asia/Barnaul",
    "W. Mongolia Standard Time": "Asia/Hovd",
    "North Asia Standard Time": "Asia/Krasnoyarsk",
    "Tomsk Standard Time": "Asia/Tomsk",
    "China Standard Time": "Asia/Shanghai",
    "North Asia East Standard Time": "Asia/Irkutsk",
    "Singapore Standard Time": "Asia/Singapore",
    "W. Australia Standard Time": "Australia/Perth",
    "Taipei Standard Time": "Asia/Taipei",
    "Ulaanbaatar Standard Time": "Asia/Ulaanbaatar",
    "North Korea Standard Time": "Asia/Pyongyang",
    "Aus Central W. Standard Time": "Australia/Eucla",
    "Transbaikal Standard Time": "Asia/Chita",
    "Tokyo Standard Time": "Asia/Tokyo",
    "Korea Standard Time": "Asia/Seoul",
    "Yakutsk Standard Time": "Asia/Yakutsk",
    "Cen. Australia Standard Time": "Australia/Adelaide",
    "AUS Central Standard Time": "Australia/Darwin",
    "E. Australia Standard Time": "Australia/Brisbane",
    "AUS Eastern Standard Time": "Australia/Sydney",
    "West Pacific Standard Time": "Pacific/Port_Moresby",
    "Tasmania Standard Time": "Australia/Hobart",
    "Vladivostok Standard Time": "Asia/Vladivostok",
    "Lord Howe Standard Time": "Australia/Lord_Howe",
    "Bougainville Standard Time": "Pacific/Bougainville",
    "Russia Time Zone 10": "Asia/Srednekolymsk",
    "Magadan Standard Time": "Asia/Magadan",
    "Norfolk Standard Time": "Pacific/Norfolk",
    "Sakhalin Standard Time": "Asia/Sakhalin",
    "Central Pacific Standard Time": "Pacific/Guadalcanal",
    "Russia Time Zone 11": "Asia/Kamchatka",
    "New Zealand Standard Time": "Pacific/Auckland",
    "UTC+12": "Etc/GMT-12",
    "Fiji Standard Time": "Pacific/Fiji",
    "Kamchatka Standard Time": "Asia/Kamchatka",
    "Chatham Islands Standard Time": "Pacific/Chatham",
    "Tonga Standard Time": "Pacific/Tongatapu",
    "Samoa Standard Time": "Pacific/Apia",
    "Line Islands Standard Time": "Pacific/Kiritimati",
}

WINDOWS_TO_IANA: Mapping[str, str] = MappingProxyType(_WINDOWS_TO_IANA)
"""Every value of azureml's ``TimeZone`` enum, mapped to its IANA zone."""

WINDOWS_ZONE_NAMES: tuple[str, ...] = tuple(_WINDOWS_TO_IANA)
"""azureml's ``TimeZone`` values, in the enum's order."""


class UnknownTimeZoneError(ValueError):
    """A name that is neither one of azureml's Windows zone names nor an IANA zone."""


@functools.cache
def _iana_names() -> frozenset[str]:
    # The tz database's own list, not "whatever ZoneInfo() can open": ZoneInfo also opens files such
    # as "posixrules" and raises IsADirectoryError for "America".
    # Nor names whose meaning depends on the machine ("localtime" is the host's /etc/localtime) or
    # that are no place at all ("Factory", the posix/ and right/ copies): a schedule must fire at
    # the same instant on a laptop and on Azure.
    return frozenset(
        name
        for name in zoneinfo.available_timezones()
        if name not in ("localtime", "Factory") and not name.startswith(("posix/", "right/"))
    )


def is_time_zone(name: str) -> bool:
    """Whether ``name`` is a zone a recurrence may use (a Windows name of azureml's enum, or IANA)."""
    return name in _WINDOWS_TO_IANA or name in _iana_names()


def iana_name(name: str) -> str:
    """The IANA name of ``name`` (itself when it already is one).

    Raises:
        UnknownTimeZoneError: ``name`` is neither a Windows name of azureml's enum nor an IANA zone.
    """
    if name in _WINDOWS_TO_IANA:
        return _WINDOWS_TO_IANA[name]
    if name in _iana_names():
        return name
    raise UnknownTimeZoneError(
        f"Time zone {name!r} is not a valid TimeZone: use a Windows name of azureml's TimeZone enum "
        "(e.g. 'Pacific Standard Time', 'W. Europe Standard Time', 'UTC') or an IANA name "
        "(e.g. 'America/Los_Angeles')."
    )


def zone_for(name: str | None) -> ZoneInfo:
    """The :class:`ZoneInfo` of a recurrence's time zone; ``None`` is UTC (azureml's default).

    Raises:
        UnknownTimeZoneError: as :func:`iana_name`.
    """
    if name is None:
        return UTC_ZONE
    return ZoneInfo(iana_name(name))
