// The citizen audit page (docs/design.md, "Explorer and audit page" and "Citizen audit").
//
// The citizen chooses their key file (the `govchain keys generate` format, node/core/keys.py) and
// enters their subject tag. The file is read here and its seed imported into WebCrypto as a
// non-extractable Ed25519 key; the seed is then overwritten and nothing of the key but its public
// half ever leaves the browser. Each request is signed here exactly as node/services/audit.py
// request_digest says and POSTed to /api/audit, which hands it to the node's Audit service.
// Every entry is then checked here, as `govchain audit verify` checks an audit file
// (node/tools/audit_cli.py entry_problem): its inclusion proof and commit certificate against
// the authz chain's genesis validators (verify.js), and that the proven transaction is the
// authz.log_access that says what the entry says. A failed check shows red, with the reason.
import { be, bytesToHex, concat, hexToBytes, sha256, verifyInclusionProof } from "./verify.js";
import { api, el, hash, show, table, time } from "./ui.js";

const KEY_HEADER = "# govchain ed25519 private key v1 -- keep secret, mode 0600";
const PUBLIC_PREFIX = "# public_key ";
const REQUEST_DOMAIN = new TextEncoder().encode("govchain:v1:audit-request:");
const PKCS8_ED25519 = hexToBytes("302e020100300506032b657004220420"); // RFC 8410 PrivateKeyInfo, then the seed
const DECISION = { PERMIT: "允许 · PERMIT", DENY: "拒绝 · DENY" };
// The entry's legal basis (node/contracts/authz.py _basis): the citizen's consent, a standing agreement
// between the two departments, or nothing (a refused request may cite none).
const BASIS = { consent: "您的同意 · your consent", agreement: "部门间常设协议 · standing agreement between the departments" };

function basisText(basis) {
  if (!basis || typeof basis !== "object") return "—";
  const [kind, id] = Object.entries(basis)[0] || [];
  return `${BASIS[kind] || String(kind)} ${String(id)}`;
}
const AUTHZ = "authz";

let session = null; // {key: CryptoKey (non-extractable), publicHex, tag, genesis}

class KeyFileError extends Error {}

// node/core/keys.py _parse: the header, an optional "# public_key" line, exactly one 32-byte seed in hex.
export function parseKeyFile(text) {
  const lines = text.split(/\r?\n/).map((l) => l.trim());
  if (lines[0] !== KEY_HEADER) throw new KeyFileError(`不是 govchain 密钥文件 · not a govchain key file (first line must be '${KEY_HEADER}')`);
  let publicHex = null;
  const secrets = [];
  for (const line of lines.slice(1)) {
    if (!line) continue;
    if (line.startsWith(PUBLIC_PREFIX)) publicHex = line.slice(PUBLIC_PREFIX.length).trim().toLowerCase();
    else if (!line.startsWith("#")) secrets.push(line);
  }
  if (secrets.length !== 1) throw new KeyFileError(`key file must contain exactly one key line (found ${secrets.length})`);
  if (!/^[0-9a-fA-F]{64}$/.test(secrets[0])) throw new KeyFileError("key line must be 64 hex characters (32 bytes)");
  return { seed: hexToBytes(secrets[0].toLowerCase()), publicHex };
}

const b64url = (bytes) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const fromB64url = (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));

// The seed as a non-extractable signing key and its public key; the seed's bytes are overwritten.
async function importSeed(seed, expectedPublicHex) {
  const der = concat(PKCS8_ED25519, seed);
  try {
    const probe = await crypto.subtle.importKey("pkcs8", der, { name: "Ed25519" }, true, ["sign"]);
    const jwk = await crypto.subtle.exportKey("jwk", probe);
    const publicHex = bytesToHex(fromB64url(jwk.x));
    if (expectedPublicHex !== null && expectedPublicHex !== publicHex) {
      throw new KeyFileError("the '# public_key' line does not match the private key (file edited or corrupted)");
    }
    const key = await crypto.subtle.importKey("jwk", { kty: "OKP", crv: "Ed25519", d: jwk.d, x: jwk.x },
      { name: "Ed25519" }, false, ["sign"]);
    jwk.d = "";
    return { key, publicHex };
  } finally {
    seed.fill(0);
    der.fill(0);
  }
}

// node/services/audit.py request_digest and signed_request, in hex for POST /api/audit.
async function signedRequest(after) {
  const nonce = crypto.getRandomValues(new Uint8Array(16));
  const timeMs = Date.now();
  const digest = await sha256(REQUEST_DOMAIN, hexToBytes(session.tag), be(timeMs, 8), Uint8Array.of(nonce.length), nonce);
  const signature = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, session.key, digest));
  return { tag: session.tag, time_ms: timeMs, nonce: bytesToHex(nonce), key: session.publicHex,
    signature: bytesToHex(signature), ...(after ? { after } : {}) };
}

// Canonical JSON (sorted keys) for comparing what the entry says with what the proof proves.
function canonical(v) {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (v !== null && typeof v === "object") return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(",")}}`;
  return JSON.stringify(v ?? null);
}

// node/tools/audit_cli.py entry_problem: "" when the proof holds and proves this entry.
export async function entryProblem(entry, proof, genesis) {
  const v = await verifyInclusionProof(proof, genesis);
  if (!v.ok) return [v.problem, v];
  const tx = v.transaction;
  if (tx.contract !== "authz" || tx.method !== "log_access") {
    return [`the proven transaction is ${tx.contract}.${tx.method}, not an access log entry (authz.log_access)`, v];
  }
  let payload;
  try { payload = JSON.parse(tx.payload); } catch (e) { return ["the proven transaction's payload is not JSON", v]; }
  const said = { ...payload, fields: Array.isArray(payload.fields) && payload.fields.length ? [...payload.fields].sort() : payload.fields,
    reason: payload.reason || null, provider_key: tx.sender, tx_id: tx.id, height: v.height, index: v.index,
    time_ms: proof.header.timestamp_ms };
  const differ = Object.keys(said).sort().filter((k) => canonical(entry[k]) !== canonical(said[k]));
  return [differ.length ? `the entry's ${differ.join(", ")} differ from the proven transaction's (altered entry)` : "", v];
}

async function entryRow(item, genesis) {
  const { entry, proof } = item;
  let problem, v;
  try {
    [problem, v] = await entryProblem(entry, proof, genesis);
  } catch (e) {
    [problem, v] = [`malformed entry: ${e.message}`, {}];
  }
  const verdict = problem
    ? el("span", { class: "verdict-cell bad" }, el("strong", {}, "✗ 验证失败 · FAILED: "), problem)
    : el("span", { class: "verdict-cell ok" }, el("strong", {}, "✓ 已验证 · Verified"),
      ` — 区块 ${v.height}，验证节点签名确认 · block ${v.height}, certified by the genesis validators`);
  const what = entry.predicate ? "是/否核验 · yes/no check" : (entry.fields || []).join(", ");
  const decision = (DECISION[entry.decision] || String(entry.decision)) + (entry.reason ? ` (${entry.reason})` : "");
  const row = el("tr", { "data-verdict": problem ? "failed" : "ok", "data-tx": String(entry.tx_id) },
    [time(entry.time_ms), entry.requester, entry.provider, entry.item, what, entry.purpose, basisText(entry.basis),
      decision, verdict]
      .map((c) => el("td", {}, c)));
  return [row, !problem];
}

function signInForm() {
  const form = el("form", { id: "audit-sign-in", "aria-describedby": "audit-privacy" },
    el("p", {}, el("label", { for: "audit-tag" }, "主体标识 · Subject tag"), " ",
      el("input", { id: "audit-tag", name: "tag", size: 66, required: true, pattern: "[0-9a-f]{64}", autocomplete: "off",
        spellcheck: "false", placeholder: "64 位十六进制 · 64 hex characters", "aria-describedby": "audit-tag-help" })),
    el("p", { id: "audit-tag-help", class: "note" }, "办理认证时窗口提供的标识。 · The tag the service window gave you when you were authenticated."),
    el("p", {}, el("label", { for: "audit-key" }, "应用密钥文件 · App key file"), " ",
      el("input", { id: "audit-key", name: "key", type: "file", required: true })),
    el("p", {}, el("button", { type: "submit" }, "查看我的数据使用记录 · Show who used my data")),
    el("p", { id: "audit-privacy", class: "note" }, "密钥只在本浏览器中读取和签名，不会发送出去。 · Your key is read and used for signing in this browser only; it is never sent."));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    await signIn(form);
  });
  return form;
}

function alertBox(message) {
  return el("p", { id: "audit-error", class: "error", role: "alert" }, message);
}

async function signIn(form) {
  const tag = document.getElementById("audit-tag").value.trim().toLowerCase();
  const file = document.getElementById("audit-key").files[0];
  document.getElementById("audit-error")?.remove();
  try {
    if (!/^[0-9a-f]{64}$/.test(tag)) throw new KeyFileError("主体标识应为 64 位十六进制 · the subject tag is 64 hex characters");
    if (!file) throw new KeyFileError("请选择密钥文件 · choose your key file");
    if (file.size > 4096) throw new KeyFileError("not a govchain key file (larger than 4096 bytes)");
    const { seed, publicHex } = parseKeyFile(await file.text());
    const { key, publicHex: actual } = await importSeed(seed, publicHex);
    const all = await api("chains");
    const chain = all.chains.find((c) => c.chain_id === AUTHZ);
    if (!chain) throw new Error("本节点没有运行授权链 · this node does not run the authz chain");
    session = { key, publicHex: actual, tag, genesis: { chain_id: chain.chain_id, genesis_hash: chain.genesis_hash, validators: chain.validators } };
  } catch (e) {
    form.after(alertBox(e instanceof KeyFileError ? e.message : `出错了 · Something went wrong: ${e.message}`));
    return;
  } finally {
    document.getElementById("audit-key").value = "";
  }
  await listPage(null);
}

async function listPage(after) {
  const results = document.getElementById("audit-results") || el("section", { id: "audit-results", "aria-live": "polite" });
  if (!after) {
    show("我的数据使用记录 · Who used my data", el("p", {}, `主体标识 · Subject tag: `, hash(session.tag)),
      el("p", {}, el("button", { type: "button", id: "audit-sign-out" }, "退出 · Sign out")), results);
    document.getElementById("audit-sign-out").addEventListener("click", () => { session = null; auditView(); });
  }
  document.getElementById("audit-more")?.remove();
  let page;
  try {
    page = await api("audit", await signedRequest(after));
  } catch (e) {
    results.append(alertBox(`节点拒绝了请求 · The node refused: ${e.message}`));
    return;
  }
  let tbody = document.querySelector("#audit-entries tbody");
  if (!tbody) {
    const t = table("每一次对我数据的访问 · Every access to my data",
      ["时间 · Time", "查询部门 · Requester", "提供部门 · Provider", "数据项 · Item", "字段 · Fields", "用途 · Purpose",
        "依据 · Basis", "结果 · Decision", "本浏览器验证 · Checked in this browser"], [], { id: "audit-entries" });
    results.append(el("p", { id: "audit-summary", role: "status" }), t,
      el("p", { class: "note" }, `授权链创世哈希 · Genesis hash of the authz chain: `, hash(session.genesis.genesis_hash),
        " — 请与主管部门公布的值核对。 · Compare it with the value the departments publish."));
    tbody = t.querySelector("tbody");
  }
  for (const item of page.entries) tbody.append((await entryRow(item, session.genesis))[0]);
  const rows = [...tbody.querySelectorAll("tr")];
  const failed = rows.filter((r) => r.dataset.verdict === "failed").length;
  const summary = document.getElementById("audit-summary");
  summary.className = failed ? "verdict bad" : "verdict ok";
  summary.dataset.verdict = failed ? "failed" : "ok";
  summary.textContent = rows.length === 0 ? "没有访问记录。 · No one has accessed your data."
    : failed ? `✗ ${rows.length} 条记录中 ${failed} 条验证失败：不要相信这些记录。 · ${failed} of ${rows.length} records FAILED verification: do not trust them.`
      : `✓ ${rows.length} 条记录全部在本浏览器中验证通过（截至授权链高度 ${page.height}）。 · All ${rows.length} records verified in this browser (authz chain height ${page.height}).`;
  if (page.more) {
    const more = el("button", { type: "button", id: "audit-more" }, "更多记录 · More records");
    more.addEventListener("click", () => listPage(page.next));
    results.append(more);
  }
}

export function auditView() {
  if (session) return listPage(null);
  show("我的数据使用记录 · Who used my data",
    el("p", {}, "用您的应用密钥登录，查看哪些部门在何时、为何用途查询了您的数据。每条记录都在本浏览器中对照区块链验证。 · Sign in with your app key to see which departments asked about your data, when and why. Each record is checked against the blockchain in this browser."),
    signInForm());
  return undefined;
}
