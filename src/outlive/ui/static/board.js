// The board: every run across every target, live from /events (one snapshot per look).
"use strict";
(function () {
  const table = document.getElementById("board");
  const body = table.tBodies[0];
  const filter = document.getElementById("filter");
  let snap = null, painted = false, complete = false;
  let sortKey = "started", sortDir = -1;

  const sorters = {
    name: r => String(r.name), state: r => String(r.state), target: r => String(r.target),
    step: r => (r.progress && typeof r.progress.step === "number") ? r.progress.step : -1,
    heartbeat: r => r.heartbeat_age_s === null || r.heartbeat_age_s === undefined ? Infinity : r.heartbeat_age_s,
    restarts: r => r.restarts || 0, cause: r => r.diagnosis ? String(r.diagnosis.cause) : "",
    started: r => r.started_at || r.created_at || 0,
    cost: r => typeof r.cost_usd === "number" ? r.cost_usd : -1,
  };

  function matches(run, words) {
    if (!words.length) return true;
    const hay = [run.name, run.state, run.target, run.run_id,
      run.diagnosis ? run.diagnosis.cause : "", ...(run.diagnosis ? run.diagnosis.gotchas || [] : []),
      run.stale ? "stale" : ""].join(" ").toLowerCase();
    return words.every(w => hay.includes(w));
  }

  function row(run, lag) {
    const tr = ui.el("tr", {"data-run-id": String(run.run_id), "data-state": String(run.state)});
    if (run.stale) tr.setAttribute("data-stale", "true");
    const hb = (typeof run.heartbeat_age_s === "number") ? run.heartbeat_age_s + (run.ended_at ? 0 : lag) : null;
    tr.append(
      ui.el("td", {class: "name"}, ui.el("a", {href: ui.runHref(run.run_id), text: String(run.name)})),
      ui.el("td", {class: "state"}, ui.stateCell(run)),
      ui.el("td", {class: "target", text: String(run.target)}),
      ui.el("td", {class: "progress", text: ui.progressText(run.progress)}),
      ui.el("td", {class: "heartbeat", text: ui.age(hb)}),
      ui.el("td", {class: "restarts", text: run.restarts ? String(run.restarts) : "0"}),
      ui.el("td", {class: "diag"}, ui.diagnosis(run.diagnosis)),
      ui.el("td", {class: "cost", text: typeof run.cost_usd === "number" ? "$" + run.cost_usd.toFixed(2) : "—",
        title: "the target's rate now × the run's time so far (outlive status)"}),
      ui.el("td", {class: "started", text: ui.time(run.started_at || run.created_at)}),
    );
    return tr;
  }

  // The first screenful is drawn at once and painted; the other rows follow in chunks, so a
  // board of thousands of runs shows without waiting for all of them.
  const FIRST_ROWS = 60, CHUNK_ROWS = 200;
  let renderToken = 0;

  function render() {
    if (!snap) return;
    const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    const key = sorters[sortKey];
    const runs = snap.runs.filter(r => matches(r, words));
    runs.sort((a, b) => { const x = key(a), y = key(b); return (x < y ? -1 : x > y ? 1 : 0) * sortDir; });
    const lag = Math.max(0, Date.now() / 1000 - snap.at);
    const token = ++renderToken;
    let i = 0;
    function chunk(size) {
      const frag = document.createDocumentFragment();
      for (const end = Math.min(runs.length, i + size); i < end; i++) frag.append(row(runs[i], lag));
      return frag;
    }
    body.replaceChildren(chunk(FIRST_ROWS));
    function more() {
      if (token !== renderToken) return;  // a newer snapshot is being drawn
      if (i < runs.length) { body.append(chunk(CHUNK_ROWS)); setTimeout(more, 0); return; }
      table.setAttribute("data-rows", String(runs.length));
      if (!complete && runs.length) { complete = true; performance.mark("board-complete"); }
    }
    if (!painted && snap.runs.length) {  // bench/ui.py reads these marks
      painted = true;
      performance.mark("board-rendered");
      // queued before the other rows' first chunk: the mark is the end of the first frame
      requestAnimationFrame(() => setTimeout(() => performance.mark("board-painted"), 0));
    }
    requestAnimationFrame(() => setTimeout(more, 0));  // the first screenful is painted first
    table.setAttribute("data-seq", String(snap.seq));
    table.setAttribute("data-source", String(snap.source));
    document.getElementById("count").textContent = runs.length + " of " + snap.runs.length + " runs";
    const err = document.getElementById("error");
    err.hidden = !snap.error;
    err.textContent = snap.error || "";
  }

  function clocks(targets) {
    const box = document.getElementById("clocks");
    const frag = document.createDocumentFragment();
    for (const [name, t] of Object.entries(targets || {})) {
      const first = (t.clocks || []).filter(c => c.surface_first);
      if (!first.length) continue;
      const p = ui.el("p", {class: "clock"}, ui.el("b", {text: name + " (" + t.profile + "): "}));
      for (const c of first) {
        p.append(ui.el("span", {text: c.name + (c.duration_s ? " after " + ui.age(c.duration_s) : "") + " — " + c.what_happens + " "}));
        for (const g of c.gotchas || []) { p.append(ui.gotchaLink(String(g))); p.append(" "); }
      }
      frag.append(p);
    }
    box.replaceChildren(frag);
  }

  function take(doc) {
    snap = doc;
    clocks(doc.targets);
    render();
    const live = document.getElementById("live");
    live.textContent = doc.source === "registry" ? "as last seen; looking…" : "live · " + doc.source;
  }

  for (const th of table.tHead.rows[0].cells) {
    th.addEventListener("click", () => {
      const k = th.getAttribute("data-key");
      if (sortKey === k) sortDir = -sortDir; else { sortKey = k; sortDir = 1; }
      render();
    });
  }
  filter.addEventListener("input", render);
  function live() {  // after the first paint: the looks it starts do not compete with it
    const events = new EventSource("/events");
    events.addEventListener("board", ev => take(JSON.parse(ev.data)));
    events.onerror = () => { document.getElementById("live").textContent = "reconnecting…"; };
  }
  ui.get("/api/board").then(doc => { if (!snap || snap.seq <= doc.seq) take(doc); })
    .catch(e => { document.getElementById("error").hidden = false; document.getElementById("error").textContent = String(e); })
    .finally(() => requestAnimationFrame(() => setTimeout(live, 0)));
  setInterval(render, 5000);  // heartbeat ages keep counting between looks
})();
