// The first thing a run page runs (first in its head, not deferred): a worker (series.js; the
// query only names its request apart) that asks for the whole progress file and parses it on
// another thread while this page loads uPlot and lays itself out; run.js takes the columns it
// posts back (and, as soon as the first records are parsed, their keys: window.outliveFirstKeys
// and an "outlive-first-keys" event, so the page makes its charts meanwhile).
// window.outliveFirstRead resolves to {head, end, n, cap, keys, arrays}, {error}
// (the reply or its parse failed), or null (no worker here: run.js reads the file itself).
// The server puts this script in a page only for a run it knows has no frames (an older
// library's: the frames need no worker) and whose lines it has not parsed into columns.
"use strict";
window.outliveFirstRead = new Promise(resolve => {
  const runId = decodeURIComponent(location.pathname.split("/").pop());
  let worker;
  try { worker = new Worker("/static/series.js?worker"); } catch (e) { resolve(null); return; }
  worker.onmessage = e => {
    if (e.data.keys && e.data.n === undefined) {  // the first records' keys, before the rest
      window.outliveFirstKeys = e.data.keys;
      window.dispatchEvent(new Event("outlive-first-keys"));
      return;
    }
    worker.terminate();
    const t = e.data.timing;  // when the reply began and was all read, for bench/ui.py
    if (t) {
      performance.mark("progress-begins", {startTime: t.start - performance.timeOrigin});
      performance.mark("progress-received", {startTime: t.end - performance.timeOrigin});
    }
    resolve(e.data);
  };
  worker.onerror = e => { e.preventDefault(); worker.terminate(); resolve(null); };
  worker.postMessage({url: "/api/run/" + encodeURIComponent(runId) + "/progress?since=0"});
});
