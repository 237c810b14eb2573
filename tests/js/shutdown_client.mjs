// Graceful shutdown, seen from the clients: a WebSocket client and a polling client subscribe
// to chats/1, N messages are posted, then the test harness stops the server (SIGTERM) when this
// script prints "SIGNAL". Both clients must receive every message, in order, before they are
// disconnected by the server's close ("transport close"), not by a timeout.
//
// Usage: TIDINGS_URL=http://127.0.0.1:PORT TIDINGS_MESSAGES=200 node tests/js/shutdown_client.mjs queued
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { step, run } from "./harness.mjs";

const URL = (process.env.TIDINGS_URL ?? "http://127.0.0.1:8080").replace(/\/+$/, "");
const MESSAGES = Number(process.env.TIDINGS_MESSAGES ?? 200);
const TIMEOUT_MS = 20_000;

function client(transports) {
  const socket = io(URL, { forceNew: true, reconnection: false, transports });
  const state = { socket, received: [], disconnect: null };
  socket.on("chats/1/message", (data) => state.received.push(data.message));
  state.disconnected = new Promise((resolve) =>
    socket.on("disconnect", (reason) => {
      state.disconnect = { reason, at: Date.now() };
      resolve();
    }),
  );
  return state;
}

async function subscribe(state, what) {
  const { socket } = state;
  if (!socket.connected) await new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", (err) => reject(new Error(`${what}: connect_error ${err.message}`)));
  });
  const reply = await socket.timeout(5000).emitWithAck("subscribe", "chats/1");
  assert.deepStrictEqual(reply, { status: "ok" }, `${what}: subscribe`);
}

const scenarios = {
  async queued() {
    step("connect and subscribe");
    const ws = client(["websocket"]);
    const polling = client(["polling"]);
    await subscribe(ws, "websocket client");
    await subscribe(polling, "polling client");

    step(`post ${MESSAGES} messages`);
    const sent = [];
    for (let i = 0; i < MESSAGES; i++) {
      const message = `m${i}`;
      const res = await fetch(`${URL}/chat`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ message }),
      });
      assert.equal(res.status, 204, `POST /chat ${i}`);
      sent.push(message);
    }

    step("server stopping");
    const signalledAt = Date.now();
    console.log("SIGNAL");
    await Promise.all([ws.disconnected, polling.disconnected]);

    for (const [what, state] of [["websocket client", ws], ["polling client", polling]]) {
      assert.deepStrictEqual(state.received, sent, `${what}: every queued message, in order, before the close`);
      assert.equal(state.disconnect.reason, "transport close", `${what}: disconnect reason`);
      const after = state.disconnect.at - signalledAt;
      assert.ok(after < 5000, `${what}: disconnected ${after} ms after the signal`);
    }
  },
};

run("shutdown_client", scenarios, { where: URL, timeoutMs: TIMEOUT_MS });
