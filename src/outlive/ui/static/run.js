// A run page: live state (from the board's event stream), metric curves (uPlot; every record of
// the progress file held, each chart given what its width shows: series.js), the following log
// tail, the exit record, checkpoints, pulls, explain.
"use strict";
(function () {
  const runId = decodeURIComponent(location.pathname.split("/").pop());
  const api = "/api/run/" + encodeURIComponent(runId);
  const LIVE = new Set(["pending", "running", "requeued"]);
  const POLL_MS = 1500;
  let run = null, ended = false, finalPolls = 0;
  const progress = {end: 0, cols: series.columns()};
  const charts = {};
  let drawn = false, belowReady = false;
  window.outliveCharts = charts;  // for bench/ui.py's zoom timing
  let logOffset = null;

  function fail(e) { const p = document.getElementById("error"); p.hidden = false; p.textContent = String(e); }
  function fact(dl, k, v) { dl.append(ui.el("dt", {text: k}), ui.el("dd", {"data-key": k, text: v === null || v === undefined ? "—" : String(v)})); }

  function showRun(r) {
    run = r;
    document.title = "outlive — " + r.name;
    document.getElementById("name").textContent = String(r.name);
    const st = document.getElementById("state");
    st.replaceChildren(ui.stateCell(r));
    st.setAttribute("data-state", String(r.state));
    const facts = document.getElementById("facts");
    facts.replaceChildren();
    fact(facts, "run id", r.run_id); fact(facts, "target", r.target);
    fact(facts, "command", (r.command || []).join(" "));
    fact(facts, "progress", ui.progressText(r.progress));
    fact(facts, "heartbeat age", ui.age(r.heartbeat_age_s));
    fact(facts, "restarts", r.restarts || 0);
    fact(facts, "started", ui.time(r.started_at));
    const exit = document.getElementById("exit");
    exit.replaceChildren();
    fact(exit, "state", r.state); fact(exit, "exit code", r.exit_code); fact(exit, "signal", r.signal);
    fact(exit, "ended", ui.time(r.ended_at));
    fact(exit, "max RSS", r.max_rss_bytes ? ui.bytes(r.max_rss_bytes) : null);
    const dd = ui.el("dd", {"data-key": "diagnosis"}); dd.append(ui.diagnosis(r.diagnosis));
    exit.append(ui.el("dt", {text: "diagnosis"}), dd);
    if (r.diagnosis && r.diagnosis.evidence) fact(exit, "evidence", r.diagnosis.evidence.join("; "));
    document.getElementById("actions").hidden = !LIVE.has(String(r.state)) || !!r.stale;
    const wasEnded = ended;
    ended = !LIVE.has(String(r.state)) && !r.stale;
    if (ended && !wasEnded && belowReady) { details().catch(fail); explain().catch(fail); }
  }

  // -- curves: one chart per metric, x = step; the page holds every record of the progress file
  // (series.js) and gives each chart what its width shows of the visible range: the extremes of
  // every pixel column, every point once zoomed in far enough (a zoom asks for a new view).
  function allRange(cv) { return cv.x.length ? [cv.x[0], cv.x[cv.x.length - 1]] : [0, 1]; }

  function plotWidth(u) { return Math.max(1, Math.round(u.bbox.width / (window.devicePixelRatio || 1))); }

  function show(u, lo, hi, reset) {
    u.range = [lo, hi];
    const data = series.view(u.curve, lo, hi, plotWidth(u));
    if (reset) u.setData(data);
    else { u.setData(data, false); u.setScale("x", {min: lo, max: hi}); }  // y: from the new data
    u.root.parentNode.setAttribute("data-plotted", String(data[0].length));
  }

  function onScale(u, scaleKey) {
    if (scaleKey !== "x" || !u.curve) return;
    const {min, max} = u.scales.x;
    if (min === null || max === null || (u.range && u.range[0] === min && u.range[1] === max)) return;
    show(u, min, max, false);
  }

  const NOT_CHARTED = new Set(["step", "ts"]);

  function makeChart(key) {
    const box = document.getElementById("charts");
    const div = ui.el("div", {class: "chart", "data-metric": key});
    box.append(div);
    const opts = {
      title: key, width: Math.max(400, box.clientWidth || 900), height: 220, pxAlign: 0,
      cursor: {sync: {key: uPlot.sync("run").key}, drag: {x: true, y: false},
        bind: {dblclick: (self) => () => { self.zoomed = false; show(self, ...allRange(self.curve), true); return null; }}},
      scales: {x: {time: false}},
      series: [{label: "step"}, {label: key, stroke: "#1c5fb0", width: 1, spanGaps: true, points: {show: false}}],
      hooks: {setSelect: [self => { self.zoomed = true; }], setScale: [onScale]},
    };
    return charts[key] = new uPlot(opts, [[], []], div);
  }

  // The first read's keys, told before its records: the charts are made (empty) while the
  // worker parses the rest; drawCharts drops any whose key turns out to hold no number.
  function earlyCharts() {
    if (drawn || !window.outliveFirstKeys) return;
    for (const key of window.outliveFirstKeys) if (!NOT_CHARTED.has(key) && !charts[key]) makeChart(key);
  }
  if (window.outliveFirstKeys) earlyCharts();
  else window.addEventListener("outlive-first-keys", earlyCharts, {once: true});

  function drawCharts() {
    const box = document.getElementById("charts");
    const cols = progress.cols;
    const keys = [...cols.cols.keys()].filter(k => !NOT_CHARTED.has(k) && cols.cols.get(k).subarray(0, cols.n).some(Number.isFinite));
    const kept = new Set(keys);
    for (const key of Object.keys(charts)) {
      if (!kept.has(key)) { charts[key].root.parentNode.remove(); charts[key].destroy(); delete charts[key]; }
    }
    for (const key of keys) {
      const cv = series.curve(cols, "step", key);
      const u = charts[key] || makeChart(key);
      u.curve = cv;
      if (u.zoomed) show(u, u.range[0], u.range[1], false); else show(u, ...allRange(cv), true);
      u.root.parentNode.setAttribute("data-points", String(cv.x.length));
    }
    box.setAttribute("data-points", String(cols.n));
    if (!drawn && keys.length) {  // bench/ui.py reads these marks
      drawn = true;
      performance.mark("charts-rendered");
      requestAnimationFrame(() => setTimeout(() => performance.mark("charts-painted"), 0));
    }
    document.getElementById("points").textContent = cols.n ? "(" + cols.n + " points)" : "(no progress records yet)";
  }

  // The first read: the worker runfirst.js started as the page opened (the whole file, parsed
  // on another thread), as {head, cols, end}; null when there is no worker.
  let firstRead = window.outliveFirstRead || null;
  async function takeFirstRead() {
    const got = await firstRead;
    firstRead = window.outliveFirstRead = null;  // held no longer than the page holds its columns
    if (got === null) return null;
    if (got.error !== undefined) throw new Error(got.error);
    const cols = {n: got.n, cap: got.cap, cols: new Map(got.keys.map((k, i) => [k, got.arrays[i]]))};
    return {head: got.head, cols, end: got.end};
  }

  async function pollProgress() {
    const before = progress.cols.n;
    let read = firstRead ? await takeFirstRead() : null;
    if (read !== null) progress.cols = read.cols;
    else {
      // series.readFrame: lines parsed as they arrive, or every record as the box's frames or
      // the server's columns; after frames that stopped short, lines (frames=0) from 0 too
      const url = api + "/progress?since=" + progress.end + (progress.framesShort ? "&frames=0" : "");
      const r = await fetch(url, {credentials: "same-origin"});
      if (!r.ok) throw new Error((await r.json()).error || r.statusText);
      try {
        read = await series.readFrame(r.body, head => {
          if (head.since !== progress.end) progress.cols = series.columns();  // the file was replaced
          return progress.cols;
        });
      } catch (e) {  // some lines may be in: read the whole file again next time
        progress.end = 0; progress.cols = series.columns();
        throw e;
      }
      if (read.head.format !== "lines") progress.cols = read.cols;
    }
    if (!drawn) performance.mark("progress-decoded");  // bench/ui.py: the first read's columns
    if (read.head.format === "frames" && read.end < read.head.lines_size) {
      // the frames hold the file's lines only up to read.end: the lines from there, at once
      progress.end = read.end; progress.framesShort = true;
      document.getElementById("charts").setAttribute("data-format", "frames");
      return pollProgress();
    }
    settle(read, before);
  }

  function settle(read, before) {
    const head = read.head;
    progress.end = read.end;
    if (head.since === 0) document.getElementById("charts").setAttribute("data-format", String(head.format));
    if (progress.cols.n !== before || !drawn) drawCharts();
  }

  // -- the log, followed by byte offset --------------------------------------------------------
  const LOG_KEEP = 256 * 1024;
  async function pollLog() {
    const doc = await ui.get(api + "/log" + (logOffset === null ? "" : "?offset=" + logOffset));
    logOffset = doc.offset;
    const pre = document.getElementById("log");
    if (doc.text) {
      const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.append(document.createTextNode(doc.text));
      if (pre.textContent.length > LOG_KEEP) pre.textContent = pre.textContent.slice(-LOG_KEEP);
      if (stick) pre.scrollTop = pre.scrollHeight;
    }
    document.getElementById("log-state").textContent = doc.ended || ended ? "(ended)" : "(following)";
    pre.setAttribute("data-offset", String(doc.offset));
  }

  async function details() {
    const d = await ui.get(api);
    if (!run) {
      showRun(d.last_seen || {run_id: d.run_id, name: d.name, target: d.target, state: "pending", command: d.command});
    }
    const now = Date.now() / 1000;
    const cb = document.querySelector("#checkpoints tbody");
    cb.replaceChildren(...d.checkpoints.map(c => ui.el("tr", {"data-step": String(c.step)},
      ui.el("td", {text: String(c.step)}), ui.el("td", {text: c.name}), ui.el("td", {text: ui.bytes(c.size_bytes)}),
      ui.el("td", {text: ui.age(now - c.mtime)}), ui.el("td", {text: c.verified ? "yes (pulled, SHA-256)" : "not pulled"}))));
    if (!d.checkpoints.length && !d.checkpoints_error) cb.append(ui.el("tr", {}, ui.el("td", {colSpan: 5, class: "muted", text: "none in " + d.ckpt_dir})));
    if (d.checkpoints_error) cb.append(ui.el("tr", {}, ui.el("td", {colSpan: 5, class: "error", text: d.checkpoints_error})));
    const pb = document.querySelector("#pulls tbody");
    pb.replaceChildren(...d.pulls.map(p => ui.el("tr", {},
      ui.el("td", {text: p.dest}), ui.el("td", {text: String(p.files)}), ui.el("td", {text: ui.bytes(p.size_bytes)}),
      ui.el("td", {text: ui.time(p.pulled_at)}), ui.el("td", {text: p.verified ? "verified" : "NOT verified"}))));
    if (!d.pulls.length) pb.append(ui.el("tr", {}, ui.el("td", {colSpan: 5, class: "muted", text: "not pulled yet: outlive pull " + d.run_id})));
  }

  async function explain() {
    const doc = await ui.get(api + "/explain");
    const ul = document.getElementById("explain");
    ul.replaceChildren(...doc.matches.map(m => ui.el("li", {"data-gotcha": String(m.id)},
      ui.gotchaLink(String(m.id)), " line " + m.line + ": " + m.title + " — ", ui.el("code", {text: String(m.text).trim().slice(0, 200)}))));
    if (!doc.matches.length) ul.append(ui.el("li", {class: "muted", text: "no known gotcha matched"}));
    ul.setAttribute("data-ready", "true");
  }

  // -- cancel: a confirmation, then POST with the CSRF token ----------------------------------
  const dialog = document.getElementById("confirm");
  document.getElementById("cancel").addEventListener("click", () => {
    document.getElementById("confirm-text").textContent =
      "Cancel run " + run.name + " (" + run.run_id + ") on " + run.target +
      "? The job gets TERM (it may save a checkpoint), then KILL after the target's grace.";
    dialog.showModal();
  });
  dialog.addEventListener("close", () => {
    if (dialog.returnValue !== "cancel") return;
    const out = document.getElementById("cancel-result");
    ui.post(api + "/cancel", {confirm: run.run_id})
      .then(r => { out.textContent = r.signalled ? "sent " + r.signalled + "; KILL after " + r.grace_s + " s" : (r.note || "nothing to cancel"); })
      .catch(e => { out.textContent = String(e); });
  });

  // A look at this run only (not the board's look at every run), while it is live.
  async function pollStatus() { showRun(await ui.get(api + "/status")); }

  async function loop() {
    try { await Promise.all([pollStatus(), pollProgress(), pollLog()]); } catch (e) { fail(e); }
    if (ended) finalPolls++;
    if (finalPolls < 2) setTimeout(loop, POLL_MS);  // one more read after the end drains the rest
  }

  // The curves first; what sits below them (checkpoints, pulls, explain) once they are drawn.
  // (after the frame that paints the curves: what comes back for the rest must not delay it;
  // a tab not shown paints no frame: then a moment later)
  const afterPaint = () => new Promise(done => {
    requestAnimationFrame(() => setTimeout(done, 0));
    setTimeout(done, 250);
  });
  pollProgress().catch(fail).then(afterPaint).finally(() => {
    belowReady = true;
    pollStatus().catch(fail);
    pollLog().catch(fail);
    details().then(explain).catch(fail);
    setTimeout(loop, POLL_MS);
  });
  setInterval(() => { if (!ended) details().catch(fail); }, 10000);
})();
