"""The whole leaderboard in one download: every shown record, all its tables and provenance,
as `data/all.json`, described by a JSON Schema (`data/all.schema.json`) built from the record
model itself, so that the two cannot drift apart."""

from __future__ import annotations

import json
from typing import Any

from medbench import __version__
from medbench.publish.record import Record
from medbench.publish.site.context import Site

WHOLE_FORMAT = 1
"""The `schema_version` of `all.json`: bump when its envelope changes."""
WHOLE = "data/all.json"
SCHEMA = "data/all.schema.json"


def whole_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of `all.json`."""
    record = Record.model_json_schema(ref_template="#/$defs/{model}")
    defs = record.pop("$defs", {})
    defs["Record"] = record
    entry = {
        "type": "object",
        "required": ["local", "record"],
        "additionalProperties": False,
        "properties": {
            "local": {
                "type": "boolean",
                "description": "A fresh result of `medbench run` on the building machine, "
                "not a published record.",
            },
            "record": {"$ref": "#/$defs/Record"},
        },
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "medbench leaderboard: every record the site shows",
        "type": "object",
        "required": ["schema_version", "medbench", "build_date", "records"],
        "additionalProperties": False,
        "properties": {
            "schema_version": {"const": WHOLE_FORMAT},
            "medbench": {"type": "string", "description": "The version that built the site."},
            "build_date": {"type": "string", "description": "The newest record's date."},
            "records": {
                "type": "array",
                "description": "Every record, sorted by suite then model: its tables (scores, "
                "fragility, models, pairs, ladder, image variants, reliance, severity curves, "
                "quadrants, calibration) and provenance, as published (see the methods page "
                "for each column).",
                "items": {"$ref": "#/$defs/Entry"},
            },
        },
        "$defs": {**defs, "Entry": entry},
    }


def whole_data(site: Site) -> None:
    """Write `data/all.json` and its schema into the site."""
    records = sorted(site.records, key=lambda r: (r.suite, r.model_id))
    data = {
        "schema_version": WHOLE_FORMAT,
        "medbench": __version__,
        "build_date": site.build_date,
        "records": [
            {
                "local": (r.suite, r.model_id) in site.local,
                "record": r.model_dump(mode="json"),
            }
            for r in records
        ],
    }
    site.files[WHOLE] = (json.dumps(data, sort_keys=True, indent=1) + "\n").encode("utf-8")
    site.files[SCHEMA] = (json.dumps(whole_schema(), sort_keys=True, indent=1) + "\n").encode()


__all__ = ["SCHEMA", "WHOLE", "WHOLE_FORMAT", "whole_data", "whole_schema"]
