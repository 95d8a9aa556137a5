// kubecdn status page. Every value reaches the DOM through textContent or
// setAttribute, never as HTML.
"use strict";
(function () {
  var body = document.body;
  var interval = parseInt(body.dataset.interval, 10) || 1000;
  var history = {};      // region -> recent req/s, for the sparklines
  var totalHistory = [];
  var HISTORY = 60;
  var lastUpdate = 0, updates = 0, transport = "none", polling = false;
  var SVG = "http://www.w3.org/2000/svg";

  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); }

  function fmtRate(v) {
    if (v === null || v === undefined) return "–";
    if (v >= 1e4) return (v / 1e3).toFixed(1) + "k";
    return v >= 100 ? v.toFixed(0) : v.toFixed(1);
  }
  function fmtPct(v) { return v === null || v === undefined ? "–" : (v * 100).toFixed(1) + "%"; }
  function fmtBytes(n) {
    if (n === null || n === undefined) return "–";
    if (n < 1024) return Math.round(n) + " B";
    var u = ["KiB", "MiB", "GiB", "TiB", "PiB"], i = -1;
    do { n /= 1024; i++; } while (n >= 1000 && i < u.length - 1);
    return (n >= 100 ? n.toFixed(0) : n.toFixed(1)) + " " + u[i];
  }
  function known(v) { return v !== null && v !== undefined; }
  // The first update has no interval yet: until it has, the average since
  // the edges started, marked "~".
  function rate(now, sinceStart) { return !known(now) && known(sinceStart) ? "~" + fmtRate(sinceStart) : fmtRate(now); }
  function fmtCount(n) { return n === null || n === undefined ? "–" : Math.round(n).toLocaleString("en-US"); }

  var STATE_COLOR = { open: "c-green", down: "c-red", closed: "c-grey" };
  var HEALTH_COLOR = { up: "c-green", degraded: "c-amber", down: "c-red", unreachable: "c-red", unknown: "c-grey" };

  function push(arr, v) { arr.push(v === null || v === undefined ? null : v); while (arr.length > HISTORY) arr.shift(); }

  function spark(svg, data) {
    clear(svg);
    var pts = [], max = 0, n = data.length;
    data.forEach(function (v) { if (v !== null && v > max) max = v; });
    if (n < 2) return;
    var w = 120, h = 28, span = Math.max(n, 20);
    data.forEach(function (v, i) {
      var x = (w * (span - n + i)) / (span - 1);
      var y = h - 2 - (max > 0 && v !== null ? (v / max) * (h - 4) : 0);
      pts.push(x.toFixed(1) + "," + y.toFixed(1));
    });
    var area = document.createElementNS(SVG, "polygon");
    area.setAttribute("points", pts.join(" ") + " " + pts[pts.length - 1].split(",")[0] + "," + h + " " + pts[0].split(",")[0] + "," + h);
    var line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", pts.join(" "));
    svg.appendChild(area);
    svg.appendChild(line);
  }

  function stat(key, value, sub, field) {
    var d = el("div", "stat");
    d.appendChild(el("div", "k", key));
    var v = el("div", "v", value);
    if (field) v.setAttribute("data-field", field);
    d.appendChild(v);
    d.appendChild(el("div", "s", sub || "\u00a0"));
    return d;
  }

  function card(r) {
    var health = r.health || (r.state === "closed" ? "" : "unknown");
    var c = el("article", "card s-" + r.state + (health ? " h-" + health : ""));
    c.setAttribute("data-region", r.region);
    var head = el("div", "card-head");
    head.appendChild(el("span", "name", r.region));
    head.appendChild(el("span", "pill " + (STATE_COLOR[r.state] || "c-grey"), r.state));
    if (health) head.appendChild(el("span", "pill " + (HEALTH_COLOR[health] || "c-grey"), health));
    c.appendChild(head);

    var stats = el("div", "stats");
    var hit = r.hitRatio !== null && r.hitRatio !== undefined ? r.hitRatio : r.hitRatioTotal;
    var hitSub = r.hitRatio !== null && r.hitRatio !== undefined ? "last " + interval / 1000 + "s" : (hit !== null && hit !== undefined ? "since start" : "");
    stats.appendChild(stat("req/s", rate(r.reqPerSec, r.reqPerSecSinceStart), r.requests ? fmtCount(r.requests) + " total" : "", "reqPerSec"));
    stats.appendChild(stat("hit ratio", fmtPct(hit), hitSub, "hitRatio"));
    stats.appendChild(stat("served", fmtBytes(r.state === "open" ? r.bytesServed : null), r.bytesPerSec !== null && r.bytesPerSec !== undefined ? fmtBytes(r.bytesPerSec) + "/s" : "", "bytesServed"));
    stats.appendChild(stat("cache fill", fmtBytes(r.state === "open" ? r.fillBytes : null), r.state === "open" ? fmtBytes(r.memoryBytes) + " mem" : "", "fillBytes"));
    stats.appendChild(stat("edges", r.edges ? r.edgesUp + "/" + r.edges : "–", r.edges ? "answering" : "", "edges"));
    var d = r.demand;
    stats.appendChild(stat("demand", d ? fmtRate(d.rate10s) + " q/s" : "–", d ? fmtCount(d.total) + " queries" : "", "demand"));
    c.appendChild(stats);

    var sv = document.createElementNS(SVG, "svg");
    sv.setAttribute("class", "spark");
    sv.setAttribute("viewBox", "0 0 120 28");
    sv.setAttribute("preserveAspectRatio", "none");
    spark(sv, history[r.region] || []);
    c.appendChild(sv);

    var foot = el("div", "card-foot");
    var dnsText = r.dnsHealthy === null || r.dnsHealthy === undefined ? "dns: –" :
      "dns: " + (r.serving ? "serving" : "not serving") + ", " + (r.dnsHealthy ? "healthy" : "unhealthy");
    foot.appendChild(el("span", "", dnsText));
    var pub = (r.edgeStatus || []).map(function (e) { return e.public || e.admin; }).join(" ");
    foot.appendChild(el("span", "", pub));
    c.appendChild(foot);
    var a = r.autoscale;
    if (a) {
      // The autoscaler's phase, since when and why (kubecdn up).
      var at = "autoscale: " + a.phase + (a.since && a.since.indexOf("0001-") !== 0 ? " since " + new Date(a.since).toLocaleTimeString() : "") +
        (a.pin ? ", pinned " + a.pin : "") + (a.demand ? "; " + a.demand : "") + (a.waiting ? "; " + a.waiting : "") + (a.frozen ? "; frozen: " + a.frozen : "") +
        (a.decision ? "; last: " + a.decision + (a.result ? " [" + a.result + "]" : "") : "");
      var af = el("div", "card-foot", at);
      af.setAttribute("data-field", "autoscale");
      c.appendChild(af);
    }

    if (r.errors && r.errors.length) {
      var ul = el("ul", "card-errors");
      r.errors.slice(0, 3).forEach(function (e) { ul.appendChild(el("li", "", e)); });
      c.appendChild(ul);
    }
    return c;
  }

  function row(cells) {
    var tr = el("tr");
    cells.forEach(function (c) {
      var td = el("td", c.cls || "", c.text);
      if (c.color) { td.textContent = ""; td.appendChild(el("span", "pill " + c.color, c.text)); }
      tr.appendChild(td);
    });
    return tr;
  }

  function render(s, via) {
    updates++;
    lastUpdate = Date.now();
    transport = via;
    body.dataset.updates = String(updates);
    body.dataset.transport = via;

    if (s.title) { $("title").textContent = s.title; document.title = s.title + " · status"; }
    var dnsInfo = (s.dns || []).filter(function (d) { return !d.error && d.zone; })[0];
    $("zone").textContent = dnsInfo ? dnsInfo.zone + " · " + dnsInfo.policy : "";
    var at = new Date(s.at);
    $("updated").textContent = isNaN(at) ? "" : "updated " + at.toLocaleTimeString("en-GB");

    var banner = $("banner");
    var failOpen = (s.dns || []).some(function (d) { return d.failOpen; });
    if (s.sourceError) { banner.hidden = false; banner.textContent = "Cannot list the regions: " + s.sourceError; }
    else if (failOpen) { banner.hidden = false; banner.textContent = "The dns fails open: no serving region is healthy, every region is answered."; }
    else { banner.hidden = true; banner.textContent = ""; }

    var regions = s.regions || [];
    regions.forEach(function (r) { push(history[r.region] || (history[r.region] = []), r.reqPerSec); });
    var t = s.totals || {};
    push(totalHistory, t.reqPerSec);
    $("t-regions").textContent = (t.regionsUp || 0) + " / " + (t.regionsOpen || 0);
    var closed = regions.filter(function (r) { return r.state === "closed"; }).length;
    var down = regions.filter(function (r) { return r.state === "open" && r.health === "down"; }).length;
    $("t-regions-sub").textContent = "open" + (down ? " · " + down + " down" : "") + (closed ? " · " + closed + " closed" : "");
    $("t-rps").textContent = rate(t.reqPerSec, t.reqPerSecSinceStart);
    spark($("t-spark"), totalHistory);
    // As on the cards: the interval's ratio, else the one since the edges started.
    var hit = known(t.hitRatio) ? t.hitRatio : t.hitRatioTotal;
    $("t-hit").textContent = fmtPct(hit);
    $("t-hit").title = known(t.hitRatio) ? "last " + interval / 1000 + "s" : (known(hit) ? "since the edges started" : "");
    $("t-hit-bar").style.width = hit ? (hit * 100).toFixed(1) + "%" : "0";
    $("t-bytes").textContent = fmtBytes(t.bytesServed || 0);
    $("t-bps").textContent = t.bytesPerSec !== null && t.bytesPerSec !== undefined ? fmtBytes(t.bytesPerSec) + "/s" : "";
    $("t-fill").textContent = fmtBytes(t.fillBytes || 0);
    $("t-dns").textContent = (s.dns || []).length ? (s.dns || []).length + " dns · took " + (s.tookMillis || 0).toFixed(0) + " ms" : "took " + (s.tookMillis || 0).toFixed(0) + " ms";

    var grid = $("regions");
    clear(grid);
    if (!regions.length) grid.appendChild(el("div", "empty", "no regions"));
    regions.forEach(function (r) { grid.appendChild(card(r)); });

    var stateOf = {};
    regions.forEach(function (r) { stateOf[r.region] = r.state; });

    var nb = $("networks").tBodies[0];
    clear(nb);
    var nets = s.networks || [];
    nets.forEach(function (n) {
      nb.appendChild(row([
        { text: n.network },
        { text: n.label || "" },
        n.error ? { text: n.error, cls: "c-red" } : { text: n.region || "(no region)", color: n.region ? "c-blue" : "c-grey" },
        { text: (n.addrs || []).join(" ") }
      ]));
    });
    var note = $("net-note");
    $("networks").hidden = nets.length === 0;
    note.hidden = nets.length !== 0;
    note.textContent = nets.length ? "" : "The dns does not report per-network answers here; the demand table shows which region is nearest to the clients it sees.";

    var db = $("demand").tBodies[0];
    clear(db);
    (s.demand || []).forEach(function (d) {
      var st = d.region === "unknown" ? "unplaced" : (stateOf[d.region] || "–");
      db.appendChild(row([
        { text: d.region },
        { text: st, color: STATE_COLOR[st] || "c-grey" },
        { text: fmtRate(d.rate10s), cls: "num" },
        { text: fmtRate(d.rate1m), cls: "num" },
        { text: fmtCount(d.total), cls: "num" }
      ]));
    });
    if (!(s.demand || []).length) db.appendChild(row([{ text: "no dns answered" }, { text: "" }, { text: "" }, { text: "" }, { text: "" }]));

    var errs = s.errors || [];
    $("errors-panel").hidden = errs.length === 0;
    var ul = $("errors");
    clear(ul);
    errs.forEach(function (e) { ul.appendChild(el("li", "", e)); });
    conn();
  }

  function conn() {
    var dot = $("conn-dot"), text = $("conn-text");
    var age = Date.now() - lastUpdate;
    if (!lastUpdate) { dot.className = "dot"; text.textContent = "connecting…"; return; }
    if (age > 4 * interval) { dot.className = "dot stale"; text.textContent = "no update for " + Math.round(age / 1000) + " s"; return; }
    dot.className = "dot " + (transport === "sse" ? "live" : "poll");
    text.textContent = transport === "sse" ? "live" : "polling";
  }

  function poll() {
    if (polling) return;
    polling = true;
    fetch("v1/status", { cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (s) { render(s, "poll"); })
      .catch(function () { conn(); })
      .then(function () { polling = false; });
  }

  function start() {
    if (window.EventSource) {
      var es = new EventSource("v1/events");
      es.addEventListener("status", function (ev) {
        try { render(JSON.parse(ev.data), "sse"); } catch (e) { /* a bad event: the watchdog polls */ }
      });
    }
    // The watchdog: without a fresh event (no EventSource, a proxy that
    // buffers, a dropped stream), poll.
    setInterval(function () {
      if (Date.now() - lastUpdate > 2.5 * interval) poll();
      conn();
    }, interval);
    if (!window.EventSource) poll();
  }
  start();
})();
