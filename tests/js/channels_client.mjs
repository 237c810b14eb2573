// Interop tests of the channel layer: the official socket.io-client against the in-process
// server of tests/channels_interop.rs (channels chats/:id, private/:owner,
// orders/:user_id/items/:item, vault/:name, boom/:x, files/*path; routes POST /emit and
// GET /stats).
//
// Usage: TIDINGS_URL=http://127.0.0.1:PORT node tests/js/channels_client.mjs <scenario>
// Exit code 0 = pass; on failure a message goes to stderr and the exit code is 1.
import assert from "node:assert/strict";
import { isDeepStrictEqual } from "node:util";
import { io } from "socket.io-client";
import { step, sleep, within, abort, aborted, openSockets, run, Inbox as BaseInbox } from "./harness.mjs";

const URL = (process.env.TIDINGS_URL ?? "http://127.0.0.1:3000").replace(/\/+$/, "");
const SCENARIO_TIMEOUT_MS = 15_000;
// How long we wait to be sure that something does NOT arrive.
const QUIET_MS = 500;
// How long an ack may take before the step fails with a clear message.
const ACK_TIMEOUT_MS = 3_000;
// How long the server may take to forget disconnected clients.
const CLEANUP_MS = 5_000;
// How long an HTTP request to the server may take.
const HTTP_TIMEOUT_MS = 3_000;

const OK = { status: "ok" };
const refused = (reason) => ({ status: "error", reason });

const TOKENS = {
  alice: "alice-token",
  bob: "bob-token",
  mallory: "banned-token",
};

function isBinary(v) {
  return Buffer.isBuffer(v) || v instanceof ArrayBuffer || ArrayBuffer.isView(v);
}
function toBuffer(v) {
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof ArrayBuffer) return Buffer.from(v);
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

// JSON text of a value with every binary replaced by a hex marker, for messages.
function show(v) {
  return JSON.stringify(v, (_, x) =>
    isBinary(x) ? `<binary ${toBuffer(x).toString("hex")}>` : x,
  );
}

// Records every event a socket receives (reserved ones prefixed with "$"), so that nothing
// is lost between "emit" and "start waiting", and nothing unexpected goes unnoticed.
class Inbox extends BaseInbox {

  // Application events received and not yet taken with next().
  pending() {
    return this.items.filter((it) => !it.event.startsWith("$"));
  }

  // Fails if any application event is pending, or arrives within `ms`.
  async expectNothing(ms, who) {
    await sleep(ms);
    const got = this.pending();
    assert.deepStrictEqual(
      got.map((it) => `${it.event} ${show(it.args)}`),
      [],
      `${who}: expected no event within ${ms} ms`,
    );
  }

  // Fails if `event` is pending, or arrives within `ms`.
  async expectNo(event, ms, who) {
    await sleep(ms);
    const hit = this.items.find((it) => it.event === event);
    assert.equal(
      hit,
      undefined,
      `${who}: expected no "${event}" within ${ms} ms, got args ${hit && show(hit.args)}`,
    );
  }
}

// Opens a client (own Manager, no reconnection, websocket unless told) and its inbox, and
// waits until it is connected. `user` is a key of TOKENS, or "guest" for no auth.
// An unexpected connect_error or a disconnect the scenario did not ask for aborts it.
// `setup(socket)` runs before the handshake completes.
async function connect(who, user = "guest", opts = {}, setup = () => {}) {
  const auth = user === "guest" ? undefined : { token: TOKENS[user] };
  const socket = io(URL, {
    forceNew: true,
    reconnection: false,
    transports: ["websocket"],
    ...(auth ? { auth } : {}),
    ...opts,
  });
  openSockets.add(socket);
  setup(socket);
  const inbox = new Inbox(socket);
  const client = { who, socket, inbox, leaving: false };
  socket.on("connect_error", (err) =>
    abort(new Error(`${who}: unexpected connect_error: ${err.message}`)),
  );
  socket.on("disconnect", (reason) => {
    if (!client.leaving) abort(new Error(`${who}: unexpected disconnect: ${reason}`));
  });
  step(`${who}: connect`);
  await inbox.next("$connect");
  assert.equal(typeof socket.id, "string", `${who}: socket.id after connect`);
  return client;
}

// Emits `event` with `args` and an ack callback; resolves with all the ack args, or fails
// after ACK_TIMEOUT_MS.
function emitWithAck(client, event, ...args) {
  return new Promise((resolve, reject) => {
    const what = `${client.who}: no ack for "${event}" ${show(args)}`;
    const timer = setTimeout(
      () => reject(new Error(`${what} within ${ACK_TIMEOUT_MS} ms`)),
      ACK_TIMEOUT_MS,
    );
    client.socket.emit(event, ...args, (...reply) => {
      clearTimeout(timer);
      resolve(reply);
    });
  });
}

// Emits `event` with `args` and checks that the ack is exactly [expected].
async function expectAck(client, expected, event, ...args) {
  step(`${client.who}: "${event}" ${show(args)}`);
  const reply = await emitWithAck(client, event, ...args);
  assert.deepStrictEqual(
    reply,
    [expected],
    `${client.who}: ack of "${event}" ${show(args)}: ` +
      `got ${show(reply)}, expected ${show([expected])}`,
  );
}

const subscribe = (client, expected, ...args) => expectAck(client, expected, "subscribe", ...args);

// Waits for the next `event` at `client` and checks its args.
async function expectEvent(client, event, expectedArgs) {
  step(`${client.who}: waiting for "${event}"`);
  const args = await client.inbox.next(event);
  assert.deepStrictEqual(
    args,
    expectedArgs,
    `${client.who}: "${event}" args: got ${show(args)}, expected ${show(expectedArgs)}`,
  );
}

// POST /emit with `body`; resolves with {status, json}.
async function postEmit(body) {
  const res = await fetch(`${URL}/emit`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    assert.fail(`POST /emit ${show(body)}: response is not JSON (HTTP ${res.status}): ${text}`);
  }
  return { status: res.status, json };
}

// POST /emit that must succeed and reach exactly `delivered` connections.
async function emitVia(body, delivered) {
  step(`POST /emit ${show(body)}`);
  const { status, json } = await postEmit(body);
  assert.equal(status, 200, `POST /emit ${show(body)}: HTTP status (body ${show(json)})`);
  assert.deepStrictEqual(json, { delivered }, `POST /emit ${show(body)}: response`);
}

async function getStats() {
  const res = await fetch(`${URL}/stats`, { signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) });
  assert.equal(res.status, 200, "GET /stats: HTTP status");
  return res.json();
}

// Polls GET /stats until it equals `expected`, failing after `ms` with the last value.
async function waitForStats(expected, ms, what) {
  step(`GET /stats until ${show(expected)} (${what})`);
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    last = await getStats();
    if (isDeepStrictEqual(last, expected)) return;
    await sleep(50);
  }
  assert.deepStrictEqual(last, expected, `GET /stats after ${ms} ms (${what})`);
}

// Ends a client on purpose (so that its disconnect does not abort the scenario).
function leave(client) {
  client.leaving = true;
  client.socket.disconnect();
}

// Ends a client's connection abruptly: the TCP connection goes without any close frame.
function kill(client) {
  client.leaving = true;
  const transport = client.socket.io.engine.transport;
  assert.equal(transport.name, "websocket", `${client.who}: transport to terminate`);
  assert.equal(typeof transport.ws?.terminate, "function", `${client.who}: ws.terminate()`);
  transport.ws.terminate();
}

// ---------------------------------------------------------------------------
// Scenarios

const scenarios = {
  // Subscribing is acked, and subscribing twice is fine.
  async subscribe() {
    const a = await connect("alice", "alice");
    await subscribe(a, OK, "chats/1");
    await subscribe(a, OK, "chats/1");
    const stats = await getStats();
    assert.equal(stats.subscriptions, 1, `subscribing twice counts once: ${show(stats)}`);
    assert.equal(stats.channels, 1, `one channel: ${show(stats)}`);
    await emitVia({ channel: "chats/1", event: "message", data: "once" }, 1);
    await expectEvent(a, "chats/1/message", ["once"]);
    step("alice: no second copy");
    await a.inbox.expectNothing(QUIET_MS, "alice");
  },

  // Each refusal reason, and the connection survives them all.
  async reasons() {
    const a = await connect("alice", "alice");
    const unknown = ["nope/1", "chats", "chats/1/2", "chats/", "/chats/1", "chats/1/", "chats//1"];
    for (const channel of unknown) {
      await subscribe(a, refused("unknown_channel"), channel);
    }
    await subscribe(a, refused("unauthorized"), "chats/abc");
    await subscribe(a, refused("unauthorized"), "chats/-1");
    const invalid = [
      "",
      123,
      "c".repeat(300),
      "chats/1\n",
      "chats/\u00001",
      null,
      { channel: "chats/1" },
      ["chats/1"],
    ];
    for (const bad of invalid) {
      await subscribe(a, refused("invalid"), bad);
    }
    // The name limit is 256 bytes: 256 is fine, 257 is not.
    const longName = (bytes) => "files/public/" + "a".repeat(bytes - "files/public/".length);
    await subscribe(a, refused("invalid"), longName(257));
    await subscribe(a, OK, longName(256));
    await expectAck(a, OK, "unsubscribe", longName(256));
    // ... counted in bytes, not characters ("é" is 2 bytes in UTF-8).
    await subscribe(a, refused("invalid"), "files/public/" + "é".repeat(122));
    await subscribe(a, OK, "files/public/" + "é".repeat(121) + "a");
    await expectAck(a, OK, "unsubscribe", "files/public/" + "é".repeat(121) + "a");
    step('alice: "subscribe" without arguments');
    await subscribe(a, refused("invalid"));
    step('alice: "unsubscribe" without arguments');
    await expectAck(a, refused("invalid"), "unsubscribe");
    const stats = await getStats();
    assert.equal(stats.subscriptions, 0, `refused joins must not subscribe: ${show(stats)}`);
    assert.equal(a.socket.connected, true, "alice: still connected after the refusals");

    // In batches: more than 64 operations waiting on one connection count as abuse and
    // close it (MAX_PENDING_OPS in runtime/src/gateway/socketio.rs).
    step("alice: 100 subscriptions (the limit)");
    const acks = [];
    for (let batch = 0; batch < 100; batch += 20) {
      const channels = Array.from({ length: 20 }, (_, i) => `chats/${batch + i + 1}`);
      acks.push(...(await Promise.all(channels.map((c) => emitWithAck(a, "subscribe", c)))));
    }
    const notOk = acks
      .map((ack, i) => [i + 1, ack])
      .filter(([, ack]) => !isDeepStrictEqual(ack, [OK]));
    assert.deepStrictEqual(notOk, [], "the first 100 subscriptions must be accepted");
    await subscribe(a, refused("invalid"), "chats/101");
    // Joining a channel again is still fine at the limit, and leaving one makes room.
    await subscribe(a, OK, "chats/100");
    await expectAck(a, OK, "unsubscribe", "chats/1");
    await subscribe(a, OK, "chats/101");
    const full = await getStats();
    assert.equal(full.subscriptions, 100, `subscriptions at the limit: ${show(full)}`);
  },

  // The identity from the connect hook and the params reach pass.
  async "identity-params"() {
    const alice = await connect("alice", "alice");
    await subscribe(alice, OK, "private/alice");
    await subscribe(alice, refused("unauthorized"), "private/bob");
    await subscribe(alice, OK, "orders/1/items/9");
    await subscribe(alice, refused("unauthorized"), "orders/2/items/9");
    // Typed parameters: a user_id that is no number does not parse.
    await subscribe(alice, refused("invalid"), "orders/x/items/9");
    await subscribe(alice, OK, "files/public/a/b");
    await subscribe(alice, refused("unauthorized"), "files/secret/x");

    const bob = await connect("bob", "bob");
    await subscribe(bob, OK, "private/bob");
    await subscribe(bob, refused("unauthorized"), "private/alice");
    await subscribe(bob, OK, "orders/2/items/9");
    await subscribe(bob, refused("unauthorized"), "orders/1/items/9");

    const guest = await connect("guest");
    await subscribe(guest, refused("unauthorized"), "private/alice");
    await subscribe(guest, OK, "chats/1");

    const mallory = await connect("mallory", "mallory");
    await subscribe(mallory, refused("unauthorized"), "chats/1");
    await subscribe(mallory, OK, "private/mallory");

    const stats = await getStats();
    assert.equal(stats.subscriptions, 7, `accepted joins only: ${show(stats)}`);
  },

  // The join payload reaches pass.
  async "join-payload"() {
    const a = await connect("alice", "alice");
    await subscribe(a, refused("unauthorized"), "vault/x");
    await subscribe(a, refused("unauthorized"), "vault/x", { key: "nope" });
    await subscribe(a, refused("unauthorized"), "vault/x", "open-sesame");
    await subscribe(a, OK, "vault/x", { key: "open-sesame" });
    await subscribe(a, OK, "vault/y", { key: "open-sesame", extra: [1, 2] });
    await emitVia({ channel: "vault/x", event: "opened", data: { by: "alice" } }, 1);
    await expectEvent(a, "vault/x/opened", [{ by: "alice" }]);
    step("vault/y gets nothing");
    await a.inbox.expectNothing(QUIET_MS, "alice");
  },

  // The full join of room:* (Phoenix style): a reply, a reason of the channel's own, assigns
  // read by later hooks, and a per-member filter (muted members drop others' "said").
  async "join-api"() {
    const ann = await connect("ann");
    const bob = await connect("bob");
    const cy = await connect("cy");
    await subscribe(ann, { status: "ok", response: { welcome: "ann", room: "lobby" } }, "room:lobby", { nick: "ann" });
    await subscribe(bob, { status: "ok", response: { welcome: "bob", room: "lobby" } }, "room:lobby", {
      nick: "bob",
      mute: true,
    });
    await subscribe(cy, refused("nick_taken"), "room:lobby", { nick: "taken" });
    await subscribe(cy, refused("unauthorized"), "room:lobby");
    await subscribe(cy, { status: "ok", response: { welcome: "cy", room: "42" } }, "room:42", { nick: "cy" });
    await subscribe(cy, refused("unknown_channel"), "room:");
    await expectAck(ann, { status: "ok", response: "ann" }, "room:lobby/whoami");
    await expectAck(bob, { status: "ok", response: "bob" }, "room:lobby/whoami");

    await expectAck(ann, OK, "room:lobby/say", "hello");
    await expectEvent(ann, "room:lobby/said", [{ from: "ann", text: "hello" }]);
    step("bob is muted: no said from ann");
    await bob.inbox.expectNo("room:lobby/said", QUIET_MS, "bob");
    await expectAck(bob, OK, "room:lobby/say", "mine");
    await expectEvent(bob, "room:lobby/said", [{ from: "bob", text: "mine" }]);
    await expectEvent(ann, "room:lobby/said", [{ from: "bob", text: "mine" }]);
    // Events the channel does not intercept reach everyone, muted or not.
    await emitVia({ channel: "room:lobby", event: "news", data: { n: 1 } }, 2);
    await expectEvent(ann, "room:lobby/news", [{ n: 1 }]);
    await expectEvent(bob, "room:lobby/news", [{ n: 1 }]);
    step("cy is in room:42 only");
    await cy.inbox.expectNothing(QUIET_MS, "cy");
  },

  // A refusal of the connect hook reaches the client as connect_error.
  async "refused-connect"() {
    step("connect with a bad token");
    const socket = io(URL, {
      forceNew: true,
      reconnection: false,
      transports: ["websocket"],
      auth: { token: "bad" },
    });
    openSockets.add(socket);
    const inbox = new Inbox(socket);
    const [err] = await Promise.race([
      inbox.next("$connect_error"),
      inbox
        .next("$connect")
        .then(() => assert.fail('connected with token "bad", expected connect_error')),
    ]);
    assert.equal(err.message, "invalid token", "connect_error message");
    assert.equal(socket.connected, false, "must not be connected");

    step("a good token still connects");
    const a = await connect("alice", "alice");
    await subscribe(a, OK, "chats/1");
  },

  // An emit reaches its channel's members, once, and nobody else.
  async isolation() {
    const a = await connect("A", "alice");
    const b = await connect("B", "bob");
    const c = await connect("C");
    const d = await connect("D");
    const e = await connect("E");
    await subscribe(a, OK, "chats/1");
    await subscribe(b, OK, "chats/2");
    await subscribe(d, OK, "chats/10");
    await subscribe(e, OK, "chats/01");
    await emitVia({ channel: "chats/1", event: "message", data: { text: "hi" } }, 1);
    await expectEvent(a, "chats/1/message", [{ text: "hi" }]);
    step("A gets exactly one event, B, C, D and E none");
    await Promise.all([
      a.inbox.expectNothing(QUIET_MS, "A"),
      b.inbox.expectNothing(QUIET_MS, "B (chats/2)"),
      c.inbox.expectNothing(QUIET_MS, "C (no channel)"),
      d.inbox.expectNothing(QUIET_MS, "D (chats/10)"),
      e.inbox.expectNothing(QUIET_MS, "E (chats/01)"),
    ]);
  },

  // Emits to unknown channels or with bad event names are refused by the emitter.
  async "unknown-emit"() {
    const a = await connect("A", "alice");
    await subscribe(a, OK, "chats/1");
    for (const [body, mention] of [
      [{ channel: "nope/1", event: "message", data: 1 }, "nope/1"],
      [{ channel: "chats", event: "message", data: 1 }, "chats"],
      [{ channel: "chats/1", event: "a/b", data: 1 }, "a/b"],
      [{ channel: "chats/1", event: "", data: 1 }, "event"],
      [{ channel: "chats/1", event: "e".repeat(129), data: 1 }, "e".repeat(129)],
    ]) {
      step(`POST /emit ${show(body)}`);
      const { status, json } = await postEmit(body);
      assert.equal(status, 400, `POST /emit ${show(body)}: HTTP status (body ${show(json)})`);
      assert.equal(typeof json.error, "string", `POST /emit ${show(body)}: error text`);
      assert.ok(
        json.error.includes(mention),
        `POST /emit ${show(body)}: error ${show(json.error)} should mention ${show(mention)}`,
      );
    }
    step("A got none of them");
    await a.inbox.expectNothing(QUIET_MS, "A");
    // 128 bytes is the longest event name.
    const longest = "e".repeat(128);
    await emitVia({ channel: "chats/1", event: longest, data: 1 }, 1);
    await expectEvent(a, `chats/1/${longest}`, [1]);
  },

  // Client events go to handle_in and its reply comes back as the ack.
  async "handle-in"() {
    const a = await connect("A", "alice");
    await subscribe(a, OK, "chats/1");
    await expectAck(a, { status: "ok", response: { x: 1 } }, "chats/1/echo", { x: 1 });
    const list = ["é", null, 2.5];
    await expectAck(a, { status: "ok", response: list }, "chats/1/echo", list);
    await expectAck(a, refused("unknown_event"), "chats/1/whatever", { x: 1 });
    await expectAck(a, refused("not_subscribed"), "chats/2/echo", { x: 1 });
    await expectAck(a, refused("not_subscribed"), "nope/1/echo", { x: 1 });
    await expectAck(a, refused("invalid"), "chats/1/", { x: 1 });
    step("A is still connected");
    assert.equal(a.socket.connected, true, "A: connected");
    await expectAck(a, { status: "ok", response: "still" }, "chats/1/echo", "still");

    // A channel without handle_in, under a wildcard pattern.
    await subscribe(a, OK, "files/public/a/b");
    await expectAck(a, refused("unhandled"), "files/public/a/b/upload", { x: 1 });

    step("operations run in arrival order (no waiting for acks in between)");
    const ordered = await Promise.all([
      emitWithAck(a, "subscribe", "chats/3"),
      emitWithAck(a, "chats/3/echo", "first"),
      emitWithAck(a, "unsubscribe", "chats/3"),
      emitWithAck(a, "chats/3/echo", "second"),
    ]);
    assert.deepStrictEqual(
      ordered,
      [[OK], [{ status: "ok", response: "first" }], [OK], [refused("not_subscribed")]],
      `acks of subscribe, echo, unsubscribe, echo sent back to back: got ${show(ordered)}`,
    );
  },

  // broadcast_from reaches every member but the sender; broadcast reaches all.
  async "broadcast-from"() {
    const a = await connect("A", "alice");
    const b = await connect("B", "bob");
    const c = await connect("C");
    await subscribe(a, OK, "chats/1");
    await subscribe(b, OK, "chats/1");
    await subscribe(c, OK, "chats/2");
    await expectAck(a, OK, "chats/1/shout", { m: 1 });
    await expectEvent(b, "chats/1/shout", [{ m: 1 }]);
    step("A (the sender) and C (another channel) get no shout");
    await Promise.all([
      a.inbox.expectNothing(QUIET_MS, "A (sender)"),
      b.inbox.expectNothing(QUIET_MS, "B (after its shout)"),
      c.inbox.expectNothing(QUIET_MS, "C (chats/2)"),
    ]);

    await expectAck(a, OK, "chats/1/everyone", { m: 2 });
    await expectEvent(a, "chats/1/everyone", [{ m: 2 }]);
    await expectEvent(b, "chats/1/everyone", [{ m: 2 }]);
    step("one copy each, none for C");
    await Promise.all([
      a.inbox.expectNothing(QUIET_MS, "A"),
      b.inbox.expectNothing(QUIET_MS, "B"),
      c.inbox.expectNothing(QUIET_MS, "C (chats/2)"),
    ]);
  },

  // POST /emit with except leaves that socket out.
  async except() {
    const a = await connect("A", "alice");
    const b = await connect("B", "bob");
    await subscribe(a, OK, "chats/1");
    await subscribe(b, OK, "chats/1");
    await emitVia(
      { channel: "chats/1", event: "message", data: { text: "not for A" }, except: a.socket.id },
      1,
    );
    await expectEvent(b, "chats/1/message", [{ text: "not for A" }]);
    step("A gets nothing");
    await Promise.all([
      a.inbox.expectNothing(QUIET_MS, "A (excepted)"),
      b.inbox.expectNothing(QUIET_MS, "B"),
    ]);
    // A member id that is nobody's leaves out nobody.
    await emitVia({ channel: "chats/1", event: "message", data: "all", except: "nobody-0123456789abc" }, 2);
    await expectEvent(a, "chats/1/message", ["all"]);
    await expectEvent(b, "chats/1/message", ["all"]);
    // Text that cannot be a member id is an error, not a silent "leave out nobody".
    step("POST /emit with an except that is no member id");
    const invalid = { channel: "chats/1", event: "message", data: "typo", except: "not-a-socket-id" };
    const { status, json } = await postEmit(invalid);
    assert.equal(status, 400, `POST /emit ${show(invalid)}: HTTP status (body ${show(json)})`);
    assert.match(json.error, /not a member id/, "error text");
    await Promise.all([
      a.inbox.expectNothing(QUIET_MS, "A (invalid except)"),
      b.inbox.expectNothing(QUIET_MS, "B (invalid except)"),
    ]);
  },

  // tidings::Binary arrives as binary, on websocket and on polling.
  async binary() {
    const ws = await connect("websocket subscriber", "alice");
    const polling = await connect("polling subscriber", "bob", { transports: ["polling"] });
    await subscribe(ws, OK, "chats/1");
    await subscribe(polling, OK, "chats/1");
    const expected = Buffer.from("héllo", "utf8");
    await emitVia({ channel: "chats/1", event: "file", data: "héllo", binary: true }, 2);
    for (const client of [ws, polling]) {
      step(`${client.who}: waiting for "chats/1/file"`);
      const args = await client.inbox.next("chats/1/file");
      assert.equal(args.length, 1, `${client.who}: one argument, got ${show(args)}`);
      assert.ok(isBinary(args[0]), `${client.who}: argument should be binary, got ${show(args)}`);
      assert.ok(
        toBuffer(args[0]).equals(expected),
        `${client.who}: bytes ${toBuffer(args[0]).toString("hex")}, ` +
          `expected ${expected.toString("hex")}`,
      );
    }

    // Binary from a client, relayed by handle_in with broadcast_from, stays binary.
    const file = Buffer.from([0, 1, 255, 10, 13]);
    for (const [from, to] of [[ws, polling], [polling, ws]]) {
      await expectAck(from, OK, "chats/1/shout", { name: "f.bin", file });
      step(`${to.who}: waiting for the relayed "chats/1/shout"`);
      const args = await to.inbox.next("chats/1/shout");
      assert.equal(args.length, 1, `${to.who}: one argument, got ${show(args)}`);
      assert.equal(args[0]?.name, "f.bin", `${to.who}: relayed name, got ${show(args)}`);
      assert.ok(isBinary(args[0].file), `${to.who}: relayed file not binary: ${show(args)}`);
      assert.ok(toBuffer(args[0].file).equals(file), `${to.who}: relayed bytes, got ${show(args)}`);
    }
    step("nothing else arrives");
    await Promise.all([
      ws.inbox.expectNothing(QUIET_MS, ws.who),
      polling.inbox.expectNothing(QUIET_MS, polling.who),
    ]);
  },

  // After unsubscribe, emits no longer arrive.
  async unsubscribe() {
    const a = await connect("A", "alice");
    await subscribe(a, OK, "chats/1");
    await emitVia({ channel: "chats/1", event: "message", data: "before" }, 1);
    await expectEvent(a, "chats/1/message", ["before"]);
    await expectAck(a, OK, "unsubscribe", "chats/1");
    await emitVia({ channel: "chats/1", event: "message", data: "after" }, 0);
    step("A gets nothing after unsubscribing");
    await a.inbox.expectNothing(QUIET_MS, "A");
    const stats = await getStats();
    assert.deepStrictEqual(
      [stats.subscriptions, stats.channels],
      [0, 0],
      `no subscription left: ${show(stats)}`,
    );
    step("unsubscribing again, and from a channel never joined");
    await expectAck(a, OK, "unsubscribe", "chats/1");
    await expectAck(a, OK, "unsubscribe", "chats/7");
    await expectAck(a, refused("not_subscribed"), "chats/1/echo", 1);
  },

  // Clean and abrupt disconnects both remove every subscription.
  async cleanup() {
    const empty = { subscriptions: 0, channels: 0, connections: 0 };
    await waitForStats(empty, CLEANUP_MS, "fresh server");
    const clients = [];
    for (let i = 0; i < 20; i++) clients.push(connect(`client ${i}`, "alice"));
    const all = await Promise.all(clients);
    let subscriptions = 0;
    const channels = new Set();
    await Promise.all(
      all.map(async (client, i) => {
        const joins = [`chats/${(i % 5) + 1}`, i % 2 === 0 ? "private/alice" : `files/public/${i}`];
        for (const channel of joins) {
          await subscribe(client, OK, channel);
          subscriptions++;
          channels.add(channel);
        }
      }),
    );
    assert.equal(subscriptions, 40);
    await waitForStats(
      { subscriptions, channels: channels.size, connections: 20 },
      CLEANUP_MS,
      "everyone subscribed",
    );
    await emitVia({ channel: "private/alice", event: "message", data: 1 }, 10);

    step("disconnect half cleanly, terminate the others");
    all.forEach((client, i) => (i < 10 ? leave(client) : kill(client)));
    await waitForStats(empty, CLEANUP_MS, "all gone");
    await emitVia({ channel: "private/alice", event: "message", data: 2 }, 0);

    step("clients that vanish right after asking to subscribe");
    const vanishing = await Promise.all(
      Array.from({ length: 10 }, (_, i) => connect(`vanishing ${i}`, "alice")),
    );
    vanishing.forEach((client, i) => {
      for (let n = 1; n <= 5; n++) client.socket.emit("subscribe", `chats/${n}`, () => {});
      client.socket.emit("subscribe", "private/alice", () => {});
      if (i % 2 === 0) leave(client);
      else setImmediate(() => kill(client));
    });
    await waitForStats(empty, CLEANUP_MS, "vanished");
  },

  // A panicking pass or handle_in fails that call only.
  async panics() {
    const a = await connect("A", "alice");
    await subscribe(a, refused("unauthorized"), "boom/1");
    await subscribe(a, OK, "chats/1");
    await expectAck(a, refused("handler_failed"), "chats/1/panic", {});
    step("A is still connected");
    assert.equal(a.socket.connected, true, "A: connected after the panic");
    const after = { after: "panic" };
    await expectAck(a, { status: "ok", response: after }, "chats/1/echo", after);
    await subscribe(a, refused("unauthorized"), "boom/2");
    await emitVia({ channel: "chats/1", event: "message", data: "alive" }, 1);
    await expectEvent(a, "chats/1/message", ["alive"]);
    const stats = await getStats();
    assert.deepStrictEqual(
      [stats.subscriptions, stats.channels],
      [1, 1],
      `only chats/1 is joined: ${show(stats)}`,
    );
  },

  // Emits while the client upgrades from polling to websocket arrive once each, in order.
  // The client's upgrade probe is held back until 10 emits went over polling, then runs
  // amid the stream of emits.
  async upgrade() {
    const BEFORE = 10;
    let releaseProbe;
    const probeGate = new Promise((resolve) => {
      releaseProbe = resolve;
    });
    let probes = 0;
    const holdProbe = (socket) => {
      const engine = socket.io.engine;
      assert.equal(typeof engine?._probe, "function", "engine.io-client changed: no engine._probe");
      const probe = engine._probe;
      engine._probe = (name) => {
        probes++;
        probeGate.then(() => probe.call(engine, name));
      };
    };
    const a = await connect("A", "alice", { transports: ["polling", "websocket"] }, holdProbe);
    const engine = a.socket.io.engine;
    let upgradedAt = null;
    let sent = 0;
    engine.once("upgrade", () => {
      upgradedAt = sent;
    });
    await subscribe(a, OK, "chats/1");
    step("emitting until 20 emits after the upgrade");
    while ((upgradedAt === null || sent < upgradedAt + 20) && sent < 5000) {
      if (sent === BEFORE) {
        assert.equal(probes, 1, "the upgrade probe should be waiting");
        assert.equal(engine.transport.name, "polling", "transport before the upgrade");
        releaseProbe();
      }
      const { status, json } = await postEmit({ channel: "chats/1", event: "seq", data: sent });
      assert.deepStrictEqual([status, json], [200, { delivered: 1 }], `POST /emit seq ${sent}`);
      sent++;
    }
    assert.notEqual(upgradedAt, null, `no upgrade after ${sent} emits`);
    assert.equal(engine.transport.name, "websocket", "transport after the upgrade");
    step(`receiving ${sent} "chats/1/seq" (upgrade after ${upgradedAt})`);
    const got = [];
    for (let i = 0; i < sent; i++) got.push(...(await a.inbox.next("chats/1/seq")));
    assert.deepStrictEqual(
      got,
      Array.from({ length: sent }, (_, i) => i),
      "emits must arrive once each and in order across the upgrade",
    );
    await a.inbox.expectNothing(QUIET_MS, "A");
  },

  // The channel protocol on the polling transport.
  async polling() {
    const a = await connect("A", "alice", { transports: ["polling"] });
    const engine = a.socket.io.engine;
    assert.equal(engine.transport.name, "polling", "first transport");
    let upgrades = 0;
    engine.on("upgrade", () => upgrades++);
    await subscribe(a, OK, "chats/1");
    await subscribe(a, refused("unauthorized"), "chats/abc");
    await emitVia({ channel: "chats/1", event: "message", data: { text: "over polling" } }, 1);
    await expectEvent(a, "chats/1/message", [{ text: "over polling" }]);
    await expectAck(a, { status: "ok", response: { x: 1 } }, "chats/1/echo", { x: 1 });
    await expectAck(a, OK, "unsubscribe", "chats/1");
    await emitVia({ channel: "chats/1", event: "message", data: "gone" }, 0);
    await a.inbox.expectNothing(QUIET_MS, "A");
    assert.equal(engine.transport.name, "polling", "transport at the end");
    assert.equal(upgrades, 0, "no upgrade expected");
  },
};

// ---------------------------------------------------------------------------
// Runner

run("channels_client", scenarios, { where: URL, timeoutMs: SCENARIO_TIMEOUT_MS });
