"""Schedules: when a recurrence schedule is due (pure), and the time zones it may name.

    recurrence.py  Recurrence (the wire ``Recurrence`` object), parse_recurrence (every azureml rule),
                   first_due / next_due / previous_due / occurrences (the grid, DST-correct)
    timezones.py   azureml's Windows zone names → IANA, zone_for()
    bodies.py      request bodies of the schedule routes, checked without storage
    flows.py       create / update / enable / disable against the workspace (pipelines, datastores)
    store.py       the ``amlpipeschedules`` table: ScheduleStore, Schedule, DataStoreTrigger
    wire.py        the pydantic shapes of the routes, for the OpenAPI document

recurrence.py and timezones.py read no clock and no storage: the timer function passes "now" in,
the store keeps the schedule, and the due times computed there are the keys that make firing
exactly-once. Firing and datastore watches are not built yet (see docs/schedules.md).
"""
