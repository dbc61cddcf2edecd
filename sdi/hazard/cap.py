"""CAP 1.2 messages (OASIS Common Alerting Protocol, ITU-T X.1303) for the risk levels.

Every raise of a risk level is an ``Alert``, every escalation or de-escalation an ``Update``
and every clear a ``Cancel``; updates and cancellations ``reference`` every earlier message of
the same warning (the first one included), as alert hubs expect. Each message has two
``info`` blocks (vi-VN, en-US) with the same severity, urgency and certainty, and one
``area``: the warning's polygons (lat,lon, simplified to ~10 m) and the commune codes as
geocodes. Messages are kept in ``hazard.cap_messages`` and served by ``sdi.api.cap``.

Mapping from the risk level (docs/warnings.md §CAP):

- severity: 1 Minor, 2 Moderate, 3 Severe, 4–5 Extreme;
- urgency: Immediate for observed hazards (rain, floods), Expected for forecasts (typhoon,
  storm surge); Past for a cancellation;
- certainty: Observed for observed hazards, Likely for forecasts.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from xml.sax.saxutils import escape

import psycopg
import shapely

from sdi.hazard.rules import DECISION, LEVEL_LABELS, RuleSet
from sdi.settings import Settings
from sdi.sql import one

NAMESPACE = "urn:oasis:names:tc:emergency:cap:1.2"
SENDER = "sdi@quangninh.gov.vn"
SENDER_NAME = {
    "vi": "Ban Chỉ huy Phòng chống thiên tai tỉnh Quảng Ninh",
    "en": "Quảng Ninh Provincial Steering Committee for Natural Disaster Prevention",
}
LANGUAGES = {"vi": "vi-VN", "en": "en-US"}
SEVERITY = {1: "Minor", 2: "Moderate", 3: "Severe", 4: "Extreme", 5: "Extreme"}
FORECAST_HAZARDS = frozenset({"typhoon", "storm_surge"})
CATEGORY = {"flash_flood_landslide": "Geo"}  # the others: Met
GEOCODE = "VN-commune-2025"  # valueName of the commune codes (2025 administrative units)
MSG_TYPE = {"raised": "Alert", "escalated": "Update", "de-escalated": "Update", "cleared": "Cancel"}
RESPONSE = {1: "Monitor", 2: "Prepare", 3: "Prepare", 4: "Evacuate", 5: "Evacuate"}


ICT = timezone(timedelta(hours=7))


def cap_time(at: datetime) -> str:
    """CAP's dateTime: whole seconds and an explicit offset, never 'Z' (here ICT, +07:00)."""
    return at.astimezone(ICT).replace(microsecond=0).isoformat()


def polygons(wkb: bytes | None, tolerance: float = 0.0001) -> list[str]:
    """The exterior rings of a (multi)polygon as CAP polygons: 'lat,lon lat,lon …', closed."""
    if wkb is None:
        return []
    geometry = shapely.simplify(shapely.from_wkb(wkb), tolerance, preserve_topology=True)
    rings = []
    for part in shapely.get_parts(geometry):
        if part.geom_type != "Polygon" or part.is_empty:
            continue
        coords = list(part.exterior.coords)
        if len(coords) < 4:
            continue
        rings.append(" ".join(f"{lat:.5f},{lon:.5f}" for lon, lat in coords))
    return rings


def _element(name: str, value: Any) -> str:
    return f"<{name}>{escape(str(value))}</{name}>"


def message_xml(
    *,
    identifier: str,
    sent: str,
    msg_type: str,
    references: str | None,
    record: dict,
    level: int,
    rules: RuleSet,
    web: str,
) -> str:
    """The CAP 1.2 document of one message."""
    hazard = record["hazard"]
    rule = rules.hazards.get(hazard)
    forecast = hazard in FORECAST_HAZARDS
    cancel = msg_type == "Cancel"
    area_name = record.get("area_name") or record["area_code"]
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<alert xmlns="{NAMESPACE}">',
        _element("identifier", identifier),
        _element("sender", SENDER),
        _element("sent", sent),
        _element("status", "Actual"),
        _element("msgType", msg_type),
        _element("scope", "Public"),
    ]
    if references:
        parts.append(_element("references", references))
    for lang, language in LANGUAGES.items():
        title = rule.title[lang] if rule else hazard
        label = LEVEL_LABELS[level][lang]
        if cancel:
            headline = (
                f"Hết cảnh báo {title.lower()}: {area_name}"
                if lang == "vi"
                else f"{title} warning cancelled: {area_name}"
            )
            description = (
                "Các tiêu chí của mọi cấp độ rủi ro không còn được đáp ứng."
                if lang == "vi"
                else "The criteria of every risk level are no longer met."
            )
        else:
            headline = f"{title} – {label}: {area_name}"
            description = record["reason"]
        parts += [
            "<info>",
            _element("language", language),
            _element("category", CATEGORY.get(hazard, "Met")),
            _element("event", title),
            _element("responseType", "AllClear" if cancel else RESPONSE[level]),
            _element("urgency", "Past" if cancel else ("Expected" if forecast else "Immediate")),
            _element("severity", "Minor" if cancel else SEVERITY[level]),
            _element("certainty", "Observed" if cancel or not forecast else "Likely"),
            _element("senderName", SENDER_NAME[lang]),
            _element("headline", headline),
            _element("description", description),
        ]
        if not cancel and rule and level in rule.actions and lang == "en":
            parts.append(_element("instruction", rule.actions[level]))
        parts += [
            _element("web", web),
            "<parameter>",
            _element("valueName", "riskLevel"),
            _element("value", 0 if cancel else level),
            "</parameter>",
            "<parameter>",
            _element("valueName", "legalBasis"),
            _element("value", record.get("article") or f"Quyết định {DECISION}"),
            "</parameter>",
            "<area>",
            _element("areaDesc", area_name),
        ]
        parts += [_element("polygon", ring) for ring in polygons(record.get("wkb"))]
        for commune in record.get("communes") or []:
            parts += [
                "<geocode>",
                _element("valueName", GEOCODE),
                _element("value", commune),
                "</geocode>",
            ]
        parts += ["</area>", "</info>"]
    parts.append("</alert>")
    return "\n".join(p for p in parts if p)


def issue(
    conn: psycopg.Connection,
    run_id: int,
    event: str,
    record: dict,
    level_from: int,
    level_to: int,
    rules: RuleSet,
    settings: Settings,
) -> str:
    """Write the CAP message of one event; returns its identifier."""
    msg_type = MSG_TYPE[event]
    earlier = conn.execute(
        "SELECT identifier, sent FROM hazard.cap_messages WHERE risk_id = %s ORDER BY id",
        (record["id"],),
    ).fetchall()
    if msg_type != "Alert" and not earlier:
        msg_type = "Alert"  # a warning raised before CAP was installed: start its thread
    sent = one(conn.execute("SELECT now()"))[0]
    identifier = f"vn.quangninh.sdi.risk.{record['id']}.{len(earlier) + 1}"
    references = (
        " ".join(f"{SENDER},{i},{cap_time(s)}" for i, s in earlier) if msg_type != "Alert" else None
    )
    level = level_to if level_to else level_from
    web = f"{settings.server_url.rstrip('/')}/cap/{identifier}.xml"
    xml = message_xml(
        identifier=identifier,
        sent=cap_time(sent),
        msg_type=msg_type,
        references=references,
        record=record,
        level=level,
        rules=rules,
        web=web,
    )
    conn.execute(
        """INSERT INTO hazard.cap_messages (identifier, natural_key, risk_id, msg_type, sent,
               level, "references", xml, run_id)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            identifier,
            record["natural_key"],
            record["id"],
            msg_type,
            sent,
            level_to,
            references,
            xml,
            run_id,
        ),
    )
    return identifier
