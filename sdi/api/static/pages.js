/* The behaviour of the service's HTML pages (sdi/api/templates), in one file served from
   /assets/sdi/pages.js: the pages' Content-Security-Policy allows no inline script.

   Each part is switched on by markup:
   - <div data-sdi-map …>: a Leaflet map (Leaflet from npm, /assets/lib/leaflet.js) on the
     service's own communes (or the intranet tile server named by SDI_BASEMAP_URL), with the
     collection's extent (data-bbox) or the features of a JSON block (data-features);
   - <select id="limits">: the page size of an items or jobs list;
   - <pre data-json="id">: a JSON block pretty-printed (jobs);
   - <section data-sdi-collection …>: a collection's lineage (from the catalogue), its
     queryables and example CQL2 filters checked against the service;
   - <div id="swagger-ui" data-url>: Swagger UI.
   When a map has drawn, <body data-map="drawn">; on an error, data-map="failed". */
(function () {
  "use strict";

  var lang = document.documentElement.lang === "en" ? "en" : "vi";
  var T = {
    vi: {
      lineage: "Nguồn gốc dữ liệu",
      department: "Đơn vị cung cấp",
      lastDelivery: "Lần cập nhật gần nhất",
      run: "Lượt nạp",
      counts: "Số bản ghi",
      read: "đọc", added: "thêm", updated: "cập nhật", retired: "loại bỏ", rejected: "từ chối",
      files: "Tệp nguồn",
      noLineage: "Chưa có thông tin nguồn gốc.",
      property: "Thuộc tính", label: "Tên", type: "Kiểu", values: "Giá trị",
      examples: "Ví dụ bộ lọc CQL2",
      matches: "kết quả",
      communes: "Ranh giới xã, phường",
    },
    en: {
      lineage: "Lineage",
      department: "Department",
      lastDelivery: "Last delivery",
      run: "Run",
      counts: "Counts",
      read: "read", added: "added", updated: "updated", retired: "retired", rejected: "rejected",
      files: "Source files",
      noLineage: "No lineage yet.",
      property: "Property", label: "Label", type: "Type", values: "Values",
      examples: "Example CQL2 filters",
      matches: "matches",
      communes: "Commune boundaries",
    },
  }[lang];

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }

  function getJSON(url) {
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) { throw new Error(url + ": " + r.status); }
        return r.json();
      });
  }

  function withParams(url, params) {
    var u = new URL(url, document.baseURI);
    Object.keys(params).forEach(function (k) { u.searchParams.set(k, params[k]); });
    u.searchParams.set("lang", lang);
    return u.toString();
  }

  // -- maps --------------------------------------------------------------------------------
  function jsonBlock(id) {
    var node = id && document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function baseMap(map, div) {
    var tiles = div.dataset.basemapUrl;
    if (tiles) {
      L.tileLayer(tiles, { maxZoom: 20, attribution: div.dataset.basemapAttribution || "" })
        .addTo(map);
      return Promise.resolve();
    }
    // The communes of this service as the base map: no tile server needed.
    return getJSON(div.dataset.communesUrl).then(function (communes) {
      L.geoJSON(communes, {
        interactive: false,
        style: { color: "#6c757d", weight: 1, fillColor: "#e9ecef", fillOpacity: 0.6 },
      }).addTo(map);
      map.attributionControl.addAttribution(T.communes);
    });
  }

  function drawMap(div) {
    var map = L.map(div, { preferCanvas: true });
    var drawn = [];
    var bbox = div.dataset.bbox ? JSON.parse(div.dataset.bbox) : null;
    var features = jsonBlock(div.dataset.features);
    var layer = null;
    if (features && features.length) {
      layer = L.geoJSON({ type: "FeatureCollection", features: features }, {
        style: { color: "#0d6efd", weight: 2, fillOpacity: 0.3 },
        pointToLayer: function (f, latlng) {
          return L.circleMarker(latlng, { radius: 6, color: "#0d6efd", fillOpacity: 0.7 });
        },
        onEachFeature: function (f, l) {
          if (div.dataset.itemsPath && f.id !== undefined) {
            var a = el("a", { href: div.dataset.itemsPath + "/" + encodeURIComponent(f.id) },
              [String(div.dataset.titleField ? f.properties[div.dataset.titleField] : f.id)]);
            l.bindPopup(a);
          }
        },
      });
    }
    var extent = null;
    if (bbox) {
      extent = L.rectangle([[bbox[1], bbox[0]], [bbox[3], bbox[2]]],
        { color: "#dc3545", weight: 2, fill: false, dashArray: "6 4" });
    }
    drawn.push(baseMap(map, div).then(function () {
      if (extent) { extent.addTo(map); }
      if (layer) { layer.addTo(map); }
    }));
    var bounds = layer && layer.getBounds().isValid() ? layer.getBounds()
      : extent ? extent.getBounds() : null;
    if (bounds) { map.fitBounds(bounds, { maxZoom: 16, padding: [10, 10] }); }
    else { map.setView([21.0, 107.3], 9); }
    Promise.all(drawn).then(function () {
      document.body.dataset.map = "drawn";
    }, function (err) {
      document.body.dataset.map = "failed";
      console.warn("map: " + err);
    });
  }

  // -- lists -------------------------------------------------------------------------------
  function limits() {
    var select = document.getElementById("limits");
    if (!select) { return; }
    var params = new URL(document.location).searchParams;
    var limit = params.get("limit") || select.getElementsByTagName("option")[0].value;
    if (![].some.call(select.options, function (o) { return o.value === limit; })) {
      select.appendChild(el("option", { value: limit }, [limit]));
    }
    select.value = limit;
    select.addEventListener("change", function (ev) {
      params.set("limit", ev.target.value);
      params.delete("offset");
      document.location.search = params.toString();
    });
  }

  function prettyJSON() {
    document.querySelectorAll("pre[data-json]").forEach(function (pre) {
      var value = jsonBlock(pre.dataset.json);
      if (typeof value === "string") {
        try { value = JSON.parse(value); } catch (e) { /* shown as it is */ }
      }
      pre.textContent = JSON.stringify(value, undefined, 2);
    });
  }

  // -- a collection's page: lineage, queryables, CQL2 examples --------------------------------
  function lineage(section) {
    var box = section.querySelector("[data-lineage]");
    if (!box) { return Promise.resolve(); }
    return getJSON(withParams(section.dataset.recordUrl, { f: "json" })).then(function (rec) {
      var p = rec.properties || {};
      var l = p.lineage || (rec.lineage) || null;
      var dl = el("dl", { "class": "row" });
      function row(k, v) {
        dl.appendChild(el("dt", { "class": "col-sm-3" }, [k]));
        dl.appendChild(el("dd", { "class": "col-sm-9" }, [v]));
      }
      if (p.department || (p.contacts && p.contacts.length)) {
        row(T.department, p.department || p.contacts[0].organization || p.contacts[0].name || "");
      }
      if (l && l.finished) {
        row(T.lastDelivery, new Date(l.finished).toLocaleString(lang === "vi" ? "vi-VN" : "en-GB"));
        row(T.run, l.job + " #" + l.run_id);
        if (l.counts) {
          row(T.counts, ["read", "added", "updated", "retired", "rejected"].map(function (k) {
            return T[k] + " " + (l.counts[k] === undefined ? "—" : l.counts[k]);
          }).join(", "));
        } else if (l.statement) {
          row(T.counts, l.statement);
        }
        if (l.sources && l.sources.length) {
          row(T.files, l.sources.map(function (s) { return s.file; }).join(", "));
        }
      } else {
        row(T.lineage, T.noLineage);
      }
      box.appendChild(dl);
      box.dataset.state = "ready";
    }, function () {
      box.appendChild(el("p", {}, [T.noLineage]));
      box.dataset.state = "none";
    });
  }

  // The values of the text properties that take few values in the sample (codes, classes).
  function valueLists(props, features) {
    var lists = {};
    Object.keys(props).forEach(function (name) {
      if (props[name].type !== "string" || props[name].format) { return; }
      var seen = {};
      features.forEach(function (f) {
        var v = f.properties[name];
        if (typeof v === "string" && v !== "") { seen[v] = true; }
      });
      var values = Object.keys(seen).sort();
      if (values.length > 1 && values.length <= 12 && values.length < features.length / 2) {
        lists[name] = values;
      }
    });
    return lists;
  }

  function quote(v) { return "'" + String(v).replace(/'/g, "''") + "'"; }

  // Candidate filters from the queryables and the values of the first item; each is tried
  // on the service, and only those that answer 200 with features are shown.
  function candidates(props, sample, lists) {
    var out = [];
    Object.keys(props).forEach(function (name) {
      var q = props[name];
      if (lists[name]) {
        out.push(name + " IN (" + lists[name].slice(0, 2).map(quote).join(", ") + ")");
      }
      var v = sample ? sample[name] : undefined;
      if (Array.isArray(q.enum) && q.enum.length) {
        out.push(name + " = " + quote(q.enum[0]));
        if (q.enum.length > 1) {
          out.push(name + " IN (" + q.enum.slice(0, 2).map(quote).join(", ") + ")");
        }
      } else if (v === undefined || v === null || typeof v === "object") {
        return;
      } else if (q.type === "string" && q.format === "date-time") {
        out.push(name + " >= TIMESTAMP(" + quote(v) + ")");
      } else if (q.type === "string" && q.format === "date") {
        out.push(name + " >= DATE(" + quote(v) + ")");
      } else if (q.type === "string") {
        out.push(name + " = " + quote(v));
        if (String(v).length > 3) { out.push(name + " LIKE " + quote(String(v).slice(0, 3) + "%")); }
      } else if (q.type === "integer" || q.type === "number") {
        out.push(name + " >= " + v);
      }
    });
    return out.slice(0, 8);
  }

  function queryables(section) {
    var table = section.querySelector("[data-queryables]");
    var list = section.querySelector("[data-examples]");
    if (!table) { return Promise.resolve(); }
    var items = section.dataset.itemsUrl;
    return Promise.all([
      getJSON(withParams(section.dataset.queryablesUrl, { f: "json" })),
      // a sample of the features, for the value lists and the example filters
      getJSON(withParams(items, { f: "json", limit: 500, skipGeometry: "true" }))
        .catch(function () { return null; }),
      getJSON(section.dataset.labelsUrl).catch(function () { return {}; }),
    ]).then(function (answers) {
      var props = answers[0].properties || {};
      var features = (answers[1] && answers[1].features) || [];
      var labels = answers[2] || {};
      var sample = features.length ? features[0].properties : null;
      var lists = valueLists(props, features);
      var tbody = table.querySelector("tbody");
      Object.keys(props).forEach(function (name) {
        var q = props[name];
        if (q.format && q.format.indexOf("geometry") === 0) { return; }
        var label = (labels[name] && labels[name][lang]) || q.title || "";
        var values = Array.isArray(q.enum) ? q.enum.join(", ")
          : lists[name] ? lists[name].join(", ") : "";
        tbody.appendChild(el("tr", { "data-property": name }, [
          el("td", {}, [el("code", {}, [name])]),
          el("td", {}, [label]),
          el("td", {}, [String(q.type || q.format || "")]),
          el("td", {}, [values]),
        ]));
      });
      table.dataset.state = "ready";
      if (!list) { return; }
      var tries = candidates(props, sample, lists).map(function (cql) {
        var url = withParams(items, { f: "json", limit: 1, filter: cql, "filter-lang": "cql2-text" });
        return fetch(url, { headers: { Accept: "application/geo+json" } }).then(function (r) {
          return r.ok ? r.json() : null;
        }).then(function (body) {
          if (!body || !body.features || !body.features.length) { return null; }
          return { cql: cql, matched: body.numberMatched };
        }, function () { return null; });
      });
      return Promise.all(tries).then(function (results) {
        results.filter(Boolean).forEach(function (r) {
          var href = withParams(items, { f: "html", filter: r.cql });
          var text = r.matched === undefined ? "" : " (" + r.matched + " " + T.matches + ")";
          list.appendChild(el("li", { "data-cql": r.cql }, [
            el("a", { href: href }, [el("code", {}, [r.cql])]), text,
          ]));
        });
        list.dataset.state = "ready";
      });
    });
  }

  // -- EDR: a CoverageJSON time series as a table (newest first) ----------------------------
  function coverageTables() {
    document.querySelectorAll("[data-coverage]").forEach(function (box) {
      var data = jsonBlock(box.dataset.coverage);
      if (!data) { return; }
      var coverages = data.type === "CoverageCollection" ? data.coverages || [] : [data];
      var names = Object.keys(data.parameters || {});
      coverages.forEach(function (cov) {
        var axes = (cov.domain && cov.domain.axes) || {};
        var times = (axes.t && axes.t.values) || [];
        var where = axes.x && axes.y ? " (" + axes.x.values[0] + ", " + axes.y.values[0] + ")" : "";
        var table = el("table", { "class": "table table-sm table-striped", "data-series": "" }, [
          el("caption", {}, [names.join(", ") + where]),
          el("thead", {}, [el("tr", {}, [el("th", {}, ["t"])].concat(names.map(function (n) {
            var p = data.parameters[n];
            var unit = p.unit && p.unit.symbol ? " (" + (p.unit.symbol.value || p.unit.symbol) + ")" : "";
            return el("th", {}, [n + unit]);
          })))]),
        ]);
        var body = el("tbody");
        for (var i = times.length - 1; i >= 0 && i >= times.length - 200; i--) {
          body.appendChild(el("tr", {}, [el("td", {}, [String(times[i])])].concat(names.map(function (n) {
            var r = cov.ranges && cov.ranges[n];
            return el("td", {}, [r && r.values[i] !== null ? String(r.values[i]) : ""]);
          }))));
        }
        table.appendChild(body);
        box.appendChild(table);
      });
    });
  }

  // -- the queryables and items pages: each property's label ----------------------------------------------
  function propertyLabels() {
    document.querySelectorAll("[data-labels-url]:not([data-sdi-collection])").forEach(function (list) {
      getJSON(list.dataset.labelsUrl).then(function (labels) {
        list.querySelectorAll("[data-property] .sdi-label").forEach(function (span) {
          var label = labels[span.closest("[data-property]").dataset.property];
          if (label && label[lang]) { span.textContent = label[lang]; }
        });
        list.dataset.state = "ready";
      }, function (err) { console.warn("labels: " + err); });
    });
  }

  // -- Swagger UI ----------------------------------------------------------------------------
  function swagger() {
    var div = document.getElementById("swagger-ui");
    if (!div || typeof SwaggerUIBundle === "undefined") { return; }
    window.ui = SwaggerUIBundle({
      url: div.dataset.url,
      dom_id: "#swagger-ui",
      deepLinking: true,
      // BaseLayout: no top bar. The standalone layout's bar held only a URL box (hidden) and
      // Swagger's logo, an SVG with a <style> element the CSP ('style-src self') refuses
      presets: [SwaggerUIBundle.presets.apis],
      plugins: [SwaggerUIBundle.plugins.DownloadUrl],
      layout: "BaseLayout",
      validatorUrl: null, // the default sends the document to validator.swagger.io
      onComplete: function () { document.body.dataset.state = "ready"; },
    });
  }

  function start() {
    limits();
    prettyJSON();
    coverageTables();
    propertyLabels();
    swagger();
    if (typeof L !== "undefined") {
      document.querySelectorAll("[data-sdi-map]").forEach(drawMap);
    }
    var section = document.querySelector("[data-sdi-collection]");
    var parts = section ? [lineage(section), queryables(section)] : [];
    Promise.all(parts).then(function () {
      if (section) { section.dataset.state = "ready"; }
    }, function (err) {
      if (section) { section.dataset.state = "failed"; }
      console.warn("collection page: " + err);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
