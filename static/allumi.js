/* Allumi snippet: <script src=".../static/allumi.js" data-key="pk_..." defer></script>
   Keeps ?allumi_cid= in a first-party cookie (90 days, last click wins) and reports conversions
   with allumi.track(event, props). Must never break the host page: everything is in try/catch. */
(function (w, d, n) {
  "use strict";
  var queued = w.allumi, NAME = "allumi_cid", ID = /^c_[A-Za-z0-9]{6,40}$/;
  if (queued && queued.track) return; // loaded twice
  var off = true, key, endpoint, memory = null;

  function read() {
    var m = /(?:^|;\s*)allumi_cid=([^;]*)/.exec(d.cookie);
    return m && ID.test(m[1]) ? m[1] : memory;
  }

  function clickId() {
    try { return off ? null : read(); } catch (e) { return null; }
  }

  function track(event, props) {
    try {
      if (off || !event) return;
      props = props || {};
      var body = { key: key, event: String(event) }, fields = ["email", "amount", "currency", "external_id", "metadata"];
      var cid = read(), i, v;
      if (cid) body.click_id = cid;
      for (i = 0; i < fields.length; i++) {
        v = props[fields[i]];
        if (v !== undefined && v !== null) body[fields[i]] = v;
      }
      var json = JSON.stringify(body);
      // text/plain keeps it a simple request: no CORS preflight, and sendBeacon may send it.
      if (n.sendBeacon && w.Blob && n.sendBeacon(endpoint, new Blob([json], { type: "text/plain" }))) return;
      if (w.fetch) {
        return w.fetch(endpoint, {
          method: "POST", body: json, headers: { "Content-Type": "text/plain" },
          keepalive: true, credentials: "include", mode: "cors"
        })["catch"](function () {});
      }
    } catch (e) { /* never into the host page */ }
  }

  function push(call) {
    if (call && call[0] === "track") track(call[1], call[2]);
  }

  w.allumi = { track: track, clickId: clickId, push: push };

  try {
    var s = d.currentScript || d.querySelector('script[data-key][src*="allumi.js"]');
    key = s && s.getAttribute("data-key");
    var origin = s && /^https?:\/\/[^\/?#]+/i.exec(s.src);
    var dnt = n.doNotTrack || w.doNotTrack || n.msDoNotTrack;
    var respect = s && s.getAttribute("data-respect-dnt") === "true" && (dnt === "1" || dnt === "yes");
    if (key && origin && !respect) {
      endpoint = origin[0] + "/api/v1/conversions/track";
      off = false;
      var m = /[?&]allumi_cid=([^&#]*)/.exec(w.location.search);
      if (m && ID.test(m[1])) {
        memory = m[1]; // still usable on this page when cookies are blocked
        d.cookie = NAME + "=" + m[1] + "; Max-Age=7776000; Path=/; SameSite=Lax" +
          (w.location.protocol === "https:" ? "; Secure" : "");
      }
    }
  } catch (e) { /* ignore */ }

  // Calls made before the script loaded: window.allumi = window.allumi || []; allumi.push(["track", ...])
  if (queued && queued.length) for (var i = 0; i < queued.length; i++) push(queued[i]);
})(window, document, navigator);
