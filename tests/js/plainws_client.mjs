// Wire-level tests of the plain WebSocket gateway (`/ws`, `/ws/<channel>`), against the
// in-process server of tests/plainws.rs: channels chats/:id (u64, > 0; events ok, echo, fail,
// boom (panics), whoami, shout (broadcasts `shouted`)), vault/:name (the join payload's `key`
// must be `open-sesame`; `payload` replies the join payload) and greet/:room (a `nick` is
// required, `taken` refused `nick_taken`; the join replies {welcome, room}, its `joined` hook
// pushes `hello` {to} and broadcasts `arrived` {nick}); POST /emit {channel, event, data? |
// bytes? | file? | count, from?, pad?} -> {delivered}; POST /close-all (same body, optional:
// emits, then tidings.shutdown()); GET /stats -> {connections, subscriptions}; GET /page (an
// empty page of the server's origin). The connect hook refuses a `refuse` query parameter and
// names the connection after its `user` parameter.
//
// Everything here speaks the protocol itself over `ws` (raw frames), except the scenario
// that puts a socket.io-client and a phoenix.js member next to a plain one, and the one that
// drives headless Chromium's own WebSocket.
//
// Usage: TIDINGS_URL=http://127.0.0.1:PORT node tests/js/plainws_client.mjs <scenario>
// Exit code 0 = pass; on failure a message goes to stderr and the exit code is 1.
import assert from "node:assert/strict";
import WebSocket from "ws";
import { io } from "socket.io-client";
import { Socket as PhoenixSocket } from "phoenix";
import { step, sleep, within, abort, openSockets, run, launchChromium } from "./harness.mjs";

const URL = (process.env.TIDINGS_URL ?? "http://127.0.0.1:4000").replace(/\/+$/, "");
const WS_BASE = URL.replace(/^http/, "ws");
// How long an answer (upgrade, reply, close) may take.
const ANSWER_MS = 5_000;
// How long we wait to be sure that something does NOT arrive.
const QUIET_MS = 500;
// How long an HTTP request may take.
const HTTP_TIMEOUT_MS = 10_000;

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

const show = (value) => {
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 300 ? `${text.slice(0, 300)}...` : text;
};

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
  assert.equal(res.status, 200, `POST /emit ${show(body).slice(0, 100)}: HTTP status (body ${res.text})`);
  return res.json.delivered;
}

async function stats() {
  const res = await http("GET", "/stats");
  assert.equal(res.status, 200, `GET /stats: HTTP status (body ${res.text})`);
  return res.json;
}

// Waits until GET /stats says `expected` ({connections, subscriptions}).
async function statsBecome(expected, what, ms = ANSWER_MS) {
  let last;
  await until(
    ms,
    async () => {
      last = await stats();
      return last.connections === expected.connections && last.subscriptions === expected.subscriptions;
    },
    () => `${what}: stats ${show(last)}, expected ${show(expected)}`,
  );
}

// ---------------------------------------------------------------------------
// Frames

const ok = (ref, extra = {}) => ({ type: "reply", ...(ref === undefined ? {} : { ref }), status: "ok", ...extra });
const refused = (ref, reason) => ({ type: "reply", ...(ref === undefined ? {} : { ref }), status: "error", reason });
const event = (channel, name, data) => ({ type: "event", channel, event: name, data });
const utf8 = (text) => Buffer.from(text, "utf8");

// One WebSocket frame as a client would put it on the wire (payload under 126 bytes), for
// what `ws` will not send: unmasked frames, stray continuations, reserved opcodes and bits.
function rawFrame(opcode, payload, { fin = true, mask = true, rsv = 0 } = {}) {
  assert.ok(payload.length < 126, "rawFrame: short payloads only");
  const head = Buffer.from([(fin ? 0x80 : 0) | (rsv << 4) | opcode, (mask ? 0x80 : 0) | payload.length]);
  if (!mask) return Buffer.concat([head, payload]);
  const key = Buffer.from([0x12, 0x34, 0x56, 0x78]);
  return Buffer.concat([head, key, Buffer.from(payload.map((byte, i) => byte ^ key[i % 4]))]);
}

// ---------------------------------------------------------------------------
// Raw WebSocket client

// One WebSocket to `path` (`/ws`, `/ws/<channel>?query`), whatever the server answers to the
// upgrade. Everything received is queued in order: {text, json} for text frames (json
// undefined when not JSON), {binary: Buffer} for binary frames. Pings are counted.
class Wire {
  constructor(label, path = "/ws", { headers = {}, autoPong = true } = {}) {
    this.label = label;
    this.url = `${WS_BASE}${path}`;
    this.queue = [];
    this.waiter = null;
    this.closeInfo = null;
    this.pings = 0;
    this.lastSentAt = null;
    this.ws = new WebSocket(this.url, { perMessageDeflate: false, headers, autoPong });
    openSockets.add(this);

    // Resolves with 101 once open, or with the HTTP status of a refused upgrade.
    this.upgraded = new Promise((resolve, reject) => {
      this.ws.once("open", () => resolve({ status: 101 }));
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
    this.ws.on("ping", () => this.pings++);
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

  // Opens `path`; fails unless the upgrade succeeds.
  static async open(label, path = "/ws", options) {
    const wire = new Wire(label, path, options);
    const { status, body } = await within(ANSWER_MS, wire.upgraded, `${label}: no answer to the upgrade of ${wire.url}`);
    assert.equal(status, 101, `${label}: upgrade of ${wire.url} refused with HTTP ${status} (body ${show(body)})`);
    return wire;
  }

  // The HTTP status the upgrade of `path` is answered with (101 when it opens; then it is
  // closed).
  static async status(label, path, options) {
    const wire = new Wire(label, path, options);
    const answer = await within(ANSWER_MS, wire.upgraded, `${label}: no answer to the upgrade of ${wire.url}`);
    if (answer.status === 101) wire.close();
    return answer;
  }

  // Sends a JSON value, or a string as it is.
  send(frame) {
    this.lastSentAt = Date.now();
    this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  sendRaw(data, options = {}) {
    this.lastSentAt = Date.now();
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
    return got;
  }

  // Sends `frame`; the next item must equal `expected`.
  async ask(frame, expected, what = `answer to ${show(frame)}`) {
    this.send(frame);
    return this.expect(expected, what);
  }

  // The next item must be an error frame with `reason` and a human message.
  async expectError(reason, what) {
    const got = await this.nextJson(what);
    assert.deepStrictEqual(
      { ...got, message: typeof got.message },
      { type: "error", reason, message: "string" },
      `${this.label}: ${what}: expected an error frame {type, reason: ${reason}, message}, got ${show(got)}`,
    );
    assert.ok(got.message.length > 0, `${this.label}: ${what}: the error's message is empty`);
    return got;
  }

  // Subscribes to `channel` (with `payload`, when given); the reply must be ok.
  async subscribe(channel, ref = `sub ${channel}`, payload) {
    const frame = { type: "subscribe", channel, ref, ...(payload === undefined ? {} : { payload }) };
    await this.ask(frame, ok(ref), `subscribe reply for ${channel}`);
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

// A member of `channel` taking a stream of `m` events {i} (with an optional pad) that must
// arrive in order, without gaps; anything else fails the scenario.
class StreamMember {
  constructor(wire, channel) {
    this.wire = wire;
    this.channel = channel;
    this.received = 0;
    this.leaving = false;
    wire.onItem = (item) => {
      const frame = item.json;
      if (frame?.type !== "event" || frame?.event !== "m") return false;
      const got = { ...frame, data: { ...frame.data } };
      delete got.data.pad;
      const expected = event(channel, "m", { i: this.received });
      try {
        assert.deepStrictEqual(got, expected);
      } catch {
        abort(new Error(`${wire.label}: expected ${show(expected)} (pad aside), got ${item.text.slice(0, 200)}`));
        return true;
      }
      this.received++;
      return true;
    };
    wire.closed.then((info) => {
      if (!this.leaving) abort(new Error(`${wire.label}: closed (${info.code} ${info.reason}) after ${this.received} emits`));
    });
  }

  static async start(label, channel) {
    const wire = await Wire.open(label);
    await wire.subscribe(channel, "1");
    return new StreamMember(wire, channel);
  }

  // Waits until `n` emits arrived.
  async receivedAll(n, ms = 20_000) {
    await until(ms, () => this.received >= n, () => `${this.wire.label}: received ${this.received} of ${n} emits`, 5);
  }
}

// Emits `m` {i} to `channel` in batches of `batch` every `everyMs` until stopped, never more
// than `maxLag` ahead of `member`. `stop()` resolves with the number of emits.
function streamEmits(member, channel, { batch = 20, everyMs = 20, maxLag = 500 } = {}) {
  let sent = 0;
  let going = true;
  const done = (async () => {
    while (going) {
      await member.receivedAll(sent - maxLag);
      const delivered = await emit({ channel, event: "m", from: sent, count: batch });
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
  };
}

// A member of chats/1 takes a stream of emits while each attack opens a socket of its own,
// joins chats/1 and does something that must close it with `code`; the member must get every
// emit, and only it must be left.
async function badInput(attacks) {
  const channel = "chats/1";
  step("a member joins and the stream starts");
  const member = await StreamMember.start("good member", channel);
  const stream = streamEmits(member, channel);
  await member.receivedAll(100);

  const outcomes = [];
  for (const attack of attacks) {
    step(`attack: ${attack.name}`);
    const bad = await Wire.open(`bad client (${attack.name})`);
    await bad.subscribe(channel, "1");
    bad.onItem = (item) => item.json?.type === "event"; // the stream: not what we wait for here
    const before = member.received;
    const sentAt = Date.now();
    attack.send(bad);
    const info = await bad.waitClosed(attack.name);
    outcomes.push(`${attack.name}: ${info.code} ${show(info.reason)} after ${info.at - sentAt} ms`);
    assert.deepStrictEqual(
      bad.queue.map((item) => item.text ?? "<binary>"),
      [],
      `${attack.name}: nothing but the close is answered`,
    );
    const codes = [attack.code, ...(attack.orCodes ?? [])];
    assert.ok(codes.includes(info.code), `${attack.name}: close code ${info.code} (reason ${show(info.reason)}), expected ${codes.join(" or ")}`);
    if (info.code !== 1006) assert.ok(info.reason.length > 0, `${attack.name}: the close frame must say why`);
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
  await member.wire.ask({ type: "ping" }, { type: "pong" }, "pong after the attacks");
  await member.wire.ask(
    { type: "event", channel, event: "echo", data: "still here", ref: "after" },
    ok("after", { response: "still here" }),
    "echo after the attacks",
  );
  await statsBecome({ connections: 1, subscriptions: 1 }, "after the attacks");
  console.log(`outcomes:\n  ${outcomes.join("\n  ")}\nstream: ${sent} emits`);
  member.leaving = true;
}

// ---------------------------------------------------------------------------
// Scenarios

const scenarios = {
  // 1. Every row of the table.
  async rows() {
    const w = await Wire.open("client", "/ws?user=ann");

    step("ping -> pong, before any subscribe");
    await w.ask({ type: "ping" }, { type: "pong" });
    await w.ask({ type: "ping", ref: "p" }, { type: "pong" }, "pong to a ping with a ref");

    step("subscribe: the ref is echoed as sent");
    await w.ask({ type: "subscribe", channel: "chats/1", ref: "1" }, ok("1"), "string ref");
    await w.ask({ type: "subscribe", channel: "chats/2", ref: 7 }, ok(7), "number ref");
    await w.ask({ type: "subscribe", channel: "chats/3", ref: { k: [1, "x"] } }, ok({ k: [1, "x"] }), "object ref");
    const tricky = 'a"b\\c é ✓ \u0001';
    await w.ask({ type: "subscribe", channel: "chats/4", ref: tricky }, ok(tricky), "ref with escapes");

    step("a ref is echoed as written, digits a double cannot hold included");
    w.send('{"type":"subscribe","channel":"chats/1","ref":123456789012345678901234567890}');
    const raw = await w.next("reply with a 30-digit ref");
    assert.equal(raw.text, '{"type":"reply","ref":123456789012345678901234567890,"status":"ok"}', "the reply's text");

    step("subscribe without a ref: no ref in the reply");
    w.send({ type: "subscribe", channel: "chats/5" });
    const bare = await w.nextJson("reply to a subscribe without ref");
    assert.deepStrictEqual(bare, { type: "reply", status: "ok" }, "reply to a subscribe without ref");
    assert.ok(!("ref" in bare), "no ref key");

    step("subscribing to a joined channel again is ok");
    await w.ask({ type: "subscribe", channel: "chats/1", ref: "again" }, ok("again"));

    step("the join payload reaches the channel");
    const payload = { key: "open-sesame", n: 5, list: [1, "2", null], nested: { é: true } };
    await w.ask({ type: "subscribe", channel: "vault/a", payload, ref: "v1" }, ok("v1"), "join with the right payload");
    await w.ask(
      { type: "event", channel: "vault/a", event: "payload", ref: "v2" },
      ok("v2", { response: payload }),
      "the join payload as the channel saw it",
    );
    await w.ask({ type: "subscribe", channel: "vault/b", payload: { key: "wrong" }, ref: "v3" }, refused("v3", "unauthorized"), "wrong payload");
    await w.ask({ type: "subscribe", channel: "vault/b", ref: "v4" }, refused("v4", "unauthorized"), "no payload");
    await w.ask({ type: "subscribe", channel: "vault/b", payload: "open-sesame", ref: "v5" }, refused("v5", "unauthorized"), "a string payload");

    step("a join reply is the reply's response; the joined hook's frames follow it");
    await w.ask(
      { type: "subscribe", channel: "greet/lobby", payload: { nick: "ann" }, ref: "g" },
      ok("g", { response: { welcome: "ann", room: "lobby" } }),
      "join reply",
    );
    await w.expect(event("greet/lobby", "hello", { to: "ann" }), "the joined hook's push");
    await w.expect(event("greet/lobby", "arrived", { nick: "ann" }), "the joined hook's broadcast");

    step("refusal reasons");
    const refusals = [
      ["nope/1", undefined, "unknown_channel"],
      ["chats", undefined, "unknown_channel"],
      ["chats/1/2", undefined, "unknown_channel"],
      ["chats/0", undefined, "unauthorized"],
      ["chats/abc", undefined, "invalid"],
      ["", undefined, "invalid"],
      ["chats/1\u0007", undefined, "invalid"],
      [`chats/${"1".repeat(300)}`, undefined, "invalid"],
      ["greet/x", { nick: "taken" }, "nick_taken"],
      ["greet/x", undefined, "nick_required"],
    ];
    for (const [i, [channel, payload, reason]] of refusals.entries()) {
      const frame = { type: "subscribe", channel, ref: `r${i}`, ...(payload ? { payload } : {}) };
      await w.ask(frame, refused(`r${i}`, reason), `refusal of ${show(channel)}`);
    }
    w.send({ type: "subscribe", channel: "nope/2" });
    await w.expect({ type: "reply", status: "error", reason: "unknown_channel" }, "a refusal without ref");

    step("events into handle_in");
    await w.ask({ type: "event", channel: "chats/1", event: "ok", ref: "e1" }, ok("e1"), "Reply::Ok");
    const data = { a: [1, 2], s: "é ✓", n: null };
    await w.ask({ type: "event", channel: "chats/1", event: "echo", data, ref: "e2" }, ok("e2", { response: data }), "echo");
    await w.ask({ type: "event", channel: "chats/1", event: "echo", ref: 3 }, ok(3, { response: null }), "echo without data");
    await w.ask({ type: "event", channel: "chats/1", event: "fail", ref: "e4" }, refused("e4", "nope"), "Reply::error");
    await w.ask({ type: "event", channel: "chats/1", event: "dance", ref: "e5" }, refused("e5", "unknown_event"), "unknown event");
    await w.ask({ type: "event", channel: "chats/1", event: "whoami", ref: "e6" }, ok("e6", { response: "ann" }), "the connect hook's identity");
    w.send({ type: "event", channel: "chats/1", event: "ok" });
    await w.expect({ type: "reply", status: "ok" }, "an event reply without ref");

    step("an event on a channel not joined: not_subscribed");
    await w.ask({ type: "event", channel: "chats/9", event: "ok", ref: "n1" }, refused("n1", "not_subscribed"));
    await w.ask({ type: "event", channel: "nope/1", event: "ok", ref: "n2" }, refused("n2", "not_subscribed"), "an unknown channel");

    step("unsubscribe -> ok; then not_subscribed");
    await w.ask({ type: "unsubscribe", channel: "chats/2", ref: "u1" }, ok("u1"));
    await w.ask({ type: "event", channel: "chats/2", event: "ok", ref: "u2" }, refused("u2", "not_subscribed"), "event after unsubscribe");
    w.send({ type: "unsubscribe", channel: "chats/3" });
    await w.expect({ type: "reply", status: "ok" }, "an unsubscribe reply without ref");
    await w.ask({ type: "unsubscribe", channel: "chats/99", ref: "u3" }, ok("u3"), "unsubscribe from a channel never joined");

    step("a panicking handle_in: handler_failed, and the connection goes on");
    await w.ask({ type: "event", channel: "chats/1", event: "boom", ref: "b" }, refused("b", "handler_failed"));
    await w.ask({ type: "event", channel: "chats/1", event: "echo", data: 1, ref: "b2" }, ok("b2", { response: 1 }), "echo after the panic");
    await w.ask({ type: "ping" }, { type: "pong" }, "pong after the panic");
    await w.ask({ type: "subscribe", channel: "chats/8", ref: "b3" }, ok("b3"), "subscribe after the panic");

    step("pipelined requests are answered in order");
    const pipeline = [
      [{ type: "subscribe", channel: "chats/6", ref: "q1" }, ok("q1")],
      [{ type: "event", channel: "chats/6", event: "echo", data: "x", ref: "q2" }, ok("q2", { response: "x" })],
      [{ type: "unsubscribe", channel: "chats/6", ref: "q3" }, ok("q3")],
      [{ type: "event", channel: "chats/6", event: "echo", ref: "q4" }, refused("q4", "not_subscribed")],
      [{ type: "subscribe", channel: "nope/1", ref: "q5" }, refused("q5", "unknown_channel")],
      [{ type: "event", channel: "chats/1", event: "boom", ref: "q6" }, refused("q6", "handler_failed")],
      [{ type: "event", channel: "chats/1", event: "ok", ref: "q7" }, ok("q7")],
    ];
    for (const [frame] of pipeline) w.send(frame);
    const answers = [];
    for (let i = 0; i < pipeline.length; i++) answers.push(await w.nextJson(`pipelined answer ${i + 1}`));
    assert.deepStrictEqual(answers, pipeline.map(([, expected]) => expected), "pipelined answers, in order");

    step("nothing else arrives");
    await w.quiet("after the last answer");
    assert.ok(w.isOpen, "the connection is still open");

    step("a close from the client is answered with a close frame; the socket and its memberships go");
    await statsBecome({ connections: 1, subscriptions: 6 }, "before the close");
    w.ws.close(1000, "bye");
    const info = await w.waitClosed("after the client's close frame");
    assert.equal(info.code, 1000, `close code echoed by the server (reason ${show(info.reason)})`);
    await statsBecome({ connections: 0, subscriptions: 0 }, "after the client closed");
  },

  // 1. Emits.
  async emits() {
    step("a member of chats/1 (subscribed twice) and one of chats/2");
    const a = await Wire.open("member");
    await a.subscribe("chats/1", "1");
    await a.subscribe("chats/1", "2");
    const b = await Wire.open("member of chats/2");
    await b.subscribe("chats/2", "1");

    step("each emitted value arrives as it is, once");
    const values = [
      { text: "héllo ✓ 😀", n: -1.5, big: 9007199254740991, nested: { a: [1, null, true, { deep: [] }] } },
      [1, "two", { three: 3 }],
      [7],
      [[]],
      [],
      {},
      "just a string",
      "",
      'quote " backslash \\ newline \n tab \t nul \u0000',
      42,
      0,
      -0.25,
      1e21,
      true,
      false,
      null,
      { "key with \"quote\"": "value\\", "": "empty key" },
    ];
    for (const [i, data] of values.entries()) {
      const delivered = await emit({ channel: "chats/1", event: `e${i}`, data });
      assert.equal(delivered, 1, `emit ${i} (${show(data)}): delivered`);
      await a.expect(event("chats/1", `e${i}`, data), `emit ${i} of ${show(data)}`);
    }
    await a.quiet("after the emits (each one once)");

    step("a binary emit: {binary: <base64>}");
    const bytes = [...Array(256).keys()].reverse();
    assert.equal(await emit({ channel: "chats/1", event: "bin", bytes }), 1, "binary emit delivered");
    await a.expect(event("chats/1", "bin", { binary: Buffer.from(bytes).toString("base64") }), "binary emit");
    assert.equal(await emit({ channel: "chats/1", event: "bin", bytes: [] }), 1, "empty binary emit delivered");
    await a.expect(event("chats/1", "bin", { binary: "" }), "empty binary emit");

    step("bytes inside a value: base64 text in their place");
    const file = [0, 1, 2, 253, 254, 255];
    assert.equal(await emit({ channel: "chats/1", event: "upload", file }), 1, "upload delivered");
    await a.expect(event("chats/1", "upload", { name: "f.bin", file: Buffer.from(file).toString("base64") }), "upload");

    step("emits reach only the channel's members");
    await b.quiet("from the emits to chats/1");
    assert.equal(await emit({ channel: "chats/2", event: "other", data: { to: 2 } }), 1, "emit to chats/2");
    await b.expect(event("chats/2", "other", { to: 2 }), "emit to chats/2");
    await a.quiet("from the emit to chats/2");

    step("200 emits arrive in order");
    assert.equal(await emit({ channel: "chats/1", event: "m", count: 200 }), 200, "200 emits delivered");
    for (let i = 0; i < 200; i++) await a.expect(event("chats/1", "m", { i }), `emit ${i} of 200`);
    await a.quiet("after the 200 emits");

    step("after unsubscribe, nothing more");
    await a.ask({ type: "unsubscribe", channel: "chats/1", ref: "u" }, ok("u"));
    assert.equal(await emit({ channel: "chats/1", event: "late", data: 1 }), 0, "emit after unsubscribe: delivered");
    await a.quiet("after unsubscribe");
  },

  // 1. A join's reply before its joined hook's frames.
  async "join-order"() {
    const channel = "greet/order";
    step("a watcher is in the room");
    const watcher = await Wire.open("watcher");
    await watcher.ask(
      { type: "subscribe", channel, payload: { nick: "watcher" }, ref: "w" },
      ok("w", { response: { welcome: "watcher", room: "order" } }),
    );
    await watcher.expect(event(channel, "hello", { to: "watcher" }), "watcher's hello");
    await watcher.expect(event(channel, "arrived", { nick: "watcher" }), "watcher's own arrival");

    for (let k = 0; k < 20; k++) {
      step(`newcomer ${k}: reply, then hello, then arrived`);
      const nick = `n${k}`;
      const newcomer = await Wire.open(`newcomer ${k}`);
      newcomer.send({ type: "subscribe", channel, payload: { nick }, ref: k });
      const frames = [];
      for (let i = 0; i < 3; i++) frames.push(await newcomer.nextJson(`frame ${i + 1} after the join`));
      assert.deepStrictEqual(
        frames,
        [
          ok(k, { response: { welcome: nick, room: "order" } }),
          event(channel, "hello", { to: nick }),
          event(channel, "arrived", { nick }),
        ],
        `newcomer ${k}: the join reply first, then the joined hook's push and broadcast`,
      );
      await watcher.expect(event(channel, "arrived", { nick }), `watcher: arrival of ${nick}`);
      newcomer.close();
    }
    await watcher.quiet("after the arrivals");
  },

  // 2. Errors as data.
  async errors() {
    const w = await Wire.open("client");
    await w.subscribe("chats/1", "s");
    const cases = [
      ["not json", "not json", "invalid_json"],
      ["truncated json", '{"type":"ping"', "invalid_json"],
      ["trailing garbage", '{"type":"ping"} x', "invalid_json"],
      ["empty text", "", "invalid_json"],
      ["an array", '[{"type":"ping"}]', "invalid_json"],
      // An array with as many elements as the message has fields: still not an object.
      ["a six-element array", '["ping",null,null,null,null,null]', "invalid_json"],
      ["a string", '"subscribe"', "invalid_json"],
      ["a number", "42", "invalid_json"],
      ["null", "null", "invalid_json"],
      ["no type", '{"channel":"chats/1","ref":"x"}', "unknown_type"],
      ["an empty object", "{}", "unknown_type"],
      ["an unknown type", '{"type":"dance","channel":"chats/1"}', "unknown_type"],
      ["a type in capitals", '{"type":"SUBSCRIBE","channel":"chats/1"}', "unknown_type"],
      ["a type that is a number", '{"type":7}', "unknown_type"],
      ["a null type", '{"type":null}', "unknown_type"],
      ["subscribe without channel", '{"type":"subscribe","ref":"x"}', "invalid"],
      ["subscribe with a number channel", '{"type":"subscribe","channel":1,"ref":"x"}', "invalid"],
      ["unsubscribe without channel", '{"type":"unsubscribe","ref":"x"}', "invalid"],
      ["event without event", '{"type":"event","channel":"chats/1","ref":"x"}', "invalid"],
      ["event without channel", '{"type":"event","event":"echo","ref":"x"}', "invalid"],
      ["event with a null event", '{"type":"event","channel":"chats/1","event":null}', "invalid"],
      ["event with an object channel", '{"type":"event","channel":{},"event":"echo"}', "invalid"],
    ];
    // Wrong answers are collected (each one frame, so the next request is still in step) and
    // reported together at the end, so that one does not hide the others.
    const wrong = [];
    for (const [i, [name, text, reason]] of cases.entries()) {
      step(`${name} -> ${reason}, and the connection goes on`);
      w.send(text);
      try {
        await w.expectError(reason, `answer to ${name} (${show(text)})`);
      } catch (err) {
        if (!(err instanceof assert.AssertionError)) throw err;
        wrong.push(err.message.split("\n")[0]);
      }
      await w.ask(
        { type: "event", channel: "chats/1", event: "echo", data: i, ref: `after ${i}` },
        ok(`after ${i}`, { response: i }),
        `echo after ${name}`,
      );
      if (i % 4 === 0) await w.ask({ type: "ping" }, { type: "pong" }, `pong after ${name}`);
    }
    step("still open, still subscribed");
    assert.equal(await emit({ channel: "chats/1", event: "still", data: "here" }), 1, "emit delivered");
    await w.expect(event("chats/1", "still", "here"), "emit after the errors");
    await w.quiet("after the errors");
    assert.ok(w.isOpen, "the connection is still open");
    step("every bad frame got its error frame");
    assert.deepStrictEqual(wrong, [], `wrong answers to ${wrong.length} of ${cases.length} bad frames`);
  },

  // 3. Bound to a path.
  async bound() {
    step("the ok reply comes first; the query is the join payload, as strings");
    const b = await Wire.open("bound", "/ws/vault/x?key=open-sesame&a=1&b=2&q=a%20b%26c%3D");
    await b.expect({ type: "reply", status: "ok", channel: "vault/x" }, "first frame of /ws/vault/x");
    await b.ask(
      { type: "event", channel: "vault/x", event: "payload", ref: 1 },
      ok(1, { response: { key: "open-sesame", a: "1", b: "2", q: "a b&c=" } }),
      "the join payload as the channel saw it",
    );
    assert.equal(await emit({ channel: "vault/x", event: "news", data: { n: 1 } }), 1, "emit to vault/x");
    await b.expect(event("vault/x", "news", { n: 1 }), "emit to the bound channel");

    step("the path and the query are percent-decoded ('+' in the query is a space)");
    const café = await Wire.open("bound café", "/ws/greet/caf%C3%A9%20noir?nick=zo%C3%A9+b");
    await café.expect(
      { type: "reply", status: "ok", channel: "greet/café noir", response: { welcome: "zoé b", room: "café noir" } },
      "first frame of /ws/greet/caf%C3%A9%20noir",
    );
    await café.expect(event("greet/café noir", "hello", { to: "zoé b" }), "the joined hook's push");
    await café.expect(event("greet/café noir", "arrived", { nick: "zoé b" }), "the joined hook's broadcast");
    assert.equal(await emit({ channel: "greet/café noir", event: "news", data: 3 }), 1, "emit to greet/café noir");
    await café.expect(event("greet/café noir", "news", 3), "emit to the decoded channel");
    café.close();

    step("a bound socket speaks the whole protocol");
    await b.subscribe("chats/1", "more");
    assert.equal(await emit({ channel: "chats/1", event: "news", data: "two" }), 1, "emit to chats/1");
    await b.expect(event("chats/1", "news", "two"), "emit to the other channel");
    await b.ask({ type: "ping" }, { type: "pong" });

    step("a join reply is in the first frame; the joined hook's frames follow it");
    const g = await Wire.open("bound greet", "/ws/greet/lobby?nick=bob");
    await g.expect(
      { type: "reply", status: "ok", channel: "greet/lobby", response: { welcome: "bob", room: "lobby" } },
      "first frame of /ws/greet/lobby",
    );
    await g.expect(event("greet/lobby", "hello", { to: "bob" }), "the joined hook's push");
    await g.expect(event("greet/lobby", "arrived", { nick: "bob" }), "the joined hook's broadcast");

    step("a refused join: an error frame, then close 1008");
    const refusals = [
      ["/ws/vault/y?a=1", "unauthorized"],
      ["/ws/vault/y", "unauthorized"],
      ["/ws/chats/0", "unauthorized"],
      ["/ws/greet/x?nick=taken", "nick_taken"],
      ["/ws/chats/abc", "invalid"],
    ];
    for (const [path, reason] of refusals) {
      const r = await Wire.open(`refused ${path}`, path);
      await r.expectError(reason, `first frame of ${path}`);
      const info = await r.waitClosed(`after the refusal of ${path}`);
      assert.deepStrictEqual(r.queue.map((item) => item.text ?? "<binary>"), [], `${path}: nothing after the error frame`);
      assert.equal(info.code, 1008, `${path}: close code (reason ${show(info.reason)})`);
    }

    step("a path that no pattern matches: 404 before the upgrade");
    for (const path of ["/ws/nope/1", "/ws/chats/1/extra", "/ws/vault", "/ws/chats"]) {
      const { status } = await Wire.status(`unknown ${path}`, path);
      assert.equal(status, 404, `HTTP status of ${path}`);
    }

    step("a request that is not a WebSocket handshake opens nothing");
    for (const [method, path] of [["GET", "/ws"], ["GET", "/ws/chats/1"], ["POST", "/ws"]]) {
      const res = await http(method, path);
      assert.ok(res.status >= 400 && res.status < 500, `${method} ${path} without an upgrade: HTTP ${res.status}`);
    }

    step("the connect hook refusing: 403");
    for (const path of ["/ws?refuse=1", "/ws/chats/1?refuse=1"]) {
      const { status } = await Wire.status(`refused ${path}`, path);
      assert.equal(status, 403, `HTTP status of ${path}`);
    }

    step("the origin policy: a foreign Origin -> 403; none or the server's own -> accepted");
    for (const origin of ["http://evil.example", "http://127.0.0.1:1", "null"]) {
      for (const path of ["/ws", "/ws/chats/1"]) {
        const { status } = await Wire.status(`origin ${origin}`, path, { headers: { Origin: origin } });
        assert.equal(status, 403, `HTTP status of ${path} with Origin ${origin}`);
      }
    }
    const none = await Wire.open("no origin", "/ws");
    await none.ask({ type: "ping" }, { type: "pong" }, "pong without an Origin");
    const own = await Wire.open("own origin", "/ws/chats/2", { headers: { Origin: URL } });
    await own.expect({ type: "reply", status: "ok", channel: "chats/2" }, "first frame with the server's own Origin");

    step("what is open is counted");
    // bound (vault/x, chats/1), bound greet (greet/lobby), no origin, own origin (chats/2).
    await statsBecome({ connections: 4, subscriptions: 4 }, "open sockets");
  },

  // 4. Bad input (max_payload 64 KiB).
  async "bad-input"() {
    const MAX = 64 * 1024;
    step("a message just under max_payload is answered, in one frame or in several");
    const fits = await Wire.open("fits");
    await fits.subscribe("chats/1", "s");
    const pad = "y".repeat(MAX - 200);
    await fits.ask({ type: "event", channel: "chats/1", event: "echo", data: pad, ref: "big" }, ok("big", { response: pad }), "echo of 64 KiB - 130 bytes");
    // Split inside multi-byte characters: only the whole message must be UTF-8.
    const text = JSON.stringify({ type: "event", channel: "chats/1", event: "echo", data: "é✓😀".repeat(1000), ref: "split" });
    const bytes = utf8(text);
    fits.sendRaw(bytes.subarray(0, 1001), { binary: false, fin: false });
    fits.sendRaw(bytes.subarray(1001, 2002), { binary: false, fin: false });
    fits.sendRaw(bytes.subarray(2002), { binary: false, fin: true });
    await fits.expect(ok("split", { response: "é✓😀".repeat(1000) }), "echo of a message in three frames split inside characters");
    fits.close();

    const over = (ref) => JSON.stringify({ type: "event", channel: "chats/1", event: "echo", data: "z".repeat(MAX + 10), ref });
    await badInput([
      { name: "a binary frame", code: 1003, send: (w) => w.sendRaw(utf8('{"type":"ping"}'), { binary: true }) },
      { name: "an empty binary frame", code: 1003, send: (w) => w.sendRaw(Buffer.alloc(0), { binary: true }) },
      {
        name: "a binary message in continuation frames",
        code: 1003,
        send: (w) => {
          w.sendRaw(utf8('{"type":'), { binary: true, fin: false });
          w.sendRaw(utf8('"ping"}'), { binary: true, fin: true });
        },
      },
      { name: "one frame over max_payload", code: 1009, send: (w) => w.send(over("o1")) },
      {
        name: "continuation frames over max_payload",
        code: 1009,
        send: (w) => {
          const big = over("o2");
          const third = Math.ceil(big.length / 3);
          w.sendRaw(big.slice(0, third), { binary: false, fin: false });
          w.sendRaw(big.slice(third, 2 * third), { binary: false, fin: false });
          w.sendRaw(big.slice(2 * third), { binary: false, fin: true });
        },
      },
      {
        name: "invalid UTF-8 in a text frame",
        code: 1007,
        send: (w) =>
          w.sendRaw(Buffer.concat([utf8('{"type":"event","channel":"chats/1","event":"echo","data":"'), Buffer.from([0xff, 0xfe]), utf8('"}')]), {
            binary: false,
          }),
      },
      {
        name: "invalid UTF-8 in continuation frames",
        code: 1007,
        send: (w) => {
          w.sendRaw(utf8('{"type":"event","channel":"chats/1","event":"echo","data":"'), { binary: false, fin: false });
          w.sendRaw(Buffer.from([0xc3, 0x28]), { binary: false, fin: false });
          w.sendRaw(utf8('"}'), { binary: false, fin: true });
        },
      },
      { name: "an unmasked frame", code: 1002, send: (w) => w.ws._socket.write(rawFrame(0x1, utf8('{"type":"ping"}'), { mask: false })) },
      { name: "a continuation with no message begun", code: 1002, send: (w) => w.ws._socket.write(rawFrame(0x0, utf8('{"type":"ping"}'))) },
      {
        name: "a new text frame inside a fragmented message",
        code: 1002,
        send: (w) => w.ws._socket.write(Buffer.concat([rawFrame(0x1, utf8('{"type":'), { fin: false }), rawFrame(0x1, utf8('{"type":"ping"}'))])),
      },
      { name: "a reserved opcode", code: 1002, send: (w) => w.ws._socket.write(rawFrame(0x3, utf8("x"))) },
      // RFC 6455 5.2: fail the connection; a close frame (1002) is optional, so the end of the
      // stream (1006) is right too.
      { name: "reserved bits set", code: 1002, orCodes: [1006], send: (w) => w.ws._socket.write(rawFrame(0x1, utf8('{"type":"ping"}'), { rsv: 4 })) },
    ]);
  },

  // 5. Liveness (ping interval and timeout 300 ms).
  async liveness() {
    step("a client that answers pings and one that does not (autoPong: false), both members of chats/1");
    const normal = await Wire.open("normal", "/ws");
    await normal.subscribe("chats/1", "n");
    const silent = await Wire.open("silent", "/ws", { autoPong: false });
    await silent.subscribe("chats/1", "s");
    await statsBecome({ connections: 2, subscriptions: 2 }, "both open");

    step("the silent one is closed 0.6 s after its last word (+ a watcher tick), not much later");
    const info = await silent.waitClosed("does not answer pings", 3_000);
    const after = info.at - silent.lastSentAt;
    console.log(`silent client: ${silent.pings} ping(s), closed ${after} ms after its last frame (${info.code} ${show(info.reason)})`);
    assert.ok(silent.pings >= 1, `the server must ping a silent client before it closes it (pings: ${silent.pings})`);
    assert.ok(after >= 550, `closed ${after} ms after its last frame: before interval + timeout (600 ms)`);
    assert.ok(after <= 1_500, `closed ${after} ms after its last frame: more than 1.5 s`);
    await statsBecome({ connections: 1, subscriptions: 1 }, "after the silent client was closed");

    step("the normal one stays open for 2 s while sending nothing");
    const quietFor = 2_000 - (Date.now() - normal.lastSentAt);
    if (quietFor > 0) await sleep(quietFor);
    assert.ok(normal.isOpen, `the client answering pings was closed: ${show(normal.closeInfo)}`);
    console.log(`normal client: ${normal.pings} pings in ${Date.now() - normal.lastSentAt} ms of silence`);
    assert.ok(normal.pings >= 3, `pings received by the normal client in 2 s of silence: ${normal.pings}`);
    assert.deepStrictEqual(normal.queue, [], "no frame but pings while silent");
    await normal.ask({ type: "ping" }, { type: "pong" }, "pong after 2 s of silence");
    assert.equal(await emit({ channel: "chats/1", event: "alive", data: 1 }), 1, "the normal client is still a member");
    await normal.expect(event("chats/1", "alive", 1), "emit after 2 s of silence");
  },

  // 6. Slow consumer (max_queued_frames 64).
  async "slow-consumer"() {
    const channel = "chats/7";
    const MAX_EMITS = 40_000;
    const BATCH = 48; // < 64: the reading member's queue never fills
    const PAD = 1_000;
    step("a stalled member and a reading one");
    const stalled = await Wire.open("stalled");
    await stalled.subscribe(channel, "1");
    stalled.onItem = () => true;
    const member = await StreamMember.start("reading member", channel);
    await statsBecome({ connections: 2, subscriptions: 2 }, "two members");
    stalled.ws._socket.pause();

    step(`emits of ${PAD} bytes until the stalled one is cut (at most ${MAX_EMITS})`);
    let sent = 0;
    let cutAt = null;
    const t0 = Date.now();
    while (sent < MAX_EMITS && Date.now() - t0 < 40_000) {
      await member.receivedAll(sent);
      await emit({ channel, event: "m", from: sent, count: BATCH, pad: PAD });
      sent += BATCH;
      if ((sent / BATCH) % 4 === 0 && (await stats()).connections === 1) {
        cutAt = sent;
        break;
      }
    }
    assert.ok(cutAt !== null, `the stalled member was not cut after ${sent} emits (${Date.now() - t0} ms)`);

    step("the stream goes on for the reading member");
    for (let k = 0; k < 20; k++) {
      await member.receivedAll(sent);
      await emit({ channel, event: "m", from: sent, count: BATCH, pad: PAD });
      sent += BATCH;
    }
    await member.receivedAll(sent);
    await sleep(QUIET_MS);
    assert.equal(member.received, sent, "emits received by the reading member");
    assert.ok(member.wire.isOpen, "the reading member is still open");
    await statsBecome({ connections: 1, subscriptions: 1 }, "after the cut");

    step("the stalled member, reading again, finds its connection ended");
    stalled.ws._socket.resume();
    const info = await stalled.waitClosed("after it resumed reading", 10_000);
    console.log(
      `stalled member cut after ${cutAt} emits (${Date.now() - t0} ms); reading member got ${member.received}; stalled close ${info.code} ${show(info.reason)}`,
    );
    member.leaving = true;
  },

  // 7. Graceful shutdown (queues of 100,000 frames, 64 MiB).
  async shutdown() {
    const channel = "chats/9";
    // More than the TCP buffers of a paused reader take (a few MB), so that frames are still
    // queued in the server when it shuts down.
    const COUNT = 8_000;
    step("two members of chats/9, one of which stops reading");
    const members = [];
    for (const label of ["paused member", "reading member"]) {
      const wire = await Wire.open(label);
      await wire.subscribe(channel, "1");
      const member = { wire, received: 0, wrong: null };
      wire.onItem = (item) => {
        const frame = item.json;
        const i = member.received;
        if (member.wrong === null && !(frame?.type === "event" && frame.channel === channel && frame.event === "m" && frame.data?.i === i)) {
          member.wrong = `frame ${i}: ${item.text?.slice(0, 100) ?? "<binary>"}`;
        }
        member.received++;
        return true;
      };
      members.push(member);
    }
    await statsBecome({ connections: 2, subscriptions: 2 }, "two members");
    members[0].wire.ws._socket.pause();

    step(`POST /close-all right after ${COUNT} emits of 1 KB`);
    const res = await http("POST", "/close-all", { channel, event: "m", count: COUNT, pad: 1_000 });
    assert.equal(res.status, 200, `POST /close-all: ${res.text}`);
    assert.equal(res.json.delivered, COUNT * 2, "emits queued for the two members");

    step("both get every queued emit, in order, then 1001");
    members[0].wire.ws._socket.resume();
    for (const member of members) {
      const info = await member.wire.waitClosed("shutdown", 10_000);
      console.log(`${member.wire.label}: ${member.received} of ${COUNT} emits, then ${info.code} ${show(info.reason)}`);
      assert.equal(member.wrong, null, `${member.wire.label}: emits in order`);
      assert.equal(member.received, COUNT, `${member.wire.label}: emits received before the close frame`);
      assert.equal(info.code, 1001, `${member.wire.label}: close code (reason ${show(info.reason)})`);
      assert.ok(info.reason.length > 0, `${member.wire.label}: the close frame must say why`);
    }

    step("no socket is left");
    await statsBecome({ connections: 0, subscriptions: 0 }, "after the shutdown");
  },

  // 8. One channel, three protocols.
  async "three-protocols"() {
    const channel = "chats/1";

    step("a socket.io-client member");
    const sio = io(URL, { forceNew: true, reconnection: false, transports: ["websocket"] });
    openSockets.add(sio);
    const sioEvents = [];
    sio.onAny((name, ...args) => sioEvents.push({ name, args }));
    await within(
      ANSWER_MS,
      new Promise((resolve, reject) => {
        sio.once("connect", resolve);
        sio.once("connect_error", reject);
      }),
      "socket.io-client: no connect",
    );
    const ack = await within(ANSWER_MS, sio.emitWithAck("subscribe", channel), "socket.io-client: no subscribe ack");
    assert.deepStrictEqual(ack, { status: "ok" }, "socket.io-client: subscribe ack");

    step("a phoenix.js member");
    const phx = new PhoenixSocket(`${WS_BASE}/socket`, { transport: WebSocket, reconnectAfterMs: () => 60_000 });
    const phxErrors = [];
    phx.onError((err) => phxErrors.push(err?.message ?? String(err)));
    phx.connect();
    openSockets.add({ close: () => phx.disconnect() });
    const phxChannel = phx.channel(channel, {});
    const phxEvents = [];
    for (const name of ["news", "bin", "shouted"]) phxChannel.on(name, (payload) => phxEvents.push({ name, payload }));
    const joined = await within(
      ANSWER_MS,
      new Promise((resolve, reject) =>
        phxChannel
          .join()
          .receive("ok", resolve)
          .receive("error", (e) => reject(new Error(`phoenix.js: join refused ${show(e)}`)))
          .receive("timeout", () => reject(new Error("phoenix.js: join timeout"))),
      ),
      `phoenix.js: no join reply (socket errors: ${phxErrors.join("; ")})`,
    );
    assert.deepStrictEqual(joined, {}, "phoenix.js: join response");

    step("a plain WebSocket member");
    const plain = await Wire.open("plain");
    await plain.subscribe(channel, "p");
    await statsBecome({ connections: 3, subscriptions: 3 }, "three members");

    const sioNext = (name) =>
      until(ANSWER_MS, () => sioEvents.find((e) => e.name === name), () => `socket.io-client: no ${name}; got ${show(sioEvents)}`);
    const phxNext = (name) =>
      until(ANSWER_MS, () => phxEvents.find((e) => e.name === name), () => `phoenix.js: no ${name}; got ${show(phxEvents)}`);

    step("one JSON emit, three shapes");
    const data = { text: "hi all ✓", n: 1, list: [1, "2", null] };
    assert.equal(await emit({ channel, event: "news", data }), 3, "delivered to the three members");
    await plain.expect(event(channel, "news", data), "plain: the emit");
    assert.deepStrictEqual((await sioNext(`${channel}/news`)).args, [data], "socket.io-client: the emit's arguments");
    assert.deepStrictEqual((await phxNext("news")).payload, data, "phoenix.js: the emit's payload");

    step("one binary emit, three shapes");
    const bytes = [0, 1, 2, 127, 128, 255];
    assert.equal(await emit({ channel, event: "bin", bytes }), 3, "delivered to the three members");
    await plain.expect(event(channel, "bin", { binary: Buffer.from(bytes).toString("base64") }), "plain: the binary emit");
    const sioBin = (await sioNext(`${channel}/bin`)).args;
    assert.equal(sioBin.length, 1, `socket.io-client: one argument, got ${show(sioBin)}`);
    assert.ok(Buffer.isBuffer(sioBin[0]), `socket.io-client: a Buffer, got ${show(sioBin[0])}`);
    assert.deepStrictEqual([...sioBin[0]], bytes, "socket.io-client: the bytes");
    const phxBin = (await phxNext("bin")).payload;
    assert.ok(phxBin instanceof ArrayBuffer, `phoenix.js: an ArrayBuffer, got ${show(phxBin)}`);
    assert.deepStrictEqual([...new Uint8Array(phxBin)], bytes, "phoenix.js: the bytes");

    step("a plain member's event reaches all three through handle_in");
    plain.send({ type: "event", channel, event: "shout", data: { from: "plain" }, ref: "s" });
    const got = [await plain.nextJson("shout: first frame"), await plain.nextJson("shout: second frame")];
    const byType = (type) => got.find((frame) => frame.type === type);
    assert.deepStrictEqual(byType("reply"), ok("s"), `plain: the shout's reply among ${show(got)}`);
    assert.deepStrictEqual(byType("event"), event(channel, "shouted", { from: "plain" }), `plain: the broadcast among ${show(got)}`);
    assert.deepStrictEqual((await sioNext(`${channel}/shouted`)).args, [{ from: "plain" }], "socket.io-client: the broadcast");
    assert.deepStrictEqual((await phxNext("shouted")).payload, { from: "plain" }, "phoenix.js: the broadcast");

    step("nothing else arrives");
    await sleep(QUIET_MS);
    assert.deepStrictEqual(sioEvents.map((e) => e.name), ["chats/1/news", "chats/1/bin", "chats/1/shouted"], "socket.io-client: events");
    assert.deepStrictEqual(phxEvents.map((e) => e.name), ["news", "bin", "shouted"], "phoenix.js: events");
    await plain.quiet("after the shout");
    sio.disconnect();
    phx.disconnect();
  },

  // 9. The browser's own WebSocket.
  async browser() {
    step("launch chromium");
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      const pageErrors = [];
      page.on("pageerror", (err) => pageErrors.push(err.message));
      step("open a page of the server's own origin");
      const res = await page.goto(`${URL}/page`);
      assert.equal(res?.status(), 200, "GET /page");

      step("the page's WebSocket subscribes over /ws, gets an emit; /ws/vault/b?... and /ws/greet/café?... get their ok replies");
      const result = await page.evaluate(async (answerMs) => {
        const base = location.origin.replace(/^http/, "ws");
        // A WebSocket whose frames are queued; next() takes the next one (parsed) within answerMs.
        const open = (url) => {
          const ws = new WebSocket(url);
          const queue = [];
          const waiters = [];
          let closed = null;
          ws.onmessage = (e) => {
            const frame = typeof e.data === "string" ? JSON.parse(e.data) : { nonText: String(e.data) };
            const waiter = waiters.shift();
            if (waiter) waiter(frame);
            else queue.push(frame);
          };
          ws.onclose = (e) => {
            closed = { code: e.code, reason: e.reason };
            for (const waiter of waiters.splice(0)) waiter({ closed });
          };
          const opened = new Promise((resolve, reject) => {
            ws.onopen = resolve;
            ws.onerror = () => reject(new Error(`${url}: error before open`));
            setTimeout(() => reject(new Error(`${url}: not open within ${answerMs} ms`)), answerMs);
          });
          const next = (what) =>
            queue.length > 0
              ? Promise.resolve(queue.shift())
              : closed
                ? Promise.resolve({ closed })
                : new Promise((resolve, reject) => {
                    waiters.push(resolve);
                    setTimeout(() => reject(new Error(`${url}: no ${what} within ${answerMs} ms`)), answerMs);
                  });
          return { ws, opened, next };
        };

        const multi = open(`${base}/ws`);
        await multi.opened;
        multi.ws.send(JSON.stringify({ type: "subscribe", channel: "chats/1", ref: "b1" }));
        const reply = await multi.next("subscribe reply");
        const posted = await fetch("/emit", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ channel: "chats/1", event: "news", data: { from: "the test", text: "é ✓" } }),
        });
        const delivered = (await posted.json()).delivered;
        const news = await multi.next("the emit");
        multi.ws.send(JSON.stringify({ type: "ping" }));
        const pong = await multi.next("pong");

        const bound = open(`${base}/ws/vault/b?key=open-sesame&who=browser`);
        await bound.opened;
        const first = await bound.next("the bound socket's first frame");
        bound.ws.send(JSON.stringify({ type: "event", channel: "vault/b", event: "payload", ref: 2 }));
        const payload = await bound.next("the join payload");
        // The browser percent-encodes the path and the query.
        const café = open(`${base}/ws/greet/café?nick=zoé`);
        await café.opened;
        const caféFirst = await café.next("the first frame of /ws/greet/café");
        multi.ws.close();
        bound.ws.close();
        café.ws.close();
        return { reply, delivered, news, pong, first, payload, caféFirst };
      }, ANSWER_MS);

      assert.deepStrictEqual(result.reply, ok("b1"), "browser: subscribe reply");
      assert.equal(result.delivered, 1, "browser: the emit was delivered to one member");
      assert.deepStrictEqual(result.news, event("chats/1", "news", { from: "the test", text: "é ✓" }), "browser: the emit");
      assert.deepStrictEqual(result.pong, { type: "pong" }, "browser: pong");
      assert.deepStrictEqual(result.first, { type: "reply", status: "ok", channel: "vault/b" }, "browser: the bound socket's first frame");
      assert.deepStrictEqual(
        result.payload,
        ok(2, { response: { key: "open-sesame", who: "browser" } }),
        "browser: the bound socket's join payload",
      );
      assert.deepStrictEqual(
        result.caféFirst,
        { type: "reply", status: "ok", channel: "greet/café", response: { welcome: "zoé", room: "café" } },
        "browser: the first frame of /ws/greet/café?nick=zoé",
      );
      assert.deepStrictEqual(pageErrors, [], "errors in the page");
    } finally {
      await browser.close();
    }
  },
};

run("plainws_client", scenarios, {
  where: URL,
  timeoutMs: (name) => ({ "slow-consumer": 80_000, browser: 60_000 })[name] ?? 30_000,
});
