// Live derived values on the intake form: the server computes them with the same engine
// (no clinical arithmetic in the browser). Without JavaScript the result page shows them.
(function () {
  "use strict";
  var form = document.getElementById("intake");
  if (!form || !window.fetch) { return; }
  var timer = null;
  var out = {
    age: document.getElementById("age-out"),
    crcl: document.getElementById("crcl-out"),
    crclFull: document.getElementById("crcl-full"),
    irls: document.getElementById("irls-out"),
    irlsLive: document.getElementById("irls-live")
  };
  function set(el, text) { if (el && el.textContent !== text) { el.textContent = text; } }
  function update() {
    fetch("/intake/derived", { method: "POST", body: new FormData(form) })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (d) {
        if (!d || d.crcl_note === undefined) { return; }
        set(out.age, d.age_years === null ? "unknown" : d.age_years + " years");
        set(out.crcl, d.crcl_ml_min === null ? "not yet" : d.crcl_ml_min + " mL/min");
        set(out.crclFull, d.crcl_note);
        var irls = d.irls_total === null ? "answer all ten items" : d.irls_total + " (" + d.irls_severity + ")";
        set(out.irls, irls);
        set(out.irlsLive, d.irls_total === null ? "–" : irls);
      })
      .catch(function () { /* the result page shows the same values */ });
  }
  function later() { clearTimeout(timer); timer = setTimeout(update, 250); }
  form.addEventListener("input", later);
  form.addEventListener("change", later);
  update();
  var summary = document.getElementById("error-summary");
  if (summary) { summary.focus(); }
})();
// Pregnancy questions are for a woman or a patient whose sex is not recorded.
(function () {
  "use strict";
  var items = document.querySelectorAll("[data-female-only]");
  if (!items.length) { return; }
  function sync() {
    var male = document.querySelector("input[name='patient.sex'][value='male']:checked");
    for (var i = 0; i < items.length; i++) { items[i].hidden = !!male; }
  }
  document.addEventListener("change", function (e) {
    if (e.target && e.target.name === "patient.sex") { sync(); }
  });
  sync();
})();
