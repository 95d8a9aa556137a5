// Shows what the cache did for this page (the Cache-Status header of a HEAD request).
(function () {
  fetch(location.pathname, { method: "HEAD" }).then(function (r) {
    var cs = r.headers.get("Cache-Status") || "(no Cache-Status: not served by an edge)";
    document.getElementById("served").textContent = "Cache-Status: " + cs;
  });
})();
