// Wire-level tests of the Phoenix Channels endpoint, against the in-process server of
// tests/phoenix_wire.rs: channels room:* (ping -> its payload, whoami -> {token}), slow:*
// (its join takes 200 ms; ping) and echo:* (bin / bin_all with bytes -> push / broadcast
// them back, reply {bytes}); POST /emit
// {channel, event, data? | bytes? | count, from?, pad?} -> {delivered}; POST /close-all
// (same body, optional: emits, then tidings.shutdown()); GET /stats -> {connections,
// subscriptions}. The connect hook refuses a `refuse` param and an authToken other than
// AUTH_TOKEN.
//
// Everything here speaks the protocol itself: raw frames over `ws`, LongPoll over `fetch`.
//
// Usage: TIDINGS_URL=http://127.0.0.1:PORT node tests/js/phoenix_wire.mjs <scenario>
// Exit code 0 = pass; on failure a message goes to stderr and the exit code is 1.
import assert from "node:assert/strict";
import util from "node:util";
import WebSocket from "ws";
import { step, sleep, within, abort, openSockets, run } from "./harness.mjs";

const URL = (process.env.TIDINGS_URL ?? "http://127.0.0.1:4000").replace(/\/+$/, "");
const WS_ENDPOINT = `${URL.replace(/^http/, "ws")}/socket/websocket`;
const LP_ENDPOINT = `${URL}/socket/longpoll`;
// Keep in step with AUTH_TOKEN in tests/phoenix_wire.rs.
const AUTH_TOKEN = "wire>>token";
const AUTH_PREFIX = "base64url.bearer.phx.";
// How long an answer (upgrade, reply, close) may take.
const ANSWER_MS = 5_000;
// How long we wait to be sure that something does NOT arrive.
const QUIET_MS = 500;
// How long an HTTP request may take.
const HTTP_TIMEOUT_MS = 10_000;
// A LongPoll session token: 20 url-safe characters.
const TOKEN_RE = /^[A-Za-z0-9_-]{20}$/;

const OK_EMPTY = { status: "ok", response: {} };
const UNMATCHED = { status: "error", response: { reason: "unmatched topic" } };

// Polls `probe` until it returns a truthy value, which it resolves with; fails with
// `message()` after `ms`.
async function until(ms, probe, message, every = 20) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() >= deadline) throw new Error(`${message()} (after ${ms} ms)`);
    await sleep(every);
  }
}

// ---------------------------------------------------------------------------
// HTTP routes of the test server

async function http(method, path, body) {
  const init = { method, signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) };
  if (body !== undefined) {
    init.headers = { "content-type": "application/json" };
    init.body = JSON.stringify(body);
  }
  const res = await fetch(URL + path, init);
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json };
}

// POST /emit; resolves with the delivered count.
async function emit(body) {
  const res = await http("POST", "/emit", body);
  assert.equal(res.status, 200, `POST /emit ${JSON.stringify(body).slice(0, 100)}: HTTP status (body ${res.text})`);
  return res.json.delivered;
}

async function stats() {
  const res = await http("GET", "/stats");
  assert.equal(res.status, 200, `GET /stats: HTTP status (body ${res.text})`);
  return res.json;
}

// ---------------------------------------------------------------------------
// Raw WebSocket client

// One WebSocket to the endpoint, whatever the server answers to the upgrade. Everything
// received is queued in order: {text, json} for text frames (json undefined when not JSON),
// {binary: Buffer} for binary frames.
class Wire {
  constructor(label, query, { protocols = [], headers = {} } = {}) {
    this.label = label;
    this.url = query === null ? WS_ENDPOINT : `${WS_ENDPOINT}?${query}`;
    this.queue = [];
    this.waiter = null;
    this.closeInfo = null;
    this.openedAt = null;
    this.ws = new WebSocket(this.url, protocols, { perMessageDeflate: false, headers });
    openSockets.add(this);

    // Resolves with 101 once open, or with the HTTP status of a refused upgrade.
    this.upgraded = new Promise((resolve, reject) => {
      this.ws.once("open", () => {
        this.openedAt = Date.now();
        resolve({ status: 101 });
      });
      this.ws.once("unexpected-response", (req, res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk) => (body += chunk));
        res.on("end", () => {
          resolve({ status: res.statusCode, body });
          this.ws.terminate();
        });
        res.on("error", () => resolve({ status: res.statusCode, body }));
      });
      this.ws.on("error", (err) => {
        this.error = err;
        reject(new Error(`${label}: websocket error before the upgrade: ${err.message}`));
      });
    });
    this.upgraded.catch(() => {});
    this.closed = new Promise((resolve) => {
      this.ws.on("close", (code, reason) => {
        this.closeInfo = { code, reason: reason.toString(), at: Date.now() };
        openSockets.delete(this);
        this.waiter?.fail(
          new Error(`${label}: websocket closed (${code} ${reason}) while waiting for ${this.waiter.what}`),
        );
        resolve(this.closeInfo);
      });
    });
    this.ws.on("message", (data, isBinary) => {
      let item;
      if (isBinary) {
        item = { binary: Buffer.from(data) };
      } else {
        const text = data.toString();
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        item = { text, json };
      }
      if (this.onItem?.(item)) return;
      if (this.waiter) this.waiter.ok(item);
      else this.queue.push(item);
    });
  }

  // Opens with `query`; fails unless the upgrade succeeds.
  static async open(label, query = "vsn=2.0.0", options) {
    const wire = new Wire(label, query, options);
    const { status, body } = await within(ANSWER_MS, wire.upgraded, `${label}: no answer to the upgrade`);
    assert.equal(status, 101, `${label}: upgrade of ${wire.url} refused with HTTP ${status} (body ${JSON.stringify(body)})`);
    return wire;
  }

  // The HTTP status the upgrade is answered with (101 when it opens; then it is closed).
  static async status(label, query, options) {
    const wire = new Wire(label, query, options);
    const answer = await within(ANSWER_MS, wire.upgraded, `${label}: no answer to the upgrade`);
    if (answer.status === 101) wire.close();
    return answer;
  }

  send(frame) {
    this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  sendRaw(data, options = {}) {
    this.ws.send(data, options);
  }

  // The next item, within `ms`.
  next(what, ms = ANSWER_MS) {
    if (this.queue.length > 0) return Promise.resolve(this.queue.shift());
    if (this.closeInfo) {
      return Promise.reject(
        new Error(`${this.label}: websocket closed (${this.closeInfo.code} ${this.closeInfo.reason}) before ${what}`),
      );
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new Error(`${this.label}: no ${what} within ${ms} ms`));
      }, ms);
      const done = (f) => (v) => {
        clearTimeout(timer);
        this.waiter = null;
        f(v);
      };
      this.waiter = { ok: done(resolve), fail: done(reject), what };
    });
  }

  // The next item, which must be a JSON text frame; resolves with its value.
  async nextJson(what, ms) {
    const item = await this.next(what, ms);
    assert.ok(item.text !== undefined, `${this.label}: ${what}: expected a text frame, got binary ${item.binary?.toString("hex")}`);
    assert.ok(item.json !== undefined, `${this.label}: ${what}: not JSON: ${item.text}`);
    return item.json;
  }

  // The next item must equal `expected` (a JSON value).
  async expect(expected, what) {
    const got = await this.nextJson(what);
    assert.deepStrictEqual(got, expected, `${this.label}: ${what}`);
  }

  // The next item, which must be a binary frame; resolves with its bytes.
  async nextBinary(what, ms) {
    const item = await this.next(what, ms);
    assert.ok(item.binary, `${this.label}: ${what}: expected a binary frame, got text ${item.text}`);
    return item.binary;
  }

  // Nothing arrives for `ms`.
  async quiet(what, ms = QUIET_MS) {
    await sleep(ms);
    assert.deepStrictEqual(
      this.queue.map((item) => item.text ?? `<binary ${item.binary.toString("hex")}>`),
      [],
      `${this.label}: expected nothing ${what}`,
    );
  }

  // Joins `topic` with join_ref = ref = `ref` and checks the ok reply.
  async join(topic, ref, payload = {}) {
    this.send([ref, ref, topic, "phx_join", payload]);
    await this.expect([ref, ref, topic, "phx_reply", OK_EMPTY], `join reply for ${topic}`);
  }

  // Waits for the server to close the socket; resolves with {code, reason, at}.
  async waitClosed(what, ms = ANSWER_MS) {
    return within(ms, this.closed, `${this.label}: not closed by the server within ${ms} ms (${what})`);
  }

  get isOpen() {
    return this.ws.readyState === WebSocket.OPEN;
  }

  close() {
    this.ws.terminate();
  }
}

// ---------------------------------------------------------------------------
// Raw LongPoll client

// One LongPoll request; resolves with {http, headers, body (parsed JSON), ms}.
async function lpRequest(method, query, { body, headers = {} } = {}) {
  const init = { method, headers: { accept: "application/json", ...headers }, signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) };
  if (body !== undefined) {
    init.headers["content-type"] = "application/x-ndjson";
    init.body = body;
  }
  const t0 = Date.now();
  const url = query === null ? LP_ENDPOINT : `${LP_ENDPOINT}?${query}`;
  const res = await fetch(url, init);
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { http: res.status, headers: res.headers, text, body: json, ms: Date.now() - t0, url };
}

// A LongPoll answer: HTTP 200 and a JSON body; resolves with the body.
async function lpJson(method, query, options) {
  const res = await lpRequest(method, query, options);
  assert.equal(res.http, 200, `${method} ${res.url}: HTTP status (body ${res.text})`);
  assert.ok(res.body !== undefined, `${method} ${res.url}: body is not JSON: ${res.text}`);
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/, `${method} ${res.url}: content-type`);
  return res.body;
}

// Opens a LongPoll session with `query` (a vsn ...); resolves with its token.
async function lpOpen(what, query = "vsn=2.0.0", options) {
  const body = await lpJson("GET", query, options);
  assert.equal(body.status, 410, `${what}: opening GET status (body ${JSON.stringify(body)})`);
  assert.match(String(body.token), TOKEN_RE, `${what}: session token`);
  assert.deepStrictEqual(body.messages, [], `${what}: opening messages`);
  return body.token;
}

// POSTs `lines` (strings, or values to JSON-encode) to session `token`; resolves with the body.
function lpPost(token, lines, query = "vsn=2.0.0") {
  const text = lines.map((line) => (typeof line === "string" ? line : JSON.stringify(line))).join("\n");
  return lpJson("POST", `${query}&token=${encodeURIComponent(token)}`, { body: text });
}

// Polls session `token` until `count` messages came (each a string holding a JSON frame);
// resolves with the parsed frames. At most `polls` polls.
async function lpCollect(what, token, count, { query = "vsn=2.0.0", polls = 10 } = {}) {
  const frames = [];
  for (let n = 0; n < polls && frames.length < count; n++) {
    const body = await lpJson("GET", `${query}&token=${encodeURIComponent(token)}`);
    assert.ok([200, 204].includes(body.status), `${what}: poll status (body ${JSON.stringify(body)})`);
    assert.equal(body.token, token, `${what}: the poll names the session`);
    assert.ok(Array.isArray(body.messages), `${what}: messages is an array`);
    for (const message of body.messages) {
      assert.equal(typeof message, "string", `${what}: each message is a string, got ${JSON.stringify(message)}`);
      frames.push(JSON.parse(message));
    }
  }
  assert.equal(frames.length, count, `${what}: messages after ${polls} polls: ${JSON.stringify(frames)}`);
  return frames;
}

// ---------------------------------------------------------------------------
// Binary frames (PHOENIX.md §1.5)

const utf8 = (text) => Buffer.from(text, "utf8");

// A client push, kind 0: [0, jr_len, ref_len, topic_len, event_len, jr, ref, topic, event, payload].
function clientPush(joinRef, ref, topic, event, payload) {
  const fields = [joinRef, ref, topic, event].map(utf8);
  return Buffer.concat([Buffer.from([0, ...fields.map((f) => f.length)]), ...fields, Buffer.from(payload)]);
}

// A server push, kind 0: [0, jr_len, topic_len, event_len, jr, topic, event, payload].
function serverPush(joinRef, topic, event, payload) {
  const fields = [joinRef, topic, event].map(utf8);
  return Buffer.concat([Buffer.from([0, ...fields.map((f) => f.length)]), ...fields, Buffer.from(payload)]);
}

// A server broadcast, kind 2: [2, topic_len, event_len, topic, event, payload].
function serverBroadcast(topic, event, payload) {
  const fields = [topic, event].map(utf8);
  return Buffer.concat([Buffer.from([2, ...fields.map((f) => f.length)]), ...fields, Buffer.from(payload)]);
}

const hex = (buffer) => Buffer.from(buffer).toString("hex");

// ---------------------------------------------------------------------------
// A member of feed:<name> that counts the stream of `m` {i} emits: 0, 1, 2 ... once each, in
// order; anything else aborts the scenario.

class StreamMember {
  constructor(wire, topic) {
    this.wire = wire;
    this.topic = topic;
    this.received = 0;
    this.leaving = false;
    wire.onItem = (item) => {
      const frame = item.json;
      if (!Array.isArray(frame) || frame[3] !== "m") return false;
      const expected = [null, null, topic, "m", { i: this.received }];
      const got = { ...frame[4] };
      delete got.pad;
      if (frame[0] !== null || frame[1] !== null || frame[2] !== topic || got.i !== this.received) {
        abort(new Error(`${wire.label}: expected ${JSON.stringify(expected)}, got ${item.text.slice(0, 200)}`));
        return true;
      }
      this.received++;
      return true;
    };
    wire.closed.then((info) => {
      if (!this.leaving) abort(new Error(`${wire.label}: closed (${info.code} ${info.reason}) after ${this.received} emits`));
    });
  }

  static async start(label, topic) {
    const wire = await Wire.open(label);
    await wire.join(topic, "1");
    return new StreamMember(wire, topic);
  }

  // Waits until `n` emits arrived.
  async receivedAll(n, ms = 20_000) {
    await until(ms, () => this.received >= n, () => `${this.wire.label}: received ${this.received} of ${n} emits`, 5);
  }
}

// Emits `m` {i} to `topic` in batches of `batch` every `everyMs` until stopped, never more
// than `maxLag` ahead of `member`. `stop()` resolves with the number of emits.
function streamEmits(member, topic, { batch = 20, everyMs = 20, maxLag = 500 } = {}) {
  let sent = 0;
  let going = true;
  const done = (async () => {
    while (going) {
      await member.receivedAll(sent - maxLag);
      const delivered = await emit({ channel: topic, event: "m", from: sent, count: batch });
      assert.ok(delivered >= batch, `emits of ${sent}..${sent + batch} reached ${delivered} members`);
      sent += batch;
      await sleep(everyMs);
    }
    return sent;
  })();
  done.catch(abort);
  return {
    stop: async () => {
      going = false;
      return done;
    },
    get sent() {
      return sent;
    },
  };
}

// Runs each of `attacks` ({name, send(wire), code}) on a fresh socket of `vsn` (joined to
// the stream's topic) while a member receives a stream of emits; each must be closed with
// its code and a reason; then the member has every emit, in order, and is still open.
async function badInput(attacks, { vsn = "2.0.0" } = {}) {
  const topic = "room:feed";
  step("a member joins and the stream starts");
  const member = await StreamMember.start("good member", topic);
  const stream = streamEmits(member, topic);
  await member.receivedAll(100);

  const outcomes = [];
  for (const attack of attacks) {
    step(`attack: ${attack.name}`);
    const bad = await Wire.open(`bad client (${attack.name})`, `vsn=${vsn}`);
    if (vsn.startsWith("2")) await bad.join(topic, "1");
    else {
      bad.send({ topic, event: "phx_join", payload: {}, ref: "1", join_ref: "1" });
      await bad.nextJson("V1 join reply");
    }
    bad.onItem = () => true; // the stream: not what we wait for here
    const before = member.received;
    const sentAt = Date.now();
    attack.send(bad);
    const info = await bad.waitClosed(attack.name);
    outcomes.push(`${attack.name}: ${info.code} ${JSON.stringify(info.reason)} after ${info.at - sentAt} ms`);
    assert.equal(info.code, attack.code, `${attack.name}: close code (reason ${JSON.stringify(info.reason)})`);
    assert.ok(info.reason.length > 0, `${attack.name}: the close frame must say why`);
    // The stream goes on for the member.
    await member.receivedAll(before + 50);
  }

  step("the stream ends; the member has every emit, in order");
  const sent = await stream.stop();
  await member.receivedAll(sent);
  await sleep(QUIET_MS);
  assert.equal(member.received, sent, "emits received by the good member");
  assert.ok(member.wire.isOpen, "the good member is still open");
  step("the member still gets answers; only it is left");
  member.wire.send([null, "hb", "phoenix", "heartbeat", {}]);
  await member.wire.expect([null, "hb", "phoenix", "phx_reply", OK_EMPTY], "heartbeat reply after the attacks");
  const s = await until(
    ANSWER_MS,
    async () => {
      const s = await stats();
      return s.connections === 1 && s.subscriptions === 1 ? s : null;
    },
    () => "connections / subscriptions did not come down to 1 / 1",
  );
  console.log(`outcomes:\n  ${outcomes.join("\n  ")}\nstream: ${sent} emits; stats ${JSON.stringify(s)}`);
  member.leaving = true;
}

// ---------------------------------------------------------------------------
// Scenarios

const scenarios = {
  // 1. vsn over WebSocket.
  async "vsn-websocket"() {
    for (const vsn of ["2.0.0", "2.0.7"]) {
      step(`vsn=${vsn}: V2 arrays`);
      const v2 = await Wire.open(`vsn ${vsn}`, `vsn=${vsn}`);
      v2.send(["1", "1", "room:v", "phx_join", {}]);
      await v2.expect(["1", "1", "room:v", "phx_reply", OK_EMPTY], "V2 join reply");
      v2.send(["1", "2", "room:v", "ping", { a: 1 }]);
      await v2.expect(["1", "2", "room:v", "phx_reply", { status: "ok", response: { a: 1 } }], "V2 push reply");
      v2.close();
    }

    for (const [label, query] of [
      ["vsn=1.0.0", "vsn=1.0.0"],
      ["no vsn", null],
      ["no vsn, other params", "user=ada"],
    ]) {
      step(`${label}: V1 objects without join_ref`);
      const v1 = await Wire.open(label, query);
      v1.send({ topic: "phoenix", event: "heartbeat", payload: {}, ref: "h" });
      const hb = await v1.nextJson("V1 heartbeat reply");
      assert.deepStrictEqual(hb, { topic: "phoenix", event: "phx_reply", payload: OK_EMPTY, ref: "h" }, `${label}: heartbeat`);
      v1.send({ topic: "room:v1", event: "phx_join", payload: {}, ref: "1", join_ref: "1" });
      const reply = await v1.nextJson("V1 join reply");
      assert.deepStrictEqual(
        Object.keys(reply).sort(),
        ["event", "payload", "ref", "topic"],
        `${label}: keys of a V1 frame (no join_ref): ${JSON.stringify(reply)}`,
      );
      assert.deepStrictEqual(reply, { topic: "room:v1", event: "phx_reply", payload: OK_EMPTY, ref: "1" }, `${label}: join reply`);
      // A V1 client may leave join_ref out.
      v1.send({ topic: "room:v1", event: "ping", payload: { b: 2 }, ref: "2" });
      assert.deepStrictEqual(
        await v1.nextJson("V1 push reply"),
        { topic: "room:v1", event: "phx_reply", payload: { status: "ok", response: { b: 2 } }, ref: "2" },
        `${label}: push reply`,
      );
      await emit({ channel: "room:v1", event: "news", data: { n: 1 } });
      assert.deepStrictEqual(
        await v1.nextJson("V1 broadcast"),
        { topic: "room:v1", event: "news", payload: { n: 1 }, ref: null },
        `${label}: broadcast`,
      );
      v1.close();
    }

    for (const vsn of ["2.1.0", "3.0.0", "abc", "", "2.0", "1.1.0"]) {
      step(`vsn=${JSON.stringify(vsn)}: 403 before the upgrade`);
      const { status } = await Wire.status(`vsn ${vsn}`, `vsn=${encodeURIComponent(vsn)}`);
      assert.equal(status, 403, `vsn=${JSON.stringify(vsn)}: HTTP status of the upgrade`);
    }
  },

  // 1. vsn over LongPoll.
  async "vsn-longpoll"() {
    step("vsn=2.0.0: V2 strings");
    const v2 = await lpOpen("vsn 2.0.0");
    assert.deepStrictEqual(await lpPost(v2, [["1", "1", "room:lv", "phx_join", {}]]), { status: 200 }, "V2 upload");
    assert.deepStrictEqual(
      await lpCollect("V2 join reply", v2, 1),
      [["1", "1", "room:lv", "phx_reply", OK_EMPTY]],
      "V2 join reply",
    );

    for (const [label, query] of [
      ["vsn=1.0.0", "vsn=1.0.0"],
      ["no vsn", "user=ada"],
    ]) {
      step(`${label}: V1 objects`);
      const v1 = await lpOpen(label, query);
      const upload = await lpPost(v1, [{ topic: "room:lv1", event: "phx_join", payload: {}, ref: "1", join_ref: "1" }], query);
      assert.deepStrictEqual(upload, { status: 200 }, `${label}: upload`);
      const [reply] = await lpCollect(`${label}: join reply`, v1, 1, { query });
      assert.deepStrictEqual(reply, { topic: "room:lv1", event: "phx_reply", payload: OK_EMPTY, ref: "1" }, `${label}: join reply`);
    }

    for (const vsn of ["2.1.0", "3.0.0", "abc", ""]) {
      step(`vsn=${JSON.stringify(vsn)}: status 403`);
      const body = await lpJson("GET", `vsn=${encodeURIComponent(vsn)}`);
      assert.equal(body.status, 403, `vsn=${JSON.stringify(vsn)}: body ${JSON.stringify(body)}`);
      assert.equal(body.token, undefined, `vsn=${JSON.stringify(vsn)}: no session token`);
    }
  },

  // 2. Heartbeat before any join.
  async heartbeat() {
    step("heartbeat on a fresh socket");
    const wire = await Wire.open("heartbeat");
    wire.send([null, "7", "phoenix", "heartbeat", {}]);
    await wire.expect([null, "7", "phoenix", "phx_reply", OK_EMPTY], "heartbeat reply");
    step("heartbeats in a row, each answered with its ref");
    for (let n = 8; n < 13; n++) wire.send([null, String(n), "phoenix", "heartbeat", {}]);
    for (let n = 8; n < 13; n++) {
      await wire.expect([null, String(n), "phoenix", "phx_reply", OK_EMPTY], `heartbeat reply ${n}`);
    }
    await wire.quiet("after the heartbeat replies");
  },

  // 3. Join / leave / unmatched rows.
  async rows() {
    const wire = await Wire.open("rows");
    step("join ok: the reply copies join_ref and ref");
    wire.send(["3", "4", "room:1", "phx_join", { any: "params" }]);
    await wire.expect(["3", "4", "room:1", "phx_reply", OK_EMPTY], "join reply");
    step("a push with the join's join_ref is answered");
    wire.send(["3", "5", "room:1", "ping", { x: 1 }]);
    await wire.expect(["3", "5", "room:1", "phx_reply", { status: "ok", response: { x: 1 } }], "push reply");

    step("join of a topic no channel matches: unmatched topic, null join_ref");
    wire.send(["6", "6", "nope:1", "phx_join", {}]);
    await wire.expect([null, "6", "nope:1", "phx_reply", UNMATCHED], "unmatched join");

    step("push to a topic not joined: unmatched topic, null join_ref");
    wire.send(["7", "8", "room:2", "ping", {}]);
    await wire.expect([null, "8", "room:2", "phx_reply", UNMATCHED], "push to a topic not joined");
    wire.send([null, "9", "nope:2", "ping", {}]);
    await wire.expect([null, "9", "nope:2", "phx_reply", UNMATCHED], "push to a topic that matches nothing");

    step("leave: ok reply, then phx_close with the join_ref twice");
    wire.send(["3", "10", "room:1", "phx_leave", {}]);
    await wire.expect(["3", "10", "room:1", "phx_reply", OK_EMPTY], "leave reply");
    await wire.expect(["3", "3", "room:1", "phx_close", {}], "phx_close after leave");

    step("after the leave the topic is not joined");
    wire.send(["3", "11", "room:1", "ping", {}]);
    await wire.expect([null, "11", "room:1", "phx_reply", UNMATCHED], "push after leave");
    await emit({ channel: "room:1", event: "news", data: { after: "leave" } });

    step("leave when not joined: ok reply with the message's refs");
    wire.send(["12", "13", "room:9", "phx_leave", {}]);
    await wire.expect(["12", "13", "room:9", "phx_reply", OK_EMPTY], "leave of a topic not joined");
    await wire.quiet("after the leave of a topic not joined (no phx_close, no broadcast after leave)");

    step("join after leave works again");
    wire.send(["14", "14", "room:1", "phx_join", {}]);
    await wire.expect(["14", "14", "room:1", "phx_reply", OK_EMPTY], "second join reply");
    await wire.quiet("after the second join");
  },

  // 3. Duplicate joins and stale join_refs.
  async "stale-and-duplicate"() {
    const wire = await Wire.open("stale");
    step("first join");
    await wire.join("room:d", "1");
    step("duplicate join: phx_close with the old join_ref, then the new join's reply");
    wire.send(["5", "5", "room:d", "phx_join", {}]);
    await wire.expect(["1", "1", "room:d", "phx_close", {}], "phx_close of the first join");
    await wire.expect(["5", "5", "room:d", "phx_reply", OK_EMPTY], "reply to the second join");

    step("a push with the old join_ref is ignored");
    wire.send(["1", "6", "room:d", "ping", { stale: true }]);
    await wire.quiet("in answer to a push with a stale join_ref");
    step("a push with the current join_ref is answered");
    wire.send(["5", "7", "room:d", "ping", { current: true }]);
    await wire.expect(["5", "7", "room:d", "phx_reply", { status: "ok", response: { current: true } }], "current push reply");
    step("a push with a null join_ref is answered (Phoenix 1.8.12)");
    wire.send([null, "8", "room:d", "ping", { nil: true }]);
    await wire.expect(["5", "8", "room:d", "phx_reply", { status: "ok", response: { nil: true } }], "null join_ref push reply");

    step("a leave with the old join_ref is ignored");
    wire.send(["1", "9", "room:d", "phx_leave", {}]);
    await wire.quiet("in answer to a leave with a stale join_ref");
    step("the member is still joined: it gets broadcasts, once");
    await emit({ channel: "room:d", event: "news", data: { n: 1 } });
    await wire.expect([null, null, "room:d", "news", { n: 1 }], "broadcast after the duplicate join");
    await wire.quiet("after one broadcast (the replaced join must not get it too)");
    const s = await stats();
    assert.equal(s.subscriptions, 1, `one subscription after a duplicate join: ${JSON.stringify(s)}`);

    step("rejoin after a leave, new join_ref: pushes with the leave's join_ref are stale");
    wire.send(["5", "10", "room:d", "phx_leave", {}]);
    await wire.expect(["5", "10", "room:d", "phx_reply", OK_EMPTY], "leave reply");
    await wire.expect(["5", "5", "room:d", "phx_close", {}], "phx_close");
    await wire.join("room:d", "11");
    wire.send(["5", "12", "room:d", "ping", {}]);
    await wire.quiet("in answer to a push with the join_ref of the left join");
    wire.send(["11", "13", "room:d", "ping", { ok: 1 }]);
    await wire.expect(["11", "13", "room:d", "phx_reply", { status: "ok", response: { ok: 1 } }], "push of the rejoin");
  },

  // 3. Extra trailing elements of a V2 frame are ignored: Phoenix decodes
  // [join_ref, ref, topic, event, payload | _] (PHOENIX.md §1.3).
  async "extra-elements"() {
    const wire = await Wire.open("extra elements");
    await wire.join("room:x", "1");
    const extras = [["one"], [{ a: 1 }, null], ["two", 7, [], {}, "more"]];
    for (const [k, extra] of extras.entries()) {
      step(`a push with ${extra.length} extra element(s)`);
      const ref = `e${k}`;
      wire.send(["1", ref, "room:x", "ping", { k }, ...extra]);
      await wire.expect(["1", ref, "room:x", "phx_reply", { status: "ok", response: { k } }], `reply to ${JSON.stringify(extra)} extra`);
    }
    step("a heartbeat with extra elements");
    wire.send([null, "h", "phoenix", "heartbeat", {}, 1, 2]);
    await wire.expect([null, "h", "phoenix", "phx_reply", OK_EMPTY], "heartbeat reply");
  },

  // 3. A duplicate join sent before the first join's reply (pipelined): Phoenix answers each
  // join before it reads the next message, so every join's reply precedes its phx_close.
  async "pipelined-duplicate"() {
    const topic = "slow:pd"; // its join takes 200 ms
    const wire = await Wire.open("pipelined");
    step("three joins of one topic in a row, no waiting");
    for (const ref of ["1", "2", "3"]) wire.send([ref, ref, topic, "phx_join", {}]);
    const got = [];
    for (let k = 0; k < 5; k++) got.push(await wire.nextJson(`frame ${k + 1} of 5`));
    await wire.quiet("after the five frames");
    step("one membership is left, the last join's");
    assert.equal((await stats()).subscriptions, 1, "subscriptions after three joins of one topic");
    await emit({ channel: topic, event: "news", data: { n: 1 } });
    await wire.expect([null, null, topic, "news", { n: 1 }], "broadcast");
    await wire.quiet("after one broadcast");
    wire.send(["3", "4", topic, "ping", { last: true }]);
    await wire.expect(["3", "4", topic, "phx_reply", { status: "ok", response: { last: true } }], "push of the last join");
    step("each join's reply comes before its phx_close (PHOENIX.md §2.1, §6, §9.4)");
    const expected = [
      ["1", "1", topic, "phx_reply", OK_EMPTY],
      ["1", "1", topic, "phx_close", {}],
      ["2", "2", topic, "phx_reply", OK_EMPTY],
      ["2", "2", topic, "phx_close", {}],
      ["3", "3", topic, "phx_reply", OK_EMPTY],
    ];
    const line = (frames) => frames.map((f) => JSON.stringify(f)).join("\n  ");
    assert.ok(
      util.isDeepStrictEqual(got, expected),
      `frames in answer to three pipelined joins:\ngot\n  ${line(got)}\nexpected\n  ${line(expected)}`,
    );
  },

  // 3. Broadcasts.
  async broadcasts() {
    const a = await Wire.open("member a");
    const b = await Wire.open("member b");
    await a.join("room:b", "3");
    await b.join("room:b", "6");
    step("an emit reaches both as [null, null, topic, event, payload]");
    assert.equal(await emit({ channel: "room:b", event: "news", data: { text: "hi", list: [1, 2] } }), 2, "delivered");
    for (const w of [a, b]) {
      await w.expect([null, null, "room:b", "news", { text: "hi", list: [1, 2] }], "broadcast");
    }
    step("a member of another topic gets nothing");
    const c = await Wire.open("member c");
    await c.join("room:other", "1");
    await emit({ channel: "room:b", event: "news", data: { n: 2 } });
    for (const w of [a, b]) await w.expect([null, null, "room:b", "news", { n: 2 }], "second broadcast");
    await c.quiet("on another topic");
  },

  // 3. Binary frames.
  async binary() {
    const a = await Wire.open("binary a");
    const b = await Wire.open("binary b");
    await a.join("echo:b", "2");
    await b.join("echo:b", "4");

    step("client push kind 0 (the bytes of PHOENIX.md §1.5 shape) reaches handle_in as bytes");
    const payload = [0xde, 0xad, 0x00, 0xff];
    a.sendRaw(clientPush("2", "3", "echo:b", "bin", payload));
    const items = [await a.next("push back or reply"), await a.next("push back or reply")];
    const pushed = items.find((item) => item.binary);
    const reply = items.find((item) => item.json);
    assert.ok(pushed && reply, `expected a binary push and a reply, got ${JSON.stringify(items.map((i) => i.text ?? hex(i.binary)))}`);
    assert.deepStrictEqual(reply.json, ["2", "3", "echo:b", "phx_reply", { status: "ok", response: { bytes: payload } }], "reply");
    step("server push: kind 0 with the member's join_ref, no ref");
    assert.equal(hex(pushed.binary), hex(serverPush("2", "echo:b", "bin", payload)), "binary push bytes");
    await b.quiet("(a push goes to its member only)");

    step("a broadcast of bytes from handle_in: kind 2 to every member");
    b.sendRaw(clientPush("4", "5", "echo:b", "bin_all", [1, 2, 3]));
    const expected = hex(serverBroadcast("echo:b", "bin", [1, 2, 3]));
    assert.equal(hex(await a.nextBinary("binary broadcast")), expected, "broadcast bytes at a");
    const bItems = [await b.next("broadcast or reply"), await b.next("broadcast or reply")];
    assert.equal(hex(bItems.find((i) => i.binary)?.binary ?? []), expected, "broadcast bytes at the sender");
    assert.deepStrictEqual(
      bItems.find((i) => i.json)?.json,
      ["4", "5", "echo:b", "phx_reply", { status: "ok", response: { bytes: [1, 2, 3] } }],
      "reply to bin_all",
    );

    step("an emit of bytes from the app: kind 2");
    await emit({ channel: "echo:b", event: "blob", bytes: [9, 8, 7] });
    for (const w of [a, b]) {
      assert.equal(hex(await w.nextBinary("emitted bytes")), hex(serverBroadcast("echo:b", "blob", [9, 8, 7])), `${w.label}: emit`);
    }

    step("empty refs and an empty payload in a client push");
    a.sendRaw(clientPush("", "", "echo:b", "bin", []));
    const pushedEmpty = await a.nextBinary("push back of no bytes");
    assert.equal(hex(pushedEmpty), hex(serverPush("2", "echo:b", "bin", [])), "push of no bytes");
    // Its reply (if any) carries a null ref: nothing to match it with, so not checked.
    await sleep(200);
    a.queue = a.queue.filter((item) => !(item.json?.[3] === "phx_reply" && item.json?.[1] === null));

    step("lengths count UTF-8 bytes (phoenix.js 1.8)");
    const topic = "echo:ü€";
    await a.join(topic, "7");
    a.sendRaw(clientPush("7", "8", topic, "bin", [42]));
    const utfItems = [await a.next("utf-8 push back"), await a.next("utf-8 reply")];
    assert.equal(hex(utfItems.find((i) => i.binary)?.binary ?? []), hex(serverPush("7", topic, "bin", [42])), "non-ASCII topic push");
    assert.deepStrictEqual(
      utfItems.find((i) => i.json)?.json,
      ["7", "8", topic, "phx_reply", { status: "ok", response: { bytes: [42] } }],
      "non-ASCII topic reply",
    );

    step("a JSON push to the echo channel is still JSON");
    a.send(["2", "9", "echo:b", "bin", { not: "bytes" }]);
    await a.expect(["2", "9", "echo:b", "phx_reply", { status: "error", response: { reason: "not_binary" } }], "reply");
  },

  // 3. A binary frame on a V1 socket.
  async "binary-on-v1"() {
    await badInput(
      [{ name: "binary frame on vsn 1.0.0", code: 1002, send: (w) => w.sendRaw(clientPush("1", "2", "room:feed", "x", [1])) }],
      { vsn: "1.0.0" },
    );
  },

  // 4. Bad input.
  async "bad-json"() {
    await badInput([
      { name: "not json", code: 1002, send: (w) => w.send("not json") },
      { name: "truncated json", code: 1002, send: (w) => w.send('["1","2","room:feed","x"') },
      { name: "empty text", code: 1002, send: (w) => w.send("") },
    ]);
  },

  async "bad-shape"() {
    await badInput([
      { name: "empty array", code: 1002, send: (w) => w.send("[]") },
      { name: "four elements", code: 1002, send: (w) => w.send(["1", "2", "room:feed", "x"]) },
      { name: "number ref", code: 1002, send: (w) => w.send([1, "2", "room:feed", "x", {}]) },
      { name: "null topic", code: 1002, send: (w) => w.send(["1", "2", null, "x", {}]) },
      { name: "V1 object on V2", code: 1002, send: (w) => w.send({ topic: "room:feed", event: "x", payload: {}, ref: "1" }) },
      { name: "a string", code: 1002, send: (w) => w.send('"hello"') },
    ]);
  },

  async "bad-utf8"() {
    await badInput([
      {
        name: "invalid utf-8 text frame",
        code: 1007,
        // ["1","2","room:feed","x",{"a":"<ff fe>"}]
        send: (w) => w.sendRaw(Buffer.concat([utf8('["1","2","room:feed","x",{"a":"'), Buffer.from([0xff, 0xfe]), utf8('"}]')]), { binary: false }),
      },
    ]);
  },

  async oversized() {
    const MAX = 64 * 1024;
    step("a message just under max_payload is answered");
    const fits = await Wire.open("fits");
    const pad = "x".repeat(MAX - 100);
    fits.send([null, "big", "phoenix", "heartbeat", { pad }]);
    await fits.expect([null, "big", "phoenix", "phx_reply", OK_EMPTY], "reply to a message of 64 KiB - 60 bytes");
    fits.close();

    await badInput([
      {
        name: "one frame over max_payload",
        code: 1009,
        send: (w) => w.send(["1", "2", "room:feed", "x", { pad: "y".repeat(MAX + 10) }]),
      },
      {
        name: "continuation frames over max_payload",
        code: 1009,
        send: (w) => {
          const text = JSON.stringify(["1", "2", "room:feed", "x", { pad: "z".repeat(MAX + 10) }]);
          const third = Math.ceil(text.length / 3);
          w.sendRaw(text.slice(0, third), { binary: false, fin: false });
          w.sendRaw(text.slice(third, 2 * third), { binary: false, fin: false });
          w.sendRaw(text.slice(2 * third), { binary: false, fin: true });
        },
      },
    ]);
  },

  async "bad-binary"() {
    const ok = clientPush("1", "2", "room:feed", "x", [1, 2]);
    await badInput([
      { name: "empty binary frame", code: 1002, send: (w) => w.sendRaw(Buffer.alloc(0)) },
      { name: "truncated header", code: 1002, send: (w) => w.sendRaw(Buffer.from([0, 1])) },
      { name: "lengths past the end", code: 1002, send: (w) => w.sendRaw(Buffer.from([0, 5, 5, 5, 5, 0x31])) },
      { name: "fields cut short", code: 1002, send: (w) => w.sendRaw(ok.subarray(0, 10)) },
      { name: "unknown kind 7", code: 1002, send: (w) => w.sendRaw(Buffer.from([7, 0, 0, 0, 0])) },
      { name: "server-only kind 2", code: 1002, send: (w) => w.sendRaw(serverBroadcast("room:feed", "x", [1])) },
      { name: "server-only kind 1", code: 1002, send: (w) => w.sendRaw(Buffer.from([1, 1, 1, 1, 2, 0x31, 0x32, 0x74, 0x6f, 0x6b, 7])) },
      { name: "topic not utf-8", code: 1002, send: (w) => w.sendRaw(Buffer.from([0, 1, 1, 2, 1, 0x31, 0x32, 0xff, 0xfe, 0x78])) },
    ]);
  },

  // 5. authToken subprotocol (and the LongPoll header).
  async "auth-token"() {
    const encode = (token) => AUTH_PREFIX + Buffer.from(token, "utf8").toString("base64").replace(/=/g, "");

    step("the right token: 101 selecting phoenix, the token reaches the connect hook");
    const wire = await Wire.open("right token", "vsn=2.0.0", { protocols: ["phoenix", encode(AUTH_TOKEN)] });
    assert.equal(wire.ws.protocol, "phoenix", "selected subprotocol");
    await wire.join("room:auth", "1");
    wire.send(["1", "2", "room:auth", "whoami", {}]);
    await wire.expect(["1", "2", "room:auth", "phx_reply", { status: "ok", response: { token: AUTH_TOKEN } }], "whoami");
    wire.close();

    step("a wrong token: 403");
    const wrong = await Wire.status("wrong token", "vsn=2.0.0", { protocols: ["phoenix", encode("wrong>>token")] });
    assert.equal(wrong.status, 403, "HTTP status with a wrong token");

    step("phoenix alone: 101 selecting phoenix, no token");
    const bare = await Wire.open("phoenix alone", "vsn=2.0.0", { protocols: ["phoenix"] });
    assert.equal(bare.ws.protocol, "phoenix", "selected subprotocol");
    await bare.join("room:auth", "1");
    bare.send(["1", "2", "room:auth", "whoami", {}]);
    await bare.expect(["1", "2", "room:auth", "phx_reply", { status: "ok", response: { token: null } }], "whoami without token");
    bare.close();

    for (const protocols of [["chat"], [encode(AUTH_TOKEN)], ["chat", "superchat"]]) {
      step(`subprotocols without phoenix (${protocols.join(", ")}): 403`);
      const refused = await Wire.status(`protocols ${protocols}`, "vsn=2.0.0", { protocols });
      assert.equal(refused.status, 403, `HTTP status for subprotocols ${protocols}`);
    }

    step("LongPoll: X-Phoenix-AuthToken reaches the connect hook");
    const token = await lpOpen("longpoll with token", "vsn=2.0.0", { headers: { "x-phoenix-authtoken": AUTH_TOKEN } });
    await lpPost(token, [["1", "1", "room:auth", "phx_join", {}], ["1", "2", "room:auth", "whoami", {}]]);
    assert.deepStrictEqual(
      await lpCollect("longpoll whoami", token, 2),
      [
        ["1", "1", "room:auth", "phx_reply", OK_EMPTY],
        ["1", "2", "room:auth", "phx_reply", { status: "ok", response: { token: AUTH_TOKEN } }],
      ],
      "longpoll join and whoami",
    );
    const refused = await lpJson("GET", "vsn=2.0.0", { headers: { "x-phoenix-authtoken": "wrong" } });
    assert.equal(refused.status, 403, `LongPoll with a wrong token: ${JSON.stringify(refused)}`);
  },

  // 5. An authToken the server cannot decode is a wrong token, not no token.
  async "auth-token-malformed"() {
    step("the connect hook accepts sockets without a token");
    (await Wire.open("phoenix alone", "vsn=2.0.0", { protocols: ["phoenix"] })).close();
    for (const [label, encoded] of [
      ["not base64", "%%%"],
      ["base64 of bytes that are not UTF-8", Buffer.from([0xc3, 0x28]).toString("base64").replace(/=/g, "")],
    ]) {
      step(`a token that is ${label}: refused, not taken for no token`);
      const answer = await Wire.status(label, "vsn=2.0.0", { protocols: ["phoenix", AUTH_PREFIX + encoded] });
      assert.ok(
        answer.status >= 400 && answer.status < 500,
        `authToken ${JSON.stringify(AUTH_PREFIX + encoded)} (${label}): HTTP ${answer.status}; the socket must not open as if no token had been given`,
      );
    }
  },

  // 6. Connect refusal.
  async refusal() {
    step("WebSocket: 403 before the upgrade");
    const refused = await Wire.status("refused", "refuse=1&vsn=2.0.0");
    assert.equal(refused.status, 403, "HTTP status");
    assert.equal(refused.body, "", "body of the 403 (Phoenix sends none)");
    step("LongPoll: status 403 in a 200 JSON body, no session");
    const body = await lpJson("GET", "refuse=1&vsn=2.0.0");
    assert.equal(body.status, 403, `body ${JSON.stringify(body)}`);
    assert.equal(body.token, undefined, "no session token");
    step("nothing stays open");
    assert.equal((await stats()).connections, 0, "connections after refusals");
    step("not a WebSocket handshake: 400");
    for (const method of ["GET", "POST"]) {
      const res = await fetch(`${WS_ENDPOINT.replace(/^ws/, "http")}?vsn=2.0.0`, { method, signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) });
      assert.equal(res.status, 400, `${method} /socket/websocket without an upgrade: HTTP status`);
    }
    step("LongPoll: a method other than GET and POST: 400");
    const put = await lpRequest("PUT", "vsn=2.0.0", { body: "x" });
    assert.equal(put.http, 400, `PUT /socket/longpoll: HTTP status (body ${put.text})`);
    step("the same params without refuse are accepted");
    (await Wire.open("accepted", "vsn=2.0.0&other=1")).close();
  },

  // 6. Origin policy (default: same host).
  async origin() {
    const own = URL;
    step("a foreign Origin: 403");
    const evil = await Wire.status("evil origin", "vsn=2.0.0", { headers: { Origin: "http://evil.example" } });
    assert.equal(evil.status, 403, "HTTP status for http://evil.example");
    const sameHostOtherPort = await Wire.status("other port", "vsn=2.0.0", { headers: { Origin: "http://127.0.0.1:1" } });
    assert.equal(sameHostOtherPort.status, 403, "HTTP status for another port of the same host");
    for (const origin of ["null", `${own}.evil.example`, `${own}@evil.example`]) {
      const lookalike = await Wire.status(`origin ${origin}`, "vsn=2.0.0", { headers: { Origin: origin } });
      assert.equal(lookalike.status, 403, `HTTP status for Origin ${origin}`);
    }
    step("no Origin: accepted");
    (await Wire.open("no origin", "vsn=2.0.0")).close();
    step("the server's own origin: accepted");
    (await Wire.open("own origin", "vsn=2.0.0", { headers: { Origin: own } })).close();
    step("LongPoll: a foreign Origin is refused, the own one accepted");
    const lpEvil = await lpRequest("GET", "vsn=2.0.0", { headers: { origin: "http://evil.example" } });
    assert.ok(
      lpEvil.http === 403 || lpEvil.body?.status === 403,
      `LongPoll with a foreign origin: HTTP ${lpEvil.http}, body ${lpEvil.text}`,
    );
    await lpOpen("longpoll own origin", "vsn=2.0.0", { headers: { origin: own } });
  },

  // 7. Idle timeout (500 ms).
  async "idle-timeout"() {
    step("a silent socket and one that sends heartbeats");
    const silent = await Wire.open("silent");
    const alive = await Wire.open("heartbeating");
    let answered = 0;
    let sent = 0;
    alive.onItem = (item) => {
      const frame = item.json;
      if (Array.isArray(frame) && frame[2] === "phoenix" && frame[3] === "phx_reply") {
        assert.deepStrictEqual(frame, [null, frame[1], "phoenix", "phx_reply", OK_EMPTY], "heartbeat reply");
        answered++;
        return true;
      }
      return false;
    };
    const beating = (async () => {
      const endAt = Date.now() + 2_000;
      while (Date.now() < endAt && alive.isOpen) {
        alive.send([null, String(++sent), "phoenix", "heartbeat", {}]);
        await sleep(200);
      }
    })();

    step("the silent socket is closed with 1001 within 0.5-1.5 s");
    const info = await silent.waitClosed("idle timeout", 3_000);
    const afterMs = info.at - silent.openedAt;
    console.log(`silent socket closed after ${afterMs} ms: ${info.code} ${info.reason}`);
    assert.equal(info.code, 1001, `close code (reason ${JSON.stringify(info.reason)})`);
    assert.ok(afterMs >= 450 && afterMs <= 1_500, `closed ${afterMs} ms after opening (idle timeout 500 ms)`);

    step("the heartbeating socket is open after 2 s, every heartbeat answered");
    await beating;
    assert.ok(alive.isOpen, `heartbeating socket closed: ${JSON.stringify(alive.closeInfo)}`);
    await until(ANSWER_MS, () => answered === sent, () => `${answered} of ${sent} heartbeats answered`);
    assert.ok(sent >= 8, `only ${sent} heartbeats sent in 2 s`);
    step("once it stops, it is closed too");
    const stoppedAt = Date.now();
    const info2 = await alive.waitClosed("idle timeout after the heartbeats stop", 3_000);
    assert.equal(info2.code, 1001, "close code after the heartbeats stopped");
    assert.ok(info2.at - stoppedAt <= 1_500, `closed ${info2.at - stoppedAt} ms after the last heartbeat`);
  },

  // 8. LongPoll: the flow.
  async "longpoll-flow"() {
    step("GET without a token: 410 with a new token");
    const first = await lpRequest("GET", "vsn=2.0.0");
    assert.equal(first.http, 200, "HTTP status");
    assert.equal(first.body?.status, 410, `body ${first.text}`);
    assert.match(String(first.body.token), TOKEN_RE, "token");
    assert.deepStrictEqual(first.body.messages, [], "messages");
    assert.match(first.headers.get("content-type") ?? "", /^application\/json/, "content-type");
    assert.equal(first.headers.get("cache-control"), "no-store", "cache-control");
    const token = first.body.token;
    const other = await lpOpen("a second session");
    assert.notEqual(other, token, "two sessions, two tokens");

    step("POST ndjson, a join and a push: 200");
    const upload = await lpPost(token, [["1", "1", "room:lp", "phx_join", {}], ["1", "2", "room:lp", "ping", { n: 1 }]]);
    assert.deepStrictEqual(upload, { status: 200 }, "upload answer");

    step("GET ?token=T: 200 with the replies as V2 strings");
    const frames = await lpCollect("replies", token, 2);
    assert.deepStrictEqual(
      frames,
      [
        ["1", "1", "room:lp", "phx_reply", OK_EMPTY],
        ["1", "2", "room:lp", "phx_reply", { status: "ok", response: { n: 1 } }],
      ],
      "replies in order",
    );

    step("a heartbeat and a broadcast");
    await lpPost(token, [[null, "3", "phoenix", "heartbeat", {}]]);
    await emit({ channel: "room:lp", event: "news", data: { over: "longpoll" } });
    assert.deepStrictEqual(
      await lpCollect("heartbeat and broadcast", token, 2),
      [
        [null, "3", "phoenix", "phx_reply", OK_EMPTY],
        [null, null, "room:lp", "news", { over: "longpoll" }],
      ],
      "heartbeat reply and broadcast",
    );

    step("an idle poll: 204 after the 300 ms window");
    const idle = await lpRequest("GET", `vsn=2.0.0&token=${token}`);
    assert.deepStrictEqual(idle.body, { status: 204, token, messages: [] }, "idle poll body");
    assert.ok(idle.ms >= 250 && idle.ms <= 2_500, `idle poll answered after ${idle.ms} ms (window 300 ms)`);

    step("the other session saw nothing of it");
    const quiet = await lpJson("GET", `vsn=2.0.0&token=${other}`);
    assert.deepStrictEqual(quiet, { status: 204, token: other, messages: [] }, "other session");
  },

  // 8. LongPoll: a poll waiting for messages (window 10 s) is answered as soon as one comes.
  async "longpoll-wakeup"() {
    const token = await lpOpen("session");
    await lpPost(token, [["1", "1", "room:wake", "phx_join", {}]]);
    await lpCollect("join reply", token, 1);
    step("a poll waits; an emit 300 ms later answers it");
    const waiting = lpRequest("GET", `vsn=2.0.0&token=${token}`);
    await sleep(300);
    await emit({ channel: "room:wake", event: "news", data: { n: 2 } });
    const woken = await waiting;
    assert.equal(woken.body?.status, 200, `woken poll: ${woken.text}`);
    assert.deepStrictEqual(woken.body.messages.map((m) => JSON.parse(m)), [[null, null, "room:wake", "news", { n: 2 }]], "woken poll");
    assert.ok(woken.ms < 5_000, `the waiting poll took ${woken.ms} ms (the window is 10 s)`);
    step("an upload while a poll waits: its replies answer the poll");
    const waiting2 = lpRequest("GET", `vsn=2.0.0&token=${token}`);
    await sleep(300);
    assert.deepStrictEqual(await lpPost(token, [["1", "2", "room:wake", "ping", { m: 3 }]]), { status: 200 }, "upload during a poll");
    const woken2 = await waiting2;
    assert.deepStrictEqual(
      woken2.body?.messages?.map((m) => JSON.parse(m)),
      [["1", "2", "room:wake", "phx_reply", { status: "ok", response: { m: 3 } }]],
      `poll answered by the reply: ${woken2.text}`,
    );
    assert.ok(woken2.ms < 5_000, `the waiting poll took ${woken2.ms} ms (the window is 10 s)`);
  },

  // 8. LongPoll: tokens.
  async "longpoll-tokens"() {
    const a = await lpOpen("session A");
    const b = await lpOpen("session B");
    await lpPost(a, [["1", "1", "room:secret", "phx_join", {}], ["1", "2", "room:secret", "ping", { secret: "of A" }]]);

    const forged = [
      "AAAAAAAAAAAAAAAAAAAA",
      a.slice(0, 19) + (a[19] === "A" ? "B" : "A"),
      a.toLowerCase() === a ? a.toUpperCase() : a.toLowerCase(),
      a + "x",
      a.slice(0, 19),
      "../../etc/passwd",
      "%00",
      b.slice(0, 10) + a.slice(10),
    ];
    for (const token of forged) {
      if (token === a || token === b) continue;
      step(`forged token ${JSON.stringify(token)}: 410 on GET and POST`);
      const got = await lpJson("GET", `vsn=2.0.0&token=${encodeURIComponent(token)}`);
      assert.equal(got.status, 410, `GET with ${JSON.stringify(token)}: ${JSON.stringify(got)}`);
      assert.ok(!got.messages?.length, `GET with ${JSON.stringify(token)} returned messages: ${JSON.stringify(got)}`);
      assert.ok(got.token !== a && got.token !== b, `GET with ${JSON.stringify(token)} named an existing session`);
      const posted = await lpJson("POST", `vsn=2.0.0&token=${encodeURIComponent(token)}`, {
        body: JSON.stringify(["1", "9", "room:secret", "ping", { from: "forger" }]),
      });
      assert.equal(posted.status, 410, `POST with ${JSON.stringify(token)}: ${JSON.stringify(posted)}`);
    }
    step("POST without a token: 410");
    const noToken = await lpJson("POST", "vsn=2.0.0", { body: JSON.stringify([null, "1", "phoenix", "heartbeat", {}]) });
    assert.equal(noToken.status, 410, `POST without a token: ${JSON.stringify(noToken)}`);

    step("B never sees A's messages");
    const bSaw = await lpJson("GET", `vsn=2.0.0&token=${b}`);
    assert.deepStrictEqual(bSaw, { status: 204, token: b, messages: [] }, "B's poll");
    step("A gets its own, and nothing the forgers posted");
    const aSaw = await lpCollect("A's replies", a, 2);
    assert.deepStrictEqual(
      aSaw,
      [
        ["1", "1", "room:secret", "phx_reply", OK_EMPTY],
        ["1", "2", "room:secret", "phx_reply", { status: "ok", response: { secret: "of A" } }],
      ],
      "A's replies",
    );
    const aAfter = await lpJson("GET", `vsn=2.0.0&token=${a}`);
    assert.deepStrictEqual(aAfter, { status: 204, token: a, messages: [] }, "A after its replies (no forger's ping)");
  },

  // 8. LongPoll: at most 100 lines per upload.
  async "longpoll-lines"() {
    step("100 heartbeats in one upload: 200, 100 replies");
    const token = await lpOpen("session");
    const hundred = Array.from({ length: 100 }, (_, k) => [null, `h${k}`, "phoenix", "heartbeat", {}]);
    assert.deepStrictEqual(await lpPost(token, hundred), { status: 200 }, "100 lines");
    const replies = await lpCollect("100 heartbeat replies", token, 100, { polls: 20 });
    assert.deepStrictEqual(
      replies.map((r) => r[1]),
      hundred.map((h) => h[1]),
      "every heartbeat answered, in order",
    );

    step("101 lines: refused, and the session closed");
    const refused = await lpJson("POST", `vsn=2.0.0&token=${token}`, {
      body: [...hundred, [null, "h100", "phoenix", "heartbeat", {}]].map((l) => JSON.stringify(l)).join("\n"),
    });
    assert.notEqual(refused.status, 200, `101 lines: ${JSON.stringify(refused)}`);
    await until(ANSWER_MS, async () => (await stats()).connections === 0, () => "the session is still counted");
    const after = await lpJson("GET", `vsn=2.0.0&token=${token}`);
    assert.equal(after.status, 410, `poll after the refused upload: ${JSON.stringify(after)}`);
    assert.ok(!after.messages?.length && after.token !== token, `poll after the refused upload: ${JSON.stringify(after)}`);
  },

  // 8. LongPoll: a base64 line is a binary push.
  async "longpoll-binary"() {
    const token = await lpOpen("session");
    step("a join line, then a base64 line");
    const push = clientPush("1", "2", "echo:lp", "bin", [0xde, 0xad, 0xbe, 0xef]);
    const upload = await lpPost(token, [["1", "1", "echo:lp", "phx_join", {}], push.toString("base64")]);
    assert.deepStrictEqual(upload, { status: 200 }, "upload");
    step("the reply says handle_in got the bytes");
    const frames = await lpCollect("join reply, echo and reply", token, 3);
    assert.deepStrictEqual(frames[0], ["1", "1", "echo:lp", "phx_reply", OK_EMPTY], "join reply");
    const reply = frames.find((f) => f[3] === "phx_reply" && f[1] === "2");
    assert.deepStrictEqual(
      reply,
      ["1", "2", "echo:lp", "phx_reply", { status: "ok", response: { bytes: [0xde, 0xad, 0xbe, 0xef] } }],
      `reply to the binary push (all: ${JSON.stringify(frames)})`,
    );

    step("a line that is neither a frame nor base64: refused, the session closed");
    const bad = await lpJson("POST", `vsn=2.0.0&token=${token}`, { body: "%%% not base64 %%%" });
    assert.notEqual(bad.status, 200, `bad line: ${JSON.stringify(bad)}`);
    const after = await lpJson("GET", `vsn=2.0.0&token=${token}`);
    assert.equal(after.status, 410, `poll after the bad line: ${JSON.stringify(after)}`);
    assert.ok(!after.messages?.length && after.token !== token, `poll after the bad line: ${JSON.stringify(after)}`);
  },

  // 8. LongPoll: a session not polled for longpoll_timeout (500 ms) is gone.
  async "longpoll-expiry"() {
    const idle = await lpOpen("idle session");
    const busy = await lpOpen("busy session");
    step("the busy session polls without pause for 2 s; the idle one does not poll");
    const t0 = Date.now();
    let polls = 0;
    while (Date.now() - t0 < 2_000) {
      const body = await lpJson("GET", `vsn=2.0.0&token=${busy}`);
      assert.deepStrictEqual(body, { status: 204, token: busy, messages: [] }, `busy poll ${polls}`);
      polls++;
    }
    step("only the busy session is counted");
    assert.equal((await stats()).connections, 1, "connections after 2 s");
    step("the busy session stops polling: gone within 1.5 s");
    const stoppedAt = Date.now();
    await until(3_000, async () => (await stats()).connections === 0, () => "the busy session is still counted");
    const goneMs = Date.now() - stoppedAt;
    console.log(`busy session: ${polls} polls; gone ${goneMs} ms after its last poll`);
    assert.ok(goneMs <= 1_500, `the unpolled session lived ${goneMs} ms (timeout 500 ms)`);
    // (A GET with a dead token may open a new session, as Phoenix does: hence the counts first.)
    step("both are gone: 410 on GET and POST");
    for (const [label, token] of [["idle", idle], ["busy", busy]]) {
      const gone = await lpJson("GET", `vsn=2.0.0&token=${token}`);
      assert.equal(gone.status, 410, `GET of the ${label} session: ${JSON.stringify(gone)}`);
      assert.ok(!gone.messages?.length && gone.token !== token, `GET of the ${label} session: ${JSON.stringify(gone)}`);
      const posted = await lpJson("POST", `vsn=2.0.0&token=${token}`, { body: JSON.stringify([null, "1", "phoenix", "heartbeat", {}]) });
      assert.equal(posted.status, 410, `POST to the ${label} session: ${JSON.stringify(posted)}`);
    }
  },

  // 8. LongPoll: the app's `token` param and the session token.
  async "longpoll-app-token"() {
    step("?token=APP&vsn=2.0.0&token=SESSION resolves to the session (the last token)");
    const session = await lpOpen("session", "vsn=2.0.0");
    const query = "token=APP&vsn=2.0.0";
    assert.deepStrictEqual(
      await lpPost(session, [["1", "1", "room:app", "phx_join", {}]], query),
      { status: 200 },
      "upload with the app token first",
    );
    assert.deepStrictEqual(
      await lpCollect("join reply", session, 1, { query }),
      [["1", "1", "room:app", "phx_reply", OK_EMPTY]],
      "poll with the app token first",
    );

    // phoenix.js 1.8 `new Socket(url, {params: {token: APP}})` over LongPoll opens with
    // GET /socket/longpoll?token=APP&vsn=2.0.0& (its own token still null), PHOENIX.md §4.1.
    step("the opening request ?token=APP&vsn=2.0.0& opens a session (410 with a new token)");
    const opening = await lpJson("GET", "token=APP&vsn=2.0.0&");
    assert.equal(opening.status, 410, `opening request: ${JSON.stringify(opening)}`);
    assert.match(
      String(opening.token),
      TOKEN_RE,
      `the opening request of a phoenix.js client with params {token: "APP"} must start a session: got ${JSON.stringify(opening)}`,
    );
    assert.notEqual(opening.token, session, "a new session");
    const poll = await lpJson("GET", `token=APP&vsn=2.0.0&token=${opening.token}`);
    assert.deepStrictEqual(poll, { status: 204, token: opening.token, messages: [] }, "poll of the new session");
  },

  // 9. Slow consumer (max_queued_frames 64).
  async "slow-consumer"() {
    const topic = "room:flood";
    const MAX_EMITS = 40_000;
    const BATCH = 48; // < 64: the reading member's queue never fills
    const PAD = 1_000;
    step("a stalled member and a reading one");
    const stalled = await Wire.open("stalled");
    await stalled.join(topic, "1");
    stalled.onItem = () => true;
    const member = await StreamMember.start("reading member", topic);
    assert.equal((await stats()).connections, 2, "two sockets");
    stalled.ws._socket.pause();

    step(`emits of ${PAD} bytes until the stalled one is cut (at most ${MAX_EMITS})`);
    let sent = 0;
    let cutAt = null;
    const t0 = Date.now();
    while (sent < MAX_EMITS && Date.now() - t0 < 40_000) {
      await member.receivedAll(sent);
      await emit({ channel: topic, event: "m", from: sent, count: BATCH, pad: PAD });
      sent += BATCH;
      if (cutAt === null && (sent / BATCH) % 4 === 0 && (await stats()).connections === 1) {
        cutAt = sent;
        break;
      }
    }
    assert.ok(cutAt !== null, `the stalled member was not cut after ${sent} emits (${Date.now() - t0} ms)`);

    step("the stream goes on for the reading member");
    for (let k = 0; k < 20; k++) {
      await member.receivedAll(sent);
      await emit({ channel: topic, event: "m", from: sent, count: BATCH, pad: PAD });
      sent += BATCH;
    }
    await member.receivedAll(sent);
    await sleep(QUIET_MS);
    assert.equal(member.received, sent, "emits received by the reading member");
    assert.ok(member.wire.isOpen, "the reading member is still open");
    const s = await stats();
    assert.deepStrictEqual(s, { connections: 1, subscriptions: 1 }, "stats after the cut");

    step("the stalled member, reading again, finds its connection closed");
    stalled.ws._socket.resume();
    const info = await stalled.waitClosed("after it resumed reading", 10_000);
    console.log(
      `stalled member cut after ${cutAt} emits (${Date.now() - t0} ms); reading member got ${member.received}; stalled close ${info.code} ${info.reason}`,
    );
    member.leaving = true;
  },

  // 10. Graceful shutdown (the server's queues hold 100,000 frames, 64 MiB).
  async shutdown() {
    const topic = "room:bye";
    // More than the TCP buffers of a paused reader take (a few MB), so that frames are still
    // queued in the server when it shuts down.
    const COUNT = 8_000;
    step("a WebSocket member, a LongPoll member not polling, a LongPoll poll waiting");
    const ws = await Wire.open("websocket member");
    await ws.join(topic, "1");
    let received = 0;
    let wrong = null;
    ws.onItem = (item) => {
      const frame = item.json;
      if (wrong === null && !(Array.isArray(frame) && frame[2] === topic && frame[3] === "m" && frame[4]?.i === received)) {
        wrong = `frame ${received}: ${item.text?.slice(0, 100) ?? "<binary>"}`;
      }
      received++;
      return true;
    };
    const lp = await lpOpen("longpoll member");
    await lpPost(lp, [["1", "1", topic, "phx_join", {}]]);
    assert.deepStrictEqual(await lpCollect("longpoll join reply", lp, 1), [["1", "1", topic, "phx_reply", OK_EMPTY]], "join reply");
    const waiter = await lpOpen("longpoll waiting");
    const waiting = lpRequest("GET", `vsn=2.0.0&token=${waiter}`).then((r) => ({ ...r, at: Date.now() }));
    await sleep(200);
    assert.equal((await stats()).connections, 3, "three sockets");

    step(`the WebSocket member stops reading; POST /close-all after ${COUNT} emits of 1 KB`);
    ws.ws._socket.pause();
    const res = await http("POST", "/close-all", { channel: topic, event: "m", count: COUNT, pad: 1_000 });
    const closedAt = Date.now();
    assert.equal(res.status, 200, `POST /close-all: ${res.text}`);
    assert.equal(res.json.delivered, COUNT * 2, "emits queued for the two members");

    step("the WebSocket member reads again: every queued emit, in order, then 1001");
    ws.ws._socket.resume();
    const info = await ws.waitClosed("shutdown", 10_000);
    console.log(`websocket member: ${received} of ${COUNT} emits, then ${info.code} ${info.reason}`);
    assert.equal(wrong, null, "emits in order");
    assert.equal(received, COUNT, "emits received before the close frame");
    assert.equal(info.code, 1001, `close code (reason ${JSON.stringify(info.reason)})`);

    step("the waiting poll is answered 410 at once");
    const answered = await waiting;
    assert.equal(answered.body?.status, 410, `waiting poll: ${answered.text}`);
    assert.ok(answered.at - closedAt < 2_000, `the waiting poll was answered ${answered.at - closedAt} ms after the shutdown`);

    step("no socket is left");
    await until(ANSWER_MS, async () => (await stats()).connections === 0, () => "sockets still counted after the shutdown");

    step("the LongPoll member's next poll: 410");
    const next = await lpJson("GET", `vsn=2.0.0&token=${lp}`);
    assert.equal(next.status, 410, `next poll: ${JSON.stringify(next)}`);
    const post = await lpJson("POST", `vsn=2.0.0&token=${lp}`, { body: JSON.stringify([null, "1", "phoenix", "heartbeat", {}]) });
    assert.equal(post.status, 410, `next upload: ${JSON.stringify(post)}`);
  },
};

run("phoenix_wire", scenarios, {
  where: URL,
  timeoutMs: (name) => ({ "slow-consumer": 80_000 })[name] ?? 25_000,
});
