"""The OpenAPI 3.1 description of the read-only API, generated from the declared
parameters (so the description and the validation cannot drift apart).

``deploy/openapi.json`` is a copy of :func:`spec` (a test keeps it equal); the running
API serves it at ``/openapi.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from driftwatch import __version__
from driftwatch.api.params import ALERT_PARAMS, SEGMENT_PARAMS, SHOW_PARAMS, Param


def _schema(p: Param) -> dict[str, Any]:
    if p.kind == "int":
        item: dict[str, Any] = {"type": "integer"}
        if p.minimum is not None:
            item["minimum"] = p.minimum
        if p.maximum is not None:
            item["maximum"] = p.maximum
    elif p.kind == "enum":
        item = {"type": "string", "enum": list(p.choices)}
    elif p.kind == "time":
        item = {"type": "string", "examples": ["2026-03-18T14:00:00Z", "2026-03-18", "6h"]}
    else:
        item = {"type": "string", "maxLength": 256}
        if p.pattern:
            item["pattern"] = p.pattern
    if p.multi:
        out: dict[str, Any] = {"type": "array", "items": item, "maxItems": 50}
        if p.default:
            out["default"] = list(p.default)
        return out
    if p.default is not None:
        item["default"] = p.default
    return item


def _parameters(params: Sequence[Param]) -> list[dict[str, Any]]:
    return [
        {
            "name": p.name,
            "in": "query",
            "required": False,
            "description": p.doc + (" (repeat or comma-separate)" if p.multi else ""),
            "schema": _schema(p),
            **({"style": "form", "explode": True} if p.multi else {}),
        }
        for p in params
    ]


def _json(ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


# Every protected path: a missing/wrong token, or the client over its rate limit.
_LIMITED = {
    "401": _json("Error", "Missing or invalid bearer token"),
    "429": {
        **_json("Error", "This client is over its rate limit; retry after Retry-After seconds"),
        "headers": {"Retry-After": {"description": "Seconds to wait (whole, >= 1)",
                                    "schema": {"type": "integer", "minimum": 1}}},
    },
}
_ERRORS = {
    **_LIMITED,
    "422": _json("Error", "A parameter has a bad value; the message names it"),
    "503": _json("Error", "ClickHouse is unavailable"),
}


def spec() -> dict[str, Any]:
    """The OpenAPI document."""
    alert_schema = {
        "type": "object",
        "description": "An alert record per contracts/alert.schema.json, plus version,"
                       " updated_at, findings and written_at.",
        "required": ["fingerprint", "status", "starts_at", "labels", "annotations"],
        "properties": {
            "fingerprint": {"type": "string"},
            "status": {"type": "string", "enum": ["firing", "resolved"]},
            "starts_at": {"type": "string", "format": "date-time"},
            "ends_at": {"type": ["string", "null"], "format": "date-time"},
            "updated_at": {"type": ["string", "null"], "format": "date-time"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            "version": {"type": "integer"},
            "findings": {"type": "integer"},
            "written_at": {"type": "string", "format": "date-time"},
        },
    }
    number_or_null = {"type": ["number", "null"]}
    segment_schema = {
        "type": "object",
        "description": "One segment (and time bucket): dimension values, then figures."
                       " Rates are fractions; recall/precision count labelled rows only"
                       " (flagged = score >= threshold) and are null without labels.",
        "properties": {
            "bucket": {"type": "string", "format": "date-time"},
            "mcc": {"type": "string"}, "merchant_country": {"type": "string"},
            "channel": {"type": "string"}, "model_version": {"type": "string"},
            "currency": {"type": "string"},
            "n": {"type": "integer"}, "amount_minor": {"type": "integer"},
            "score_mean": {"type": "number"}, "score_p50": {"type": "number"},
            "score_p90": {"type": "number"}, "score_p99": {"type": "number"},
            "approve_rate": {"type": "number"}, "review_rate": {"type": "number"},
            "decline_rate": {"type": "number"},
            "labelled": {"type": "integer"}, "fraud": {"type": "integer"},
            "fraud_rate": number_or_null, "tp": {"type": "integer"}, "fp": {"type": "integer"},
            "recall": number_or_null, "precision": number_or_null,
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "driftwatch read-only API",
            "version": __version__,
            "description": "Alerts and per-segment figures from driftwatch's ClickHouse"
                           " store. Every path except /healthz needs"
                           " `Authorization: Bearer <DRIFTWATCH_API_TOKEN>`.",
        },
        "security": [{"bearer": []}],
        "paths": {
            "/healthz": {"get": {
                "summary": "Liveness and ClickHouse reachability (no token needed)",
                "security": [],
                "responses": {"200": _json("Health", "Healthy"),
                              "429": _LIMITED["429"],
                              "503": _json("Health", "ClickHouse unreachable")},
            }},
            "/metrics": {"get": {
                "summary": "Prometheus metrics (text exposition format)",
                "responses": {"200": {"description": "Metrics",
                                      "content": {"text/plain": {"schema": {"type": "string"}}}},
                              **_LIMITED},
            }},
            "/alerts": {"get": {
                "summary": "Current alert states, newest first",
                "parameters": _parameters(ALERT_PARAMS),
                "responses": {"200": _json("AlertList", "Alerts"), **_ERRORS},
            }},
            "/alerts/{fingerprint}": {"get": {
                "summary": "One alert with its history, deliveries and evidence rows",
                "parameters": [
                    {"name": "fingerprint", "in": "path", "required": True,
                     "schema": {"type": "string", "pattern": "^[0-9a-f]{16}$"}},
                    *_parameters(SHOW_PARAMS),
                ],
                "responses": {"200": _json("AlertDetail", "The alert"),
                              "404": _json("Error", "No such alert"), **_ERRORS},
            }},
            "/segments": {"get": {
                "summary": "Per-segment breakdown: volume, amount, scores, decision rates,"
                           " labels, fraud rate, recall and precision",
                "parameters": _parameters(SEGMENT_PARAMS),
                "responses": {"200": _json("SegmentList", "Segments"), **_ERRORS},
            }},
            "/sql": {"post": {
                "summary": "One read-only analyst query (SELECT, WITH, SHOW, DESCRIBE,"
                           " EXPLAIN) with row and time limits",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/SqlRequest"}}}},
                "responses": {"200": _json("SqlResult", "Rows"),
                              "400": _json("Error", "ClickHouse refused the query"),
                              **_ERRORS},
            }},
            "/openapi.json": {"get": {
                "summary": "This description",
                "responses": {"200": {"description": "OpenAPI document",
                                      "content": {"application/json": {}}},
                              **_LIMITED},
            }},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {
                    "error": {"type": "string"}, "parameter": {"type": "string"}}},
                "Health": {"type": "object", "properties": {
                    "status": {"type": "string", "enum": ["ok", "degraded"]},
                    "clickhouse": {"type": "boolean"}}},
                "Alert": alert_schema,
                "AlertList": {"type": "object", "properties": {
                    "count": {"type": "integer"},
                    "alerts": {"type": "array", "items": {"$ref": "#/components/schemas/Alert"}}}},
                "AlertDetail": {"type": "object", "properties": {
                    "alert": {"$ref": "#/components/schemas/Alert"},
                    "history": {"type": "array",
                                "items": {"$ref": "#/components/schemas/Alert"}},
                    "deliveries": {"type": "array", "items": {"type": "object"}},
                    "evidence": {"type": "object", "properties": {
                        "source": {"type": "string"},
                        "window_start": {"type": "string"}, "window_end": {"type": "string"},
                        "filters": {"type": "object"},
                        "ignored_dimensions": {"type": "array", "items": {"type": "string"}},
                        "rows": {"type": "array", "items": {"type": "object"}}}}}},
                "SqlRequest": {"type": "object", "required": ["sql"], "properties": {
                    "sql": {"type": "string", "maxLength": 20000},
                    "max_rows": {"type": "integer", "minimum": 1}}},
                "SqlResult": {"type": "object", "properties": {
                    "columns": {"type": "array", "items": {"type": "string"}},
                    "types": {"type": "array", "items": {"type": "string"}},
                    "rows": {"type": "array", "items": {"type": "array"}},
                    "truncated": {"type": "boolean"}, "seconds": {"type": "number"}}},
                "Segment": segment_schema,
                "SegmentList": {"type": "object", "properties": {
                    "count": {"type": "integer"},
                    "since": {"type": ["string", "null"]}, "until": {"type": ["string", "null"]},
                    "segments": {"type": "array",
                                 "items": {"$ref": "#/components/schemas/Segment"}}}},
            },
        },
    }


if __name__ == "__main__":  # pragma: no cover - `python -m driftwatch.api.openapi`
    import json

    print(json.dumps(spec(), indent=2))
