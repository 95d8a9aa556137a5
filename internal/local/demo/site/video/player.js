// The video demo's player: hls.js (or the browser itself for the plain
// MP4), and a table of what served each segment, read from Cache-Status.
// window.kubecdnPlayer holds the same for tests: frags, errors, latency.
(function () {
  "use strict";
  var sources = {
    vod: "/video/vod/master.m3u8",
    single: "/video/vod/single/master.m3u8",
    live: "/video/live.m3u8",
    mp4: "/video/vod/vod.mp4"
  };
  var q = new URLSearchParams(location.search);
  var src = q.get("src") || "vod";
  if (!sources[src]) src = "vod";
  // Live plays low-latency (LL-HLS parts, blocking playlist reloads)
  // unless ll=0: then whole segments, as a player without LL-HLS would.
  var ll = src === "live" && q.get("ll") !== "0";
  var state = { src: src, ll: ll, frags: [], errors: [], latency: null, liveEdge: null, level: null };
  window.kubecdnPlayer = state;
  var video = document.getElementById("video");
  var tbody = document.getElementById("frags");
  document.querySelectorAll("nav a").forEach(function (a) {
    if (a.dataset.src === (src === "live" && !ll ? "live-plain" : src)) a.className = "on";
  });
  document.getElementById("src").textContent = sources[src] + (ll ? " (LL-HLS)" : "");

  // parseCacheStatus reads an RFC 9211 Cache-Status value: one member per
  // cache, the one nearest the client last. kubecdn's edges are named
  // kubecdn-REGION-N.
  function parseCacheStatus(v) {
    if (!v) return [];
    return v.split(",").map(function (m) {
      var parts = m.trim().split(";");
      var name = parts[0].trim().replace(/^"|"$/g, "");
      var r = { name: name, hit: false, fwd: "", region: "", edge: "" };
      parts.slice(1).forEach(function (p) {
        var kv = p.trim().split("=");
        if (kv[0] === "hit") r.hit = true;
        if (kv[0] === "fwd") r.fwd = kv[1] || "";
      });
      var mm = /^kubecdn-(.+)-(\d+)$/.exec(name);
      if (mm) { r.region = mm[1]; r.edge = mm[2]; }
      return r;
    });
  }

  function record(url, level, bytes, ms, cs) {
    var chain = parseCacheStatus(cs);
    var own = chain.length ? chain[chain.length - 1] : { name: "?", hit: false, fwd: "", region: "", edge: "" };
    var up = chain.slice(0, -1).map(function (c) {
      return (c.region || c.name) + (c.hit ? " hit" : " " + (c.fwd || "miss"));
    }).join(", ");
    var f = { url: url, level: level, bytes: bytes, ms: ms, region: own.region, edge: own.name,
      hit: own.hit, fwd: own.fwd, upstream: up, cacheStatus: cs || "" };
    state.frags.push(f);
    if (state.frags.length > 500) state.frags.shift();
    var tr = document.createElement("tr");
    var cells = [state.frags.length, url.replace(/^.*\/video\//, ""), level, bytes, ms, own.region || "?", own.name,
      own.hit ? "hit" : (own.fwd || "miss"), up];
    cells.forEach(function (c, i) {
      var td = document.createElement("td");
      td.textContent = c;
      if (i === 7) td.className = own.hit ? "hit" : "miss";
      tr.appendChild(td);
    });
    tbody.insertBefore(tr, tbody.firstChild);
    while (tbody.children.length > 60) tbody.removeChild(tbody.lastChild);
  }

  function error(msg) {
    state.errors.push(msg);
    document.getElementById("errors").textContent = state.errors.slice(-5).join("; ");
  }

  function tick() {
    document.getElementById("time").textContent = "time " + video.currentTime.toFixed(2) + " s";
    if (state.level !== null) document.getElementById("level").textContent = "rung " + state.level;
    if (hls && src === "live" && hls.playingDate) {
      state.latency = (Date.now() - hls.playingDate.getTime()) / 1000;
      state.liveEdge = hls.latency;
      document.getElementById("latency").textContent = "latency " + state.latency.toFixed(2) +
        " s (capture to screen), " + (hls.latency || 0).toFixed(2) + " s behind the playlist's end";
    }
  }
  setInterval(tick, 250);

  var hls = null;
  if (src === "mp4") {
    video.src = sources.mp4;
    video.addEventListener("error", function () { error("video: " + (video.error && video.error.message)); });
    // The browser fetches the MP4 with range requests; the resource timing
    // says little of the cache, so one HEAD says which edge serves it.
    fetch(sources.mp4, { method: "HEAD" }).then(function (r) {
      record(sources.mp4, "mp4", r.headers.get("Content-Length"), 0, r.headers.get("Cache-Status"));
    });
  } else if (window.Hls && Hls.isSupported()) {
    // Live, whole segments: play 3 s (1.5 segments) behind the
    // playlist's end, and catch up a little faster than real time when
    // further behind. Low-latency: the playlist's PART-HOLD-BACK behind it.
    var cfg = ll ? { lowLatencyMode: true, maxLiveSyncPlaybackRate: 1.1 }
      : { lowLatencyMode: false, liveSyncDuration: 3, liveMaxLatencyDuration: 6, maxLiveSyncPlaybackRate: 1.1 };
    if (q.get("level") !== null) cfg.startLevel = parseInt(q.get("level"), 10);
    hls = new Hls(cfg);
    window.kubecdnHls = hls;
    hls.on(Hls.Events.FRAG_LOADED, function (ev, data) {
      // An LL-HLS part is a row of its own, named by the part's URL.
      var st = (data.part || data.frag).stats;
      var xhr = data.networkDetails;
      var cs = xhr && xhr.getResponseHeader ? xhr.getResponseHeader("Cache-Status") : "";
      record((data.part ? data.part.url : data.frag.url) + (data.frag.byteRange && data.frag.byteRange.length && !data.part ? " @" + data.frag.byteRange.join("-") : ""),
        data.frag.level, st.total, Math.round(st.loading.end - st.loading.start), cs);
    });
    hls.on(Hls.Events.LEVEL_SWITCHED, function (ev, data) { state.level = data.level; });
    hls.on(Hls.Events.ERROR, function (ev, data) {
      // Non-fatal errors are recovered by hls.js itself; they are kept
      // apart so a test can tell.
      var msg = data.type + " " + data.details + (data.fatal ? " (fatal)" : "");
      if (data.fatal) error(msg); else (state.warnings = state.warnings || []).push(msg);
    });
    hls.on(Hls.Events.MANIFEST_PARSED, function () {
      var lv = q.get("level");
      if (lv !== null) hls.currentLevel = parseInt(lv, 10);
    });
    hls.loadSource(sources[src]);
    hls.attachMedia(video);
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = sources[src];
  } else {
    error("this browser plays neither HLS nor Media Source Extensions");
  }
  video.play().catch(function () {});

  // grabFrame returns the frame on screen at its own size as a PNG data
  // URL (the seek check compares its clock with ffmpeg's frame).
  window.kubecdnGrabFrame = function () {
    var c = document.createElement("canvas");
    c.width = video.videoWidth;
    c.height = video.videoHeight;
    c.getContext("2d").drawImage(video, 0, 0);
    return c.toDataURL("image/png");
  };
})();
