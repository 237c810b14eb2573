// Interop tests: the official engine.io-client against the tidings bare
// Engine.IO echo server at path /engine.io/ (echoes every message unchanged).
//
// Usage: TIDINGS_URL=http://127.0.0.1:PORT node tests/js/engine_echo.mjs <scenario>
// Exit code 0 = pass; on failure a message goes to stderr and the exit code is 1.
import assert from "node:assert/strict";
import { Socket } from "engine.io-client";
import { step, abort, aborted, openSockets, run } from "./harness.mjs";

const URL = (process.env.TIDINGS_URL ?? "http://127.0.0.1:3000").replace(/\/+$/, "");
const SCENARIO_TIMEOUT_MS = 10_000;

const TEXT = "hello é";
const BINARY = new Uint8Array([1, 2, 3, 255]);

let shuttingDown = false; // set once the scenario is over: closes are then expected

function isBinary(v) {
  return Buffer.isBuffer(v) || v instanceof ArrayBuffer || ArrayBuffer.isView(v);
}
function toBuffer(v) {
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof ArrayBuffer) return Buffer.from(v);
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}
const show = (v) => (isBinary(v) ? `<binary ${toBuffer(v).toString("hex")}>` : JSON.stringify(v));

// Opens an engine.io-client socket and queues the messages it receives.
// An "error" or an unexpected "close" aborts the scenario.
function connect(transports) {
  const socket = new Socket(URL, { path: "/engine.io/", ...(transports && { transports }) });
  openSockets.add(socket);
  const inbox = { items: [], waiter: null };
  socket.on("message", (data) => {
    if (inbox.waiter) {
      inbox.waiter(data);
      inbox.waiter = null;
    } else {
      inbox.items.push(data);
    }
  });
  socket.on("error", (err) => abort(new Error(`engine.io error: ${err.message ?? err}`)));
  socket.on("close", (reason, desc) => {
    if (!shuttingDown) abort(new Error(`unexpected close: ${reason} ${desc?.message ?? ""}`));
  });
  const next = () =>
    inbox.items.length > 0
      ? Promise.resolve(inbox.items.shift())
      : new Promise((resolve) => {
          inbox.waiter = resolve;
        });
  const opened = new Promise((resolve) => socket.once("open", resolve));
  return { socket, next, opened };
}

// Sends the text and the binary message; both must come back unchanged and
// in order, text as a string and binary as binary.
async function echoBoth({ socket, next }, where) {
  step(`${where}: text echo`);
  socket.send(TEXT);
  socket.send(BINARY);
  const text = await next();
  assert.equal(typeof text, "string", `${where}: text came back as ${show(text)}`);
  assert.equal(text, TEXT, `${where}: text echo`);

  step(`${where}: binary echo`);
  const bin = await next();
  assert.ok(isBinary(bin), `${where}: binary came back as non-binary ${show(bin)}`);
  assert.deepStrictEqual(toBuffer(bin), Buffer.from(BINARY), `${where}: binary echo`);
}

// ---------------------------------------------------------------------------
// Scenarios

const scenarios = {
  async polling() {
    const client = connect(["polling"]);
    step("open");
    await client.opened;
    assert.equal(client.socket.transport.name, "polling", "transport");
    await echoBoth(client, "polling");
    assert.equal(client.socket.transport.name, "polling", "transport at the end");
  },

  async websocket() {
    const client = connect(["websocket"]);
    step("open");
    await client.opened;
    assert.equal(client.socket.transport.name, "websocket", "transport");
    await echoBoth(client, "websocket");
  },

  // Default transports: echo over polling, then upgrade, then echo over websocket.
  async default() {
    const client = connect();
    const upgraded = new Promise((resolve) => client.socket.once("upgrade", resolve));
    step("open");
    await client.opened;
    assert.equal(client.socket.transport.name, "polling", "first transport");
    await echoBoth(client, "before upgrade");

    step('"upgrade" event');
    const transport = await upgraded;
    assert.equal(transport.name, "websocket", "upgrade event transport");
    assert.equal(client.socket.transport.name, "websocket", "transport after upgrade");
    await echoBoth(client, "after upgrade");
  },
};

// ---------------------------------------------------------------------------
// Runner

run("engine_echo", scenarios, { where: URL, timeoutMs: SCENARIO_TIMEOUT_MS });
