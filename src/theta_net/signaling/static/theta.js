// A theta spectator in the browser: WebRTC data channels to the host (offer POSTed to the
// signaling service), then the theta session over them: the Hello (signed with an Ed25519 key
// made here by WebCrypto), heartbeats both ways, and every state packet acknowledged once it is
// held (a full snapshot, a reassembled chunked one, or a delta against one we hold).
//
// The envelope (schemas/network.fbs) is written and read by hand: a FlatBuffers writer that lays
// each table out front to back (every offset points forward, every field at its natural
// alignment) and a reader for the few bodies a spectator meets.
"use strict";

const BODY = { ComponentDelta: 3, SnapshotChunk: 4, Ack: 5, CommandLogEntry: 6, Heartbeat: 7,
  Hello: 8, Welcome: 9, Refusal: 10, Close: 11, VoiceData: 12, RosterUpdate: 13 };
const CHANNEL = { STATE: 0, VOICE: 1, RELIABLE: 2 };
const HELLO_DOMAIN = new TextEncoder().encode("theta.net.hello.v1\u0000");
const MORE = 1, LAST = 0;  // reliable fragment prefixes (theta_net.webrtc.carrier)
const enc = new TextEncoder(), dec = new TextDecoder();

// ---- writing -------------------------------------------------------------------------------
class Writer {
  constructor() { this.buf = new Uint8Array(512); this.n = 0; }
  room(k) {
    if (this.n + k <= this.buf.length) return;
    const bigger = new Uint8Array(Math.max(this.buf.length * 2, this.n + k));
    bigger.set(this.buf); this.buf = bigger;
  }
  align(a) { while (this.n % a) { this.room(1); this.buf[this.n++] = 0; } }
  view() { return new DataView(this.buf.buffer); }
  u8(v) { this.room(1); this.buf[this.n++] = v; }
  u16(v) { this.room(2); this.view().setUint16(this.n, v, true); this.n += 2; }
  u32(v) { this.room(4); this.view().setUint32(this.n, v >>> 0, true); this.n += 4; }
  bytes(b) { this.room(b.length); this.buf.set(b, this.n); this.n += b.length; }
  patch32(pos, v) { this.view().setUint32(pos, v >>> 0, true); }
  done() { return this.buf.slice(0, this.n); }
}

// A value a table field holds: a scalar of `size` bytes, raw struct bytes, or a child object.
const scalar = (size, v) => ({ size, v });
const u8 = (v) => scalar(1, v), u16 = (v) => scalar(2, v), u32 = (v) => scalar(4, v);
const u64 = (v) => scalar(8, BigInt(v));
const struct8 = (bytes) => ({ size: bytes.length, align: 8, raw: bytes });
const child = (write) => ({ size: 4, child: write });

function writeScalar(w, pos, f) {
  const dv = w.view();
  if (f.raw) w.buf.set(f.raw, pos);
  else if (f.size === 1) w.buf[pos] = f.v;
  else if (f.size === 2) dv.setUint16(pos, f.v, true);
  else if (f.size === 4) dv.setUint32(pos, f.v >>> 0, true);
  else dv.setBigUint64(pos, f.v, true);
}

// fields: array indexed by slot (undefined = absent). Returns the table's position.
function table(w, fields) {
  const slots = fields.length;
  const present = fields.map((f, i) => [i, f]).filter(([, f]) => f !== undefined);
  const maxAlign = Math.max(4, ...present.map(([, f]) => f.align || f.size));
  // object layout: the soffset, then fields largest first, each at its alignment
  const order = present.slice().sort((a, b) => (b[1].align || b[1].size) - (a[1].align || a[1].size));
  const offsets = new Array(slots).fill(0);
  let size = 4;
  for (const [i, f] of order) {
    const a = f.align || f.size;
    size = Math.ceil(size / a) * a;
    offsets[i] = size; size += f.size;
  }
  size = Math.ceil(size / maxAlign) * maxAlign;
  w.align(2);
  const vt = w.n;
  w.u16(4 + 2 * slots); w.u16(size);
  for (let i = 0; i < slots; i++) w.u16(offsets[i]);
  w.align(maxAlign);
  const pos = w.n;
  w.room(size); w.buf.fill(0, pos, pos + size); w.n += size;
  w.view().setInt32(pos, pos - vt, true);
  for (const [i, f] of present) if (!f.child) writeScalar(w, pos + offsets[i], f);
  for (const [i, f] of present) {
    if (!f.child) continue;
    const target = f.child(w);
    w.patch32(pos + offsets[i], target - (pos + offsets[i]));
  }
  return pos;
}
const vecBytes = (b) => (w) => { w.align(4); const p = w.n; w.u32(b.length); w.bytes(b); return p; };
const str = (s) => (w) => { const b = enc.encode(s); w.align(4); const p = w.n; w.u32(b.length);
  w.bytes(b); w.u8(0); return p; };
const vecU32 = (xs) => (w) => { w.align(4); const p = w.n; w.u32(xs.length);
  for (const x of xs) w.u32(x); return p; };
const vecStr = (xs) => (w) => {
  w.align(4); const p = w.n; w.u32(xs.length);
  const slots = xs.map(() => { const s = w.n; w.u32(0); return s; });
  xs.forEach((x, i) => { const target = str(x)(w); w.patch32(slots[i], target - slots[i]); });
  return p;
};

function header(protocol, sequence, timestampUs, schemaHash) {
  const b = new Uint8Array(24), dv = new DataView(b.buffer);
  dv.setUint16(0, protocol, true);          // protocol_version; compression 0 at byte 2
  dv.setUint32(4, sequence >>> 0, true);
  dv.setUint32(8, timestampUs >>> 0, true);
  dv.setUint32(12, 0, true);                 // dictionary_id
  dv.setBigUint64(16, schemaHash, true);
  return b;
}

function envelope(hdr, kind, body) {
  const w = new Writer();
  w.u32(0); w.bytes(enc.encode("THNW"));
  const root = table(w, [struct8(hdr), u8(kind), child((w2) => table(w2, body))]);
  w.patch32(0, root);
  return w.done();
}

// ---- reading -------------------------------------------------------------------------------
class Reader {
  constructor(bytes) { this.b = bytes; this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength); }
  check(pos, size) { if (pos < 0 || pos + size > this.b.length) throw new Error("envelope overrun"); }
  u8(p) { this.check(p, 1); return this.b[p]; }
  u16(p) { this.check(p, 2); return this.dv.getUint16(p, true); }
  u32(p) { this.check(p, 4); return this.dv.getUint32(p, true); }
  u64(p) { this.check(p, 8); return this.dv.getBigUint64(p, true); }
  deref(p) { return p + this.u32(p); }
  field(tab, slot) {  // absolute position of a table field, or 0 when absent
    const vt = tab - this.dv.getInt32(tab, true);
    const vtSize = this.u16(vt), entry = 4 + 2 * slot;
    if (entry + 2 > vtSize) return 0;
    const off = this.u16(vt + entry);
    return off ? tab + off : 0;
  }
  scalar(tab, slot, kind, dflt = 0) {
    const p = this.field(tab, slot);
    return p ? this[kind](p) : dflt;
  }
  bytes(tab, slot) {
    const p = this.field(tab, slot);
    if (!p) return new Uint8Array(0);
    const v = this.deref(p), n = this.u32(v);
    this.check(v + 4, n);
    return this.b.subarray(v + 4, v + 4 + n);
  }
  string(tab, slot) { return dec.decode(this.bytes(tab, slot)); }
}

function readEnvelope(bytes) {
  if (bytes.length < 12 || dec.decode(bytes.subarray(4, 8)) !== "THNW") return null;
  const r = new Reader(bytes);
  const root = r.deref(0);
  const h = r.field(root, 0);
  if (!h) return null;
  const kind = r.scalar(root, 1, "u8");
  const bodyField = r.field(root, 2);
  if (!bodyField) return null;
  return { r, kind, body: r.deref(bodyField), sequence: r.u32(h + 4), timestamp: r.u32(h + 8),
    compression: r.u8(h + 2) };
}

// CRC-32 (IEEE), what SnapshotChunk.checksum holds.
const CRC = new Uint32Array(256).map((_, n) => {
  let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320 ^ (c >>> 1) : c >>> 1; return c;
});
function crc32(b) { let c = 0xFFFFFFFF; for (const x of b) c = CRC[(c ^ x) & 0xFF] ^ (c >>> 8);
  return (c ^ 0xFFFFFFFF) >>> 0; }

// LEB128 varints of the compact packet (theta_ecs.serialization.packet).
function varint(b, pos) {
  let v = 0, shift = 0;
  for (let i = 0; i < 5; i++) { const x = b[pos++]; v += (x & 0x7F) * 2 ** shift; shift += 7;
    if (!(x & 0x80)) return [v, pos]; }
  throw new Error("bad varint");
}

// Entities in a state body: a delta starts with its removed count, the removed ids as an
// exp-Golomb column, then its added count (theta_ecs.serialization.snapshot.encode_body).
class Bits {
  constructor(b) { this.b = b; this.pos = 0; }
  bit() { const i = this.pos++; if ((i >> 3) >= this.b.length) throw new Error("bits overrun");
    return (this.b[i >> 3] >> (i & 7)) & 1; }
  read(n) { let v = 0; for (let i = 0; i < n; i++) v += this.bit() * 2 ** i; return v; }
  eg(k) { let zeros = 0; while (!this.bit()) { if (++zeros > 40) throw new Error("bad code"); }
    const n = zeros + k; return 2 ** n + this.read(n) - 2 ** k; }
}
function entityChange(body) {
  const bits = new Bits(body);
  const removed = bits.eg(0);
  if (removed) { const k = bits.read(5); for (let i = 0; i < removed; i++) bits.eg(k); }
  return bits.eg(0) - removed;
}

// ---- the session ---------------------------------------------------------------------------
export class Spectator {
  constructor(config, token, onUpdate) {
    this.config = config; this.token = token; this.onUpdate = onUpdate || (() => {});
    this.schemaHash = BigInt(config.schema_hash);
    this.protocol = config.protocol_version;
    this.stats = { state: "connecting", packets: 0, bytes: 0, acks: 0, heartbeats: 0, rtt: null,
      entities: null, kbps: 0, session: null, role: null, refused: null };
    this.held = new Map();        // sequence -> entity count (null when unknown)
    this.chunks = new Map();      // snapshot sequence -> {count, checksum, parts}
    this.latest = -1;
    this.reliableBuf = [];
    this.hbSeq = 0; this.echo = null; this.sent = 0;
    this.rateWindow = [];
  }

  now() { return Math.floor(performance.now() * 1000) >>> 0; }

  async connect() {
    const pc = new RTCPeerConnection({ iceServers: this.config.ice_servers || [] });
    this.pc = pc;
    const unreliable = { ordered: false, maxRetransmits: 0, negotiated: true };
    this.ch = [
      pc.createDataChannel("state", { ...unreliable, id: CHANNEL.STATE }),
      pc.createDataChannel("voice", { ...unreliable, id: CHANNEL.VOICE }),
      pc.createDataChannel("reliable", { ordered: true, negotiated: true, id: CHANNEL.RELIABLE }),
    ];
    for (const c of this.ch) c.binaryType = "arraybuffer";
    this.ch[CHANNEL.STATE].onmessage = (e) => this.onState(new Uint8Array(e.data));
    this.ch[CHANNEL.RELIABLE].onmessage = (e) => this.onReliable(new Uint8Array(e.data));
    const opened = new Promise((resolve) => { this.ch[CHANNEL.RELIABLE].onopen = resolve; });
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((resolve) => {
      if (pc.iceGatheringState === "complete") return resolve();
      pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && resolve();
    });
    const response = await fetch(this.config.room_url + "/offer", {
      method: "POST", headers: { "Content-Type": "application/json",
        Authorization: "Bearer " + this.token },
      body: JSON.stringify({ type: "offer", sdp: pc.localDescription.sdp }),
    });
    const doc = await response.json();
    if (!response.ok) throw new Error(`signaling ${response.status}: ${doc.error}`);
    await pc.setRemoteDescription(doc);
    await opened;
    this.stats.state = "handshake";
    await this.sendHello();
    this.timer = setInterval(() => this.tick(), 50);
  }

  async sendHello() {
    const key = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
    const pub = new Uint8Array(await crypto.subtle.exportKey("raw", key.publicKey));
    const nonce = crypto.getRandomValues(new Uint8Array(16));
    const role = "viewer", token = enc.encode(this.token), features = ["delta", "interest"];
    const channels = new Uint8Array([CHANNEL.STATE, CHANNEL.RELIABLE]);
    const maxDatagram = 1160, manifest = BigInt(this.config.manifest_hash);
    // what the signature covers: Hello.signed_bytes in theta_ecs.wire.envelope
    const head = new Uint8Array(20), dv = new DataView(head.buffer);
    dv.setUint16(0, this.protocol, true); dv.setBigUint64(2, this.schemaHash, true);
    dv.setBigUint64(10, manifest, true); dv.setUint16(18, maxDatagram, true);
    const parts = [head, pub, enc.encode(role), token, nonce, enc.encode(features.join("\x1f")),
      new Uint8Array(0), new Uint8Array(0), channels];
    const body = new Writer(); body.bytes(HELLO_DOMAIN);
    for (const p of parts) { body.u32(p.length); body.bytes(p); }
    const sig = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, key.privateKey,
      body.done()));
    this.sendReliable(envelope(header(this.protocol, 0, this.now(), this.schemaHash), BODY.Hello, [
      u64(manifest), child(vecBytes(pub)), child(str(role)), child(vecBytes(token)),
      child(vecStr(features)), child(vecU32([])), child(vecStr([])), child(vecBytes(channels)),
      u16(maxDatagram), child(vecBytes(nonce)), child(vecBytes(sig)),
    ]));
  }

  sendReliable(bytes) {
    const out = new Uint8Array(bytes.length + 1); out[0] = LAST; out.set(bytes, 1);
    this.ch[CHANNEL.RELIABLE].send(out);
  }

  sendState(bytes) {
    if (this.ch[CHANNEL.STATE].bufferedAmount < 16384) this.ch[CHANNEL.STATE].send(bytes);
  }

  onReliable(frag) {
    if (!frag.length) return;
    this.reliableBuf.push(frag.subarray(1));
    if (frag[0] === MORE) return;
    const total = this.reliableBuf.reduce((n, p) => n + p.length, 0);
    const msg = new Uint8Array(total); let at = 0;
    for (const p of this.reliableBuf) { msg.set(p, at); at += p.length; }
    this.reliableBuf = [];
    const env = readEnvelope(msg);
    if (!env) return;
    const { r, kind, body } = env;
    if (kind === BODY.Welcome) {
      this.stats.state = "connected";
      this.stats.session = Number(r.scalar(body, 0, "u64", 0n));
      this.stats.role = r.string(body, 2);
      this.heartbeatMs = r.scalar(body, 8, "u32", 250);
      this.nextHeartbeat = 0;
    } else if (kind === BODY.Refusal) {
      this.stats.state = "refused";
      this.stats.refused = r.string(body, 1);
    } else if (kind === BODY.Close) {
      this.stats.state = "closed: " + r.string(body, 1);
    }
    this.onUpdate(this.stats);
  }

  onState(bytes) {
    this.stats.bytes += bytes.length;
    this.rateWindow.push([performance.now(), bytes.length]);
    const env = readEnvelope(bytes);
    if (!env) return;
    const { r, kind, body, sequence } = env;
    if (kind === BODY.Heartbeat) {
      this.stats.heartbeats++;
      this.echo = [env.timestamp, performance.now()];
      const echoTs = r.scalar(body, 0, "u32"), delay = r.scalar(body, 1, "u32");
      if (echoTs) this.stats.rtt = (((this.now() - echoTs) >>> 0) - delay) / 1000;
      return;
    }
    if (kind === BODY.ComponentDelta) {
      this.stats.packets++;
      const distance = r.scalar(body, 0, "u32");
      const payload = r.bytes(body, 1);
      this.hold(sequence, distance ? (sequence - distance) >>> 0 : null, payload,
        env.compression === 0);
    } else if (kind === BODY.SnapshotChunk) {
      this.stats.packets++;
      const index = r.scalar(body, 1, "u16"), count = r.scalar(body, 2, "u16");
      const checksum = r.scalar(body, 3, "u32"), data = r.bytes(body, 4).slice();
      let c = this.chunks.get(sequence);
      if (!c) { c = { count, checksum, parts: new Map() }; this.chunks.set(sequence, c); }
      c.parts.set(index, data);
      if (c.parts.size === c.count) this.reassembled(sequence, c);
    }
  }

  reassembled(sequence, c) {
    this.chunks.delete(sequence);
    const parts = [...Array(c.count).keys()].map((i) => c.parts.get(i));
    const total = parts.reduce((n, p) => n + p.length, 0);
    const msg = new Uint8Array(total); let at = 0;
    for (const p of parts) { msg.set(p, at); at += p.length; }
    if (crc32(msg) !== c.checksum || msg[0] !== 0xB7) return;
    // the whole message is a compact state packet: tag, sequence, baseline distance, ...
    const flags = msg[1];
    let [, pos] = varint(msg, 2); let distance;
    [distance, pos] = varint(msg, pos);
    if (flags & 0x08) [, pos] = varint(msg, pos);
    this.hold(sequence, distance ? (sequence - distance) >>> 0 : null, msg.subarray(pos + 4),
      !(flags & 0x08));
  }

  hold(sequence, baseline, body, plain) {
    if (baseline !== null && !this.held.has(baseline)) return;  // cannot be applied: no ack
    let entities = null;
    const before = baseline === null ? 0 : this.held.get(baseline);
    if (plain && before !== null) {
      try { entities = before + entityChange(body); } catch (e) { entities = null; }
    }
    this.held.set(sequence, entities);
    if (this.held.size > 128) this.held.delete(this.held.keys().next().value);
    if (sequence > this.latest || this.latest - sequence > 0x7FFFFFFF) {
      this.latest = sequence;
      this.stats.entities = entities;
    }
    this.ack();
  }

  ack() {
    let bits = 0n;
    for (let i = 0; i < 32; i++) if (this.held.has((this.latest - 1 - i) >>> 0)) bits |= 1n << BigInt(i);
    this.sendState(envelope(header(this.protocol, this.latest, this.now(), this.schemaHash),
      BODY.Ack, [u32(this.latest), u64(bits)]));
    this.stats.acks++;
  }

  tick() {
    const t = performance.now();
    while (this.rateWindow.length && this.rateWindow[0][0] < t - 1000) this.rateWindow.shift();
    this.stats.kbps = this.rateWindow.reduce((n, x) => n + x[1], 0) * 8 / 1000;
    if (this.stats.state === "connected" && t >= this.nextHeartbeat) {
      this.nextHeartbeat = t + this.heartbeatMs;
      this.hbSeq = (this.hbSeq + 1) >>> 0;
      let echoTs = 0, delay = 0;
      if (this.echo) { echoTs = this.echo[0]; delay = Math.round((t - this.echo[1]) * 1000); }
      this.sendState(envelope(header(this.protocol, this.hbSeq, this.now(), this.schemaHash),
        BODY.Heartbeat, [u32(echoTs), u32(delay)]));
    }
    this.onUpdate(this.stats);
  }
}
