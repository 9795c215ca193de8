// Inclusion proofs verified in the browser with WebCrypto (SHA-256, Ed25519):
// the same checks, in the same order, as node/ledger/proofs.py
// verify_inclusion_proof (docs/design.md, "Audit proofs" and "Explorer and
// audit page"). Keep the two in step: tests/browser checks a real proof
// verifies here and tampered ones do not.
//
// One divergence, documented: JSON numbers are JavaScript doubles, so the
// proof's integers must be below 2^53 (heights, views and millisecond
// timestamps are far below it); the transaction's uint64 nonce is read from
// its protobuf bytes as a BigInt.

export const PROOF_FORMAT = "govchain-inclusion-proof/1";
const TREE_SIZE_MAX = 1 << 20;
const PROPOSAL_METADATA_BYTES_MAX = 1024;
const HEADER_DIGESTS = ["parent_hash", "tx_root", "state_root", "proposal_digest", "link", "hash"];
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.\-]*$/;
const enc = new TextEncoder();

class ProofError extends Error {}

// ---- bytes ----------------------------------------------------------------------------------

export function hexToBytes(hex) {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(2 * i, 2), 16);
  return out;
}

export function bytesToHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

function equal(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function be(value, size) { // big-endian unsigned integer of `size` bytes
  const out = new Uint8Array(size);
  let v = BigInt(value);
  for (let i = size - 1; i >= 0; i--) { out[i] = Number(v & 0xffn); v >>= 8n; }
  return out;
}

export async function sha256(...parts) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", concat(...parts)));
}

async function ed25519Verify(publicKey, signature, data) {
  try {
    const key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
    return await crypto.subtle.verify({ name: "Ed25519" }, key, signature, data);
  } catch (e) {
    return false; // not a valid key: as libsodium, the signature does not verify
  }
}

// ---- consensus formats (consensus/merkle.py, messages.py, block.py, signing.py) ---------------

const leafHash = (item) => sha256(Uint8Array.of(0), item);
const nodeHash = (left, right) => sha256(Uint8Array.of(1), left, right);

// consensus.merkle.root_from_audit_path (RFC 9162 §2.1.3.2)
async function rootFromAuditPath(item, index, size, path) {
  if (!(index >= 0 && index < size)) return null;
  let fn = index, sn = size - 1, r = await leafHash(item);
  for (const p of path) {
    if (sn === 0) return null;
    if (fn & 1 || fn === sn) {
      r = await nodeHash(p, r);
      while (!(fn & 1) && fn) { fn >>= 1; sn >>= 1; }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1; sn >>= 1;
  }
  return sn === 0 ? r : null;
}

function lenPrefixed2(text) { const b = enc.encode(text); return concat(be(b.length, 2), b); }

// consensus.block.BlockHeader.hash
function headerHash(h) {
  return sha256(enc.encode("govchain:v1:block:"), lenPrefixed2(h.chain_id), be(h.height, 8), h.parent_hash,
    be(h.proposer, 4), be(h.timestamp_ms, 8), h.tx_root, h.state_root, h.proposal_digest, h.link);
}

// consensus.messages.proposal_digest
function proposalDigest(chainId, seq, proposer, timestampMs, txRoot, metadata) {
  return sha256(enc.encode("govchain:v1:proposal:"), enc.encode(chainId), be(seq, 8), be(proposer, 4),
    be(timestampMs, 8), txRoot, be(metadata.length, 4), metadata);
}

// consensus.signing.signable(Commit): header, replica, then the vote and the link
function commitSignable(c) {
  const replica = be(c.replica, 4);
  return concat(enc.encode("govchain:v1:"), lenPrefixed2(c.chain_id), enc.encode(":Commit:"), replica,
    be(c.view, 8), be(c.seq, 8), c.digest, replica, c.link);
}

const quorumSize = (n) => Math.floor((n + Math.floor((n - 1) / 3)) / 2) + 1; // consensus.quorum

// ---- the transaction (node/core/codec.py, node/core/tx.py) -------------------------------------

function readVarint(bytes, at) {
  let value = 0n, shift = 0n;
  for (let i = 0; i < 10; i++) {
    if (at.i >= bytes.length) throw new ProofError("truncated varint");
    const b = bytes[at.i++];
    value |= BigInt(b & 0x7f) << shift;
    if (!(b & 0x80)) return value;
    shift += 7n;
  }
  throw new ProofError("varint too long");
}

function writeVarint(value) {
  const out = [];
  let v = BigInt(value);
  do { let b = Number(v & 0x7fn); v >>= 7n; if (v) b |= 0x80; out.push(b); } while (v);
  return Uint8Array.from(out);
}

const TX_FIELDS = { 1: "chain_id", 2: "sender", 3: "nonce", 4: "contract", 5: "method", 6: "payload", 7: "signature" };
const TX_TEXT = new Set(["chain_id", "contract", "method"]);

// govchain.v1.Transaction from its protobuf bytes; its canonical re-encoding must be these bytes.
function decodeTx(body) {
  const tx = { chain_id: "", sender: new Uint8Array(), nonce: 0n, contract: "", method: "",
    payload: new Uint8Array(), signature: new Uint8Array() };
  const at = { i: 0 };
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  while (at.i < body.length) {
    const key = readVarint(body, at), field = TX_FIELDS[Number(key >> 3n)], wire = Number(key & 7n);
    if (field === undefined) throw new ProofError(`unknown field ${key >> 3n}`);
    if (field === "nonce") {
      if (wire !== 0) throw new ProofError("nonce is not a varint");
      tx.nonce = readVarint(body, at) & 0xffffffffffffffffn;
      continue;
    }
    if (wire !== 2) throw new ProofError(`${field} is not length-delimited`);
    const n = Number(readVarint(body, at));
    if (at.i + n > body.length) throw new ProofError(`${field} runs past the end`);
    const raw = body.slice(at.i, at.i + n);
    at.i += n;
    if (TX_TEXT.has(field)) {
      try { tx[field] = utf8.decode(raw); } catch (e) { throw new ProofError(`${field} is not UTF-8`); }
    } else {
      tx[field] = raw;
    }
  }
  const parts = [];
  for (const [number, field] of Object.entries(TX_FIELDS)) {
    const value = tx[field];
    if (field === "nonce") { if (value) parts.push(writeVarint(BigInt(number) << 3n), writeVarint(value)); continue; }
    const b = TX_TEXT.has(field) ? enc.encode(value) : value;
    if (b.length) parts.push(writeVarint((BigInt(number) << 3n) | 2n), writeVarint(b.length), b);
  }
  if (!equal(concat(...parts), body)) throw new ProofError("request body is not the canonical encoding of its transaction");
  return tx;
}

function lp4(b) { return concat(be(b.length, 4), b); }

// node.core.tx.signing_digest
function signingDigest(tx) {
  return sha256(enc.encode("govchain:v1:tx:"), lp4(enc.encode(tx.chain_id)), lp4(tx.sender), be(tx.nonce, 8),
    lp4(enc.encode(tx.contract)), lp4(enc.encode(tx.method)), lp4(tx.payload));
}

// node.core.tx.validate_shape
function shapeProblem(tx) {
  const bytes = (s) => enc.encode(s).length;
  if (!tx.chain_id || bytes(tx.chain_id) > 64) return "chain_id must be 1..64 bytes";
  if (tx.sender.length !== 32) return "sender must be a 32-byte Ed25519 public key";
  for (const f of ["contract", "method"]) {
    if (!tx[f] || bytes(tx[f]) > 64 || !NAME_RE.test(tx[f])) return `${f} is not a valid name`;
  }
  if (tx.payload.length > 64 * 1024) return "payload is too large";
  if (tx.signature.length !== 64) return "signature must be 64 bytes (Ed25519)";
  return null;
}

// ---- reading a proof (proofs._parse) ------------------------------------------------------------

function field(obj, key, where) {
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) throw new ProofError(`${where || "the proof"} must be a JSON object`);
  if (!(key in obj)) throw new ProofError(`${where}${where ? "." : ""}${key} is missing`);
  return obj[key];
}

function int(obj, key, where, high = Number.MAX_SAFE_INTEGER) {
  const v = field(obj, key, where);
  if (!Number.isSafeInteger(v) || v < 0 || v > high) throw new ProofError(`${where}${where ? "." : ""}${key} must be an integer in 0..${high}`);
  return v;
}

function text(obj, key, where) {
  const v = field(obj, key, where);
  if (typeof v !== "string" || !v) throw new ProofError(`${where}${where ? "." : ""}${key} must be a non-empty string`);
  return v;
}

function hex(value, name, size = 32) {
  if (typeof value !== "string" || !/^(?:[0-9a-f]{2})*$/.test(value) || (size !== null && value.length !== 2 * size)) {
    throw new ProofError(`${name} must be ${size !== null ? `${2 * size} lowercase hex characters` : "lowercase hex"}`);
  }
  return hexToBytes(value);
}

function parse(proof) {
  if (field(proof, "format", "") !== PROOF_FORMAT) throw new ProofError(`format must be '${PROOF_FORMAT}': not a govchain inclusion proof, or another version`);
  const chain_id = text(proof, "chain_id", "");
  const tx = field(proof, "tx", "");
  const request = { id: hex(field(tx, "id", "tx"), "tx.id"), body: hex(field(tx, "body", "tx"), "tx.body", null) };
  if (String(proof.proposal_metadata ?? "").length > 2 * PROPOSAL_METADATA_BYTES_MAX) throw new ProofError(`proposal_metadata is longer than ${PROPOSAL_METADATA_BYTES_MAX} bytes`);
  const path = field(proof, "audit_path", "");
  if (!Array.isArray(path) || path.length > 64) throw new ProofError("audit_path must be an array of at most 64 hashes");
  const h = field(proof, "header", "");
  const d = Object.fromEntries(HEADER_DIGESTS.map((f) => [f, hex(field(h, f, "header"), `header.${f}`)]));
  const header = { chain_id, height: int(h, "height", "header"), proposer: int(h, "proposer", "header", 0xffffffff),
    timestamp_ms: int(h, "timestamp_ms", "header"), parent_hash: d.parent_hash, tx_root: d.tx_root,
    state_root: d.state_root, proposal_digest: d.proposal_digest, link: d.link };
  const c = field(proof, "certificate", "");
  const view = int(c, "view", "certificate"), seq = int(c, "seq", "certificate");
  const digest = hex(field(c, "digest", "certificate"), "certificate.digest");
  const link = hex(field(c, "link", "certificate"), "certificate.link");
  const certChain = text(c, "chain_id", "certificate");
  const commitsRaw = field(c, "commits", "certificate");
  if (!Array.isArray(commitsRaw)) throw new ProofError("certificate.commits must be an array");
  const commits = commitsRaw.map((raw, i) => ({ chain_id: certChain, view, seq, digest, link,
    replica: int(raw, "replica", `certificate.commits[${i}]`, 0xffffffff),
    signature: hex(field(raw, "signature", `certificate.commits[${i}]`), `certificate.commits[${i}].signature`, 64) }));
  return { chain_id, genesis_hash: hex(field(proof, "genesis_hash", ""), "genesis_hash"), request,
    index: int(proof, "index", ""), tree_size: int(proof, "tree_size", "", TREE_SIZE_MAX),
    path: path.map((p, i) => hex(p, `audit_path[${i}]`)),
    proposal_timestamp_ms: int(proof, "proposal_timestamp_ms", ""),
    proposal_metadata: hex(field(proof, "proposal_metadata", ""), "proposal_metadata", null),
    header, header_hash: d.hash, certificate: { chain_id: certChain, view, seq, digest, link, commits } };
}

// ---- verifying (proofs.verify_inclusion_proof) ----------------------------------------------------

// `genesis`: {chain_id, genesis_hash (hex), validators: [{department, public_key (hex)}]}, which the
// page must hold from a source it trusts. Resolves to {ok, problem, chain_id, height, index,
// block_hash (hex), transaction}; never rejects on a bad proof.
export async function verifyInclusionProof(proof, genesis) {
  let p;
  try {
    p = parse(proof);
  } catch (e) {
    if (e instanceof ProofError) return { ok: false, problem: `malformed proof: ${e.message}`, chain_id: "", height: 0, index: 0 };
    throw e;
  }
  const where = { chain_id: p.chain_id, height: p.header.height, index: p.index };
  let problem = chainProblem(p, genesis);
  let transaction = null;
  if (!problem) [transaction, problem] = await checkTransaction(p);
  problem = problem || await blockProblem(p) || await certificateProblem(p.certificate, p.header, genesis);
  if (problem) return { ok: false, problem, ...where };
  return { ok: true, problem: "", ...where, block_hash: bytesToHex(p.header_hash), transaction };
}

function chainProblem(p, genesis) {
  if (p.chain_id !== genesis.chain_id || bytesToHex(p.genesis_hash) !== genesis.genesis_hash) {
    return `the proof is for chain '${p.chain_id}' with genesis ${bytesToHex(p.genesis_hash).slice(0, 16)}..., ` +
      `the genesis given is chain '${genesis.chain_id}' with genesis ${genesis.genesis_hash.slice(0, 16)}...: a genesis of another chain`;
  }
  return "";
}

async function checkTransaction(p) {
  let tx;
  try {
    tx = decodeTx(p.request.body);
  } catch (e) {
    if (!(e instanceof ProofError)) throw e;
    return [null, `the transaction body does not match its id (altered body): ${e.message}`];
  }
  const digest = await signingDigest(tx);
  const id = await sha256(enc.encode("govchain:v1:txid:"), digest, tx.signature);
  if (!equal(id, p.request.id)) {
    return [null, `the transaction body does not match its id (altered body): request id ${bytesToHex(p.request.id).slice(0, 16)}... does not match its transaction ${bytesToHex(id).slice(0, 16)}...`];
  }
  if (shapeProblem(tx) !== null || !await ed25519Verify(tx.sender, tx.signature, digest)) {
    return [null, "the transaction's signature does not verify against its sender key"];
  }
  if (tx.chain_id !== p.chain_id) return [null, `the transaction was signed for chain '${tx.chain_id}', not '${p.chain_id}'`];
  let payload;
  try { payload = { payload: new TextDecoder("utf-8", { fatal: true }).decode(tx.payload) }; } catch (e) { payload = { payload_hex: bytesToHex(tx.payload) }; }
  return [{ id: bytesToHex(id), chain_id: tx.chain_id, sender: bytesToHex(tx.sender), nonce: tx.nonce.toString(),
    contract: tx.contract, method: tx.method, ...payload }, ""];
}

async function blockProblem(p) {
  const h = p.header;
  const root = await rootFromAuditPath(concat(p.request.id, await sha256(p.request.body)), p.index, p.tree_size, p.path);
  if (root === null) return `the audit path has the wrong shape for leaf ${p.index} of a tree of ${p.tree_size} (${p.path.length} hashes)`;
  if (!equal(root, h.tx_root)) {
    return `the audit path does not lead from the transaction (leaf ${p.index} of ${p.tree_size}) to the header's tx_root: ` +
      `a wrong path, or the transaction is not in block ${h.height}`;
  }
  if (!equal(await headerHash(h), p.header_hash)) return "the header's hash does not match its fields: the header was altered";
  const digest = await proposalDigest(h.chain_id, h.height, h.proposer, p.proposal_timestamp_ms, h.tx_root, p.proposal_metadata);
  if (!equal(digest, h.proposal_digest) || p.proposal_timestamp_ms > h.timestamp_ms) {
    return `the header's proposal_digest does not cover its tx_root, height, proposer, proposal_timestamp_ms and ` +
      `proposal_metadata: the header of block ${h.height} or these fields were altered`;
  }
  return "";
}

async function certificateProblem(cert, header, genesis) {
  if (cert.chain_id !== header.chain_id || cert.seq !== header.height || !equal(cert.digest, header.proposal_digest) || !equal(cert.link, header.link)) {
    return `the commit certificate is for block ${cert.seq} of chain '${cert.chain_id}' (digest ${bytesToHex(cert.digest).slice(0, 16)}...), ` +
      `the header is block ${header.height} (digest ${bytesToHex(header.proposal_digest).slice(0, 16)}...): the header is from another block`;
  }
  const n = genesis.validators.length;
  const keys = genesis.validators.map((v) => hexToBytes(v.public_key));
  const signedBy = (c) => c.replica < n && ed25519Verify(keys[c.replica], c.signature, commitSignable(c));
  // consensus.certificates.valid_commit_certificate: every commit from a new voter and signed, then a quorum
  const voters = [];
  let valid = cert.link.length === 32;
  for (const c of cert.commits) {
    if (!valid) break;
    if (voters.includes(c.replica) || !await signedBy(c)) { valid = false; break; }
    voters.push(c.replica);
  }
  if (valid && new Set(voters.filter((v) => v < n)).size >= quorumSize(n)) return "";
  const good = new Set(), bad = [];
  for (const [i, c] of cert.commits.entries()) {
    if (good.has(c.replica)) bad.push(`commit #${i} repeats validator ${c.replica}`);
    else if (!await signedBy(c)) {
      const who = c.replica < n ? `validator ${c.replica} (${genesis.validators[c.replica].department})` : `validator ${c.replica} (the genesis has ${n})`;
      bad.push(`commit #${i}: the signature of ${who} does not verify`);
    } else good.add(c.replica);
  }
  if (good.size < quorumSize(n)) {
    return `the commit certificate holds ${good.size} valid signatures of distinct genesis validators, ${quorumSize(n)} of ${n} needed` +
      (bad.length ? ` (${bad.join("; ")})` : "");
  }
  return `the commit certificate carries a commit that does not verify (${bad.join("; ")})`;
}
