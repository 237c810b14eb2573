// Interop tests: the official socket.io-client against the tidings "echo" server.
//
// Usage: TIDINGS_URL=http://127.0.0.1:PORT node tests/js/echo_client.mjs <scenario>
// Exit code 0 = pass; on failure a message goes to stderr and the exit code is 1.
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { step, sleep, within, abort, aborted, openSockets, run, Inbox as BaseInbox } from "./harness.mjs";

const URL = (process.env.TIDINGS_URL ?? "http://127.0.0.1:3000").replace(/\/+$/, "");
const SCENARIO_TIMEOUT_MS = 10_000;
// How long we wait to be sure that something does NOT arrive.
const QUIET_MS = 500;

// JSON args whose key order and unicode must survive the round trip byte for byte.
const JSON_ARGS = ["hello", { b: 1, a: [1, 2, { z: null, y: "é" }] }, 3.5, true, null];

// Normalise binary values (Buffer, ArrayBuffer, typed arrays) to Buffer,
// recursively, so that deepStrictEqual compares bytes and not containers.
function isBinary(v) {
  return Buffer.isBuffer(v) || v instanceof ArrayBuffer || ArrayBuffer.isView(v);
}
function normalise(v) {
  if (isBinary(v)) {
    if (Buffer.isBuffer(v)) return v;
    if (v instanceof ArrayBuffer) return Buffer.from(v);
    return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  }
  if (Array.isArray(v)) return v.map(normalise);
  if (v !== null && typeof v === "object") {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalise(x)]));
  }
  return v;
}

// JSON text of a value with every binary replaced by a hex marker: checks key
// order and JSON encoding byte for byte, binary parts included.
function jsonShape(v) {
  const mark = (x) => {
    if (isBinary(x)) return `<binary ${normalise(x).toString("hex")}>`;
    if (Array.isArray(x)) return x.map(mark);
    if (x !== null && typeof x === "object") {
      return Object.fromEntries(Object.entries(x).map(([k, y]) => [k, mark(y)]));
    }
    return x;
  };
  return JSON.stringify(mark(v));
}

// Assert that the received args equal the sent ones: same JSON text (key
// order included) and, for binary parts, the same bytes delivered as binary.
function assertSameArgs(got, sent, what) {
  assert.equal(jsonShape(got), jsonShape(sent), `${what}: args differ (JSON text)`);
  assert.deepStrictEqual(normalise(got), normalise(sent), `${what}: args differ`);
}

// Records every event a socket receives (including reserved ones, prefixed
// with "$"), so that nothing is lost between "emit" and "start waiting".
class Inbox extends BaseInbox {

  // Fails if `event` arrived or arrives within `ms`.
  async expectNothing(event, ms, who) {
    await sleep(ms);
    const hit = this.items.find((it) => it.event === event);
    assert.equal(
      hit,
      undefined,
      `${who}: expected no "${event}" within ${ms} ms, got args ${hit && jsonShape(hit.args)}`,
    );
  }
}

// Opens a socket (no reconnection) and its inbox. Unless `expectError` is set,
// a connect_error aborts the scenario at once with the server's message.
function connect(nsp = "/", opts = {}, { expectError = false } = {}) {
  const socket = io(URL + nsp, { reconnection: false, ...opts });
  openSockets.add(socket);
  const inbox = new Inbox(socket);
  if (!expectError) {
    socket.on("connect_error", (err) =>
      abort(new Error(`unexpected connect_error on "${nsp}": ${err.message}`)),
    );
  }
  return { socket, inbox };
}

// Waits for a connect_error (failing at once on a successful connect) and
// checks its message.
async function expectConnectError(socket, inbox, message, who) {
  const [err] = await Promise.race([
    inbox.next("$connect_error"),
    inbox.next("$connect").then(() => assert.fail(`${who}: connected, expected connect_error "${message}"`)),
  ]);
  assert.equal(err.message, message, `${who}: connect_error message`);
  assert.equal(socket.connected, false, `${who}: must not be connected`);
}

// Emits an event with an ack callback; resolves with all the ack args.
function emitWithAckArgs(socket, event, ...args) {
  return new Promise((resolve) => socket.emit(event, ...args, (...reply) => resolve(reply)));
}

// Waits for the "auth" event emitted by the server on connect.
async function expectAuth(inbox, expected, who) {
  step(`${who}: "auth" event`);
  const args = await inbox.next("auth");
  assertSameArgs(args, [expected], `${who} "auth"`);
}

// message -> message-back and message-with-ack -> ack, both with `args`.
async function roundTrips(socket, inbox, args, ackArgs = args) {
  step('"message" -> "message-back"');
  socket.emit("message", ...args);
  assertSameArgs(await inbox.next("message-back"), args, '"message-back"');

  step('"message-with-ack" -> ack');
  const reply = await emitWithAckArgs(socket, "message-with-ack", ...ackArgs);
  assertSameArgs(reply, ackArgs, '"message-with-ack" ack');
}

// ---------------------------------------------------------------------------
// Scenarios

const scenarios = {
  // Default options: starts on polling, then upgrades to websocket.
  async default() {
    const { socket, inbox } = connect("/");
    const engine = socket.io.engine;
    assert.equal(engine.transport.name, "polling", "first transport");
    const upgraded = new Promise((resolve) => engine.once("upgrade", resolve));

    await expectAuth(inbox, {}, "/");
    step('engine "upgrade" event');
    const transport = await upgraded;
    assert.equal(transport.name, "websocket", "upgrade event transport");
    assert.equal(engine.transport.name, "websocket", "transport after upgrade");

    await roundTrips(socket, inbox, JSON_ARGS);
  },

  // Websocket only: no upgrade, websocket from the start.
  async websocket() {
    const { socket, inbox } = connect("/", { transports: ["websocket"] });
    const engine = socket.io.engine;
    let upgrades = 0;
    engine.on("upgrade", () => upgrades++);
    assert.equal(engine.transport.name, "websocket", "first transport");

    await expectAuth(inbox, {}, "/");
    await roundTrips(socket, inbox, JSON_ARGS);
    assert.equal(engine.transport.name, "websocket", "transport at the end");
    assert.equal(upgrades, 0, "no upgrade expected");
  },

  // Polling only: stays on polling.
  async polling() {
    const { socket, inbox } = connect("/", { transports: ["polling"] });
    const engine = socket.io.engine;
    let upgrades = 0;
    engine.on("upgrade", () => upgrades++);
    assert.equal(engine.transport.name, "polling", "first transport");

    await expectAuth(inbox, {}, "/");
    await roundTrips(socket, inbox, JSON_ARGS);
    assert.equal(engine.transport.name, "polling", "transport at the end");
    assert.equal(upgrades, 0, "no upgrade expected");
  },

  // The handshake auth payload comes back in the "auth" event.
  async auth() {
    const auth = { token: "abc", nested: { k: [1, 2] } };
    const { inbox } = connect("/", { auth });
    await expectAuth(inbox, auth, "/");
  },

  "binary-ws": () => binaryScenario("websocket"),
  "binary-polling": () => binaryScenario("polling"),

  // "/" and "/custom" multiplexed on one Manager; unknown namespace refused.
  async namespaces() {
    const root = connect("/");
    const custom = connect("/custom");
    assert.equal(root.socket.io, custom.socket.io, "both namespaces should share one Manager");

    await expectAuth(root.inbox, {}, "/");
    await expectAuth(custom.inbox, {}, "/custom");

    step('"message" on "/" and "/custom"');
    custom.socket.emit("message", "to-custom");
    root.socket.emit("message", "to-root");
    assertSameArgs(await root.inbox.next("message-back"), ["to-root"], '"/" message-back');
    await custom.inbox.expectNothing("message-back", QUIET_MS, "/custom");

    step('connect to "/nope"');
    const nope = connect("/nope", {}, { expectError: true });
    assert.equal(nope.socket.io, root.socket.io, '"/nope" should share the Manager');
    await expectConnectError(nope.socket, nope.inbox, "Invalid namespace", '"/nope"');

    step('"/" still works after the refused namespace');
    assert.equal(root.socket.connected, true, '"/" should still be connected');
    root.socket.emit("message", "again");
    assertSameArgs(await root.inbox.next("message-back"), ["again"], '"/" message-back');
  },

  // "/admin" needs auth {token: "let-me-in"}.
  async refused() {
    step('"/admin" without auth');
    const denied = connect("/admin", { forceNew: true }, { expectError: true });
    await expectConnectError(denied.socket, denied.inbox, "unauthorized", '"/admin" without auth');

    step('"/admin" with the right token');
    const auth = { token: "let-me-in" };
    const admitted = connect("/admin", { forceNew: true, auth });
    await admitted.inbox.next("$connect");
    await expectAuth(admitted.inbox, auth, "/admin");
  },

  // Server -> client emit with ack, answered and not answered.
  async "server-ack"() {
    const { socket, inbox } = connect("/");
    await expectAuth(inbox, {}, "/");

    step('"ask" -> "question" (answered)');
    socket.emit("ask", { q: 1 });
    const question = await inbox.next("question");
    const ack = question.pop();
    assert.equal(typeof ack, "function", '"question" should request an ack');
    assertSameArgs(question, [{ q: 1 }], '"question" args');
    ack("yes", 42);
    step('"answer"');
    assertSameArgs(await inbox.next("answer"), ["yes", 42], '"answer" args');

    step('"ask" -> "question" (ignored)');
    const asked = Date.now();
    socket.emit("ask", { q: 2 });
    const second = await inbox.next("question");
    assert.equal(typeof second.pop(), "function", '"question" should request an ack');
    assertSameArgs(second, [{ q: 2 }], 'second "question" args');
    step('"answer-timeout"');
    const timeoutArgs = await Promise.race([
      inbox.next("answer-timeout"),
      sleep(3000).then(() => assert.fail('no "answer-timeout" within 3 s')),
    ]);
    const elapsed = Date.now() - asked;
    assert.deepStrictEqual(timeoutArgs, [], '"answer-timeout" should have no args');
    assert.ok(elapsed >= 900, `"answer-timeout" came after ${elapsed} ms, expected ~1000 ms`);
    assert.equal(inbox.items.find((it) => it.event === "answer"), undefined, 'unexpected "answer"');
  },

  // "bye" makes the server disconnect us.
  async disconnect() {
    const { socket, inbox } = connect("/");
    await expectAuth(inbox, {}, "/");
    step('"bye" -> "disconnect"');
    socket.emit("bye");
    const [reason] = await inbox.next("$disconnect");
    assert.equal(reason, "io server disconnect", "disconnect reason");
    assert.equal(socket.connected, false, "socket should be disconnected");
  },

  // Rooms: A and B join "r1", C does not; A broadcasts to "r1".
  async rooms() {
    const [a, b, c] = ["A", "B", "C"].map(() => connect("/", { forceNew: true }));
    await expectAuth(a.inbox, {}, "A");
    await expectAuth(b.inbox, {}, "B");
    await expectAuth(c.inbox, {}, "C");

    step('A and B "join" "r1"');
    const acks = await Promise.all([
      emitWithAckArgs(a.socket, "join", "r1"),
      emitWithAckArgs(b.socket, "join", "r1"),
    ]);
    assert.deepStrictEqual(acks, [["ok"], ["ok"]], '"join" acks');

    step('A "to-room" "r1"');
    const payload = ["hi", { n: 1 }];
    a.socket.emit("to-room", "r1", ...payload);
    step('"room-message" at A');
    assertSameArgs(await a.inbox.next("room-message"), payload, 'A "room-message"');
    step('"room-message" at B');
    assertSameArgs(await b.inbox.next("room-message"), payload, 'B "room-message"');
    step("C gets nothing");
    await c.inbox.expectNothing("room-message", QUIET_MS, "C");
  },
};

// Binary args (top level and nested) over a single transport.
async function binaryScenario(transport) {
  const { socket, inbox } = connect("/", { transports: [transport] });
  await expectAuth(inbox, {}, "/");
  const args = [Buffer.from([1, 2, 3]), { name: "x", file: Buffer.from([0, 255, 10]) }, "text"];
  const ackArgs = [Buffer.from([9, 8, 7, 0]), "with-binary"];
  await roundTrips(socket, inbox, args, ackArgs);
  assert.equal(socket.io.engine.transport.name, transport, "transport at the end");
}

// ---------------------------------------------------------------------------
// Runner

run("echo_client", scenarios, { where: URL, timeoutMs: SCENARIO_TIMEOUT_MS });
