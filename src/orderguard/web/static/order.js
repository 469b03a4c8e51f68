// Reloads the shopper's order page when the order changes (only while it is not final).
(function () {
  "use strict";
  var status = document.getElementById("status");
  if (!status || status.dataset.refresh !== "on") { return; }
  var url = status.dataset.pollUrl;
  var state = status.dataset.state;
  var updated = status.dataset.updated;
  var every = 2000;
  function poll() {
    fetch(url, { headers: { "Accept": "application/json" }, cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (now) {
        if (now && (now.state !== state || now.updated_at !== updated)) {
          window.location.reload();
          return;
        }
        window.setTimeout(poll, every);
      })
      .catch(function () { window.setTimeout(poll, every * 2); });
  }
  window.setTimeout(poll, every);
})();
