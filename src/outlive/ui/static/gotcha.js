// One catalog entry (outlive gotcha ID), linked from diagnoses and explain matches.
"use strict";
(function () {
  const id = decodeURIComponent(location.pathname.split("/").pop());
  document.getElementById("gid").textContent = id;
  ui.get("/api/gotcha/" + encodeURIComponent(id)).then(g => {
    document.getElementById("title").textContent = g.title;
    const dl = document.getElementById("facts");
    for (const k of ["symptom", "cause", "fix", "handling", "handled_by"]) {
      dl.append(ui.el("dt", {text: k}), ui.el("dd", {text: String(g[k])}));
    }
    dl.append(ui.el("dt", {text: "platforms"}), ui.el("dd", {text: g.platforms.join(", ")}));
    const rel = ui.el("dd");
    for (const r of g.related) { rel.append(ui.gotchaLink(r), " "); }
    dl.append(ui.el("dt", {text: "related"}), rel);
  }).catch(e => { const p = document.getElementById("error"); p.hidden = false; p.textContent = String(e); });
})();
