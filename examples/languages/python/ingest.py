"""ingest: the meter export in, the readings a report can trust out.

Reads the smart meters' hourly export (``/data/readings.csv``, columns
``meter,feeder,time,kwh``) and the feeders' capacities
(``/data/feeders.csv``), both on a read-only mount, and writes:

- ``readings``: the well-formed rows as JSON, ``[{"meter", "feeder", "time",
  "kwh"}]``. A household's hourly consumption shows when its people are home:
  the workflow labels it ``pii``.
- ``feeders``: ``{feeder: capacity_kw}``.
- ``rejects``: ``[{"line", "reason"}]`` for every row refused, naming the
  line and the problem but not the meter.

``MAX_KWH`` (environment) is the most one meter may use in an hour; more is
a metering fault. Built with componentize-py (``build.sh``); the module's top
level runs at build time, so everything that reads the run's environment or
files is inside ``main``.
"""

import csv
import math
import os
import re
from datetime import datetime, timezone

import cairn

METER = re.compile(r"M-\d{4}")


def read_feeders(path: str) -> dict[str, float]:
    feeders: dict[str, float] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            try:
                capacity = float(row["capacity_kw"])
            except (KeyError, TypeError, ValueError):
                raise cairn.Permanent(f"{path}:{line}: capacity_kw is not a number") from None
            if not capacity > 0:
                raise cairn.Permanent(f"{path}:{line}: capacity_kw must be positive")
            feeders[row["feeder"]] = capacity
    if not feeders:
        raise cairn.Permanent(f"{path}: no feeders")
    return feeders


def check(row: dict[str, str], feeders: dict[str, float], max_kwh: float) -> str | None:
    """Why `row` cannot be used, or None if it can."""
    if not METER.fullmatch(row.get("meter") or ""):
        return "meter id is not M-NNNN"
    if row.get("feeder") not in feeders:
        return f"unknown feeder {row.get('feeder')!r}"
    try:
        time = datetime.fromisoformat(row.get("time") or "")
    except ValueError:
        return f"time {row.get('time')!r} is not an ISO 8601 timestamp"
    if time.tzinfo is None:
        return "time has no UTC offset"
    if time.minute or time.second or time.microsecond:
        return "time is not on the hour"
    try:
        kwh = float(row.get("kwh") or "")
    except ValueError:
        return f"kwh {row.get('kwh')!r} is not a number"
    if not math.isfinite(kwh) or kwh < 0:
        return f"kwh {kwh} is negative or not finite"
    if kwh > max_kwh:
        return f"kwh {kwh} is over {max_kwh} in an hour (a metering fault)"
    return None


def main() -> None:
    max_kwh = float(os.environ.get("MAX_KWH", "20"))
    feeders = read_feeders("/data/feeders.csv")

    readings = []
    rejects = []
    seen: set[tuple[str, str]] = set()
    with open("/data/readings.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != ["meter", "feeder", "time", "kwh"]:
            raise cairn.Permanent(
                f"/data/readings.csv: columns are {reader.fieldnames}, expected meter,feeder,time,kwh"
            )
        for line, row in enumerate(reader, start=2):
            reason = check(row, feeders, max_kwh)
            if reason is None:
                time = datetime.fromisoformat(row["time"]).astimezone(timezone.utc)
                key = (row["meter"], time.isoformat())
                if key in seen:
                    reason = "a second reading for the same meter and hour"
                else:
                    seen.add(key)
                    readings.append(
                        {
                            "meter": row["meter"],
                            "feeder": row["feeder"],
                            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
                            "kwh": float(row["kwh"]),
                        }
                    )
            if reason is not None:
                rejects.append({"line": line, "reason": reason})

    if not readings:
        raise cairn.Permanent("/data/readings.csv has no usable readings")
    cairn.write_json("readings", readings)
    cairn.write_json("feeders", feeders)
    cairn.write_json("rejects", rejects)
    meters = len({r["meter"] for r in readings})
    cairn.info(f"python: {len(readings)} readings from {meters} meters, {len(rejects)} rows refused")


WitWorld = cairn.task(main)
