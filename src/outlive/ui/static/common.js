// Shared helpers. Every value from the server goes into the page as text (textContent),
// never as markup: run names, log lines and evidence are hostile input.
"use strict";
const ui = {
  el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === "text") node.textContent = v;
      else if (k === "class") node.className = v;
      else if (k.startsWith("data-")) node.setAttribute(k, v);
      else if (k === "href") node.setAttribute("href", v);
      else if (k === "title") node.title = v;
      else node[k] = v;
    }
    for (const c of children) node.append(c);
    return node;
  },
  age(s) {
    if (s === null || s === undefined) return "—";
    if (s < 60) return s.toFixed(0) + " s";
    if (s < 3600) return (s / 60).toFixed(0) + " min";
    if (s < 86400) return (s / 3600).toFixed(1) + " h";
    return (s / 86400).toFixed(1) + " d";
  },
  bytes(n) {
    if (n === null || n === undefined) return "—";
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + " " + u[i];
  },
  time(t) { return t ? new Date(t * 1000).toLocaleString() : "—"; },
  runHref(id) { return "/run/" + encodeURIComponent(id); },
  gotchaLink(id) {
    return ui.el("a", {href: "/gotcha/" + encodeURIComponent(id), class: "gotcha", text: id});
  },
  csrf() { return document.querySelector('meta[name="csrf"]').content; },
  async get(path) {
    const r = await fetch(path, {credentials: "same-origin"});
    const doc = await r.json();
    if (!r.ok) throw new Error(doc.error || r.statusText);
    return doc;
  },
  async post(path, body) {
    const r = await fetch(path, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-Outlive-Csrf": ui.csrf()},
      body: JSON.stringify(body),
    });
    const doc = await r.json();
    if (!r.ok) throw new Error(doc.error || r.statusText);
    return doc;
  },
  progressText(p) {
    if (!p || typeof p !== "object") return "—";
    const parts = [];
    if (p.step !== undefined) parts.push("step " + p.step);
    for (const [k, v] of Object.entries(p)) {
      if (k === "step" || k === "ts") continue;
      parts.push(k + " " + (typeof v === "number" ? +v.toPrecision(4) : String(v)));
      if (parts.length >= 4) break;
    }
    return parts.join(" · ");
  },
  stateCell(run) {
    const span = ui.el("span", {class: "state state-" + String(run.state), text: String(run.state)});
    if (run.stale) span.append(ui.el("span", {class: "stale", text: " stale", title: run.unreachable || "unreachable"}));
    return span;
  },
  diagnosis(d) {
    const box = ui.el("span", {class: "diagnosis"});
    if (!d) { box.textContent = "—"; return box; }
    box.append(ui.el("b", {text: String(d.cause)}));
    if (d.evidence && d.evidence.length) box.title = d.evidence.join("\n");
    for (const g of d.gotchas || []) { box.append(" "); box.append(ui.gotchaLink(String(g))); }
    return box;
  },
};
