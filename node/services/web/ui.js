// Helpers shared by the explorer (app.js) and the citizen audit page (audit.js): elements built from
// text only (textContent, never HTML), tables, the JSON API (docs/design.md, "Explorer and audit page").

export const main = document.getElementById("content");

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v; else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export const link = (href, text, attrs = {}) => el("a", { href, ...attrs }, text);
export const short = (hex) => (hex && hex.length > 16 ? `${hex.slice(0, 16)}…` : hex || "—");
export const hash = (hex) => el("code", { class: "hash", title: hex }, hex || "—");
export const time = (ms) => (ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "—");

export function table(caption, headers, rows, attrs = {}) {
  return el("table", attrs, el("caption", {}, caption),
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c) => el("td", {}, c))))));
}

export function fields(pairs) {
  return el("dl", {}, pairs.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

// GET /api/<path>, or POST `post` as JSON; the answer's JSON, or an Error with the API's message.
export async function api(path, post) {
  const response = await fetch(`/api/${path}`, post === undefined ? { headers: { Accept: "application/json" } }
    : { method: "POST", headers: { Accept: "application/json", "Content-Type": "application/json" }, body: JSON.stringify(post) });
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

export function show(title, ...content) {
  document.title = `${title} · 政务链浏览器 govchain explorer`;
  main.replaceChildren(el("h1", {}, title), ...content.filter((c) => c !== null && c !== undefined));
}

