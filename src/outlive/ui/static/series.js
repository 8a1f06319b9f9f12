// The run page's metrics: the box's binary frames of the progress file, or its JSON lines (as
// the server read them from the box), decoded or parsed here into one Float64Array per key (NaN: the record has no number for it), and each
// curve cut down to what its plot can show: per pixel column the first, lowest, highest and
// last point (M4), so every extreme stays drawn; a range with few enough points is given whole.
"use strict";
const series = {
  POINTS_PER_PX: 4,

  // Records from whole JSON lines: one JSON.parse of them joined as an array; line by line
  // (skipping what is not a JSON object) when one of them does not parse.
  parse(text) {
    let end = text.length;
    while (end > 0 && (text.charCodeAt(end - 1) === 10 || text.charCodeAt(end - 1) === 13)) end--;
    if (!end) return [];
    let records;
    try {
      records = JSON.parse("[" + text.slice(0, end).replaceAll("\n", ",") + "]");
    } catch (e) {
      records = [];
      for (const line of text.slice(0, end).split("\n")) {
        try { records.push(JSON.parse(line)); } catch (e2) { /* not a record */ }
      }
    }
    return records.filter(r => r !== null && typeof r === "object" && !Array.isArray(r));
  },

  // A progress reply read as it arrives: u32 header length, JSON header {format, since, end,
  // ...}, then from byte `since` on either whole JSON lines, parsed into `cols` chunk by chunk
  // while the rest is still on its way, or (the server has parsed them) float64 columns of
  // every record, viewed in place once all have come, or the box's frames of every record
  // (fromFrames), decoded once all have come. `fresh(head)` gives the columns to add the lines
  // to. Resolves to {head, cols, end}: where the lines end in the file (the header's `end`,
  // or, when it is null -- the server streamed a read still under way --, `since` plus the
  // bytes that came; for frames, where their rows stop holding the file's lines).
  async readFrame(body, fresh, onLines) {
    const reader = body.getReader();
    let pending = new Uint8Array(0), head = null, cols = null, text = "", got = 0;
    const held = [], decoder = new TextDecoder();
    const lines = (chunk, last) => {
      got += chunk.length;
      text += decoder.decode(chunk, {stream: !last});
      const cut = last ? text.length : text.lastIndexOf("\n") + 1;
      if (cut > 0) {
        series.append(cols, series.parse(text.slice(0, cut)));
        text = text.slice(cut);
        if (onLines) onLines(cols);
      }
    };
    for (;;) {
      const {done, value} = await reader.read();
      if (done) break;
      if (head !== null) {
        if (head.format === "lines") lines(value, false); else held.push(value);
        continue;
      }
      pending = series._joined([pending, value]);
      if (pending.length < 4) continue;
      const hlen = new DataView(pending.buffer, pending.byteOffset).getUint32(0, true);
      if (pending.length < 4 + hlen) continue;
      head = JSON.parse(decoder.decode(pending.subarray(4, 4 + hlen)));
      if (head.format === "lines") { cols = fresh(head); lines(pending.subarray(4 + hlen), false); } else held.push(pending);
    }
    if (head === null) throw new Error("the progress reply ended before its header");
    if (head.format === "lines") lines(new Uint8Array(0), true);
    else {
      const all = series._joined(held), off = 4 + new DataView(all.buffer).getUint32(0, true);
      if (head.format === "frames") {
        cols = series.fromFrames(all.subarray(off));
        return {head, cols, end: cols.covered};
      }
      cols = series.fromBuffer(all.buffer, off, head.n, head.keys);
    }
    return {head, cols, end: head.end === null ? head.since + got : head.end};
  },

  // The box's frames of the progress file (outlive/ckpt/frames.py), whole 8-byte words, each
  // frame ending with the CRC-32 of its other bytes: "K" key sets (tag, 0, u16 length, u32 id;
  // a JSON list of keys padded to a word; u32 0, CRC) and "R" rows (tag, 0 0 0, u32 key-set id;
  // the record's JSON line's start, float64; one float64 per key; u32 line length, CRC), as
  // columns, the records in the lines' order. A torn, damaged or unknown frame ends them. Only
  // rows whose lines tile the file from byte 0 are kept: `covered` is where they stop (a run
  // begun by an older library, a failed write, a line written by something else), and the JSON
  // lines from there are the rest.
  fromFrames(bytes) {
    if (bytes.byteOffset % 8) bytes = bytes.slice();  // float64 views need alignment
    const words = bytes.length >> 3;
    const u32 = new Uint32Array(bytes.buffer, bytes.byteOffset, 2 * words);
    const f64 = new Float64Array(bytes.buffer, bytes.byteOffset, words);
    const T = series._crcTables(), sets = new Map(), rows = [], lens = [];
    const intact = (w, end) => {  // the frame in words [w, end): its last u32 is the CRC
      let c = -1;
      for (let i = 2 * w, e = 2 * end - 1; i < e; i++) {
        c ^= u32[i];
        c = T[768 + (c & 255)] ^ T[512 + ((c >>> 8) & 255)] ^ T[256 + ((c >>> 16) & 255)] ^ T[c >>> 24];
      }
      return ((c ^ -1) >>> 0) === u32[2 * end - 1];
    };
    let w = 0, last = -1, lastSet = null;
    while (w < words) {
      const tag = bytes[8 * w];
      let end;
      if (tag === 82) {  // "R"
        const id = u32[2 * w + 1];
        const set = id === last ? lastSet : sets.get(id);
        if (set === undefined) break;  // a row before its keys: not progress()'s
        end = w + 3 + set.keys.length;
        if (end > words) break;
        let c = -1;  // the CRC, inline: this loop runs once a row
        for (let i = 2 * w, e = 2 * end - 1; i < e; i++) {
          c ^= u32[i];
          c = T[768 + (c & 255)] ^ T[512 + ((c >>> 8) & 255)] ^ T[256 + ((c >>> 16) & 255)] ^ T[c >>> 24];
        }
        if (((c ^ -1) >>> 0) !== u32[2 * end - 1]) break;
        last = id; lastSet = set;
        rows.push(w); lens.push(u32[2 * end - 2]);
      } else if (tag === 75) {  // "K"
        const length = u32[2 * w] >>> 16;
        end = w + 2 + (length >> 3);
        if (length % 8 || end > words || !intact(w, end)) break;
        let keys;
        try { keys = JSON.parse(new TextDecoder().decode(bytes.subarray(8 * w + 8, 8 * w + 8 + length))); } catch (e) { break; }
        if (!Array.isArray(keys)) break;
        const id = u32[2 * w + 1];
        if (!sets.has(id)) sets.set(id, {keys: keys.map(String), cols: null});
      } else break;
      w = end;
    }
    let covered = 0, order = null, i = 0;
    for (; i < rows.length && f64[rows[i] + 1] === covered; i++) covered += lens[i];
    if (i < rows.length) {  // several processes wrote out of order, or a line has no row
      const idx = rows.map((_, j) => j).sort((a, b) => f64[rows[a] + 1] - f64[rows[b] + 1]);
      covered = 0; order = [];
      for (const j of idx) {
        if (f64[rows[j] + 1] !== covered) break;
        order.push(rows[j]); covered += lens[j];
      }
    }
    const kept = order || rows, n = kept.length, c = {n, cap: n, cols: new Map(), covered};
    for (const set of sets.values()) {
      set.cols = set.keys.map(k => {
        if (!c.cols.has(k)) c.cols.set(k, new Float64Array(n).fill(NaN));
        return c.cols.get(k);
      });
    }
    last = -1;
    for (let r = 0; r < n; r++) {
      const p = kept[r], id = u32[2 * p + 1];
      if (id !== last) { last = id; lastSet = sets.get(id).cols; }
      for (let j = 0; j < lastSet.length; j++) lastSet[j][r] = f64[p + 2 + j];
    }
    return c;
  },

  // CRC-32 (zlib's) tables for four bytes at a time: T[256 * k + n].
  _crcTables() {
    if (!series._crc) {
      const T = series._crc = new Int32Array(1024);
      for (let n = 0; n < 256; n++) {
        let c = n;
        for (let k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320 ^ (c >>> 1) : c >>> 1;
        T[n] = c;
      }
      for (let n = 0; n < 256; n++) for (let k = 1; k < 4; k++) T[256 * k + n] = (T[256 * (k - 1) + n] >>> 8) ^ T[T[256 * (k - 1) + n] & 255];
    }
    return series._crc;
  },

  // Byte arrays as one (a new buffer, starting at its byte 0: float64 views need alignment).
  _joined(parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  },

  // Columns that grow: {n, cols: Map(key -> Float64Array, NaN-filled beyond what is known)}.
  columns() { return {n: 0, cap: 0, cols: new Map()}; },

  append(c, records) {
    const need = c.n + records.length;
    if (need > c.cap) {
      const cap = Math.max(1024, need, 2 * c.cap);
      for (const [k, old] of c.cols) c.cols.set(k, series._grown(old, cap));
      c.cap = cap;
    }
    for (let j = 0; j < records.length; j++) {
      const r = records[j], i = c.n + j;
      for (const k in r) {
        let col = c.cols.get(k);
        if (col === undefined) { col = new Float64Array(c.cap).fill(NaN); c.cols.set(k, col); }
        const v = r[k];
        col[i] = typeof v === "number" ? v : NaN;
      }
    }
    c.n = need;
  },

  // Columns the server sent parsed: `n` little-endian float64 per key from byte `off` of `buf`.
  fromBuffer(buf, off, n, keys) {
    const c = {n, cap: n, cols: new Map()};
    for (const k of keys) { c.cols.set(k, new Float64Array(buf, off, n)); off += 8 * n; }
    return c;
  },

  _grown(old, cap) {
    const col = new Float64Array(cap).fill(NaN, old.length);
    col.set(old);
    return col;
  },

  // One curve: the points with a number for both x and y, in x order (a resumed run repeats
  // steps: those keep their file order), as {x, y} Float64Arrays.
  curve(c, xKey, yKey) {
    const xs = c.cols.get(xKey), ys = c.cols.get(yKey);
    if (xs && ys && series._plain(xs, ys, c.n)) return {x: xs.subarray(0, c.n), y: ys.subarray(0, c.n)};
    const idx = [];
    if (xs && ys) for (let i = 0; i < c.n; i++) if (Number.isFinite(ys[i]) && Number.isFinite(xs[i])) idx.push(i);
    let sorted = true;
    for (let j = 1; j < idx.length; j++) if (xs[idx[j]] < xs[idx[j - 1]]) { sorted = false; break; }
    if (!sorted) idx.sort((a, b) => (xs[a] - xs[b]) || (a - b));
    const x = new Float64Array(idx.length), y = new Float64Array(idx.length);
    for (let j = 0; j < idx.length; j++) { x[j] = xs[idx[j]]; y[j] = ys[idx[j]]; }
    return {x, y};
  },

  // Whether the first n points all have numbers and come in x order (the usual file).
  _plain(xs, ys, n) {
    let prev = -Infinity;
    for (let i = 0; i < n; i++) {
      const x = xs[i];
      if (!(x >= prev) || !Number.isFinite(x) || !Number.isFinite(ys[i])) return false;
      prev = x;
    }
    return true;
  },

  // First index with x[i] >= v (x sorted).
  _lower(x, v) {
    let lo = 0, hi = x.length;
    while (lo < hi) { const m = (lo + hi) >> 1; if (x[m] < v) lo = m + 1; else hi = m; }
    return lo;
  },

  // What a plot `px` pixels wide shows of `cv` for x in [lo, hi]: every point when there are at
  // most POINTS_PER_PX per pixel, else per pixel column its first, lowest, highest and last
  // point in their order. One point beyond each end is kept, so the line reaches the frame.
  // Returns uPlot's [xs, ys].
  view(cv, lo, hi, px) {
    const n = cv.x.length, x = cv.x, y = cv.y;
    const a = Math.max(0, series._lower(x, lo) - 1);
    let b = series._lower(x, hi);
    while (b < n && x[b] <= hi) b++;
    b = Math.min(n, b + 1);
    const xs = [], ys = [];
    const buckets = Math.max(1, Math.floor(px));
    const width = (hi - lo) / buckets;
    if (b - a <= series.POINTS_PER_PX * buckets || !(width > 0) || !Number.isFinite(width)) {
      for (let i = a; i < b; i++) { xs.push(x[i]); ys.push(y[i]); }
      return [xs, ys];
    }
    const bucket = v => Math.min(buckets - 1, Math.max(0, Math.floor((v - lo) / width)));
    let i = a;
    while (i < b) {  // x is sorted: a pixel column's points are found by bisection
      const k = bucket(x[i]);
      let lo2 = i + 1, hi2 = b;
      while (lo2 < hi2) { const m = (lo2 + hi2) >> 1; if (bucket(x[m]) <= k) lo2 = m + 1; else hi2 = m; }
      let mn = i, mx = i, ymn = y[i], ymx = y[i];
      for (let j = i + 1; j < lo2; j++) {
        const v = y[j];
        if (v < ymn) { ymn = v; mn = j; } else if (v > ymx) { ymx = v; mx = j; }
      }
      const last = lo2 - 1, first = Math.min(mn, mx), second = Math.max(mn, mx);
      xs.push(x[i]); ys.push(y[i]);
      if (first > i) { xs.push(x[first]); ys.push(y[first]); }
      if (second > first && second > i) { xs.push(x[second]); ys.push(y[second]); }
      if (last > second && last > i) { xs.push(x[last]); ys.push(y[last]); }
      i = lo2;
    }
    return [xs, ys];
  },
};

// As a worker (runfirst.js starts one as a run page opens): read the progress reply at the URL
// posted, parse it here, off the page's thread, and post the columns back, their buffers moved
// (not copied); {error} when the reply or its parse fails.
if (typeof document === "undefined" && typeof importScripts === "function") {
  self.onmessage = async e => {
    try {
      const r = await fetch(e.data.url, {credentials: "same-origin"});
      const begun = performance.timeOrigin + performance.now();  // the reply's head has come
      if (!r.ok) {
        let why = r.statusText;
        try { why = (await r.json()).error || why; } catch (e2) { /* not JSON */ }
        throw new Error(why);
      }
      let named = false;  // the keys of the first records, told at once: the page makes its charts
      const read = await series.readFrame(r.body, () => series.columns(), c => {
        if (!named && c.n) { named = true; self.postMessage({keys: [...c.cols.keys()]}); }
      });
      const c = read.cols, keys = [...c.cols.keys()], arrays = keys.map(k => c.cols.get(k));
      const moved = [...new Set(arrays.map(a => a.buffer))];
      const timing = {start: begun, end: performance.timeOrigin + performance.now()};
      self.postMessage({head: read.head, end: read.end, n: c.n, cap: c.cap, keys, arrays, timing}, moved);
    } catch (err) {
      self.postMessage({error: String(err && err.message ? err.message : err)});
    }
  };
}
