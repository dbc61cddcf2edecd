/* Operations-centre dashboard: everything on this page comes from the service's own OGC API,
   read anonymously (credentials: "omit"), so it shows public data only. OpenLayers (global
   `ol`, served from node_modules) draws the map: communes as the base (no internet basemap),
   active flood warnings, open citizen incidents, street lamps and cameras.

   State for tests and monitors: <body data-state="loading|ready|error" data-map="rendered">;
   every summary number is an element with data-metric (and data-city) and data-value. */
(function () {
  "use strict";

  if (typeof ol === "undefined") {
    // lib/ol.js did not load (npm ci has not run on the server): say it on the screen.
    document.body.dataset.state = "error";
    document.getElementById("status-text").textContent =
      "Thiếu thư viện bản đồ / The map library is missing: run ./dev setup on the server";
    console.error("dashboard: OpenLayers (lib/ol.js) is not loaded");
    return;
  }

  const API = new URL("..", window.location.href); // the service root: the page is /dashboard/
  const params = new URLSearchParams(window.location.search);
  const REFRESH_S = Math.max(15, Number(params.get("refresh")) || 60);
  const CITIES = [
    { id: "ha_long", name: "Hạ Long" },
    { id: "uong_bi", name: "Uông Bí" },
    { id: "cam_pha", name: "Cẩm Phả" },
    { id: "mong_cai", name: "Móng Cái" },
  ];
  const LEVEL_LABEL = { 1: "I", 2: "II", 3: "III" };
  const COLOURS = {
    lvl: { 1: "#ffd92f", 2: "#fc8d62", 3: "#d7301f" },
    incident: { new: "#ff4d6d", assigned: "#c77dff" },
    lamp: { on: "#ffd700", off: "#8a8a8a", fault: "#e31a1c", maintenance: "#ff7f00" },
    camera: { online: "#4fc3f7", offline: "#f06292" },
    city: { ha_long: "#1f4e79", uong_bi: "#2e5e3e", cam_pha: "#5b3f70", mong_cai: "#6b4a25" },
  };
  // Decision 18/2021/QĐ-TTg Article 4 clause 3: the official colour of each risk level (the
  // QGIS styles risk_levels and combined_levels, sdi/hazard/rules.py LEVEL_COLOURS).
  const RISK_COLOURS = { 1: "#9fd7f5", 2: "#fff59d", 3: "#ffa500", 4: "#e53935", 5: "#8e24aa" };
  const HAZARD_LABEL = {
    heavy_rain: "Mưa lớn · heavy rain",
    flash_flood_landslide: "Lũ quét, sạt lở · flash flood, landslide",
    typhoon: "Bão · typhoon",
    storm_surge: "Nước dâng · storm surge",
    river_flood: "Lũ · river flood",
  };
  const RAIN_THRESHOLDS_24H = [100, 200, 400]; // mm in 24 h: the rules' level boundaries
  const LAMP_TILE_ZOOM = 12; // the lamps layer serves vector tiles from zoom 12 (layers/lamps.yml)
  const CAMERA_ALL_ZOOM = 13; // below it only cameras that are offline are drawn
  const MAX_ITEMS = 10000; // the largest page a collection gives (layers/*.yml limits)
  const numberFormat = new Intl.NumberFormat("vi-VN");

  const $ = (selector, root) => (root || document).querySelector(selector);
  const el = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const quote = (value) => "'" + String(value).replace(/'/g, "''") + "'";

  // -- the OGC API --------------------------------------------------------------------------
  let inFlight = 0;
  const waiting = [];
  // At most 6 requests at a time: the summaries are ~30 small count requests.
  async function limited(task) {
    if (inFlight >= 6) await new Promise((resolve) => waiting.push(resolve));
    inFlight += 1;
    try {
      return await task();
    } finally {
      inFlight -= 1;
      if (waiting.length) waiting.shift()();
    }
  }

  function apiUrl(path, query) {
    const url = new URL(path, API);
    for (const [key, value] of Object.entries(query || {})) {
      if (value !== undefined && value !== null) url.searchParams.set(key, value);
    }
    url.searchParams.set("f", "json");
    return url;
  }

  async function getJSON(path, query) {
    const url = apiUrl(path, query);
    return limited(async () => {
      const response = await fetch(url, {
        credentials: "omit", // never a stored login: the wall screen shows public data only
        headers: { Accept: "application/geo+json, application/json" },
        cache: "no-store",
      });
      if (!response.ok) {
        let detail = "";
        try {
          detail = (await response.json()).description || "";
        } catch (ignored) {
          /* not an OGC exception body */
        }
        throw new Error(`${url.pathname}: HTTP ${response.status} ${detail}`.trim());
      }
      return response.json();
    });
  }

  /** numberMatched of a collection's items for a CQL2 text filter (exact below 10,000). */
  async function count(collection, filter) {
    const body = await getJSON(`collections/${collection}/items`, {
      limit: 1,
      skipGeometry: "true",
      "filter-lang": filter ? "cql2-text" : undefined,
      filter: filter || undefined,
    });
    return body.numberMatched;
  }

  // -- the map ------------------------------------------------------------------------------
  const geojson = new ol.format.GeoJSON({
    dataProjection: "EPSG:4326",
    featureProjection: "EPSG:3857",
  });
  const styleCache = {};
  function cached(key, make) {
    if (!(key in styleCache)) styleCache[key] = make();
    return styleCache[key];
  }
  const circle = (colour, radius, stroke) =>
    new ol.style.Style({
      image: new ol.style.Circle({
        radius,
        fill: new ol.style.Fill({ color: colour }),
        stroke: new ol.style.Stroke({ color: stroke || "#000", width: 1 }),
      }),
    });
  const diamond = (colour, radius) =>
    new ol.style.Style({
      image: new ol.style.RegularShape({
        points: 4,
        radius,
        fill: new ol.style.Fill({ color: colour }),
        stroke: new ol.style.Stroke({ color: "#000", width: 1 }),
      }),
    });

  const communeSource = new ol.source.Vector();
  const communeLayer = new ol.layer.Vector({
    source: communeSource,
    style: (feature, resolution) => {
      const city = feature.get("city") || "";
      const showName = resolution < 40; // commune names from about zoom 12
      const key = `${city}|${showName ? feature.get("commune_name") : ""}`;
      return cached(`commune|${key}`, () =>
        new ol.style.Style({
          fill: new ol.style.Fill({ color: (COLOURS.city[city] || "#1b2a3a") + "cc" }),
          stroke: new ol.style.Stroke({ color: "rgba(200, 220, 240, 0.45)", width: 1 }),
          text: showName
            ? new ol.style.Text({
                text: feature.get("commune_name") || "",
                font: "13px 'DejaVu Sans', sans-serif",
                fill: new ol.style.Fill({ color: "#cfd8e3" }),
                stroke: new ol.style.Stroke({ color: "#0b1622", width: 3 }),
              })
            : undefined,
        })
      );
    },
  });

  const cityLabelSource = new ol.source.Vector();
  const cityLabelLayer = new ol.layer.Vector({
    source: cityLabelSource,
    declutter: true,
    minResolution: 40, // the province view; closer in, the communes are named instead
    style: (feature) =>
      new ol.style.Style({
        text: new ol.style.Text({
          text: feature.get("name"),
          font: "bold 22px 'DejaVu Sans', sans-serif",
          offsetY: -34, // above the centre, where a city's warning marker may stand
          fill: new ol.style.Fill({ color: "#ffffff" }),
          stroke: new ol.style.Stroke({ color: "#0b1622", width: 4 }),
        }),
      }),
  });

  const warningSource = new ol.source.Vector();
  const warningLayer = new ol.layer.Vector({
    source: warningSource,
    // The zones, and a marker with the alarm level at their centre: a zone can be a few
    // hectares, too small to see on the province view.
    style: (feature) => {
      const level = feature.get("level");
      const colour = COLOURS.lvl[level] || "#ffffff";
      return cached(`warning|${level}`, () => [
        new ol.style.Style({
          fill: new ol.style.Fill({ color: colour + "b3" }),
          stroke: new ol.style.Stroke({ color: colour, width: 3 }),
        }),
        new ol.style.Style({
          geometry: (f) => new ol.geom.Point(ol.extent.getCenter(f.getGeometry().getExtent())),
          image: new ol.style.RegularShape({
            points: 3,
            radius: 20,
            fill: new ol.style.Fill({ color: colour }),
            stroke: new ol.style.Stroke({ color: "#000000", width: 2 }),
          }),
          text: new ol.style.Text({
            text: LEVEL_LABEL[level] || String(level),
            font: "bold 14px 'DejaVu Sans', sans-serif",
            offsetY: 4,
            fill: new ol.style.Fill({ color: level === 3 ? "#ffffff" : "#000000" }),
          }),
        }),
      ]);
    },
  });

  // Combined disaster risk level per commune, in the official colours, under the warnings.
  const riskSource = new ol.source.Vector();
  const riskLayer = new ol.layer.Vector({
    source: riskSource,
    opacity: 0.55,
    style: (f) => cached(`risk|${f.get("level")}`, () => new ol.style.Style({
      fill: new ol.style.Fill({ color: RISK_COLOURS[f.get("level")] || "#ffffff" }),
      stroke: new ol.style.Stroke({ color: "#000000", width: 1 }),
    })),
  });

  // Lamps and cameras out of service, at every zoom: what an operator must act on.
  const lampFaultSource = new ol.source.Vector();
  const lampFaultLayer = new ol.layer.Vector({
    source: lampFaultSource,
    maxZoom: LAMP_TILE_ZOOM, // from there on the tiles draw every lamp
    style: (f) => cached(`lampx|${f.get("status")}`, () =>
      circle(COLOURS.lamp[f.get("status")] || "#ccc", 3)),
  });

  let lampTileLimits = null; // tile matrix limits of the lamps' tileset: no request outside them
  const lampTiles = new ol.layer.VectorTile({
    minZoom: LAMP_TILE_ZOOM - 0.01,
    declutter: false,
    renderMode: "hybrid",
    source: new ol.source.VectorTile({
      format: new ol.format.MVT(),
      tileGrid: ol.tilegrid.createXYZ({ minZoom: LAMP_TILE_ZOOM, maxZoom: 20, tileSize: 256 }),
      tileUrlFunction: ([z, x, y]) => {
        const limits = lampTileLimits && lampTileLimits[z];
        if (!limits || y < limits[0] || y > limits[1] || x < limits[2] || x > limits[3]) {
          return undefined; // outside the data: the server would answer 404
        }
        return new URL(`collections/lamps/tiles/WebMercatorQuad/${z}/${y}/${x}?f=mvt`, API).href;
      },
    }),
    style: (f) => cached(`lamp|${f.get("status")}`, () =>
      circle(COLOURS.lamp[f.get("status")] || "#ccc", 4)),
  });

  const cameraOfflineSource = new ol.source.Vector();
  const cameraOfflineLayer = new ol.layer.Vector({
    source: cameraOfflineSource,
    maxZoom: CAMERA_ALL_ZOOM,
    style: cached("camera|offline", () => diamond(COLOURS.camera.offline, 5)),
  });
  // All cameras of the visible area only (bbox strategy): there are thousands.
  const cameraSource = new ol.source.Vector({
    format: geojson,
    strategy: ol.loadingstrategy.bbox,
    url: (extent) => {
      const bbox = ol.proj.transformExtent(extent, "EPSG:3857", "EPSG:4326");
      return apiUrl("collections/cameras/items", {
        bbox: bbox.map((v) => v.toFixed(6)).join(","),
        limit: MAX_ITEMS,
      }).href;
    },
  });
  const cameraLayer = new ol.layer.Vector({
    source: cameraSource,
    minZoom: CAMERA_ALL_ZOOM - 0.01,
    style: (f) => cached(`camera|${f.get("status")}`, () =>
      diamond(COLOURS.camera[f.get("status")] || "#ccc", 6)),
  });

  const incidentSource = new ol.source.Vector();
  const incidentLayer = new ol.layer.Vector({
    source: incidentSource,
    style: (f) => cached(`incident|${f.get("status")}`, () =>
      circle(COLOURS.incident[f.get("status")] || "#ffffff", 9, "#ffffff")),
  });

  const map = new ol.Map({
    target: "map",
    // Warnings on top: their marker must never hide under a label or a lamp.
    layers: [
      communeLayer,
      riskLayer,
      lampFaultLayer,
      lampTiles,
      cameraOfflineLayer,
      cameraLayer,
      incidentLayer,
      cityLabelLayer,
      warningLayer,
    ],
    view: new ol.View({ center: ol.proj.fromLonLat([107.3, 21.1]), zoom: 9, maxZoom: 19 }),
    controls: ol.control.defaults.defaults({ attribution: false, rotate: false }),
  });
  window.dashboard = { map }; // for a console on the wall-screen machine, and for tests
  map.on("rendercomplete", () => {
    document.body.dataset.map = "rendered";
  });

  // -- panels ------------------------------------------------------------------------------
  function setMetric(node, value, extra) {
    if (value === null || value === undefined) {
      node.textContent = "—";
      node.dataset.value = "";
      node.dataset.state = "unavailable";
      node.title = "Chưa có dữ liệu / not published";
    } else {
      node.textContent = numberFormat.format(value);
      node.dataset.value = String(value);
      node.dataset.state = "ok";
      node.title = "";
    }
    Object.assign(node.dataset, extra || {});
  }

  function buildCityCards() {
    const footer = $("#cities");
    const template = $("#city-card");
    for (const city of CITIES) {
      const card = template.content.firstElementChild.cloneNode(true);
      card.dataset.city = city.id;
      $(".city-name", card).textContent = city.name;
      footer.appendChild(card);
    }
  }

  function renderWarnings(features, cityOf) {
    const list = $("#warnings-list");
    list.replaceChildren();
    setMetric($("#warnings-total"), features.length);
    if (!features.length) {
      list.appendChild(el("li", "empty", "Không có cảnh báo · No active warning"));
    }
    const sorted = [...features].sort(
      (a, b) => b.get("level") - a.get("level") || b.get("water_level_m") - a.get("water_level_m")
    );
    for (const f of sorted) {
      const level = f.get("level");
      const item = el("li");
      item.dataset.gauge = f.get("gauge_code");
      const badge = el("span", `badge l${level}`, LEVEL_LABEL[level] || String(level));
      item.append(
        badge,
        el("span", "w-name", `${f.get("gauge_name")} — ${f.get("river") || ""}`),
        el(
          "span",
          "w-detail",
          `${cityName(cityOf[f.get("commune_code")])} · mực nước / level ` +
            `${f.get("water_level_m")} m (ngưỡng / threshold ${f.get("threshold_m")} m)`
        ),
        el(
          "span",
          "w-detail",
          `~${numberFormat.format(f.get("residents_estimate") || 0)} dân / residents · ` +
            `${numberFormat.format(f.get("buildings") || 0)} nhà / buildings · ` +
            `${numberFormat.format(f.get("critical_facilities") || 0)} cơ sở thiết yếu / critical`
        )
      );
      list.appendChild(item);
      // the hydrograph of the last 72 hours with the current and next alarm thresholds
      series("gauges", f.get("gauge_code"), "water_level_m", f.get("observed_at")).then(
        ([times, values]) => item.appendChild(chart(times, values,
          [f.get("threshold_m"), f.get("next_threshold_m")].filter((t) => t != null), false)));
    }
  }

  // -- disaster risk levels: the panel, with the readings of the last 72 hours ----------------
  const SVG = "http://www.w3.org/2000/svg";
  function svgNode(tag, attributes) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, v);
    return node;
  }

  // Bars of a series (hourly rain or water level) with the thresholds drawn as lines: for rain,
  // the running 24-hour total (the rules' measure) against 100 / 200 / 400 mm; for a river,
  // the hydrograph against alarm levels I–III.
  function chart(times, values, thresholds, cumulative24) {
    const width = 300, height = 70;
    const svg = svgNode("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart" });
    if (!values.length) return svg;
    const running = cumulative24
      ? values.map((_, i) => values.slice(Math.max(0, i - 23), i + 1).reduce((a, b) => a + b, 0))
      : values;
    const top = Math.max(...running, ...thresholds, 1) * 1.1;
    const barTop = Math.max(...values, 1) * 1.1;
    const step = width / values.length;
    values.forEach((v, i) => {
      const h = ((cumulative24 ? v / barTop : v / top) * height);
      svg.appendChild(svgNode("rect", {
        x: i * step, y: height - h, width: Math.max(step - 0.5, 0.5), height: h, class: "bar",
      }));
    });
    if (cumulative24) {
      const points = running.map((v, i) => `${i * step + step / 2},${height - (v / top) * height}`);
      svg.appendChild(svgNode("polyline", { points: points.join(" "), class: "total" }));
    }
    thresholds.forEach((t, i) => {
      const y = height - (t / top) * height;
      svg.appendChild(svgNode("line", {
        x1: 0, x2: width, y1: y, y2: y, class: "threshold", stroke: RISK_COLOURS[i + 1] || "#fff",
      }));
    });
    return svg;
  }

  // The series of the 72 hours up to `until` (the reading that raised the level).
  async function series(collection, location, parameter, until) {
    const end = new Date(until || Date.now());
    const start = new Date(end.getTime() - 72 * 3600 * 1000);
    try {
      const body = await getJSON(`collections/${collection}/locations/${encodeURIComponent(location)}`, {
        "parameter-name": parameter,
        datetime: `${start.toISOString()}/${end.toISOString()}`,
      });
      const times = body.domain?.axes?.t?.values || [];
      const values = body.ranges?.[parameter]?.values || [];
      return [times, values.map(Number)];
    } catch (error) {
      return [[], []]; // no series: the panel shows the level without a chart
    }
  }

  async function renderRisk(levels, combined) {
    const list = $("#risk-list");
    list.replaceChildren();
    setMetric($("#risk-total"), combined.length);
    if (!levels.length) {
      list.appendChild(el("li", "empty", "Không có cấp độ rủi ro · No active risk level"));
      return;
    }
    const sorted = [...levels].sort((a, b) => b.get("level") - a.get("level"));
    for (const f of sorted.slice(0, 12)) {
      const level = f.get("level");
      const measures = f.get("measures") || {};
      const item = el("li");
      item.dataset.hazard = f.get("hazard");
      item.dataset.area = f.get("area_code");
      const badge = el("span", `badge r${level}`, String(level));
      badge.style.background = RISK_COLOURS[level];
      item.append(
        badge,
        el("span", "w-name", `${HAZARD_LABEL[f.get("hazard")] || f.get("hazard")} — ${f.get("area_name") || f.get("area_code")}`),
        el("span", "w-detail", `${f.get("rule")} (${f.get("article")})`),
        el("span", "w-detail",
          `~${numberFormat.format(f.get("residents_estimate") || 0)} dân / residents · ` +
          `${numberFormat.format(f.get("buildings") || 0)} nhà / buildings`)
      );
      list.appendChild(item);
      if (measures.gauge_code) {
        const [times, values] = await series(
          "rain_gauges", measures.gauge_code, "rain_mm", f.get("observed_at"));
        item.appendChild(chart(times, values, RAIN_THRESHOLDS_24H, true));
      } else if (f.get("hazard") === "river_flood") {
        const [times, values] = await series(
          "gauges", f.get("area_code"), "water_level_m", f.get("observed_at"));
        const thresholds = [measures.water_level_m - measures.above_alarm3_m];
        item.appendChild(chart(times, values, thresholds, false));
      }
    }
  }

  // Labels of the categories of etl/codes/incident_categories.yml (a new category shows its code).
  const CATEGORY_LABEL = {
    flooding: "Ngập úng · flooding",
    fallen_tree: "Cây đổ · fallen tree",
    broken_street_lamp: "Đèn đường hỏng · broken lamp",
    landslide: "Sạt lở đất · landslide",
    blocked_drain: "Tắc cống · blocked drain",
    road_damage: "Hư hỏng mặt đường · road damage",
    fire: "Cháy · fire",
    waste: "Rác thải · waste",
    water_supply: "Sự cố cấp nước · water supply",
    traffic: "Giao thông · traffic",
    other: "Khác · other",
  };
  const DAY_MS = 86400000;

  function renderIncidents(features, available) {
    const list = $("#incidents-list");
    list.replaceChildren();
    setMetric($("#incidents-total"), available ? features.matched ?? features.length : null);
    if (!available) {
      list.appendChild(
        el("li", "empty", "Chưa công bố lớp sự cố · The incidents collection is not published")
      );
      return;
    }
    if (!features.length) {
      list.appendChild(el("li", "empty", "Không có sự cố mở · No open incident"));
      return;
    }
    // How long they have been open: what the centre is judged on.
    const now = Date.now();
    const ages = { lt_1d: 0, "1_7d": 0, gt_7d: 0 };
    const byCategory = new Map();
    for (const f of features) {
      const category = f.get("category") || "other";
      byCategory.set(category, (byCategory.get(category) || 0) + 1);
      const age = now - Date.parse(f.get("reported_at"));
      ages[age < DAY_MS ? "lt_1d" : age <= 7 * DAY_MS ? "1_7d" : "gt_7d"] += 1;
    }
    const bands = el("li", "ages");
    bands.dataset.ages = JSON.stringify(ages);
    bands.textContent =
      `< 1 ngày/day: ${ages.lt_1d} · 1–7 ngày/days: ${ages["1_7d"]} · ` +
      `> 7 ngày/days: ${ages.gt_7d}`;
    list.appendChild(bands);
    for (const [category, n] of [...byCategory].sort((a, b) => b[1] - a[1])) {
      const item = el("li");
      item.dataset.category = category;
      item.append(
        el("span", "", CATEGORY_LABEL[category] || category.replace(/_/g, " ")),
        el("span", "n", numberFormat.format(n))
      );
      list.appendChild(item);
    }
  }

  function cityName(id) {
    const city = CITIES.find((c) => c.id === id);
    return city ? city.name : "—";
  }

  // -- loading -----------------------------------------------------------------------------
  let communesByCity = null; // city id → commune codes
  let cityOf = {}; // commune code → city id
  let fitted = false;

  async function loadCommunes() {
    const body = await getJSON("collections/communes/items", { limit: MAX_ITEMS });
    const features = geojson.readFeatures(body);
    communeSource.clear();
    communeSource.addFeatures(features);
    communesByCity = {};
    cityOf = {};
    for (const f of features) {
      const city = f.get("city");
      cityOf[f.get("commune_code")] = city;
      if (city) (communesByCity[city] = communesByCity[city] || []).push(f.get("commune_code"));
    }
    cityLabelSource.clear();
    const all = ol.extent.createEmpty();
    for (const city of CITIES) {
      const extent = ol.extent.createEmpty();
      for (const f of features) {
        if (f.get("city") === city.id) ol.extent.extend(extent, f.getGeometry().getExtent());
      }
      if (ol.extent.isEmpty(extent)) continue;
      ol.extent.extend(all, extent);
      cityLabelSource.addFeature(
        new ol.Feature({ geometry: new ol.geom.Point(ol.extent.getCenter(extent)), name: city.name })
      );
    }
    if (!fitted && !ol.extent.isEmpty(all)) {
      map.updateSize(); // the grid layout may have settled after the map was created
      map.getView().fit(all, { padding: [30, 30, 30, 30] });
      fitted = true;
    }
  }

  async function loadLampTileLimits() {
    const body = await getJSON("collections/lamps/tiles/WebMercatorQuad/metadata");
    const limits = {};
    for (const l of body.tileMatrixSetLimits || []) {
      limits[Number(l.tileMatrix)] = [l.minTileRow, l.maxTileRow, l.minTileCol, l.maxTileCol];
    }
    lampTileLimits = limits;
    lampTiles.getSource().refresh();
  }

  async function loadFeatures(collection, filter, source) {
    const body = await getJSON(`collections/${collection}/items`, {
      limit: MAX_ITEMS,
      "filter-lang": filter ? "cql2-text" : undefined,
      filter,
    });
    const features = geojson.readFeatures(body);
    features.matched = body.numberMatched; // more than one page is possible, if unlikely
    if (source) {
      source.clear();
      source.addFeatures(features);
    }
    return features;
  }

  // The city cards: metric → [collection, CQL2 condition, field of ops_commune_summary].
  const CARD_METRICS = {
    lamps_total: ["lamps", null, "lamps"],
    lamps_fault: ["lamps", "status = 'fault'", "lamps_fault"],
    lamps_off: ["lamps", "status = 'off'", "lamps_off"],
    lamps_maintenance: ["lamps", "status = 'maintenance'", "lamps_maintenance"],
    cameras_total: ["cameras", null, "cameras"],
    cameras_offline: ["cameras", "status = 'offline'", "cameras_offline"],
    incidents_open: ["incidents", "status <> 'resolved'", "incidents_open"],
  };
  const SUMMARY = "ops_commune_summary";

  /** The city cards from the per-commune operations summary: one request for all numbers. */
  async function citySummariesFromOps(published) {
    const body = await getJSON(`collections/${SUMMARY}/items`, {
      limit: MAX_ITEMS,
      skipGeometry: "true",
    });
    const totals = {};
    let refreshed = "";
    for (const { properties: p } of body.features || []) {
      const city = cityOf[p.commune_code] || p.city;
      if (!city) continue;
      totals[city] = totals[city] || {};
      for (const [name, [, , field]] of Object.entries(CARD_METRICS)) {
        totals[city][name] = (totals[city][name] || 0) + (Number(p[field]) || 0);
      }
      if (p.refreshed_at && p.refreshed_at > refreshed) refreshed = p.refreshed_at;
    }
    for (const city of CITIES) {
      const card = $(`.city[data-city="${city.id}"]`);
      for (const [name, [collection]] of Object.entries(CARD_METRICS)) {
        const node = $(`[data-metric="${name}"]`, card);
        node.dataset.city = city.id;
        // Incidents only when their collection is published (else the summary's 0 would lie).
        setMetric(node, published.has(collection) ? (totals[city.id] || {})[name] || 0 : null);
      }
    }
    return refreshed;
  }

  /** The city cards from the collections themselves: numberMatched of one filter each. */
  async function citySummariesFromCounts(published) {
    const jobs = [];
    for (const city of CITIES) {
      const card = $(`.city[data-city="${city.id}"]`);
      const codes = communesByCity[city.id] || [];
      const inCity = `commune_code IN (${codes.map(quote).join(",")})`;
      for (const [name, [collection, condition]] of Object.entries(CARD_METRICS)) {
        const node = $(`[data-metric="${name}"]`, card);
        node.dataset.city = city.id;
        if (!published.has(collection)) {
          setMetric(node, null);
        } else if (!codes.length) {
          setMetric(node, 0); // no commune of that city in the communes layer
        } else {
          const filter = condition ? `${inCity} AND ${condition}` : inCity;
          jobs.push(count(collection, filter).then((n) => setMetric(node, n)));
        }
      }
    }
    await Promise.all(jobs);
  }

  async function citySummaries(published) {
    if (published.has(SUMMARY)) {
      document.body.dataset.summary = SUMMARY;
      return citySummariesFromOps(published);
    }
    document.body.dataset.summary = "counts";
    await citySummariesFromCounts(published);
    return "";
  }

  function warningsPerCity(warnings) {
    for (const city of CITIES) {
      const mine = warnings.filter((f) => cityOf[f.get("commune_code")] === city.id);
      const node = $(`.city[data-city="${city.id}"] [data-metric="warnings"]`);
      node.dataset.city = city.id;
      const top = Math.max(0, ...mine.map((f) => f.get("level")));
      setMetric(node, mine.length, { level: String(top) });
      if (top) node.textContent += ` (${LEVEL_LABEL[top]})`;
    }
  }

  async function refresh() {
    try {
      const [landing, collections] = await Promise.all([
        communesByCity ? null : getJSON(""),
        getJSON("collections"),
      ]);
      if (landing) $("#service").textContent = landing.title || "";
      const published = new Set((collections.collections || []).map((c) => c.id));
      if (!communesByCity) {
        await Promise.all([
          loadCommunes(),
          published.has("lamps") ? loadLampTileLimits() : null,
        ]);
      }
      const [risk, combined] = await Promise.all([
        published.has("risk_levels") ? loadFeatures("risk_levels", null, null) : [],
        published.has("combined_levels")
          ? loadFeatures("combined_levels", null, riskSource)
          : [],
      ]);
      const [warnings, incidents, , , summaryTime] = await Promise.all([
        published.has("warnings") ? loadFeatures("warnings", null, warningSource) : [],
        // The incidents collection may not be published yet: then the panel says so.
        published.has("incidents")
          ? loadFeatures("incidents", "status <> 'resolved'", incidentSource)
          : [],
        published.has("lamps")
          ? loadFeatures("lamps", "status <> 'on'", lampFaultSource)
          : null,
        published.has("cameras")
          ? loadFeatures("cameras", "status = 'offline'", cameraOfflineSource)
          : null,
        citySummaries(published),
      ]);
      if (published.has("cameras")) cameraSource.refresh();
      renderWarnings(warnings, cityOf);
      warningsPerCity(warnings);
      await renderRisk(risk, combined);
      renderIncidents(incidents, published.has("incidents"));
      const now = new Date();
      document.body.dataset.updated = now.toISOString();
      $("#status-text").textContent =
        `Cập nhật / Updated ${now.toLocaleTimeString("vi-VN")} · ` +
        `làm mới mỗi / refresh every ${REFRESH_S} s` +
        (summaryTime
          ? ` · tổng hợp / summary ${new Date(summaryTime).toLocaleTimeString("vi-VN")}`
          : "");
      document.body.dataset.state = "ready";
    } catch (error) {
      // Keep the last numbers on screen; say clearly that they are not current.
      document.body.dataset.state = "error";
      $("#status-text").textContent = `Lỗi tải dữ liệu / Data error: ${error.message}`;
      console.error("dashboard refresh failed:", error);
    } finally {
      window.setTimeout(refresh, REFRESH_S * 1000);
    }
  }

  function tick() {
    $("#clock").textContent = new Date().toLocaleTimeString("vi-VN", { hour: "2-digit", minute: "2-digit" });
  }

  function fullscreen() {
    if (document.fullscreenElement) document.exitFullscreen();
    else document.documentElement.requestFullscreen().catch(() => {});
  }

  buildCityCards();
  tick();
  window.setInterval(tick, 10000);
  $("#fullscreen").addEventListener("click", fullscreen);
  document.addEventListener("keydown", (event) => {
    if (event.key === "f" || event.key === "F") fullscreen();
  });
  refresh();
})();
