// sluice console: refreshes the server-rendered #live part of /ui every few
// seconds from /ui/live (same origin, session cookie). No other requests.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var state = document.getElementById("refresh-state");
  if (!live || !state) return;
  var every = Number(live.getAttribute("data-refresh-ms")) || 5000;
  var lastOk = Date.now();
  function show(kind, text) {
    state.setAttribute("data-state", kind);
    state.className = "refresh " + kind;
    state.textContent = text;
  }
  function refresh() {
    if (document.hidden) return;
    fetch("/ui/live", { cache: "no-store", credentials: "same-origin" })
      .then(function (r) {
        if (r.status === 401) {
          show("expired", "signed out: reload the page to sign in again");
          return null;
        }
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (html) {
        if (html === null) return;
        live.innerHTML = html;
        lastOk = Date.now();
        show("live", "live, updated " + new Date(lastOk).toISOString().slice(11, 19) + " UTC");
      })
      .catch(function (e) {
        var ago = Math.round((Date.now() - lastOk) / 1000);
        show("stale", "this node does not answer (" + e.message + "); data is " + ago + " s old");
      });
  }
  setInterval(refresh, every);
  document.addEventListener("visibilitychange", refresh);
})();
