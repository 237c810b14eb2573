// Connection state recovery (socket.io 4.6+'s connectionStateRecovery) against the in-process
// server of tests/recovery.rs (channels room/:id, nick/:id, filtered/:id, slow/:id; routes
// POST /emit, POST /emit-many, GET /stats), and the `chat` example (scenario "chat").
//
// The official socket.io-client records the pid of the CONNECT answer and the offset that ends
// every channel event (`socket._pid`, `socket._lastOffset`), and sends both in its CONNECT when
// it reconnects; `socket.recovered` says whether the server took it back.
//
// Usage: TIDINGS_URL=http://127.0.0.1:PORT node tests/js/recovery_client.mjs <scenario>
// Exit code 0 = pass; on failure a message goes to stderr and the exit code is 1.
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import WebSocket from "ws";
import { step, sleep, within, abort, openSockets, run, Inbox as BaseInbox } from "./harness.mjs";

const URL = (process.env.TIDINGS_URL ?? "http://127.0.0.1:3000").replace(/\/+$/, "");
const SCENARIO_TIMEOUT_MS = 30_000;
// How long we wait to be sure that something does NOT arrive.
const QUIET_MS = 400;
// How long an ack or an HTTP request may take.
const ACK_TIMEOUT_MS = 5_000;
const HTTP_TIMEOUT_MS = 5_000;
// How long a reconnection may take (its delay included).
const RECONNECT_MS = 8_000;
// How long expected events may take to arrive.
const EVENTS_MS = 5_000;
// How long the server may take to settle its counts (hooks run after the connect).
const SETTLE_MS = 3_000;

const OK = { status: "ok" };
const OFFSET = /^[0-9]+$/;

const range = (from, to) => Array.from({ length: to - from }, (_, i) => from + i);

function isBinary(v) {
  return Buffer.isBuffer(v) || v instanceof ArrayBuffer || ArrayBuffer.isView(v);
}
function toBuffer(v) {
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof ArrayBuffer) return Buffer.from(v);
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}
// JSON text of a value with every binary replaced by a marker, for messages.
function show(v) {
  return JSON.stringify(v, (_, x) => (isBinary(x) ? `<binary ${toBuffer(x).toString()}>` : x));
}

// ---------------------------------------------------------------------------
// socket.io-client side

// The base inbox, plus `log`: everything received, in order, never taken away.
class Inbox extends BaseInbox {
  constructor(socket) {
    super(socket);
    this.log = [];
  }

  push(event, args) {
    this.log.push({ event, args });
    super.push(event, args);
  }

  // Application events logged from index `from` on (`filter` on their names).
  since(from, filter = () => true) {
    return this.log.slice(from).filter((e) => !e.event.startsWith("$") && filter(e.event));
  }
}

// Opens a client with reconnection on (after `delay` ms, no jitter) and waits until it is
// connected. An unexpected connect_error aborts the scenario.
async function connect(who, { token, transports = ["websocket"], delay = 500, ...opts } = {}) {
  const socket = io(URL, {
    forceNew: true,
    transports,
    reconnectionDelay: delay,
    reconnectionDelayMax: 10_000,
    randomizationFactor: 0,
    ...(token ? { auth: { token } } : {}),
    ...opts,
  });
  openSockets.add(socket);
  const inbox = new Inbox(socket);
  const client = { who, socket, inbox, connectErrorExpected: false };
  socket.on("connect_error", (err) => {
    if (!client.connectErrorExpected) {
      abort(new Error(`${who}: unexpected connect_error: ${err.message}`));
    }
  });
  step(`${who}: connect`);
  await within(RECONNECT_MS, inbox.next("$connect"), `${who}: not connected`);
  assert.equal(typeof socket.id, "string", `${who}: socket.id after connect`);
  assert.ok(!socket.recovered, `${who}: a first connection is never recovered`);
  return client;
}

// Emits `event` with `args` and an ack callback; resolves with the ack args.
function emitWithAck(client, event, ...args) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${client.who}: no ack for "${event}" within ${ACK_TIMEOUT_MS} ms`)),
      ACK_TIMEOUT_MS,
    );
    client.socket.emit(event, ...args, (...reply) => {
      clearTimeout(timer);
      resolve(reply);
    });
  });
}

async function expectAck(client, expected, event, ...args) {
  step(`${client.who}: "${event}" ${show(args)}`);
  const reply = await emitWithAck(client, event, ...args);
  assert.deepStrictEqual(reply, [expected], `${client.who}: ack of "${event}" ${show(args)}`);
}

const subscribe = (client, channel, ...payload) =>
  expectAck(client, OK, "subscribe", channel, ...payload);

// Takes the next `event` (already received or within EVENTS_MS).
function nextEvent(client, event) {
  step(`${client.who}: waiting for "${event}"`);
  return within(EVENTS_MS, client.inbox.next(event), `${client.who}: no "${event}"`);
}

// Waits until `count` application events (names passing `filter`) are logged from `from` on,
// then QUIET_MS more, and returns all of them (so that one too many shows).
async function collect(client, from, count, what, filter = () => true) {
  step(`${client.who}: collecting ${count} events (${what})`);
  const deadline = Date.now() + EVENTS_MS;
  while (client.inbox.since(from, filter).length < count && Date.now() < deadline) {
    await sleep(10);
  }
  const got = client.inbox.since(from, filter);
  assert.ok(
    got.length >= count,
    `${client.who}: ${what}: got ${got.length} of ${count} events within ${EVENTS_MS} ms: ` +
      show(got.slice(-5)),
  );
  await sleep(QUIET_MS);
  return client.inbox.since(from, filter);
}

// Fails if an application event (names passing `filter`) is logged from `from` on, now or
// within QUIET_MS.
async function expectNothing(client, from, what, filter = () => true) {
  step(`${client.who}: expecting no event (${what})`);
  await sleep(QUIET_MS);
  const got = client.inbox.since(from, filter);
  assert.deepStrictEqual(
    got.map((e) => `${e.event} ${show(e.args)}`),
    [],
    `${client.who}: expected no event (${what})`,
  );
}

// The offset that ends an event's args, checked to be a decimal string.
function offsetOf(entry, what) {
  const last = entry.args[entry.args.length - 1];
  assert.ok(
    typeof last === "string" && OFFSET.test(last),
    `${what}: "${entry.event}" must end with its offset (a decimal string), got args ${show(entry.args)}`,
  );
  return BigInt(last);
}

// Checks that the events carry strictly increasing offsets, all above `after`.
function assertOffsetsIncrease(entries, after, what) {
  let previous = after;
  for (const entry of entries) {
    const offset = offsetOf(entry, what);
    assert.ok(
      offset > previous,
      `${what}: offsets must increase: ${offset} after ${previous} (event ${entry.event} ${show(entry.args)})`,
    );
    previous = offset;
  }
  return previous;
}

// Drops the client's connection without a clean Socket.IO close.
function drop(client, how) {
  const engine = client.socket.io.engine;
  step(`${client.who}: drop (${how})`);
  switch (how) {
    case "engine-close":
      engine.close();
      break;
    case "ws-terminate": {
      assert.equal(engine.transport.name, "websocket", "transport before the kill");
      const ws = engine.transport.ws;
      assert.equal(typeof ws?.terminate, "function", "the raw `ws` WebSocket of the transport");
      ws.terminate();
      break;
    }
    case "polling-close":
      // engine.io-client ends a polling session with a close packet ("1").
      assert.equal(engine.transport.name, "polling", "transport before the close");
      engine.close();
      break;
    case "ping-timeout": {
      // The client stops answering pings: the server closes it after its ping timeout.
      const send = engine._sendPacket.bind(engine);
      engine._sendPacket = (type, ...rest) => (type === "pong" ? undefined : send(type, ...rest));
      break;
    }
    default:
      throw new Error(`unknown drop ${how}`);
  }
}

// Drops the connection and waits until the client has seen it go. Resolves with the promise
// of its next connect (registered before the drop: it may come back while the test emits),
// and the log index where the drop happened.
async function dropAndWait(client, how) {
  const id = client.socket.id;
  const mark = client.inbox.log.length;
  const back = client.inbox.next("$connect");
  let backYet = false;
  back.then(() => {
    backYet = true;
  });
  const gone = client.inbox.next("$disconnect");
  drop(client, how);
  step(`${client.who}: waiting for the disconnect (${how})`);
  const [reason] = await within(RECONNECT_MS, gone, `${client.who}: no disconnect after ${how}`);
  return {
    id,
    mark,
    reason,
    isBack: () => backYet,
    back: () => {
      step(`${client.who}: waiting for the reconnection (after ${how}: ${reason})`);
      return within(RECONNECT_MS, back, `${client.who}: did not reconnect after ${how}`);
    },
  };
}

function assertRecovered(client, dropped, what) {
  assert.equal(
    client.socket.recovered,
    true,
    `${client.who}: ${what}: socket.recovered (disconnect reason ${dropped.reason})`,
  );
  assert.equal(client.socket.id, dropped.id, `${client.who}: ${what}: same socket.id`);
}

function assertFresh(client, dropped, what) {
  assert.ok(!client.socket.recovered, `${client.who}: ${what}: socket.recovered must be false`);
  assert.notEqual(client.socket.id, dropped.id, `${client.who}: ${what}: a new socket.id`);
}

// ---------------------------------------------------------------------------
// HTTP

async function post(path, body) {
  const res = await fetch(`${URL}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
  });
  const text = await res.text();
  assert.equal(res.status, 200, `POST ${path} ${show(body)}: HTTP status (body ${text})`);
  return JSON.parse(text);
}

// Emits one event; checks how many connections it was queued for when `delivered` is given.
async function emit(channel, event, data, delivered, extra = {}) {
  const { delivered: got } = await post("/emit", { channel, event, data, ...extra });
  if (delivered !== undefined) {
    assert.equal(got, delivered, `POST /emit ${channel} ${event} ${show(data)}: delivered`);
  }
  return got;
}

// Emits events in this order, in one request: [{channel, event, data, binary?}].
async function emitMany(events) {
  step(`POST /emit-many (${events.length} events)`);
  const { delivered } = await post("/emit-many", events);
  return delivered;
}

const ticks = (channel, ns) => ns.map((n) => ({ channel, event: "tick", data: { n } }));

async function getStats() {
  const res = await fetch(`${URL}/stats`, { signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) });
  assert.equal(res.status, 200, "GET /stats: HTTP status");
  return res.json();
}

// Polls GET /stats until every field of `expected` matches (`members` and `calls` compared
// key by key; a missing call count is 0), failing after SETTLE_MS with the last value.
async function waitForStats(expected, what) {
  step(`GET /stats until ${show(expected)} (${what})`);
  const matches = (stats) =>
    Object.entries(expected).every(([key, want]) => {
      if (key === "members" || key === "calls") {
        return Object.entries(want).every(([k, v]) => (stats[key][k] ?? 0) === v);
      }
      return stats[key] === want;
    });
  const deadline = Date.now() + SETTLE_MS;
  let last;
  while (Date.now() < deadline) {
    last = await getStats();
    if (matches(last)) return last;
    await sleep(25);
  }
  assert.fail(`GET /stats after ${SETTLE_MS} ms (${what}): ${show(last)}, expected ${show(expected)}`);
}

// Subscribes `client` to `channel` and gets one event there, so that the client holds an
// offset (the official client sends none before its first event). Returns that offset.
async function primed(client, channel, delivered = 1) {
  await subscribe(client, channel);
  await emit(channel, "tick", { n: "first" }, delivered);
  const args = await nextEvent(client, `${channel}/tick`);
  const offset = offsetOf({ event: `${channel}/tick`, args }, "the first event");
  assert.deepStrictEqual(args[0], { n: "first" }, "the first event's payload");
  assert.equal(client.socket._lastOffset, args[1], "the client records the offset it got");
  assert.equal(typeof client.socket._pid, "string", "the CONNECT answer carried a pid");
  return offset;
}

// ---------------------------------------------------------------------------
// Raw Engine.IO v4 / Socket.IO v5 client over `ws`

class RawClient {
  constructor(who) {
    this.who = who;
    this.frames = [];
    this.waiters = [];
    this.closed = false;
    this.ws = new WebSocket(`${URL.replace(/^http/, "ws")}/socket.io/?EIO=4&transport=websocket`);
    openSockets.add(this);
    this.ws.on("message", (data, isBinary) => {
      const frame = isBinary ? Buffer.from(data) : data.toString();
      if (frame === "2") {
        this.ws.send("3");
        return;
      }
      this.frames.push(frame);
      this.wake();
    });
    this.ws.on("close", () => {
      this.closed = true;
      this.wake();
    });
    this.ws.on("error", () => {});
  }

  wake() {
    for (const waiter of this.waiters.splice(0)) waiter();
  }

  close() {
    this.ws.terminate();
  }

  send(text) {
    this.ws.send(text);
  }

  // The next frame, or null when the connection closed first.
  async next(what) {
    const deadline = Date.now() + EVENTS_MS;
    while (this.frames.length === 0 && !this.closed) {
      const left = deadline - Date.now();
      assert.ok(left > 0, `${this.who}: no frame within ${EVENTS_MS} ms (${what})`);
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.frames.length > 0 ? this.frames.shift() : null;
  }

  // Opens the Engine.IO session: the open packet.
  async open() {
    step(`${this.who}: Engine.IO open`);
    const open = await this.next("open packet");
    assert.ok(typeof open === "string" && open.startsWith("0{"), `${this.who}: open packet ${show(open)}`);
    return JSON.parse(open.slice(1));
  }

  // Sends a Socket.IO CONNECT with `payload` (raw text after "40") and returns the answer frame
  // (null when the connection closed instead).
  async connect(payload) {
    step(`${this.who}: CONNECT ${payload.slice(0, 80)}`);
    this.send(`40${payload}`);
    return this.next(`answer to CONNECT ${payload.slice(0, 80)}`);
  }

  // Sends a CONNECT that must be answered with a CONNECT; returns its data.
  async connectOk(payload) {
    const answer = await this.connect(payload);
    assert.ok(
      typeof answer === "string" && answer.startsWith("40{"),
      `${this.who}: CONNECT ${payload.slice(0, 80)}: expected a CONNECT answer, got ${show(answer)}`,
    );
    return JSON.parse(answer.slice(2));
  }
}

// Parses a text EVENT frame `42[...]` into its array.
function eventFrame(frame, what) {
  assert.ok(typeof frame === "string" && frame.startsWith("42["), `${what}: expected 42[...], got ${show(frame)}`);
  return JSON.parse(frame.slice(2));
}

// ---------------------------------------------------------------------------
// Scenarios

// Drop `how`, 100 events meanwhile (50 in one request while it is away for sure, 50 one by
// one while it comes back): all arrive once, in order, with increasing offsets; same id,
// same membership (no pass, no second member), and a new event arrives without subscribing.
async function dropOneHundred(how, { transports = ["websocket"] } = {}) {
  const a = await connect("A", { transports });
  const first = await primed(a, "room/a");
  await waitForStats({ members: { "room/a": 1 }, calls: { "pass:room/a": 1 } }, "subscribed");
  const dropped = await dropAndWait(a, how);
  await emitMany(ticks("room/a", range(0, 50)));
  assert.equal(dropped.isBack(), false, "the first 50 events must be emitted while A is away");
  let whileAway = 50;
  for (const n of range(50, 100)) {
    await emit("room/a", "tick", { n });
    if (!dropped.isBack()) whileAway++;
  }
  await dropped.back();
  assertRecovered(a, dropped, `after ${how}`);
  const got = await collect(a, dropped.mark, 100, `the 100 events emitted across ${how} (${whileAway} while away)`);
  assert.deepStrictEqual(
    got.map((e) => `${e.event} ${e.args[0].n}`),
    range(0, 100).map((n) => `room/a/tick ${n}`),
    `every event once, in order (${whileAway} emitted while away)`,
  );
  const last = assertOffsetsIncrease(got, first, "the events after the drop");
  assert.equal(a.socket._lastOffset, String(last), "the client's last offset");

  step("a new event after the recovery, without subscribing again");
  const mark = a.inbox.log.length;
  await emit("room/a", "tick", { n: 100 }, 1);
  const after = await collect(a, mark, 1, "the event after the recovery");
  assert.deepStrictEqual(after.map((e) => e.args[0]), [{ n: 100 }], "the event after the recovery");
  assertOffsetsIncrease(after, last, "the event after the recovery");
  await waitForStats(
    {
      connections: 1,
      subscriptions: 1,
      members: { "room/a": 1 },
      calls: { "pass:room/a": 1, "joined:room/a": 2, "left:room/a": 1 },
    },
    "one member, pass not run again, joined run again",
  );
}

// A direct push to the member (room/a/ping pushes its argument back as room/a/pong) between
// channel events, then a drop: recovered, with the missed events once each.
async function pushScenario(text) {
  const a = await connect("A");
  const first = await primed(a, "room/a");
  const mark = a.inbox.log.length;
  await emitMany(ticks("room/a", range(0, 5)));
  const before = await collect(a, mark, 5, "five events", (e) => e === "room/a/tick");
  const offsets = before.map((e) => offsetOf(e, "five events"));
  assertOffsetsIncrease(before, first, "five events");
  const lastOffset = a.socket._lastOffset;
  const pushed = text(offsets);
  await expectAck(a, OK, "room/a/ping", pushed);
  const pong = await nextEvent(a, "room/a/pong");
  assert.equal(pong[0], pushed, "the pushed payload");
  const after = a.socket._lastOffset;
  const dropped = await dropAndWait(a, "engine-close");
  await emitMany(ticks("room/a", [5, 6, 7]));
  await dropped.back();
  const note = `(the push ${show(pong)} made the client's offset ${show(after)}, was ${show(lastOffset)})`;
  assert.equal(a.socket.recovered, true, `socket.recovered after a direct push ${note}`);
  const got = await collect(a, dropped.mark, 3, "missed after a push", (e) => e === "room/a/tick");
  assert.deepStrictEqual(got.map((e) => e.args[0].n), [5, 6, 7], `the missed events, once ${note}`);
  assert.equal(after, lastOffset, `a direct push changed the client's offset ${note}`);
}

// The connect hook around a recovery, with an identity (alice) and join assigns (nick/1).
async function hookScenario({ rerun }) {
  const a = await connect("A", { token: "alice" });
  const first = await primed(a, "room/a");
  await subscribe(a, "nick/1", { nick: "al" });
  const whoami = async (what) => {
    await expectAck(a, { status: "ok", response: "alice" }, "room/a/whoami");
    await expectAck(a, { status: "ok", response: { nick: "al", user: "alice" } }, "nick/1/whoami");
    step(what);
  };
  await whoami("before the drop");
  await waitForStats({ calls: { "connect:alice": 1, "join:nick/1": 1 } }, "the hook ran once");
  const dropped = await dropAndWait(a, "engine-close");
  await emitMany(ticks("room/a", [1, 2, 3]));
  await dropped.back();
  assertRecovered(a, dropped, rerun ? "the hook ran again" : "the hook skipped");
  const got = await collect(a, dropped.mark, 3, "missed events");
  assert.deepStrictEqual(got.map((e) => e.args[0].n), [1, 2, 3], "the missed events");
  assertOffsetsIncrease(got, first, "missed events");
  await whoami("after the recovery: the same identity and assigns");
  await waitForStats(
    {
      members: { "room/a": 1, "nick/1": 1 },
      calls: { "connect:alice": rerun ? 2 : 1, "join:nick/1": 1, "pass:room/a": 1 },
    },
    rerun ? "the hook ran again, join and pass did not" : "no hook, no join, no pass",
  );
}

const scenarios = {
  "engine-close": () => dropOneHundred("engine-close"),
  "ws-terminate": () => dropOneHundred("ws-terminate"),
  "polling-close": () => dropOneHundred("polling-close", { transports: ["polling"] }),
  "ping-timeout": () => dropOneHundred("ping-timeout"),

  // Two drops in a row (the second with the raw WebSocket killed): the same id throughout.
  async twice() {
    const a = await connect("A");
    let last = await primed(a, "room/a");
    const id = a.socket.id;
    for (const [round, how] of [
      [0, "engine-close"],
      [1, "ws-terminate"],
    ]) {
      const dropped = await dropAndWait(a, how);
      await emitMany(ticks("room/a", range(round * 10, round * 10 + 10)));
      await dropped.back();
      assertRecovered(a, dropped, `round ${round + 1}`);
      assert.equal(a.socket.id, id, `round ${round + 1}: the first id`);
      const got = await collect(a, dropped.mark, 10, `round ${round + 1}`);
      assert.deepStrictEqual(
        got.map((e) => e.args[0].n),
        range(round * 10, round * 10 + 10),
        `round ${round + 1}: every event once, in order`,
      );
      last = assertOffsetsIncrease(got, last, `round ${round + 1}`);
    }
    await waitForStats(
      {
        connections: 1,
        members: { "room/a": 1 },
        calls: { "pass:room/a": 1, "joined:room/a": 3, "left:room/a": 2 },
      },
      "after two recoveries",
    );
  },

  // socket.io-client's own test: back after 10 ms, events emitted while it comes back.
  async quick() {
    const a = await connect("A", { delay: 10 });
    const first = await primed(a, "room/a");
    const dropped = await dropAndWait(a, "engine-close");
    await emitMany(ticks("room/a", range(0, 20)));
    await dropped.back();
    assertRecovered(a, dropped, "back after 10 ms");
    await emitMany(ticks("room/a", range(20, 30)));
    const got = await collect(a, dropped.mark, 30, "events across a quick reconnect");
    assert.deepStrictEqual(got.map((e) => e.args[0].n), range(0, 30), "every event once, in order");
    assertOffsetsIncrease(got, first, "events across a quick reconnect");
    await waitForStats({ members: { "room/a": 1 }, calls: { "pass:room/a": 1 } }, "one member");
  },

  // Member of room/a and room/b, events interleaved (and room/c's, which it is not in): every
  // event of its channels arrives, in the order of the offsets across channels.
  async "two-channels"() {
    const a = await connect("A");
    const first = await primed(a, "room/a");
    await subscribe(a, "room/b");
    const batch = (from, to) =>
      range(from, to).flatMap((n) => [
        { channel: "room/a", event: "tick", data: { c: "a", n } },
        ...(n % 3 === 0 ? [{ channel: "room/c", event: "tick", data: { c: "c", n } }] : []),
        { channel: "room/b", event: "tick", data: { c: "b", n } },
      ]);
    const dropped = await dropAndWait(a, "engine-close");
    await emitMany(batch(0, 30));
    await dropped.back();
    assertRecovered(a, dropped, "two channels");
    await emitMany(batch(30, 40));
    const expected = batch(0, 40)
      .filter((e) => e.channel !== "room/c")
      .map((e) => `${e.channel}/tick ${e.data.c}${e.data.n}`);
    const got = await collect(a, dropped.mark, expected.length, "events of two channels");
    assert.deepStrictEqual(
      got.map((e) => `${e.event} ${e.args[0].c}${e.args[0].n}`),
      expected,
      "every event of room/a and room/b once, in emission order, none of room/c",
    );
    assertOffsetsIncrease(got, first, "events of two channels");
    await waitForStats(
      {
        members: { "room/a": 1, "room/b": 1, "room/c": 0 },
        calls: { "pass:room/a": 1, "pass:room/b": 1 },
      },
      "both memberships back, no pass",
    );
  },

  // Binary payloads missed during the drop come back as binary, their offset after them.
  async binary() {
    const a = await connect("A");
    const first = await primed(a, "room/a");
    const dropped = await dropAndWait(a, "engine-close");
    await emitMany([
      { channel: "room/a", event: "tick", data: { n: 0 } },
      { channel: "room/a", event: "bin", data: "bytes-1", binary: true },
      { channel: "room/a", event: "tick", data: { n: 1 } },
      { channel: "room/a", event: "bin", data: "bytes-2", binary: true },
    ]);
    await dropped.back();
    assertRecovered(a, dropped, "binary");
    await emit("room/a", "bin", "bytes-3", 1, { binary: true });
    const got = await collect(a, dropped.mark, 5, "binary and text events");
    assert.deepStrictEqual(
      got.map((e) => [e.event, isBinary(e.args[0]) ? `<${toBuffer(e.args[0]).toString()}>` : e.args[0]]),
      [
        ["room/a/tick", { n: 0 }],
        ["room/a/bin", "<bytes-1>"],
        ["room/a/tick", { n: 1 }],
        ["room/a/bin", "<bytes-2>"],
        ["room/a/bin", "<bytes-3>"],
      ],
      "binary payloads as binary, in order",
    );
    assert.ok(got.every((e) => e.args.length === 2), `payload and offset only: ${show(got)}`);
    assertOffsetsIncrease(got, first, "binary events");
  },

  // The connect hook is skipped on recovery (socket.io's skipMiddlewares default): it ran once;
  // the identity it gave and the assigns of a join are still there.
  async "hook-skipped"() {
    await hookScenario({ rerun: false });
  },

  // skip_connect_hook(false): the hook runs again and lets it back.
  async "hook-rerun"() {
    await hookScenario({ rerun: true });
  },

  // skip_connect_hook(false), and the hook refuses the second time: connect_error, and the
  // member is gone.
  async "hook-refuses"() {
    const a = await connect("A", { token: "once" });
    await primed(a, "room/a");
    await waitForStats({ calls: { "connect:once": 1 } }, "the hook ran once");
    a.connectErrorExpected = true;
    const refused = a.inbox.next("$connect_error");
    const dropped = await dropAndWait(a, "engine-close");
    step("A: waiting for the refusal");
    const [err] = await within(RECONNECT_MS, refused, "A: no connect_error after the drop");
    assert.equal(err.message, "once only", "the refusal's message");
    await sleep(QUIET_MS);
    assert.equal(a.socket.connected, false, "A stays disconnected");
    assert.equal(a.socket.recovered, false, "socket.recovered after the refusal");
    assert.equal(a.inbox.log.slice(dropped.mark).filter((e) => e.event === "$connect").length, 0, "no connect");
    await waitForStats(
      { connections: 0, members: { "room/a": 0 }, calls: { "connect:once": 2 } },
      "refused: the hook ran again, nobody in room/a",
    );
    await emit("room/a", "tick", { n: 1 }, 0);
  },

  // Past max_disconnection_duration (1 s): a fresh session. First a quick drop, recovered, so
  // that the limit is what makes the difference.
  async expired() {
    const a = await connect("A", { delay: 200 });
    const first = await primed(a, "room/a");
    let dropped = await dropAndWait(a, "engine-close");
    await emitMany(ticks("room/a", range(0, 3)));
    await dropped.back();
    assertRecovered(a, dropped, "back within the duration");
    const got = await collect(a, dropped.mark, 3, "back within the duration");
    assert.deepStrictEqual(got.map((e) => e.args[0].n), [0, 1, 2], "missed events");
    assertOffsetsIncrease(got, first, "back within the duration");

    a.socket.io.reconnectionDelay(2000);
    dropped = await dropAndWait(a, "engine-close");
    await emitMany(ticks("room/a", range(3, 6)));
    await dropped.back();
    assertFresh(a, dropped, "back after 2 s (max 1 s)");
    await expectNothing(a, dropped.mark, "the events missed past the duration");
    await emit("room/a", "tick", { n: 6 }, 0);
    await waitForStats(
      { connections: 1, members: { "room/a": 0 }, calls: { "pass:room/a": 1 } },
      "a fresh session is in no channel",
    );
    const mark = a.inbox.log.length;
    await subscribe(a, "room/a");
    await emit("room/a", "tick", { n: 7 }, 1);
    const again = await collect(a, mark, 1, "after subscribing again");
    assert.deepStrictEqual(again.map((e) => e.args[0]), [{ n: 7 }], "after subscribing again");
    await waitForStats({ calls: { "pass:room/a": 2 } }, "pass ran for the new subscribe");
  },

  // More missed events than max_events_per_channel (10) keeps: a fresh session, no partial
  // replay. Exactly 10 missed is still recovered.
  async overflow() {
    const a = await connect("A", { delay: 200 });
    const first = await primed(a, "room/a");
    let dropped = await dropAndWait(a, "engine-close");
    await emitMany(ticks("room/a", range(0, 10)));
    await dropped.back();
    assertRecovered(a, dropped, "10 missed, 10 kept");
    const got = await collect(a, dropped.mark, 10, "10 missed, 10 kept");
    assert.deepStrictEqual(got.map((e) => e.args[0].n), range(0, 10), "missed events");
    assertOffsetsIncrease(got, first, "10 missed");

    dropped = await dropAndWait(a, "engine-close");
    await emitMany(ticks("room/a", range(10, 21)));
    await dropped.back();
    assertFresh(a, dropped, "11 missed, 10 kept");
    await expectNothing(a, dropped.mark, "11 missed, 10 kept: no partial replay");
    await emit("room/a", "tick", { n: 21 }, 0);
    await waitForStats({ members: { "room/a": 0 } }, "a fresh session is in no channel");
  },

  // Only the member's own channels count: another channel overflowing does not matter; one of
  // its channels overflowing means no recovery at all (not a partial one).
  async "overflow-other-channel"() {
    const a = await connect("A", { delay: 200 });
    const first = await primed(a, "room/b");
    let dropped = await dropAndWait(a, "engine-close");
    await emitMany([
      ...ticks("room/a", range(0, 15)),
      { channel: "room/b", event: "tick", data: { n: "b1" } },
      ...ticks("room/a", range(15, 30)),
      { channel: "room/b", event: "tick", data: { n: "b2" } },
    ]);
    await dropped.back();
    assertRecovered(a, dropped, "room/a overflowed, A only in room/b");
    const got = await collect(a, dropped.mark, 2, "room/b's events");
    assert.deepStrictEqual(
      got.map((e) => `${e.event} ${e.args[0].n}`),
      ["room/b/tick b1", "room/b/tick b2"],
      "room/b's missed events only",
    );
    let last = assertOffsetsIncrease(got, first, "room/b's events");

    await subscribe(a, "room/a");
    await emit("room/a", "tick", { n: "a-live" }, 1);
    const live = await collect(a, dropped.mark, 3, "room/a live");
    last = assertOffsetsIncrease(live.slice(2), last, "room/a live");
    dropped = await dropAndWait(a, "engine-close");
    await emitMany([
      { channel: "room/b", event: "tick", data: { n: "b3" } },
      ...ticks("room/a", range(30, 41)),
    ]);
    await dropped.back();
    assertFresh(a, dropped, "room/a overflowed, A in room/a and room/b");
    await expectNothing(a, dropped.mark, "no partial replay (room/b's event neither)");
    await waitForStats(
      { members: { "room/a": 0, "room/b": 0 }, connections: 1 },
      "a fresh session is in no channel",
    );
  },

  // socket.disconnect() then socket.connect(): a fresh session, although the client sends its
  // pid and offset (it keeps them).
  async "client-disconnect"() {
    const a = await connect("A");
    await primed(a, "room/a");
    const id = a.socket.id;
    const mark = a.inbox.log.length;
    const gone = a.inbox.next("$disconnect");
    step("A: socket.disconnect()");
    a.socket.disconnect();
    const [reason] = await within(RECONNECT_MS, gone, "A: no disconnect");
    assert.equal(reason, "io client disconnect", "the disconnect reason");
    await waitForStats(
      { connections: 0, members: { "room/a": 0 }, calls: { "left:room/a": 1 } },
      "A left on purpose",
    );
    await emit("room/a", "tick", { n: 1 }, 0);
    assert.equal(typeof a.socket._pid, "string", "the client still holds its pid");
    assert.equal(typeof a.socket._lastOffset, "string", "the client still holds its offset");
    const back = a.inbox.next("$connect");
    step("A: socket.connect()");
    a.socket.connect();
    await within(RECONNECT_MS, back, "A: did not connect again");
    assertFresh(a, { id, reason }, "after socket.disconnect()");
    await expectNothing(a, mark, "a fresh session after socket.disconnect()");
    await emit("room/a", "tick", { n: 2 }, 0);
    await waitForStats(
      { connections: 1, members: { "room/a": 0 }, calls: { "pass:room/a": 1, "joined:room/a": 1 } },
      "not back in room/a",
    );
  },

  // Without recovery: no pid in the CONNECT answer, no offset after the payload, a drop gives
  // a fresh session; a CONNECT with a pid and an offset is an ordinary one.
  async "recovery-off"() {
    const a = await connect("A", { delay: 200 });
    assert.equal(a.socket._pid, undefined, "no pid without recovery");
    await subscribe(a, "room/a");
    await emit("room/a", "tick", { n: 1 }, 1);
    assert.deepStrictEqual(await nextEvent(a, "room/a/tick"), [{ n: 1 }], "the payload alone");
    assert.equal(a.socket._lastOffset, undefined, "no offset recorded");
    const dropped = await dropAndWait(a, "engine-close");
    // The client sees its disconnect before the server has read the close: wait for the
    // server too (a fresh session is in no channel, so the count stays at 0 once reached).
    await waitForStats({ members: { "room/a": 0 } }, "the server saw A go");
    await emit("room/a", "tick", { n: 2 }, 0);
    await dropped.back();
    assertFresh(a, dropped, "without recovery");
    await expectNothing(a, dropped.mark, "without recovery");

    const raw = new RawClient("raw");
    await raw.open();
    const answer = await raw.connectOk("");
    assert.deepStrictEqual(Object.keys(answer), ["sid"], `CONNECT answer ${show(answer)}`);
    raw.send('420["subscribe","room/a"]');
    assert.equal(await raw.next("subscribe ack"), '430[{"status":"ok"}]', "subscribe ack");
    await emit("room/a", "tick", { n: 3 }, 1);
    assert.equal(await raw.next("event"), '42["room/a/tick",{"n":3}]', "the event on the wire");
    await emit("room/a", "bin", "xyz", 1, { binary: true });
    assert.equal(
      await raw.next("binary event"),
      '451-["room/a/bin",{"_placeholder":true,"num":0}]',
      "the binary event on the wire",
    );
    assert.deepStrictEqual(await raw.next("attachment"), Buffer.from("xyz"), "the attachment");

    const forged = new RawClient("forged");
    await forged.open();
    const fresh = await forged.connectOk('{"pid":"foo","offset":"1"}');
    assert.deepStrictEqual(Object.keys(fresh), ["sid"], `CONNECT answer ${show(fresh)}`);
  },

  // The wire with recovery on (socket.io's own server tests): pid beside sid; the offset last
  // in every event, binary too; a raw client that ends its session with a close packet comes
  // back on a new session with {pid, offset}: its sid, then the events it missed.
  async wire() {
    const r1 = new RawClient("raw 1");
    await r1.open();
    const hello = await r1.connectOk("");
    assert.deepStrictEqual(Object.keys(hello).sort(), ["pid", "sid"], `CONNECT answer ${show(hello)}`);
    assert.equal(typeof hello.pid, "string", "pid is a string");
    assert.notEqual(hello.pid, hello.sid, "the pid is not the public id");
    r1.send('420["subscribe","room/a"]');
    assert.equal(await r1.next("subscribe ack"), '430[{"status":"ok"}]', "subscribe ack");
    await emit("room/a", "tick", { n: 1 }, 1);
    const [name, payload, offset1] = eventFrame(await r1.next("event"), "event");
    assert.deepStrictEqual([name, payload], ["room/a/tick", { n: 1 }], "the event");
    assert.match(offset1, OFFSET, "the offset, last, as a string");
    await emit("room/a", "bin", "xyz", 1, { binary: true });
    const binary = await r1.next("binary event");
    const match = /^451-(\[.*\])$/.exec(binary);
    assert.ok(match, `binary event frame ${show(binary)}`);
    const [bname, placeholder, offset2] = JSON.parse(match[1]);
    assert.deepStrictEqual([bname, placeholder], ["room/a/bin", { _placeholder: true, num: 0 }]);
    assert.match(offset2, OFFSET, "the binary event's offset");
    assert.ok(BigInt(offset2) > BigInt(offset1), "offsets increase");
    assert.deepStrictEqual(await r1.next("attachment"), Buffer.from("xyz"), "the attachment");

    step("raw 1: Engine.IO close packet");
    r1.send("1");
    assert.equal(await r1.next("close"), null, "the server closes the session");
    await waitForStats({ connections: 0, members: { "room/a": 0 } }, "raw 1 gone");
    await emitMany(ticks("room/a", [2, 3, 4]));

    const r2 = new RawClient("raw 2");
    await r2.open();
    const frames = [await r2.connect(`{"pid":"${hello.pid}","offset":"${offset2}"}`)];
    for (let i = 0; i < 3; i++) frames.push(await r2.next(`missed event ${i}`));
    const connects = frames.filter((f) => typeof f === "string" && f.startsWith("40"));
    assert.deepStrictEqual(
      connects,
      [`40{"sid":"${hello.sid}","pid":"${hello.pid}"}`],
      `the CONNECT answer takes back the sid and pid: ${show(frames)}`,
    );
    const events = frames.filter((f) => !connects.includes(f)).map((f) => eventFrame(f, "missed event"));
    assert.deepStrictEqual(
      events.map(([e, p]) => [e, p]),
      [2, 3, 4].map((n) => ["room/a/tick", { n }]),
      "the missed events, in order",
    );
    assertOffsetsIncrease(
      events.map((args) => ({ event: args[0], args: args.slice(1) })),
      BigInt(offset2),
      "the missed events",
    );
    await emit("room/a", "tick", { n: 5 }, 1);
    assert.deepStrictEqual(eventFrame(await r2.next("live event"), "live event").slice(0, 2), [
      "room/a/tick",
      { n: 5 },
    ]);
    await waitForStats({ connections: 1, members: { "room/a": 1 } }, "raw 2 is the member");
  },

  // Forged and malformed recovery CONNECTs: fresh sessions (or the connection refused), no
  // harm to the client whose session they name, nor to a bystander.
  async forged() {
    const bystander = await connect("bystander");
    await subscribe(bystander, "room/a");
    const victim = await connect("victim", { reconnection: false });
    const first = await primed(victim, "room/a", 2);
    const { _pid: pid, id } = victim.socket;
    const offset = victim.socket._lastOffset;
    const dropped = await dropAndWait(victim, "engine-close");
    await waitForStats({ members: { "room/a": 1 } }, "the victim is suspended");
    await emitMany(ticks("room/a", [1, 2]));

    const objects = [
      '{"pid":"foo","offset":"bar"}',
      `{"pid":"${id}","offset":"${offset}"}`,
      `{"pid":"${pid}","offset":"abc"}`,
      `{"pid":"${pid}","offset":"-1"}`,
      `{"pid":"${pid}","offset":"99999999999999999999999"}`,
      `{"pid":"${pid}","offset":"18446744073709551615"}`,
      `{"pid":"${pid}","offset":"1e3"}`,
      `{"pid":"${pid}","offset":""}`,
      `{"pid":"${pid}","offset":" 1"}`,
      `{"pid":"${pid}","offset":${offset}}`,
      `{"pid":"${pid}"}`,
      `{"pid":5,"offset":"${offset}"}`,
      '{"pid":null,"offset":null}',
      `{"pid":"AAAAAAAAAAAAAAAAAAAA","offset":"${offset}"}`,
      `{"pid":"${"x".repeat(10_000)}","offset":"${offset}"}`,
      `{"pid":["${pid}"],"offset":["${offset}"]}`,
    ];
    const raws = [];
    for (const payload of objects) {
      const raw = new RawClient(`forged ${payload.slice(0, 40)}`);
      raws.push(raw);
      await raw.open();
      const answer = await raw.connectOk(payload);
      assert.equal(typeof answer.sid, "string", `${payload.slice(0, 80)}: sid`);
      assert.notEqual(answer.sid, id, `${payload.slice(0, 80)}: must not take the victim's id`);
      assert.equal(typeof answer.pid, "string", `${payload.slice(0, 80)}: a new pid`);
      assert.notEqual(answer.pid, pid, `${payload.slice(0, 80)}: must not take the victim's pid`);
    }
    // Not even objects: anything but a crash (a fresh session, a refusal or a closed connection).
    for (const payload of ["[]", '"x"', "12", "null", "{bad json", `["${pid}","${offset}"]`]) {
      const raw = new RawClient(`malformed ${payload}`);
      raws.push(raw);
      await raw.open();
      const answer = await raw.connect(payload);
      assert.ok(
        answer === null || /^4[04]/.test(answer),
        `${payload}: expected a CONNECT answer, a CONNECT_ERROR or a close, got ${show(answer)}`,
      );
      if (typeof answer === "string" && answer.startsWith("40")) {
        assert.ok(!answer.includes(id) && !answer.includes(pid), `${payload}: ${answer}`);
      }
    }
    await emit("room/a", "tick", { n: 3 }, 1);
    await sleep(QUIET_MS);
    for (const raw of raws) {
      assert.deepStrictEqual(
        raw.frames.filter((f) => typeof f === "string" && f.startsWith("42")),
        [],
        `${raw.who}: no channel event`,
      );
      raw.close();
    }

    step("victim: socket.connect()");
    victim.socket.connect();
    await dropped.back();
    assertRecovered(victim, dropped, "the victim after the forged attempts");
    const got = await collect(victim, dropped.mark, 3, "the victim's missed events");
    assert.deepStrictEqual(got.map((e) => e.args[0].n), [1, 2, 3], "the victim's missed events");
    assertOffsetsIncrease(got, first, "the victim's missed events");
    const seen = bystander.inbox.since(0, (e) => e === "room/a/tick").map((e) => e.args[0].n);
    assert.deepStrictEqual(seen, ["first", 1, 2, 3], "the bystander got every event once");
    await waitForStats({ connections: 2, members: { "room/a": 2 } }, "bystander and victim");
  },

  // handle_out applies to the replay as it does live: a dropped event stays dropped, a
  // rewritten one arrives rewritten.
  async "replay-filtered"() {
    const a = await connect("A");
    await subscribe(a, "filtered/1");
    await emit("filtered/1", "plain", { n: 0 }, 1);
    await nextEvent(a, "filtered/1/plain");
    const dropped = await dropAndWait(a, "engine-close");
    await emitMany([
      { channel: "filtered/1", event: "secret", data: { n: 1 } },
      { channel: "filtered/1", event: "shout", data: { text: "missed" } },
      { channel: "filtered/1", event: "plain", data: { n: 2 } },
    ]);
    await dropped.back();
    assertRecovered(a, dropped, "filtered channel");
    const got = await collect(a, dropped.mark, 2, "the filtered replay");
    assert.deepStrictEqual(
      got.map((e) => [e.event, e.args[0]]),
      [
        ["filtered/1/shout", { text: "MISSED" }],
        ["filtered/1/plain", { n: 2 }],
      ],
      "the replay as handle_out lets it through: no secret, the shout rewritten",
    );
    step("live, after the recovery, for comparison");
    const mark = a.inbox.log.length;
    await emitMany([
      { channel: "filtered/1", event: "secret", data: { n: 3 } },
      { channel: "filtered/1", event: "shout", data: { text: "live" } },
    ]);
    const live = await collect(a, mark, 1, "live filtered events");
    assert.deepStrictEqual(live.map((e) => [e.event, e.args[0]]), [["filtered/1/shout", { text: "LIVE" }]]);
  },

  // An event rewritten by handle_out is still a channel event with its offset: the client
  // records it, and does not get it a second time after a recovery.
  async "replaced-offset"() {
    const a = await connect("A");
    await subscribe(a, "filtered/1");
    await emit("filtered/1", "plain", { n: 0 }, 1);
    const plain = await nextEvent(a, "filtered/1/plain");
    const o0 = offsetOf({ event: "filtered/1/plain", args: plain }, "plain");
    await emit("filtered/1", "shout", { text: "hi" }, 1);
    const shout = await nextEvent(a, "filtered/1/shout");
    assert.deepStrictEqual(shout[0], { text: "HI" }, "the rewritten payload");
    const o1 = offsetOf({ event: "filtered/1/shout", args: shout }, "a rewritten broadcast");
    assert.ok(o1 > o0, "its offset follows");
    const dropped = await dropAndWait(a, "engine-close");
    // The client sees its disconnect before the server has read the close: wait for the
    // server too (A comes back 500 ms after its drop, so the count stays 0 that long).
    await waitForStats({ connections: 0 }, "the server saw A go");
    await emit("filtered/1", "plain", { n: 1 }, 0);
    await dropped.back();
    assertRecovered(a, dropped, "after a rewritten event");
    const got = await collect(a, dropped.mark, 1, "the replay");
    assert.deepStrictEqual(
      got.map((e) => [e.event, e.args[0]]),
      [["filtered/1/plain", { n: 1 }]],
      "only the missed event (the rewritten one was received already)",
    );
  },

  // A direct push (ctx.push) whose payload is a string must not become the client's offset
  // (the official client takes any string that ends an event's args as its offset): a text
  // (the client would come back with offset "pong").
  "push-offset-text": () => pushScenario(() => "pong"),
  // ... or an older offset's digits (the client would get events again).
  "push-offset-number": () => pushScenario((offsets) => String(offsets[0])),

  // A recovery claimed at CONNECT but impossible by the time the (slow) connect hook lets it
  // in (more events than kept arrived meanwhile): never "recovered" without its channels.
  async "late-failure"() {
    const a = await connect("A", { token: "slow-back", delay: 300 });
    await primed(a, "room/a");
    const connects = [];
    a.socket.on("connect", () => connects.push({ recovered: a.socket.recovered, id: a.socket.id }));
    let lastDisconnect = Date.now();
    a.socket.on("disconnect", (reason) => {
      lastDisconnect = Date.now();
      connects.push({ disconnect: reason });
    });
    const dropped = await dropAndWait(a, "engine-close");
    await waitForStats({ calls: { "connect:slow-back:recovering": 1 } }, "the hook runs for the recovery");
    await emitMany(ticks("room/a", range(0, 11)));
    step("waiting for a stable connection");
    const deadline = Date.now() + 10_000;
    while (!(a.socket.connected && Date.now() - lastDisconnect > 2_000) && Date.now() < deadline) {
      await sleep(50);
    }
    assert.ok(a.socket.connected, `A is connected in the end: ${show(connects)}`);
    const stats = await getStats();
    if (a.socket.recovered) {
      assert.equal(
        stats.members["room/a"],
        1,
        `recovered (same id ${a.socket.id === dropped.id}) but not in room/a: a silent gap; ` +
          `connects ${show(connects)}`,
      );
    }
    assert.ok(
      connects.filter((c) => c.recovered === true).length === 0,
      `11 events missed, 10 kept: no connect may say recovered: ${show(connects)}`,
    );
  },

  // A left hook that takes 300 ms (a database write) and a client back after 10 ms: its
  // session is there to take back.
  async "slow-left"() {
    const a = await connect("A", { delay: 10 });
    const first = await primed(a, "slow/1");
    const dropped = await dropAndWait(a, "engine-close");
    await emitMany(ticks("slow/1", [1, 2, 3]));
    await dropped.back();
    assertRecovered(a, dropped, "back while the left hook runs");
    const got = await collect(a, dropped.mark, 3, "missed events");
    assert.deepStrictEqual(got.map((e) => e.args[0].n), [1, 2, 3], "the missed events");
    assertOffsetsIncrease(got, first, "missed events");
  },

  // Events a channel had before the member joined it were not missed: no replay of them.
  async "before-join"() {
    const a = await connect("A");
    const first = await primed(a, "room/a");
    await emit("room/b", "tick", { n: "before A joined" }, 0);
    await subscribe(a, "room/b");
    const dropped = await dropAndWait(a, "engine-close");
    await dropped.back();
    assertRecovered(a, dropped, "member of room/a and room/b");
    await expectNothing(a, dropped.mark, "nothing was missed");
    await emit("room/b", "tick", { n: "after" }, 1);
    const got = await collect(a, dropped.mark, 1, "room/b after the recovery");
    assertOffsetsIncrease(got, first, "room/b after the recovery");
  },

  // The chat example (recovery with the defaults): the manual check of the feature.
  async chat() {
    const a = await connect("A");
    const isMessage = (e) => e === "chats/1/message";
    await subscribe(a, "chats/1");
    const postChat = async (message) => {
      const res = await fetch(`${URL}/chat`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ message }),
        signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
      });
      assert.equal(res.status, 204, `POST /chat ${message}: HTTP status`);
    };
    await postChat("first");
    const firstArgs = await nextEvent(a, "chats/1/message");
    assert.deepStrictEqual(firstArgs[0], { message: "first" }, "the first message");
    const first = offsetOf({ event: "chats/1/message", args: firstArgs }, "the first message");
    const dropped = await dropAndWait(a, "engine-close");
    let whileAway = 0;
    for (const n of range(0, 100)) {
      await postChat(`m${n}`);
      if (!dropped.isBack()) whileAway++;
    }
    await dropped.back();
    assertRecovered(a, dropped, "chat");
    const got = await collect(a, dropped.mark, 100, `100 messages (${whileAway} while away)`, isMessage);
    assert.deepStrictEqual(
      got.map((e) => e.args[0].message),
      range(0, 100).map((n) => `m${n}`),
      `every message once, in order (${whileAway} posted while away)`,
    );
    assertOffsetsIncrease(got, first, "chat messages");
    step("GET /online");
    const deadline = Date.now() + SETTLE_MS;
    let online;
    while (Date.now() < deadline) {
      const res = await fetch(`${URL}/online`, { signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) });
      online = await res.json();
      if (JSON.stringify(online) === JSON.stringify({ users: [{ name: "guest", connections: 1 }] })) break;
      await sleep(25);
    }
    assert.deepStrictEqual(online, { users: [{ name: "guest", connections: 1 }] }, "one guest online, once");
  },
};

// ---------------------------------------------------------------------------
// Runner

run("recovery_client", scenarios, { where: URL, timeoutMs: SCENARIO_TIMEOUT_MS });
