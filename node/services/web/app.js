// The explorer page: hash routes over the node's read-only JSON API
// (node/services/explorer.py; docs/design.md, "Explorer and audit page").
// Every value from the API reaches the page as text (textContent), never as HTML.
import { verifyInclusionProof } from "./verify.js";
import { api, el, fields, hash, link, main, short, show, table, time } from "./ui.js";
import { auditView } from "./audit.js";

let chainsCache = null;

const STATUS = { OK: "成功 · OK", FAILED: "失败 · FAILED", DUPLICATE: "重复 · DUPLICATE" };
const ROLES = { governance: "治理 governance", provider: "数据提供 provider", requester: "查询 requester",
  identity: "身份认证 identity", issuer: "发证 issuer", window: "窗口 window" };

const status = (s) => el("span", { class: `status-${s}` }, STATUS[s] || s || "—");

async function chains() {
  chainsCache = chainsCache || await api("chains");
  return chainsCache;
}

// ---- views ------------------------------------------------------------------------------------

async function overview() {
  chainsCache = await api("chains");
  const rows = chainsCache.chains.map((c) => [
    link(`#/chain/${encodeURIComponent(c.chain_id)}`, c.chain_id), String(c.height), String(c.view),
    c.primary_department, c.contracts.map((k) => `${k.name} v${k.version}`).join(", "),
  ]);
  show(`节点 ${chainsCache.department} · Node ${chainsCache.department}`,
    el("p", {}, "本节点参与的链及其当前高度。点击链名查看区块。 · The chains this node takes part in and their height. Choose a chain to see its blocks."),
    table("链 · Chains", ["链 · Chain", "高度 · Height", "视图 · View", "主节点部门 · Primary", "合约 · Contracts"], rows, { id: "chains" }));
}

async function chainView(chainId, before) {
  const page = await api(`chains/${encodeURIComponent(chainId)}/blocks${before ? `?before=${before}` : ""}`);
  const base = `#/chain/${encodeURIComponent(chainId)}`;
  const rows = page.blocks.map((b) => [
    link(`${base}/block/${b.height}`, String(b.height), { "aria-label": `区块 ${b.height} · Block ${b.height}` }),
    hash(short(b.hash)), time(b.timestamp_ms), String(b.txs), b.proposer_department,
    b.certificate.signer_departments.join(", "),
  ]);
  show(`链 ${chainId} · Chain ${chainId}`,
    el("p", {}, `当前高度 · Height: ${page.height}`),
    rows.length ? table("区块（最新在前） · Blocks (newest first)",
      ["高度 · Height", "区块哈希 · Block hash", "时间 · Time", "交易数 · Transactions", "出块部门 · Proposed by",
        "签名部门（提交证书） · Signed by (commit certificate)"], rows, { id: "blocks" })
      : el("p", { class: "note" }, "还没有区块。 · No blocks yet."),
    page.next_before ? el("p", {}, link(`${base}/before/${page.next_before}`, "更早的区块 · Older blocks")) : null);
}

async function blockView(chainId, height, offset = 0) {
  const b = await api(`chains/${encodeURIComponent(chainId)}/blocks/${height}?offset=${offset}`);
  const base = `#/chain/${encodeURIComponent(chainId)}`;
  const cert = b.certificate;
  const txRows = b.txs.map((t) => [String(t.index), link(`${base}/tx/${t.id}`, short(t.id), { "aria-label": `交易 · Transaction ${t.id}` }),
    `${t.contract}.${t.method}`, hash(short(t.sender)), status(t.status)]);
  const next = b.offset + b.txs.length;
  show(`区块 ${b.height} · Block ${b.height}`,
    el("p", {}, link(base, `← 链 ${chainId} 的区块 · Blocks of chain ${chainId}`)),
    fields([["链 · Chain", b.chain_id], ["高度 · Height", String(b.height)], ["区块哈希 · Block hash", hash(b.hash)],
      ["上一区块 · Parent hash", b.height > 1 ? link(`${base}/block/${b.height - 1}`, short(b.parent_hash)) : hash(b.parent_hash)],
      ["时间 · Time", time(b.timestamp_ms)], ["出块部门 · Proposed by", `${b.proposer_department} (#${b.proposer})`],
      ["交易默克尔根 · Transactions root", hash(b.tx_root)], ["状态根 · State root", hash(b.state_root)],
      ["交易数 · Transactions", String(b.tx_count)]]),
    el("h2", {}, "提交证书 · Commit certificate"),
    el("p", {}, `${cert.commits.length} 个验证节点签名（至少需要 ${cert.quorum} 个）。 · ${cert.commits.length} validators signed (${cert.quorum} needed).`),
    fields([["视图 · View", String(cert.view)], ["序号 · Sequence", String(cert.seq)], ["提案摘要 · Proposal digest", hash(cert.digest)],
      ["链接 · Link", hash(cert.link)]]),
    table("签名 · Signatures", ["验证节点 · Validator", "部门 · Department", "签名 · Signature"],
      cert.commits.map((c) => [String(c.replica), c.department, hash(short(c.signature))]), { id: "commits" }),
    el("h2", {}, "交易 · Transactions"),
    b.txs.length ? table(`交易 ${b.offset + 1}–${next} / ${b.tx_count} · Transactions ${b.offset + 1}–${next} of ${b.tx_count}`,
      ["序号 · Index", "交易编号 · Transaction ID", "合约.方法 · Contract.method", "发送方公钥 · Sender key", "结果 · Result"], txRows, { id: "txs" })
      : el("p", { class: "note" }, "本区块没有交易。 · No transactions in this block."),
    next < b.tx_count ? el("p", {}, link(`${base}/block/${b.height}/from/${next}`, "更多交易 · More transactions")) : null);
}

async function txView(chainId, txId) {
  const { tx, receipt } = await api(`chains/${encodeURIComponent(chainId)}/txs/${txId}`);
  const base = `#/chain/${encodeURIComponent(chainId)}`;
  const verdict = el("div", { id: "verdict", class: "verdict pending", role: "status" }, "正在本浏览器中验证… · Verifying in this browser…");
  show("交易 · Transaction",
    fields([["交易编号 · Transaction ID", hash(tx.id)], ["链 · Chain", tx.chain_id], ["发送方公钥 · Sender key", hash(tx.sender)],
      ["序号 · Nonce", String(tx.nonce)], ["合约.方法 · Contract.method", `${tx.contract}.${tx.method}`],
      ["内容 · Payload", el("pre", {}, tx.payload ?? tx.payload_hex)]]),
    el("h2", {}, "回执 · Receipt"),
    el("dl", { id: "receipt" }, [["结果 · Result", status(receipt.status)],
      ["区块 · Block", link(`${base}/block/${receipt.height}`, String(receipt.height))], ["区块内序号 · Index", String(receipt.index)],
      ["说明 · Message", receipt.message || "—"], ["输出 · Output", receipt.output || "—"]]
      .map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
    el("h2", {}, "包含证明 · Inclusion proof"),
    el("p", {}, "本浏览器自己检查：交易在区块中（默克尔证明），且区块由创世文件中的验证节点签名确认。 · This browser checks for itself that the transaction is in the block (Merkle proof) and that the genesis validators signed the block."),
    verdict);
  await checkProof(chainId, txId, verdict);
}

// Verifies the node's proof of `txId` against the genesis the node names, and says so in `box`.
export async function checkProof(chainId, txId, box) {
  const all = await chains();
  const chain = all.chains.find((c) => c.chain_id === chainId);
  const genesis = { chain_id: chain.chain_id, genesis_hash: chain.genesis_hash, validators: chain.validators };
  let v;
  try {
    v = await verifyInclusionProof(await api(`chains/${encodeURIComponent(chainId)}/txs/${txId}/proof`), genesis);
  } catch (e) {
    v = { ok: false, problem: e.message };
  }
  box.className = `verdict ${v.ok ? "ok" : "bad"}`;
  box.dataset.verdict = v.ok ? "ok" : "failed";
  box.replaceChildren(v.ok
    ? el("p", {}, el("strong", {}, "✓ 已验证 · Verified. "),
      `交易在链 ${v.chain_id} 的区块 ${v.height} 中，由创世验证节点签名确认。 · The transaction is in block ${v.height} of chain ${v.chain_id}, certified by the genesis validators.`)
    : el("p", {}, el("strong", {}, "✗ 验证失败 · Verification FAILED. "), v.problem),
  el("p", { class: "note" }, `创世哈希 · Genesis hash: `, hash(chain.genesis_hash),
    " — 请与主管部门公布的值核对。 · Compare it with the value the departments publish."));
}

const AGREEMENT_STATUS = { proposed: "待接受 · proposed", active: "有效 · active", revoked: "已撤销 · revoked" };

// Standing agreements: who may ask whom without the citizen's consent (every access is still logged).
function agreementsTable(page) {
  const list = page.result.agreements;
  if (!list.length) return el("p", { class: "note" }, "还没有部门间常设协议。 · No standing agreements between departments yet.");
  return el("div", {},
    table("部门间常设协议 · Standing agreements (no consent per query)", ["协议 · Agreement", "提供部门 · Provider",
      "查询部门 · Requester", "数据项 · Items", "状态 · Status", "自目录高度 · Since height"],
      list.map((a) => [hash(a.id), a.provider, a.requester, a.items.join(", "), AGREEMENT_STATUS[a.status] || a.status,
        String(a.since)]), { id: "agreements" }),
    page.result.more ? el("p", {}, link(`#/catalog/agreements/after/${list[list.length - 1].id}`, "更多协议 · More agreements")) : null);
}

async function catalogView(after, agreementsAfter) {
  const [depts, items, agreements] = await Promise.all([api("catalog/departments"),
    api(`catalog/items${after ? `?after=${encodeURIComponent(after)}` : ""}`),
    api(`catalog/agreements${agreementsAfter ? `?after=${encodeURIComponent(agreementsAfter)}` : ""}`)]);
  const list = items.result.items;
  show("部门与数据目录 · Departments and catalog",
    el("p", {}, `目录链 ${depts.chain_id}，高度 ${depts.height}。 · Catalog chain ${depts.chain_id}, at height ${depts.height}.`),
    table("部门 · Departments", ["编号 · ID", "名称 · Name", "验证节点 · Validator", "职能 · Roles"],
      depts.result.departments.map((d) => [d.id, d.name, d.validator ? "是 · yes" : "否 · no",
        d.roles.map((r) => ROLES[r] || r).join(", ")]), { id: "departments" }),
    list.length ? table("数据目录 · Catalog items", ["事项 · Item", "提供部门 · Provided by", "字段 · Fields",
      "答复方式 · Answers", "需本人同意 · Consent needed", "状态 · Status"],
      list.map((i) => [i.item_id, i.department, i.fields.join(", "), i.answer_modes.join(", "),
        i.consent_required ? "是 · yes" : "否 · no", i.status === "active" ? "有效 · active" : "已停用 · retired"]), { id: "items" })
      : el("p", { class: "note" }, "目录中还没有数据项。 · No catalog items yet."),
    items.result.more ? el("p", {}, link(`#/catalog/after/${encodeURIComponent(list[list.length - 1].item_id)}`, "更多 · More")) : null,
    agreementsTable(agreements));
}

async function itemsView(after) {
  const items = await api(`items${after ? `?after=${encodeURIComponent(after)}` : ""}`);
  if (!items.available) {
    show("服务事项与办件 · Service items and cases",
      el("p", { class: "note" }, "本节点没有运行服务事项链。 · This node runs no service item chain."));
    return;
  }
  const list = items.result.items;
  const caseForm = el("form", { id: "find-case", role: "search", "aria-label": "查找办件 · Find a case" },
    el("label", { for: "case-id" }, "办件编号 · Case ID "), el("input", { id: "case-id", autocomplete: "off" }),
    " ", el("button", { type: "submit" }, "查找 · Find"));
  caseForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const id = document.getElementById("case-id").value.trim();
    if (id) location.hash = `#/case/${encodeURIComponent(id)}`;
  });
  show("服务事项与办件 · Service items and cases",
    el("p", {}, `事项链 ${items.chain_id}，高度 ${items.height}。 · Item chain ${items.chain_id}, at height ${items.height}.`),
    list.length ? table("服务事项 · Service items", ["事项 · Item", "名称 · Title", "主管部门 · Department", "自动审批 · Auto-approve", "状态 · Status"],
      list.map((i) => [i.item_id, i.title, i.department, i.auto_approve ? "是 · yes" : "否 · no",
        i.status === "active" ? "有效 · active" : "已停用 · retired"]), { id: "service-items" })
      : el("p", { class: "note" }, "还没有服务事项。 · No service items yet."),
    items.result.more ? el("p", {}, link(`#/items/after/${encodeURIComponent(list[list.length - 1].item_id)}`, "更多 · More")) : null,
    el("h2", {}, "办件 · Cases"), caseForm);
}

async function caseView(caseId) {
  const found = await api(`items/cases/${encodeURIComponent(caseId)}`);
  const c = found.result;
  show(`办件 ${caseId} · Case ${caseId}`, c === null
    ? el("p", { class: "note" }, "没有这个办件。 · No such case.")
    : el("pre", { id: "case" }, JSON.stringify(c, null, 2)));
}

// ---- routing ----------------------------------------------------------------------------------

const ROUTES = [
  [/^#?\/?$/, () => overview()],
  [/^#\/chain\/([^/]+)$/, (c) => chainView(c)],
  [/^#\/chain\/([^/]+)\/before\/(\d+)$/, (c, h) => chainView(c, h)],
  [/^#\/chain\/([^/]+)\/block\/(\d+)$/, (c, h) => blockView(c, h)],
  [/^#\/chain\/([^/]+)\/block\/(\d+)\/from\/(\d+)$/, (c, h, o) => blockView(c, h, o)],
  [/^#\/chain\/([^/]+)\/tx\/([0-9a-f]{64})$/, (c, t) => txView(c, t)],
  [/^#\/catalog$/, () => catalogView()],
  [/^#\/catalog\/after\/([^/]+)$/, (a) => catalogView(a)],
  [/^#\/catalog\/agreements\/after\/([0-9a-f]{64})$/, (a) => catalogView(undefined, a)],
  [/^#\/items$/, () => itemsView()],
  [/^#\/items\/after\/([^/]+)$/, (a) => itemsView(a)],
  [/^#\/case\/([^/]+)$/, (id) => caseView(id)],
  [/^#\/audit$/, () => auditView()],
];

async function render(focus) {
  const hashRoute = location.hash || "#/";
  main.setAttribute("aria-busy", "true");
  try {
    const found = ROUTES.find(([re]) => re.test(hashRoute));
    if (!found) {
      show("找不到页面 · Page not found", el("p", {}, link("#/", "返回首页 · Back to the start")));
    } else {
      await found[1](...hashRoute.match(found[0]).slice(1).map(decodeURIComponent));
    }
  } catch (e) {
    show("出错了 · Something went wrong", el("p", { class: "error", role: "alert" }, e.message),
      el("p", {}, link("#/", "返回首页 · Back to the start")));
  }
  main.removeAttribute("aria-busy");
  const onChain = hashRoute.match(/^#\/chain\/([^/]+)/);
  if (onChain) document.getElementById("find-chain").value = decodeURIComponent(onChain[1]);
  if (focus) main.focus();
}

async function fillChainPicker() {
  const select = document.getElementById("find-chain");
  try {
    select.replaceChildren(...(await chains()).chains.map((c) => el("option", { value: c.chain_id }, c.chain_id)));
  } catch (e) { /* the page itself reports the error */ }
}

document.getElementById("find").addEventListener("submit", (event) => {
  event.preventDefault();
  const tx = document.getElementById("find-tx").value.trim().toLowerCase();
  const chain = document.getElementById("find-chain").value;
  if (/^[0-9a-f]{64}$/.test(tx) && chain) location.hash = `#/chain/${encodeURIComponent(chain)}/tx/${tx}`;
});
window.addEventListener("hashchange", () => render(true));
fillChainPicker().then(() => render(false));
