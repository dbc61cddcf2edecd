"""CQL2 filters → SQL: pygeofilter's AST translated with psycopg ``sql`` composition.

Values bound, identifiers only from the published columns, spatial predicates on the raw
indexed column, types checked (a 400, never a database error); also the AST back to CQL2 JSON
and text. Details and pygeofilter's quirks: ``docs/internals.md`` ("CQL2 → SQL").
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import shapely
import shapely.geometry
from psycopg import sql
from pygeofilter import ast, values

# Kinds of value a filter expression can have (those of its columns' types).
from sdi.api.pgtypes import (
    ARRAY,
    BOOLEAN,
    DATE,
    GEOMETRY,
    NUMBER,
    TEMPORAL,
    TEXT,
    TIMESTAMP,
    filter_kind,
)

MAX_NODES = 2000  # a larger filter is refused rather than translated


class FilterError(ValueError):
    """A filter that cannot be answered; the message is for the person who wrote it."""


@dataclass(frozen=True)
class Queryables:
    """What a filter may refer to: published columns (name → PostgreSQL type) and geometry."""

    columns: Mapping[str, str]
    geometry: str = "geom"
    srid: int = 4326
    alias: str = "t"

    @property
    def names(self) -> list[str]:
        return [*self.columns, "geometry"]


@dataclass(frozen=True)
class _Expr:
    sql: sql.Composable
    kind: str | None  # None: a literal whose type adapts (text compared with a date column)
    column: str | None = None  # the property, when the expression is a bare column
    pg_type: str | None = None


def to_sql(node: Any, queryables: Queryables) -> tuple[sql.Composable, dict[str, Any]]:
    """``(condition, params)`` for a pygeofilter AST; params are named ``p0``, ``p1``…"""
    translator = _Translator(queryables)
    condition = translator.condition(node)
    return condition, translator.params


def operands(node: ast.Combination) -> list[Any]:
    """The operands of a chain of one combination (a AND b AND c), left to right, without
    recursion (pygeofilter nests long chains deeply: a thousand ORs would overflow)."""
    kind = type(node)
    items, stack = [], [node]
    while stack:
        item = stack.pop()
        if type(item) is kind:
            stack.extend([item.rhs, item.lhs])
        else:
            items.append(item)
    return items


class _Translator:
    def __init__(self, queryables: Queryables) -> None:
        self.q = queryables
        self.params: dict[str, Any] = {}
        self.nodes = 0

    # -- parameters --------------------------------------------------------------------
    def bind(self, value: Any, cast: str | None = None) -> sql.Composable:
        name = f"p{len(self.params)}"
        self.params[name] = value
        placeholder = sql.Placeholder(name)
        if cast:
            return sql.SQL("{}::{}").format(placeholder, sql.SQL(cast))
        return placeholder

    def count(self) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise FilterError(f"the filter is too large (more than {MAX_NODES} terms)")

    # -- conditions --------------------------------------------------------------------
    def condition(self, node: Any) -> sql.Composable:
        self.count()
        if isinstance(node, bool):
            return sql.SQL("TRUE" if node else "FALSE")
        for kind, method in _CONDITIONS:
            if isinstance(node, kind):
                return getattr(self, method)(node)
        if isinstance(node, ast.Not):
            return sql.SQL("NOT ({})").format(self.condition(node.sub_node))
        if isinstance(node, ast.Include):
            return sql.SQL("FALSE" if node.not_ else "TRUE")
        if isinstance(node, ast.IsNull):
            expr = self.expression(node.lhs)
            return sql.SQL("{} IS {}NULL").format(expr.sql, sql.SQL("NOT " if node.not_ else ""))
        if isinstance(node, ast.Attribute):
            expr = self.expression(node)
            if expr.kind == BOOLEAN:
                return expr.sql
        if isinstance(node, ast.SpatialDistancePredicate):
            raise FilterError("DWITHIN and BEYOND are not supported; use S_INTERSECTS")
        raise FilterError(f"this is not a condition: {_describe(node)}")

    def combination(self, node: ast.Combination) -> sql.Composable:
        parts = [self.condition(item) for item in operands(node)]
        joiner = sql.SQL(" AND " if isinstance(node, ast.And) else " OR ")
        return sql.SQL("({})").format(joiner.join(sql.SQL("({})").format(p) for p in parts))

    def comparison(self, node: ast.Comparison) -> sql.Composable:
        lhs, rhs = self.operands(node.lhs, node.rhs, node.op.value)
        if lhs.kind in (ARRAY, GEOMETRY) or rhs.kind in (ARRAY, GEOMETRY):
            raise FilterError(
                f"'{node.op.value}' compares single values; use A_EQUALS for arrays "
                "and S_EQUALS for geometries"
            )
        if node.op.value not in ("=", "<>") and BOOLEAN in (lhs.kind, rhs.kind):
            raise FilterError(f"booleans can only be compared with = or <>, not {node.op.value}")
        return sql.SQL("{} {} {}").format(lhs.sql, sql.SQL(node.op.value), rhs.sql)

    def like(self, node: ast.Like) -> sql.Composable:
        lhs = self.expression(node.lhs)
        if lhs.kind != TEXT:
            raise FilterError(f"LIKE needs a text property; {_name(lhs)} is {lhs.kind}")
        pattern = node.pattern
        pattern_sql: sql.Composable
        if isinstance(pattern, ast.Function) and pattern.name.lower() in ("lower", "casei"):
            pattern_sql = sql.SQL("lower({})").format(self.text_literal(pattern.arguments))
        elif isinstance(pattern, str):
            pattern_sql = self.bind(pattern)
        else:
            raise FilterError("the pattern of LIKE must be a text in quotes, e.g. 'Hạ Long%'")
        operator = "ILIKE" if node.nocase else "LIKE"
        return sql.SQL("{} {}{} {}").format(
            lhs.sql, sql.SQL("NOT " if node.not_ else ""), sql.SQL(operator), pattern_sql
        )

    def text_literal(self, arguments: list[Any]) -> sql.Composable:
        if len(arguments) != 1 or not isinstance(arguments[0], str):
            raise FilterError("CASEI() of a pattern takes one text in quotes")
        return self.bind(arguments[0])

    def between(self, node: ast.Between) -> sql.Composable:
        lhs = self.expression(node.lhs)
        if lhs.kind is None:
            lhs = _Expr(lhs.sql, TEXT)
        if lhs.kind not in (NUMBER, TEXT, *TEMPORAL):
            raise FilterError(f"BETWEEN needs a number, text or date; {_name(lhs)} is {lhs.kind}")
        low = self.compatible(lhs, self.expression(node.low), "BETWEEN")
        high = self.compatible(lhs, self.expression(node.high), "BETWEEN")
        return sql.SQL("{} {}BETWEEN {} AND {}").format(
            lhs.sql, sql.SQL("NOT " if node.not_ else ""), low.sql, high.sql
        )

    def in_(self, node: ast.In) -> sql.Composable:
        lhs = self.expression(node.lhs)
        if lhs.kind in (ARRAY, GEOMETRY):
            raise FilterError(f"IN needs a single-valued property; {_name(lhs)} is {lhs.kind}")
        if not node.sub_nodes:
            raise FilterError("IN needs at least one value")
        options = [self.compatible(lhs, self.expression(v), "IN").sql for v in node.sub_nodes]
        return sql.SQL("{} {}IN ({})").format(
            lhs.sql, sql.SQL("NOT " if node.not_ else ""), sql.SQL(", ").join(options)
        )

    # -- expressions -------------------------------------------------------------------
    def operands(self, left: Any, right: Any, what: str) -> tuple[_Expr, _Expr]:
        lhs, rhs = self.expression(left), self.expression(right)
        if lhs.kind is None and rhs.kind is not None:
            return self.compatible(rhs, lhs, what, swap=True), rhs
        return lhs, self.compatible(lhs, rhs, what)

    def compatible(self, ref: _Expr, other: _Expr, what: str, swap: bool = False) -> _Expr:
        """``other`` usable against ``ref``; a text literal against a date is cast to it."""
        if other.kind is None:  # an untyped text literal
            if ref.kind in TEMPORAL:
                cast = "date" if ref.kind == DATE else "timestamptz"
                return _Expr(sql.SQL("{}::" + cast).format(other.sql), ref.kind)
            if ref.kind in (TEXT, None):
                return _Expr(other.sql, TEXT)
            other = _Expr(other.sql, TEXT)
        if ref.kind is None or ref.kind == other.kind:
            return other
        if ref.kind in TEMPORAL and other.kind in TEMPORAL:
            return other
        a, b = (other, ref) if swap else (ref, other)
        column = ref if ref.column else other if other.column else None
        literal = other if column is ref else ref
        if column is not None:
            hint = _HINTS.get(column.kind or "", "")
            raise FilterError(
                f"{column.column} is a {column.kind} property and cannot be compared "
                f"({what}) with a {literal.kind}{hint}"
            )
        raise FilterError(f"cannot compare a {a.kind} with a {b.kind} ({what})")

    def expression(self, node: Any) -> _Expr:
        self.count()
        if isinstance(node, ast.Attribute):
            return self.attribute(node.name)
        if isinstance(node, bool):
            return _Expr(self.bind(node), BOOLEAN)
        if isinstance(node, (int, float)):
            if isinstance(node, float) and not math.isfinite(node):
                raise FilterError("numbers in a filter must be finite")
            return _Expr(self.bind(node), NUMBER)
        if isinstance(node, str):
            return _Expr(self.bind(node), None)
        if isinstance(node, datetime):
            return _Expr(self.bind(node, "timestamptz"), TIMESTAMP)
        if isinstance(node, date):
            return _Expr(self.bind(node, "date"), DATE)
        if isinstance(node, timedelta):
            raise FilterError("durations are not supported in filters")
        if isinstance(node, ast.Arithmetic):
            lhs, rhs = self.expression(node.lhs), self.expression(node.rhs)
            for side in (lhs, rhs):
                if side.kind != NUMBER:
                    raise FilterError(
                        f"arithmetic ({node.op.value}) needs numbers; {_name(side)} is "
                        f"{side.kind or 'text'}"
                    )
            return _Expr(
                sql.SQL("({} {} {})").format(lhs.sql, sql.SQL(node.op.value), rhs.sql), NUMBER
            )
        if isinstance(node, ast.Function):
            return self.function(node)
        if isinstance(node, (values.Geometry, values.Envelope)):
            return self.geometry_literal(node)
        if isinstance(node, list):
            raise FilterError("a list of values is only allowed with IN and the A_ predicates")
        raise FilterError(f"unsupported expression: {_describe(node)}")

    def attribute(self, name: str) -> _Expr:
        if name in (self.q.geometry, "geometry"):
            return _Expr(sql.Identifier(self.q.alias, self.q.geometry), GEOMETRY, "geometry")
        pg_type = self.q.columns.get(name)
        if pg_type is None:
            raise FilterError(
                f"unknown property '{name}' in the filter; the queryable properties are: "
                f"{', '.join(self.q.names)}"
            )
        return _Expr(sql.Identifier(self.q.alias, name), filter_kind(pg_type), name, pg_type)

    def function(self, node: ast.Function) -> _Expr:
        name = node.name.lower()
        if name in ("lower", "upper", "casei"):
            if len(node.arguments) != 1:
                raise FilterError("CASEI() takes one argument")
            arg = self.expression(node.arguments[0])
            if arg.kind not in (TEXT, None):
                raise FilterError(f"CASEI() needs text; {_name(arg)} is {arg.kind}")
            fn = "upper" if name == "upper" else "lower"
            return _Expr(sql.SQL(fn + "({})").format(arg.sql), TEXT)
        if name == "bbox":
            return self.envelope(_numbers(node.arguments, "BBOX"), None)
        raise FilterError(f"the function {node.name}() is not supported (supported: CASEI, BBOX)")

    # -- spatial -----------------------------------------------------------------------
    def geometry_literal(self, node: values.Geometry | values.Envelope) -> _Expr:
        if isinstance(node, values.Envelope):
            # pygeofilter's CQL2 JSON parser: Envelope(*bbox), bbox = [minx, miny, maxx, maxy]
            return self.envelope([node.x1, node.x2, node.y1, node.y2], None)
        geojson = dict(node.geometry)
        try:
            shape = shapely.geometry.shape(geojson)
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            raise FilterError(f"invalid geometry in the filter: {exc}") from None
        if shape.is_empty:
            raise FilterError("the geometry in the filter is empty")
        if not shapely.is_valid(shape):
            raise FilterError(
                f"the geometry in the filter is not valid ({shapely.is_valid_reason(shape)})"
            )
        coords = shapely.get_coordinates(shape)
        if not all(math.isfinite(v) for v in coords.ravel()):
            raise FilterError("the geometry in the filter has coordinates that are not numbers")
        srid = _srid(geojson.get("crs"), self.q.srid)
        return self.geometry_sql(shapely.to_wkt(shape, rounding_precision=-1), srid)

    def envelope(self, bounds: list[float], crs: str | None) -> _Expr:
        if len(bounds) == 6:  # 3D box: drop the heights
            bounds = [bounds[0], bounds[1], bounds[3], bounds[4]]
        if len(bounds) != 4:
            raise FilterError("a bbox has 4 numbers: minx, miny, maxx, maxy")
        minx, miny, maxx, maxy = bounds
        if minx > maxx or miny > maxy:
            raise FilterError("a bbox is minx, miny, maxx, maxy with min ≤ max")
        srid = _srid(crs, self.q.srid)
        box = shapely.box(minx, miny, maxx, maxy)
        return self.geometry_sql(shapely.to_wkt(box, rounding_precision=-1), srid)

    def geometry_sql(self, wkt: str, srid: int) -> _Expr:
        literal = sql.SQL("ST_GeomFromText({}, {})").format(self.bind(wkt), sql.Literal(srid))
        if srid != self.q.srid:
            literal = sql.SQL("ST_Transform({}, {})").format(literal, sql.Literal(self.q.srid))
        return _Expr(literal, GEOMETRY)

    def geometries(self, left: Any, right: Any, what: str) -> tuple[_Expr, _Expr]:
        lhs, rhs = self.expression(left), self.expression(right)
        for side in (lhs, rhs):
            if side.kind != GEOMETRY:
                raise FilterError(
                    f"{what} compares geometries: the geometry property and a geometry such as "
                    f"POLYGON((…)) or BBOX(…); {_name(side)} is {side.kind or 'text'}"
                )
        return lhs, rhs

    def spatial(self, node: ast.SpatialComparisonPredicate) -> sql.Composable:
        op = node.op.name
        lhs, rhs = self.geometries(node.lhs, node.rhs, f"S_{op}")
        if op == "DISJOINT":
            return sql.SQL("NOT ST_Intersects({}, {})").format(lhs.sql, rhs.sql)
        function = _SPATIAL[op]
        return sql.SQL(function + "({}, {})").format(lhs.sql, rhs.sql)

    def bbox_predicate(self, node: ast.BBox) -> sql.Composable:
        lhs = self.expression(node.lhs)
        if lhs.kind != GEOMETRY:
            raise FilterError(f"BBOX() applies to the geometry; {_name(lhs)} is {lhs.kind}")
        box = self.envelope(
            _numbers([node.minx, node.miny, node.maxx, node.maxy], "BBOX"), node.crs
        )
        return sql.SQL("ST_Intersects({}, {})").format(lhs.sql, box.sql)

    def relate(self, node: ast.Relate) -> sql.Composable:
        if not re.fullmatch(r"[012TF*]{9}", node.pattern or ""):
            raise FilterError("RELATE needs a DE-9IM pattern of 9 characters from 0, 1, 2, T, F, *")
        lhs, rhs = self.geometries(node.lhs, node.rhs, "RELATE")
        return sql.SQL("ST_Relate({}, {}, {})").format(lhs.sql, rhs.sql, self.bind(node.pattern))

    # -- temporal ----------------------------------------------------------------------
    def period(self, node: Any, what: str) -> tuple[sql.Composable, sql.Composable, bool]:
        """(begin, end, is_instant) of a temporal operand."""
        if isinstance(node, values.Interval):
            begin = self.bound(node.start, "-infinity")
            end = self.bound(node.end, "infinity")
            return begin, end, False
        expr = self.expression(node)
        if expr.kind is None and isinstance(node, str):
            raise FilterError(
                f"{what} needs DATE('…'), TIMESTAMP('…') or INTERVAL(…, …), not a text"
            )
        if expr.kind not in TEMPORAL:
            raise FilterError(f"{what} needs a date or timestamp; {_name(expr)} is {expr.kind}")
        return expr.sql, expr.sql, True

    def bound(self, value: Any, infinity: str) -> sql.Composable:
        if value is None or value == "..":
            return self.bind(infinity, "timestamptz")
        if isinstance(value, datetime):
            return self.bind(value, "timestamptz")
        if isinstance(value, date):
            return self.bind(value, "date")
        if isinstance(value, str):
            return self.bind(value, "timestamptz")
        raise FilterError("interval bounds must be dates, timestamps or '..'")

    def temporal(self, node: ast.TemporalPredicate) -> sql.Composable:
        op = node.op.name
        what = f"T_{op}"
        ab, ae, a_instant = self.period(node.lhs, what)
        bb, be, b_instant = self.period(node.rhs, what)
        if op == "TOVERLAPS" and (a_instant or b_instant):
            op = "INTERSECTS"  # pygeofilter parses T_INTERSECTS as TimeOverlaps
        if op not in _ALLEN:
            raise FilterError(f"{what} is not supported")
        template = _ALLEN[op]
        return sql.SQL(template).format(ab=ab, ae=ae, bb=bb, be=be)

    # -- arrays ------------------------------------------------------------------------
    def array_operand(self, node: Any, element_type: str | None) -> _Expr:
        if isinstance(node, (list, tuple)):
            if not all(isinstance(v, str) for v in node):
                raise FilterError("the arrays in this collection hold text: use ('a', 'b')")
            return _Expr(self.bind(list(node), element_type or "text[]"), ARRAY)
        expr = self.expression(node)
        if expr.kind != ARRAY:
            raise FilterError(f"the A_ predicates compare arrays; {_name(expr)} is {expr.kind}")
        return expr

    def array(self, node: ast.ArrayPredicate) -> sql.Composable:
        columns = [
            self.q.columns.get(n.name)
            for n in (node.lhs, node.rhs)
            if isinstance(n, ast.Attribute) and n.name in self.q.columns
        ]
        cast = columns[0] if columns else None
        lhs = self.array_operand(node.lhs, cast)
        rhs = self.array_operand(node.rhs, cast)
        operator = _ARRAY[node.op.name]
        return sql.SQL("{} {} {}").format(lhs.sql, sql.SQL(operator), rhs.sql)


# Conditions translated by a method of _Translator of the same purpose (order: the first
# class that matches wins).
_CONDITIONS = (
    (ast.Combination, "combination"),
    (ast.Comparison, "comparison"),
    (ast.Like, "like"),
    (ast.Between, "between"),
    (ast.In, "in_"),
    (ast.SpatialComparisonPredicate, "spatial"),
    (ast.BBox, "bbox_predicate"),
    (ast.Relate, "relate"),
    (ast.TemporalPredicate, "temporal"),
    (ast.ArrayPredicate, "array"),
)

_SPATIAL = {
    "INTERSECTS": "ST_Intersects",
    "CONTAINS": "ST_Contains",
    "WITHIN": "ST_Within",
    "TOUCHES": "ST_Touches",
    "CROSSES": "ST_Crosses",
    "OVERLAPS": "ST_Overlaps",
    "EQUALS": "ST_Equals",
}
_ARRAY = {"AEQUALS": "=", "ACONTAINS": "@>", "ACONTAINEDBY": "<@", "AOVERLAPS": "&&"}
# CQL2 temporal operators on (begin, end) pairs; an instant is a period with begin = end.
_ALLEN = {
    "AFTER": "{ab} > {be}",
    "BEFORE": "{ae} < {bb}",
    "MEETS": "{ae} = {bb}",
    "METBY": "{ab} = {be}",
    "TOVERLAPS": "({ab} < {bb} AND {ae} > {bb} AND {ae} < {be})",
    "OVERLAPPEDBY": "({ab} > {bb} AND {ab} < {be} AND {ae} > {be})",
    "BEGINS": "({ab} = {bb} AND {ae} < {be})",
    "BEGUNBY": "({ab} = {bb} AND {ae} > {be})",
    "DURING": "({ab} > {bb} AND {ae} < {be})",
    "TCONTAINS": "({ab} < {bb} AND {ae} > {be})",
    "ENDS": "({ab} > {bb} AND {ae} = {be})",
    "ENDEDBY": "({ab} < {bb} AND {ae} = {be})",
    "TEQUALS": "({ab} = {bb} AND {ae} = {be})",
    "DISJOINT": "({ae} < {bb} OR {ab} > {be})",
    "INTERSECTS": "({ab} <= {be} AND {ae} >= {bb})",
}
_HINTS = {
    TEXT: "; put the value in quotes, e.g. '06688'",
    NUMBER: "; write the number without quotes",
    DATE: "; write DATE('2024-01-31')",
    TIMESTAMP: "; write TIMESTAMP('2024-01-31T00:00:00Z')",
    BOOLEAN: "; write TRUE or FALSE",
}


def _name(expr: _Expr) -> str:
    return expr.column or "the value"


def _describe(node: Any) -> str:
    text = repr(node)
    return text if len(text) < 80 else text[:77] + "…"


def _numbers(items: list[Any], what: str) -> list[float]:
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, float)) or not math.isfinite(item):
            raise FilterError(f"{what}(…) takes numbers: minx, miny, maxx, maxy")
        out.append(float(item))
    return out


def _srid(crs: Any, default: int) -> int:
    """SRID of a literal's CRS (a GeoJSON ``crs`` member, a URN, a URI or ``EPSG:n``)."""
    if crs is None:
        return default
    if isinstance(crs, Mapping):
        crs = crs.get("properties", {}).get("name")
        if crs is None:
            return default
    name = str(crs)
    if "CRS84" in name.upper():
        return 4326
    match = re.search(r"EPSG(?:/0/|::|:|/)(\d+)$", name, re.IGNORECASE)
    if not match:
        raise FilterError(f"unsupported CRS in the filter: {name}")
    return int(match.group(1))


# -- CQL2 JSON (what the paging cursor carries) -------------------------------------------
def to_json(node: Any) -> Any:
    """CQL2 JSON of an AST, such that pygeofilter's cql2_json parser gives it back."""
    if isinstance(node, ast.Combination):
        op = "and" if isinstance(node, ast.And) else "or"
        return {"op": op, "args": [to_json(item) for item in operands(node)]}
    if isinstance(node, ast.Not):
        return {"op": "not", "args": [to_json(node.sub_node)]}
    if isinstance(node, ast.Include):
        return {"op": "=", "args": [1, 0 if node.not_ else 1]}
    if isinstance(node, ast.Comparison):
        return {"op": node.op.value, "args": [to_json(node.lhs), to_json(node.rhs)]}
    if isinstance(node, ast.Like):
        # pygeofilter's parser takes the pattern as a plain string: CASEI on the pattern
        # (and ILIKE) is written as the lower-cased pattern against CASEI(property).
        pattern, lhs = node.pattern, to_json(node.lhs)
        if isinstance(pattern, ast.Function) and len(pattern.arguments) == 1:
            pattern = str(pattern.arguments[0]).lower()
        if node.nocase:
            lhs, pattern = {"op": "casei", "args": [lhs]}, str(pattern).lower()
        return _negate({"op": "like", "args": [lhs, pattern]}, node.not_)
    if isinstance(node, ast.Between):
        args = [to_json(node.lhs), [to_json(node.low), to_json(node.high)]]
        return _negate({"op": "between", "args": args}, node.not_)
    if isinstance(node, ast.In):
        args = [to_json(node.lhs), [to_json(v) for v in node.sub_nodes]]
        return _negate({"op": "in", "args": args}, node.not_)
    if isinstance(node, ast.IsNull):
        return _negate({"op": "isNull", "args": [to_json(node.lhs)]}, node.not_)
    if isinstance(node, ast.SpatialComparisonPredicate):
        return {"op": f"s_{node.op.name.lower()}", "args": [to_json(node.lhs), to_json(node.rhs)]}
    if isinstance(node, ast.BBox):
        box = _box_geojson([node.minx, node.miny, node.maxx, node.maxy], node.crs)
        return {"op": "s_intersects", "args": [to_json(node.lhs), box]}
    if isinstance(node, ast.TemporalPredicate):
        name = "t_intersects" if node.op.name == "TOVERLAPS" else _TEMPORAL_JSON.get(node.op.name)
        if name is None:
            raise FilterError(f"T_{node.op.name} is not supported")
        return {"op": name, "args": [to_json(node.lhs), to_json(node.rhs)]}
    if isinstance(node, ast.ArrayPredicate):
        op = _ARRAY_JSON[node.op.name]
        return {"op": op, "args": [to_json(node.lhs), to_json(node.rhs)]}
    if isinstance(node, ast.Arithmetic):
        return {"op": node.op.value, "args": [to_json(node.lhs), to_json(node.rhs)]}
    if isinstance(node, ast.Function):
        if node.name.lower() in ("lower", "casei"):
            return {"op": "casei", "args": [to_json(a) for a in node.arguments]}
        if node.name.lower() == "bbox":
            return _box_geojson(list(node.arguments), None)
        raise FilterError(f"the function {node.name}() is not supported")
    if isinstance(node, ast.Attribute):
        return {"property": node.name}
    if isinstance(node, values.Geometry):
        return _plain(node.geometry)
    if isinstance(node, values.Envelope):
        return {"bbox": [node.x1, node.x2, node.y1, node.y2]}
    if isinstance(node, values.Interval):
        return {"interval": [_instant(node.start), _instant(node.end)]}
    if isinstance(node, datetime):
        return {"timestamp": node.isoformat()}
    if isinstance(node, date):
        return {"date": node.isoformat()}
    if isinstance(node, (list, tuple)):
        return [to_json(v) for v in node]
    if isinstance(node, (str, int, float, bool)) or node is None:
        return node
    raise FilterError(f"unsupported expression: {_describe(node)}")


_TEMPORAL_JSON = {
    op: f"t_{op.lower()}"
    for op in ("AFTER", "BEFORE", "MEETS", "METBY", "OVERLAPPEDBY", "BEGINS", "BEGUNBY", "DURING")
}
_TEMPORAL_JSON.update(ENDS="t_ends", ENDEDBY="t_endedby")
_TEMPORAL_JSON.update(TCONTAINS="t_contains", TEQUALS="t_equals", DISJOINT="t_disjoint")
_ARRAY_JSON = {
    "AEQUALS": "a_equals",
    "ACONTAINS": "a_contains",
    "ACONTAINEDBY": "a_containedby",
    "AOVERLAPS": "a_overlaps",
}


def _negate(node: dict, negated: bool) -> dict:
    return {"op": "not", "args": [node]} if negated else node


def _instant(value: Any) -> Any:
    if value is None:
        return ".."
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def _box_geojson(bounds: list[Any], crs: str | None) -> dict:
    numbers = _numbers(bounds, "BBOX")
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    minx, miny, maxx, maxy = numbers
    ring = [[minx, miny], [maxx, miny], [maxx, maxy], [minx, maxy], [minx, miny]]
    geometry: dict[str, Any] = {"type": "Polygon", "coordinates": [ring]}
    if crs:
        geometry["crs"] = {"type": "name", "properties": {"name": crs}}
    return geometry


def _plain(value: Any) -> Any:
    """GeoJSON with tuples turned into lists (JSON round trip)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def from_json(document: Any) -> Any:
    """The AST of a CQL2 JSON document (as written by :func:`to_json`)."""
    from pygeofilter.parsers.cql2_json import parse

    try:
        return parse(document)
    except Exception as exc:  # pygeofilter raises bare exceptions on bad input
        raise FilterError(f"invalid CQL2 JSON: {exc}") from None


# -- CQL2 text in pygeofilter's dialect (a GET filter sent as CQL2 JSON, rewritten) ---------
class NotText(ValueError):
    """The filter has no form pygeofilter 0.4's CQL2 text grammar accepts (arrays, quotes…)."""


_PLAIN_NAME = re.compile(r"[a-zA-Z][a-zA-Z_:0-9.]+")


def to_text(node: Any) -> str:
    """CQL2 text that pygeofilter 0.4 parses back to an equivalent AST, or :class:`NotText`.

    Geometries (and bboxes, written as polygons) carry no CRS unless the JSON gave one, so
    pygeoapi applies ``filter-crs`` to them as it would to the JSON.
    """
    return _text(node, negate=False)


def _text(node: Any, negate: bool) -> str:
    if isinstance(node, ast.Not):
        return _text(node.sub_node, not negate)
    if isinstance(node, ast.Combination):
        is_and = isinstance(node, ast.And) != negate  # De Morgan: NOT (a AND b) = NOT a OR NOT b
        items = [f"({_text(item, negate)})" for item in operands(node)]
        return (" AND " if is_and else " OR ").join(items)
    if isinstance(node, ast.Include):
        return "EXCLUDE" if node.not_ != negate else "INCLUDE"
    if isinstance(node, bool):
        return "EXCLUDE" if node == negate else "INCLUDE"
    no = "NOT " if negate else ""
    if isinstance(node, ast.Comparison):
        text = f"{_value(node.lhs)} {node.op.value} {_value(node.rhs)}"
    elif isinstance(node, ast.Like):
        lhs, pattern = _value(node.lhs), node.pattern
        if isinstance(pattern, ast.Function) and len(pattern.arguments) == 1:
            pattern = str(pattern.arguments[0]).lower()
        if node.nocase:
            lhs, pattern = f"CASEI({lhs})", str(pattern).lower()
        neg = "NOT " if node.not_ != negate else ""
        return f"{lhs} {neg}LIKE {_string(pattern)}"
    elif isinstance(node, ast.Between):
        neg = "NOT " if node.not_ != negate else ""
        return f"{_value(node.lhs)} {neg}BETWEEN {_value(node.low)} AND {_value(node.high)}"
    elif isinstance(node, ast.In):
        neg = "NOT " if node.not_ != negate else ""
        options = ", ".join(_value(v) for v in node.sub_nodes)
        return f"{_value(node.lhs)} {neg}IN ({options})"
    elif isinstance(node, ast.IsNull):
        neg = "NOT " if node.not_ != negate else ""
        return f"{_value(node.lhs)} IS {neg}NULL"
    elif isinstance(node, ast.SpatialComparisonPredicate):
        text = f"S_{node.op.name}({_value(node.lhs)}, {_value(node.rhs)})"
    elif isinstance(node, ast.BBox):
        box = values.Geometry(_box_geojson([node.minx, node.miny, node.maxx, node.maxy], node.crs))
        text = f"S_INTERSECTS({_value(node.lhs)}, {_value(box)})"
    elif isinstance(node, ast.Relate):
        text = f"RELATE({_value(node.lhs)}, {_value(node.rhs)}, {_string(node.pattern)})"
    elif isinstance(node, ast.TemporalPredicate):
        name = "INTERSECTS" if node.op.name == "TOVERLAPS" else node.op.name
        name = {"TCONTAINS": "CONTAINS", "TEQUALS": "EQUALS"}.get(name, name)
        if name in ("DISJOINT", "BEFORE_OR_DURING", "DURING_OR_AFTER"):
            raise NotText(f"T_{name}")
        text = f"{_value(node.lhs)} T_{name} {_value(node.rhs)}"
    else:
        raise NotText(type(node).__name__)
    return f"{no}({text})" if negate else text


def _value(node: Any) -> str:
    if isinstance(node, ast.Attribute):
        return node.name if _PLAIN_NAME.fullmatch(node.name) else f'"{node.name}"'
    if isinstance(node, bool):
        return "TRUE" if node else "FALSE"
    if isinstance(node, (int, float)):
        if isinstance(node, float) and not math.isfinite(node):
            raise NotText("a number that is not finite")
        return repr(node)
    if isinstance(node, str):
        return _string(node)
    if isinstance(node, datetime):
        if node.tzinfo is None:
            raise NotText("a timestamp without time zone")
        return f"TIMESTAMP('{node.isoformat()}')"
    if isinstance(node, date):
        return f"DATE('{node.isoformat()}')"
    if isinstance(node, values.Interval):
        bounds = []
        for value in (node.start, node.end):
            if isinstance(value, datetime) and value.tzinfo is not None:
                bounds.append(f"'{value.isoformat()}'")
            else:  # dates, open ends and durations have no CQL2 text form in pygeofilter 0.4
                raise NotText("an interval bound that is not a timestamp")
        return f"INTERVAL({bounds[0]}, {bounds[1]})"
    if isinstance(node, ast.Arithmetic):
        return f"({_value(node.lhs)} {node.op.value} {_value(node.rhs)})"
    if isinstance(node, ast.Function):
        name = node.name.lower()
        if name in ("lower", "casei") and len(node.arguments) == 1:
            return f"CASEI({_value(node.arguments[0])})"
        if name == "bbox":
            return _value(values.Geometry(_box_geojson(list(node.arguments), None)))
        raise NotText(f"function {node.name}")
    if isinstance(node, values.Envelope):
        return _value(values.Geometry(_box_geojson([node.x1, node.x2, node.y1, node.y2], None)))
    if isinstance(node, values.Geometry):
        geojson = dict(node.geometry)
        try:
            wkt = shapely.to_wkt(shapely.geometry.shape(geojson), rounding_precision=-1)
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            raise NotText(f"geometry: {exc}") from None
        crs = geojson.get("crs")
        return f"SRID={_srid(crs, 0)};{wkt}" if crs else wkt
    raise NotText(type(node).__name__)


def _string(value: Any) -> str:
    text = str(value)
    if "'" in text:  # pygeofilter 0.4's grammar has no escape for quotes
        raise NotText("a text with a quote")
    return f"'{text}'"
