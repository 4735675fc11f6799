"""ScheduleRecurrence and TimeZone (azureml.pipeline.core.schedule): when a recurrence schedule fires.

The constructor and :meth:`ScheduleRecurrence.validate` raise azureml's ``ValueError`` messages, in
azureml's order; ``validate`` then applies the service's own checks
(:func:`shared.schedules.recurrence.parse_recurrence`) so a recurrence the SDK accepts is one the
service accepts. How the grid is anchored, and what happens on month ends and DST changes, is
documented in :mod:`shared.schedules.recurrence`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.errors import BadRequestError
from shared.schedules.recurrence import FREQUENCIES, WEEK_DAYS, parse_recurrence
from shared.schedules.timezones import is_time_zone

_TIME_OF_DAY = re.compile(r"[0-9]{1,2}:[0-9]{2}$")


class TimeZone(StrEnum):
    """The time zones of a recurrence's ``start_time``: azureml's Windows zone names.

    ``ScheduleRecurrence`` also takes an IANA name as a string (``"Europe/Berlin"``; our extension).
    """

    DatelineStandardTime = "Dateline Standard Time"
    UTC11 = "UTC-11"
    AleutianStandardTime = "Aleutian Standard Time"
    HawaiianStandardTime = "Hawaiian Standard Time"
    MarquesasStandardTime = "Marquesas Standard Time"
    AlaskanStandardTime = "Alaskan Standard Time"
    UTC09 = "UTC-09"
    PacificStandardTimeMexico = "Pacific Standard Time (Mexico)"
    UTC08 = "UTC-08"
    PacificStandardTime = "Pacific Standard Time"
    USMountainStandardTime = "US Mountain Standard Time"
    MountainStandardTimeMexico = "Mountain Standard Time (Mexico)"
    MountainStandardTime = "Mountain Standard Time"
    CentralAmericaStandardTime = "Central America Standard Time"
    CentralStandardTime = "Central Standard Time"
    EasterIslandStandardTime = "Easter Island Standard Time"
    CentralStandardTimeMexico = "Central Standard Time (Mexico)"
    CanadaCentralStandardTime = "Canada Central Standard Time"
    SAPacificStandardTime = "SA Pacific Standard Time"
    EasternStandardTimeMexico = "Eastern Standard Time (Mexico)"
    EasternStandardTime = "Eastern Standard Time"
    HaitiStandardTime = "Haiti Standard Time"
    CubaStandardTime = "Cuba Standard Time"
    USEasternStandardTime = "US Eastern Standard Time"
    ParaguayStandardTime = "Paraguay Standard Time"
    AtlanticStandardTime = "Atlantic Standard Time"
    VenezuelaStandardTime = "Venezuela Standard Time"
    CentralBrazilianStandardTime = "Central Brazilian Standard Time"
    SAWesternStandardTime = "SA Western Standard Time"
    PacificSAStandardTime = "Pacific SA Standard Time"
    TurksAndCaicosStandardTime = "Turks And Caicos Standard Time"
    NewfoundlandStandardTime = "Newfoundland Standard Time"
    TocantinsStandardTime = "Tocantins Standard Time"
    ESouthAmericaStandardTime = "E. South America Standard Time"
    SAEasternStandardTime = "SA Eastern Standard Time"
    ArgentinaStandardTime = "Argentina Standard Time"
    GreenlandStandardTime = "Greenland Standard Time"
    MontevideoStandardTime = "Montevideo Standard Time"
    SaintPierreStandardTime = "Saint Pierre Standard Time"
    BahiaStandardTime = "Bahia Standard Time"
    UTC02 = "UTC-02"
    MidAtlanticStandardTime = "Mid-Atlantic Standard Time"
    AzoresStandardTime = "Azores Standard Time"
    CapeVerdeStandardTime = "Cape Verde Standard Time"
    UTC = "UTC"
    MoroccoStandardTime = "Morocco Standard Time"
    GMTStandardTime = "GMT Standard Time"
    GreenwichStandardTime = "Greenwich Standard Time"
    WEuropeStandardTime = "W. Europe Standard Time"
    CentralEuropeStandardTime = "Central Europe Standard Time"
    RomanceStandardTime = "Romance Standard Time"
    CentralEuropeanStandardTime = "Central European Standard Time"
    WCentralAfricaStandardTime = "W. Central Africa Standard Time"
    NamibiaStandardTime = "Namibia Standard Time"
    JordanStandardTime = "Jordan Standard Time"
    GTBStandardTime = "GTB Standard Time"
    MiddleEastStandardTime = "Middle East Standard Time"
    EgyptStandardTime = "Egypt Standard Time"
    EEuropeStandardTime = "E. Europe Standard Time"
    SyriaStandardTime = "Syria Standard Time"
    WestBankStandardTime = "West Bank Standard Time"
    SouthAfricaStandardTime = "South Africa Standard Time"
    FLEStandardTime = "FLE Standard Time"
    TurkeyStandardTime = "Turkey Standard Time"
    IsraelStandardTime = "Israel Standard Time"
    KaliningradStandardTime = "Kaliningrad Standard Time"
    LibyaStandardTime = "Libya Standard Time"
    ArabicStandardTime = "Arabic Standard Time"
    ArabStandardTime = "Arab Standard Time"
    BelarusStandardTime = "Belarus Standard Time"
    RussianStandardTime = "Russian Standard Time"
    EAfricaStandardTime = "E. Africa Standard Time"
    IranStandardTime = "Iran Standard Time"
    ArabianStandardTime = "Arabian Standard Time"
    AstrakhanStandardTime = "Astrakhan Standard Time"
    AzerbaijanStandardTime = "Azerbaijan Standard Time"
    RussiaTimeZone3 = "Russia Time Zone 3"
    MauritiusStandardTime = "Mauritius Standard Time"
    GeorgianStandardTime = "Georgian Standard Time"
    CaucasusStandardTime = "Caucasus Standard Time"
    AfghanistanStandardTime = "Afghanistan Standard Time"
    WestAsiaStandardTime = "West Asia Standard Time"
    EkaterinburgStandardTime = "Ekaterinburg Standard Time"
    PakistanStandardTime = "Pakistan Standard Time"
    IndiaStandardTime = "India Standard Time"
    SriLankaStandardTime = "Sri Lanka Standard Time"
    NepalStandardTime = "Nepal Standard Time"
    CentralAsiaStandardTime = "Central Asia Standard Time"
    BangladeshStandardTime = "Bangladesh Standard Time"
    NCentralAsiaStandardTime = "N. Central Asia Standard Time"
    MyanmarStandardTime = "Myanmar Standard Time"
    SEAsiaStandardTime = "SE Asia Standard Time"
    AltaiStandardTime = "Altai Standard Time"
    WMongoliaStandardTime = "W. Mongolia Standard Time"
    NorthAsiaStandardTime = "North Asia Standard Time"
    TomskStandardTime = "Tomsk Standard Time"
    ChinaStandardTime = "China Standard Time"
    NorthAsiaEastStandardTime = "North Asia East Standard Time"
    SingaporeStandardTime = "Singapore Standard Time"
    WAustraliaStandardTime = "W. Australia Standard Time"
    TaipeiStandardTime = "Taipei Standard Time"
    UlaanbaatarStandardTime = "Ulaanbaatar Standard Time"
    NorthKoreaStandardTime = "North Korea Standard Time"
    AusCentralWStandardTime = "Aus Central W. Standard Time"
    TransbaikalStandardTime = "Transbaikal Standard Time"
    TokyoStandardTime = "Tokyo Standard Time"
    KoreaStandardTime = "Korea Standard Time"
    YakutskStandardTime = "Yakutsk Standard Time"
    CenAustraliaStandardTime = "Cen. Australia Standard Time"
    AUSCentralStandardTime = "AUS Central Standard Time"
    EAustraliaStandardTime = "E. Australia Standard Time"
    AUSEasternStandardTime = "AUS Eastern Standard Time"
    WestPacificStandardTime = "West Pacific Standard Time"
    TasmaniaStandardTime = "Tasmania Standard Time"
    VladivostokStandardTime = "Vladivostok Standard Time"
    LordHoweStandardTime = "Lord Howe Standard Time"
    BougainvilleStandardTime = "Bougainville Standard Time"
    RussiaTimeZone10 = "Russia Time Zone 10"
    MagadanStandardTime = "Magadan Standard Time"
    NorfolkStandardTime = "Norfolk Standard Time"
    SakhalinStandardTime = "Sakhalin Standard Time"
    CentralPacificStandardTime = "Central Pacific Standard Time"
    RussiaTimeZone11 = "Russia Time Zone 11"
    NewZealandStandardTime = "New Zealand Standard Time"
    UTC12 = "UTC+12"
    FijiStandardTime = "Fiji Standard Time"
    KamchatkaStandardTime = "Kamchatka Standard Time"
    ChathamIslandsStandardTime = "Chatham Islands Standard Time"
    TongaStandardTime = "Tonga Standard Time"
    SamoaStandardTime = "Samoa Standard Time"
    LineIslandsStandardTime = "Line Islands Standard Time"


class ScheduleRecurrence:
    """How often and when a :class:`Schedule` submits its pipeline.

    Examples (azureml's)::

        ScheduleRecurrence(frequency="Minute", interval=15)
        ScheduleRecurrence(frequency="Week", interval=2, week_days=["Monday", "Wednesday"], time_of_day="18:30")
        ScheduleRecurrence(frequency="Month", interval=1, start_time="2019-11-01T09:00:00")
        ScheduleRecurrence(frequency="Day", interval=2, hours=[22], minutes=[30])

    Args:
        frequency: ``"Minute"``, ``"Hour"``, ``"Day"``, ``"Week"`` or ``"Month"``.
        interval: how many ``frequency`` units between runs (at least 1).
        start_time: a naive ``datetime`` or a ``"YYYY-MM-DDThh:mm:ss"`` string, local to ``time_zone``;
            it anchors the grid. None: the first run fires at once and later runs count from it.
            A start time in the past: the first run is the next grid time. A start time that itself
            matches ``week_days``/``hours``/``minutes`` fires at the start time (azureml skipped it).
        time_zone: a :class:`TimeZone`, or (our extension) its value or an IANA name as a string.
            Defaults to ``TimeZone.UTC`` when ``start_time`` is given.
        hours: for Day and Week, the hours (0-23) to run at.
        minutes: for Day and Week, the minutes (0-59) to run at.
        week_days: for Week, the days (``"Monday"`` … ``"Sunday"``) to run on.
        time_of_day: for Day and Week, ``"hh:mm"``; the same as ``hours=[hh], minutes=[mm]``.

    Raises:
        ValueError: ``start_time`` carries a tzinfo; ``time_of_day`` with ``hours`` or ``minutes``;
            ``time_of_day`` malformed or out of range.
    """

    def __init__(
        self,
        frequency: str,
        interval: int,
        start_time: datetime | str | None = None,
        time_zone: TimeZone | str | None = None,
        hours: Sequence[int] | None = None,
        minutes: Sequence[int] | None = None,
        week_days: Sequence[str] | None = None,
        time_of_day: str | None = None,
    ) -> None:
        self.frequency = frequency
        self.interval = interval
        self.start_time: str | None = None
        if start_time is not None:
            if isinstance(start_time, datetime):
                if start_time.tzinfo is not None:
                    raise ValueError("Can not specify tzinfo for start_time, use time_zone instead.")
                self.start_time = start_time.strftime("%Y-%m-%dT%H:%M:%S")
            else:
                self.start_time = start_time
        self.time_zone = time_zone
        if self.start_time is not None and self.time_zone is None:
            self.time_zone = TimeZone.UTC
        self.hours = None if hours is None else list(hours)
        self.minutes = None if minutes is None else list(minutes)
        if time_of_day is not None and (hours is not None or minutes is not None):
            raise ValueError("Can not specify time_of_day and hours or minutes.")
        if time_of_day is not None:
            if not isinstance(time_of_day, str) or _TIME_OF_DAY.match(time_of_day) is None:
                raise ValueError("time_of_day should be in the format hh:mm.")
            hour, minute = (int(part) for part in time_of_day.split(":"))
            if not 0 <= hour <= 23:
                raise ValueError("Time of day hour value must be between 0 and 23.")
            if not 0 <= minute <= 59:
                raise ValueError("Time of day minute value must be between 0 and 59.")
            self.hours, self.minutes = [hour], [minute]
        self.week_days = None if week_days is None else list(week_days)

    def validate(self) -> None:
        """Check the recurrence, as ``Schedule.create`` and ``Schedule.update`` do before sending it.

        Raises:
            ValueError: azureml's message for the first broken rule; then the service's message for
                what only it checks (``start_time`` format, an interval beyond a century).
        """
        if self.frequency not in FREQUENCIES:
            raise ValueError("Invalid value for frequency, only one of Minute, Hour, Day, Week, or Month accepted")
        if isinstance(self.interval, bool) or not isinstance(self.interval, int) or self.interval < 1:
            raise ValueError("Interval must be an integer greater than 0.")
        if self.frequency not in ("Day", "Week") and self.hours is not None:
            raise ValueError("Can only specify hours if frequency is Week or Day.")
        if self.frequency not in ("Day", "Week") and self.minutes is not None:
            raise ValueError("Can only specify minutes if frequency is Week or Day.")
        if self.frequency != "Week" and self.week_days is not None:
            raise ValueError("Can only specify week days if frequency is Week.")
        for hour in self.hours or ():
            if isinstance(hour, bool) or not isinstance(hour, int) or not 0 <= hour <= 23:
                raise ValueError("Hours must be between 0 and 23.")
        for minute in self.minutes or ():
            if isinstance(minute, bool) or not isinstance(minute, int) or not 0 <= minute <= 59:
                raise ValueError("Minutes must be between 0 and 59.")
        for week_day in self.week_days or ():
            if week_day not in WEEK_DAYS:
                raise ValueError(
                    "Week days must be a list of str, accepted values: Monday, Tuesday, Wednesday, "
                    "Thursday, Friday, Saturday, Sunday."
                )
        if self.time_zone is not None and not _is_zone(self.time_zone):
            raise ValueError("Time zone is not a valid TimeZone enum.")
        if self.start_time is not None and self.time_zone is None:
            raise ValueError("Must specify time_zone if start_time is provided.")
        try:
            parse_recurrence(self._to_wire())
        except BadRequestError as exc:
            raise ValueError(exc.message) from exc

    def _to_wire(self) -> dict[str, Any]:
        """azureml's wire ``Recurrence`` (``Frequency``, ``Interval``, ``StartTime``, ``TimeZone``, ``Schedule``)."""
        time_zone = self.time_zone.value if isinstance(self.time_zone, TimeZone) else self.time_zone
        return {
            "Frequency": self.frequency,
            "Interval": self.interval,
            "StartTime": self.start_time,
            "TimeZone": time_zone,
            "Schedule": {
                "Hours": list(self.hours or ()),
                "Minutes": list(self.minutes or ()),
                "WeekDays": list(self.week_days or ()),
            },
        }

    @classmethod
    def _from_wire(cls, body: Mapping[str, Any]) -> ScheduleRecurrence:
        """The recurrence the service returned (a Windows zone name becomes its :class:`TimeZone`)."""
        schedule = body.get("Schedule") or {}
        raw_zone = body.get("TimeZone")
        time_zone: TimeZone | str | None = raw_zone
        if isinstance(raw_zone, str) and raw_zone in TimeZone._value2member_map_:
            time_zone = TimeZone(raw_zone)
        return cls(
            frequency=body["Frequency"],
            interval=body["Interval"],
            start_time=body.get("StartTime"),
            time_zone=time_zone,
            hours=schedule.get("Hours") or None,
            minutes=schedule.get("Minutes") or None,
            week_days=schedule.get("WeekDays") or None,
        )

    def __repr__(self) -> str:
        fields = ", ".join(f"{key}={value!r}" for key, value in vars(self).items() if value is not None)
        return f"ScheduleRecurrence({fields})"


def _is_zone(value: object) -> bool:
    # azureml accepts only TimeZone members; a Windows or IANA name as a plain string is our extension.
    return isinstance(value, TimeZone) or (isinstance(value, str) and is_time_zone(value))
