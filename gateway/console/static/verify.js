// verify.js: check an audit-ledger receipt in the auditor's own browser.
//
// The console server hands the page a receipt (share-gateway/receipt/v1: the canonical entry
// text, its leaf hash, the inclusion proof and the C2SP signed checkpoint). This script checks
// it with Web Crypto and the verifier key the auditor typed in (kept in localStorage), so a
// console server that alters the entry, the proof or the checkpoint is caught here:
//   1. the checkpoint note carries a valid Ed25519 signature by that key (c2sp.org/signed-note),
//      its origin is the key's name and its size is the receipt's tree size;
//   2. SHA-256(0x00 || entry bytes) is the stated leaf hash (RFC 9162 §2.1.1);
//   3. the entry states the index of the page that shows it;
//   4. the inclusion proof leads from that leaf to the checkpoint's root (RFC 9162 §2.1.3.2);
//   5. the checkpoint is consistent with the largest one this browser verified before for this
//      log (RFC 9162 §2.1.4.2, proof fetched from the console): the log has only grown, and it
//      has not shown this browser a different history. The larger checkpoint is remembered.
// It mirrors gateway.auditing.verify_receipt and ledger.verify.root_from_inclusion_proof.
// Tree sizes and indexes are BigInt: the RFC's test vectors go up to 2^64 - 1.
"use strict";

const ConsoleVerify = (() => {
  const enc = new TextEncoder();
  const DASH = "\u2014";
  const KEY_STORE = "share-gateway.console.vkey";
  const CHECKPOINT_STORE = "share-gateway.console.checkpoint:"; // + origin: {size, root hex}

  const toHex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

  function fromHex(s) {
    if (typeof s !== "string" || !/^(?:[0-9a-f]{2})*$/.test(s)) throw new Error("not lowercase hex");
    return Uint8Array.from(s.match(/../g) || [], (h) => parseInt(h, 16));
  }

  function fromB64(s) {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) throw new Error("invalid base64");
    return Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  }

  const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

  async function sha256(...parts) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", concat(...parts)));
  }

  // RFC 9162 §2.1.1: leaf and interior node hashes with domain-separation prefixes.
  const leafHash = (data) => sha256(Uint8Array.of(0), data);
  const nodeHash = (left, right) => sha256(Uint8Array.of(1), left, right);

  // RFC 9162 §2.1.3.2: the root implied by an inclusion proof (throws if malformed).
  async function rootFromInclusionProof(index, size, leaf, proof) {
    let fn = BigInt(index);
    let sn = BigInt(size) - 1n;
    if (fn < 0n || fn > sn) throw new Error(`leaf index ${index} out of range for tree size ${size}`);
    for (const h of [leaf, ...proof]) {
      if (h.length !== 32) throw new Error(`hash of ${h.length} bytes, want 32`);
    }
    let r = leaf;
    for (const p of proof) {
      if (sn === 0n) throw new Error("inclusion proof too long");
      if ((fn & 1n) === 1n || fn === sn) {
        r = await nodeHash(p, r);
        // Step: if LSB(fn) is not set, shift fn and sn right until it is, or fn is 0.
        while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
      } else {
        r = await nodeHash(r, p);
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    if (sn !== 0n) throw new Error("inclusion proof too short");
    return r;
  }

  async function verifyInclusion(index, size, leaf, proof, root) {
    if (!equal(await rootFromInclusionProof(index, size, leaf, proof), root)) {
      throw new Error(`inclusion proof of leaf ${index} does not match the root`);
    }
  }

  // RFC 9162 §2.1.4.2: does the tree (newSize, newRoot) extend (oldSize, oldRoot)? Mirrors
  // ledger.verify.verify_consistency, with transparency-dev's edge cases (size 0 refused;
  // equal sizes need an empty proof and equal roots).
  async function verifyConsistency(oldSize, newSize, oldRoot, newRoot, proof) {
    const m = BigInt(oldSize);
    const n = BigInt(newSize);
    if (m < 0n || m > n) throw new Error(`bad consistency sizes ${m} -> ${n}`);
    if (m === 0n) throw new Error("consistency with the empty tree is not checkable");
    if (m === n) {
      if (proof.length) throw new Error("consistency proof between equal sizes must be empty");
      if (!equal(oldRoot, newRoot)) throw new Error("roots differ for equal tree sizes");
      return;
    }
    if (!proof.length) throw new Error("empty consistency proof");
    for (const h of [oldRoot, newRoot, ...proof]) {
      if (h.length !== 32) throw new Error(`hash of ${h.length} bytes, want 32`);
    }
    // Step 2: if the old size is a power of two, the old root is the path's first node.
    const path = (m & (m - 1n)) === 0n ? [oldRoot, ...proof] : [...proof];
    let fn = m - 1n;
    let sn = n - 1n;
    while ((fn & 1n) === 1n) { fn >>= 1n; sn >>= 1n; }
    let fr = path[0];
    let sr = path[0];
    for (const c of path.slice(1)) {
      if (sn === 0n) throw new Error("consistency proof too long");
      if ((fn & 1n) === 1n || fn === sn) {
        fr = await nodeHash(c, fr);
        sr = await nodeHash(c, sr);
        while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
      } else {
        sr = await nodeHash(sr, c);
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    if (sn !== 0n) throw new Error("consistency proof too short");
    if (!equal(fr, oldRoot)) throw new Error("consistency proof does not match the old root");
    if (!equal(sr, newRoot)) throw new Error("consistency proof does not match the new root");
  }

  // Step 5: `cp` against the checkpoint remembered for its origin; remembers the larger.
  // `fetchProof(old, new)` returns the proof hashes (from the console: untrusted, checked here).
  async function checkAgainstRemembered(cp, store, fetchProof) {
    const key = CHECKPOINT_STORE + cp.origin;
    const seen = store.getItem(key) && JSON.parse(store.getItem(key));
    const remember = () => store.setItem(key, JSON.stringify({ size: String(cp.size), root: toHex(cp.root) }));
    if (!seen) {
      remember();
      return `first checkpoint of this log seen by this browser (size ${cp.size}); remembered`;
    }
    const old = { size: BigInt(seen.size), root: fromHex(seen.root) };
    if (old.size === cp.size) {
      if (!equal(old.root, cp.root)) throw new Error(`a different tree of size ${cp.size} was seen before`);
      return `same tree as seen before (size ${cp.size})`;
    }
    const [a, b] = old.size < cp.size ? [old, cp] : [cp, old];
    const proof = (await fetchProof(a.size, b.size)).map(fromHex);
    await verifyConsistency(a.size, b.size, a.root, b.root, proof);
    if (cp.size > old.size) remember();
    return `consistent with the tree of size ${old.size} seen before`;
  }

  // Verifier key "<name>+<key id, 8 hex>+<base64(0x01 || Ed25519 public key)>".
  async function parseVkey(vkey) {
    const s = vkey.trim();
    const a = s.indexOf("+");
    const b = s.indexOf("+", a + 1);
    if (a <= 0 || b < 0) throw new Error("verifier key must be name+keyid+key");
    const name = s.slice(0, a);
    const keyId = fromHex(s.slice(a + 1, b));
    const raw = fromB64(s.slice(b + 1));
    if (keyId.length !== 4 || raw.length !== 33 || raw[0] !== 1) {
      throw new Error("not an Ed25519 signed-note verifier key");
    }
    const pub = raw.slice(1);
    // Key id = SHA-256(name || 0x0A || 0x01 || public key)[:4].
    const want = (await sha256(enc.encode(name), Uint8Array.of(0x0a, 0x01), pub)).slice(0, 4);
    if (!equal(want, keyId)) throw new Error("verifier key id does not match its key");
    return { name, keyId, pub };
  }

  // c2sp.org/signed-note: "<text>\n\n— <name> <base64(key id || signature)>\n"...
  async function openNote(note, key) {
    const sep = note.lastIndexOf("\n\n");
    if (sep < 0 || !note.endsWith("\n")) throw new Error("signed note lacks a signature block");
    const text = note.slice(0, sep + 1);
    const pub = await crypto.subtle.importKey("raw", key.pub, { name: "Ed25519" }, false, ["verify"]);
    for (const line of note.slice(sep + 2, -1).split("\n")) {
      if (!line.startsWith(DASH + " ")) throw new Error("malformed signature line");
      const [name, sig] = line.slice(2).split(" ");
      if (name !== key.name) continue; // another signer, e.g. a witness cosignature
      const raw = fromB64(sig || "");
      if (raw.length !== 68 || !equal(raw.slice(0, 4), key.keyId)) continue;
      const ok = await crypto.subtle.verify({ name: "Ed25519" }, pub, raw.slice(4), enc.encode(text));
      if (!ok) throw new Error("checkpoint signature does not verify");
      return text;
    }
    throw new Error(`note has no signature by ${key.name}`);
  }

  // c2sp.org/tlog-checkpoint body: origin, decimal size, base64 root (extension lines ignored).
  function parseCheckpoint(text) {
    const lines = text.slice(0, -1).split("\n");
    if (lines.length < 3 || !lines[0]) throw new Error("checkpoint needs origin, size and root");
    if (!/^(0|[1-9][0-9]*)$/.test(lines[1])) throw new Error("checkpoint size is not a decimal");
    const root = fromB64(lines[2]);
    if (root.length !== 32) throw new Error("checkpoint root is not 32 bytes");
    return { origin: lines[0], size: BigInt(lines[1]), root };
  }

  // Checks 1-4, in order, and 5 when `history` ({store, fetchProof}) is given;
  // `report(label, ok, detail)` sees each. Throws at the first failure with a message naming it.
  async function verifyReceipt(doc, vkey, expectedIndex, report = () => {}, history = null) {
    const step = async (label, fn) => {
      try {
        const detail = await fn();
        report(label, true, detail || "");
      } catch (e) {
        report(label, false, e.message);
        throw new Error(`${label}: ${e.message}`);
      }
    };
    let cp, leaf, data;
    await step("checkpoint signature", async () => {
      if (doc.format !== "share-gateway/receipt/v1") throw new Error("not a receipt document");
      const key = await parseVkey(vkey);
      cp = parseCheckpoint(await openNote(String(doc.checkpoint), key));
      if (cp.origin !== key.name) throw new Error(`origin ${cp.origin} is not the key's name`);
      if (cp.size !== BigInt(doc.tree_size)) throw new Error("tree size is not the checkpoint's");
      return `${cp.origin}, tree size ${cp.size}`;
    });
    await step("leaf hash", async () => {
      data = enc.encode(String(doc.entry));
      leaf = await leafHash(data);
      if (!equal(leaf, fromHex(String(doc.leaf_hash)))) throw new Error("does not match the entry bytes");
      return toHex(leaf);
    });
    await step("entry index", async () => {
      const stated = JSON.parse(doc.entry).index;
      if (String(stated) !== String(doc.index) || String(stated) !== String(expectedIndex)) {
        throw new Error(`entry states ${stated}, page shows ${expectedIndex}`);
      }
      return String(stated);
    });
    await step("inclusion proof", async () => {
      const proof = doc.inclusion_proof.map((h) => fromHex(String(h)));
      await verifyInclusion(doc.index, cp.size, leaf, proof, cp.root);
      return `${proof.length} hashes to root ${toHex(cp.root).slice(0, 16)}…`;
    });
    if (history) {
      await step("consistency", () => checkAgainstRemembered(cp, history.store, history.fetchProof));
    }
    return { index: doc.index, treeSize: cp.size, entry: JSON.parse(doc.entry) };
  }

  // -- page wiring (entry page only) ------------------------------------------------------

  function show(cls, text) {
    const v = document.getElementById("verdict");
    v.className = `verdict ${cls}`;
    v.textContent = text;
  }

  async function run() {
    const holder = document.getElementById("receipt");
    const vkey = document.getElementById("vkey").value.trim();
    const steps = document.getElementById("steps");
    const out = document.getElementById("verified-entry");
    steps.replaceChildren();
    out.textContent = "";
    if (!vkey) {
      show("pending", "未验证：请输入账本验证公钥 · Not verified: enter the ledger's verifier key.");
      return;
    }
    const index = location.pathname.split("/").filter(Boolean).pop();
    const report = (label, ok, detail) => {
      const li = document.createElement("li");
      li.className = ok ? "ok" : "failed";
      li.textContent = `${label}: ${detail}`;
      steps.append(li);
    };
    try {
      const doc = JSON.parse(holder.dataset.receipt);
      const fetchProof = async (oldSize, newSize) => {
        const r = await fetch(`/consistency.json?old=${oldSize}&new=${newSize}`, { credentials: "same-origin" });
        if (!r.ok) throw new Error(`console answered ${r.status} for the consistency proof`);
        return (await r.json()).proof;
      };
      const res = await verifyReceipt(doc, vkey, index, report, { store: localStorage, fetchProof });
      // Shown from the verified bytes only (textContent: never parsed as HTML).
      out.textContent = JSON.stringify(res.entry, null, 1);
      show("ok", `已验证 · Verified: entry ${res.index} is in the log at tree size ${res.treeSize}.`);
    } catch (e) {
      show("failed", `验证失败 · FAILED: ${e.message}`);
    }
  }

  function wire() {
    if (!document.getElementById("receipt")) return;
    const input = document.getElementById("vkey");
    input.value = localStorage.getItem(KEY_STORE) || "";
    document.getElementById("verify-btn").addEventListener("click", () => {
      localStorage.setItem(KEY_STORE, input.value.trim());
      run();
    });
    run();
  }

  if (typeof document !== "undefined") document.addEventListener("DOMContentLoaded", wire);

  return {
    leafHash, nodeHash, rootFromInclusionProof, verifyInclusion, verifyConsistency,
    parseVkey, openNote, verifyReceipt, fromHex, toHex,
  };
})();

globalThis.ConsoleVerify = ConsoleVerify;
