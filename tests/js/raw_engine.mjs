// Interop tests: raw Engine.IO v4 (fetch() for polling, `ws` for websocket)
// against the tidings "echo" Socket.IO server at path /socket.io/.
//
// Usage: TIDINGS_URL=http://127.0.0.1:PORT node tests/js/raw_engine.mjs <scenario>
// The server must run with the ping interval / timeout / max payload given by
// TIDINGS_PING_INTERVAL, TIDINGS_PING_TIMEOUT, TIDINGS_MAX_PAYLOAD
// (defaults 300, 200, 1000).
// Exit code 0 = pass; on failure a message goes to stderr and the exit code is 1.
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import WebSocket from "ws";
import { step, sleep, within, openSockets, run } from "./harness.mjs";

const URL = (process.env.TIDINGS_URL ?? "http://127.0.0.1:3000").replace(/\/+$/, "");
const ENGINE_URL = `${URL}/socket.io/`;
const PING_INTERVAL = Number(process.env.TIDINGS_PING_INTERVAL ?? 300);
const PING_TIMEOUT = Number(process.env.TIDINGS_PING_TIMEOUT ?? 200);
const MAX_PAYLOAD = Number(process.env.TIDINGS_MAX_PAYLOAD ?? 1000);
// Tolerance on top of the server's own deadlines.
const SLACK_MS = 500;
const SCENARIO_TIMEOUT_MS = Math.max(10_000, 6 * (PING_INTERVAL + PING_TIMEOUT));
// Engine.IO v4 packet separator in polling payloads.
const SEPARATOR = "\x1e";

// ---------------------------------------------------------------------------
// HTTP long-polling helpers

// Query always has EIO=4 unless overridden; a param set to undefined is left out.
function engineUrl(params, base = ENGINE_URL) {
  const query = Object.entries({ EIO: "4", ...params }).filter(([, v]) => v !== undefined);
  return `${base}?${new URLSearchParams(query)}`;
}

// Plain request; resolves with status, content type and body text.
async function request(method, params, body) {
  const init = { method, body };
  if (body !== undefined) init.headers = { "content-type": "text/plain;charset=UTF-8" };
  const res = await fetch(engineUrl(params), init);
  return { status: res.status, type: res.headers.get("content-type"), text: await res.text() };
}

// Asserts an Engine.IO error answer: HTTP 400 with the JSON {code, message}.
function assertEngineError(res, code, message, what) {
  assert.equal(res.status, 400, `${what}: HTTP status (body ${JSON.stringify(res.text)})`);
  let json;
  try {
    json = JSON.parse(res.text);
  } catch {
    assert.fail(`${what}: body is not JSON: ${JSON.stringify(res.text)}`);
  }
  assert.deepStrictEqual(json, { code, message }, `${what}: error body`);
}

// Parses an open packet "0{...}" and checks its fields against the config.
function assertOpenPacket(text, upgrades, what) {
  assert.equal(typeof text, "string", `${what}: open packet must be text`);
  assert.ok(text.startsWith("0{"), `${what}: expected an open packet "0{...}", got ${JSON.stringify(text)}`);
  const open = JSON.parse(text.slice(1));
  assert.deepStrictEqual(
    Object.keys(open).sort(),
    ["maxPayload", "pingInterval", "pingTimeout", "sid", "upgrades"],
    `${what}: open packet keys`,
  );
  assert.equal(typeof open.sid, "string", `${what}: sid type`);
  assert.ok(open.sid.length > 0, `${what}: empty sid`);
  assert.deepStrictEqual(open.upgrades, upgrades, `${what}: upgrades`);
  assert.equal(open.pingInterval, PING_INTERVAL, `${what}: pingInterval`);
  assert.equal(open.pingTimeout, PING_TIMEOUT, `${what}: pingTimeout`);
  assert.equal(open.maxPayload, MAX_PAYLOAD, `${what}: maxPayload`);
  return open;
}

// A polling session opened by a GET handshake. `nextPacket` reads packets
// from successive GET polls and answers pings with a POST "3" on the way.
class PollingSession {
  static async open() {
    const res = await request("GET", { transport: "polling" });
    assert.equal(res.status, 200, `handshake: HTTP status (body ${JSON.stringify(res.text)})`);
    const open = assertOpenPacket(res.text, ["websocket"], "polling handshake");
    return new PollingSession(open.sid, res);
  }

  constructor(sid, handshake) {
    this.sid = sid;
    this.handshake = handshake;
    this.queue = [];
    this.pings = 0;
  }

  get() {
    return request("GET", { transport: "polling", sid: this.sid });
  }

  post(body) {
    return request("POST", { transport: "polling", sid: this.sid }, body);
  }

  async postOk(body, what) {
    const res = await this.post(body);
    assert.equal(res.status, 200, `${what}: HTTP status (body ${JSON.stringify(res.text)})`);
    assert.equal(res.text, "ok", `${what}: body`);
  }

  async nextPacket(what) {
    while (this.queue.length === 0) {
      const res = await this.get();
      assert.equal(res.status, 200, `${what}: poll HTTP status (body ${JSON.stringify(res.text)})`);
      for (const packet of res.text.split(SEPARATOR)) {
        if (packet === "2") {
          this.pings++;
          await this.postOk("3", "pong");
        } else {
          this.queue.push(packet);
        }
      }
    }
    return this.queue.shift();
  }
}

// ---------------------------------------------------------------------------
// WebSocket helper: queues incoming messages, counts pings ("2") and, when
// `autoPong` is set, answers them with "3". Pings are not queued.

class WsClient {
  constructor(params, { autoPong = true } = {}) {
    this.autoPong = autoPong;
    this.pings = 0;
    this.queue = [];
    this.waiter = null;
    this.closeInfo = null;
    this.openedAt = null;
    this.ws = new WebSocket(engineUrl({ transport: "websocket", ...params }, ENGINE_URL.replace(/^http/, "ws")));
    openSockets.add(this);

    this.opened = new Promise((resolve, reject) => {
      this.ws.once("open", () => {
        this.openedAt = Date.now();
        resolve();
      });
      this.ws.once("close", (code) => reject(new Error(`websocket closed before open (code ${code})`)));
    });
    this.opened.catch(() => {}); // not every caller awaits it
    this.closed = new Promise((resolve) => {
      this.ws.on("close", (code, reason) => {
        this.closeInfo = { code, reason: reason.toString(), at: Date.now() };
        this.waiter?.reject(new Error(`websocket closed (code ${code}) while waiting for ${this.waiter.what}`));
        this.waiter = null;
        resolve(this.closeInfo);
      });
    });
    this.ws.on("error", (err) => {
      this.error = err; // the "close" event follows and is what we check
    });
    this.ws.on("message", (data, isBinary) => {
      const msg = isBinary ? data : data.toString();
      if (msg === "2") {
        this.pings++;
        if (this.autoPong) this.ws.send("3");
        return;
      }
      if (this.waiter) {
        this.waiter.resolve(msg);
        this.waiter = null;
      } else {
        this.queue.push(msg);
      }
    });
  }

  send(text) {
    this.ws.send(text);
  }

  // Next non-ping message.
  next(what) {
    if (this.queue.length > 0) return Promise.resolve(this.queue.shift());
    if (this.closeInfo) {
      return Promise.reject(new Error(`websocket closed (code ${this.closeInfo.code}) before ${what}`));
    }
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject, what };
    });
  }

  get isOpen() {
    return this.ws.readyState === WebSocket.OPEN;
  }

  close() {
    this.ws.terminate();
  }
}

// Socket.IO connect to "/" over a raw websocket; checks "40{sid}" and the
// echo server's "auth" event.
async function socketIoConnect(ws, what) {
  ws.send("40");
  const connected = await ws.next(`${what}: "40{sid}"`);
  assert.match(connected, /^40\{/, `${what}: expected a Socket.IO CONNECT "40{...}"`);
  assert.equal(typeof JSON.parse(connected.slice(2)).sid, "string", `${what}: CONNECT sid`);
  assert.equal(await ws.next(`${what}: "auth"`), '42["auth",{}]', `${what}: "auth" event`);
}

// "message" -> "message-back" over a raw websocket.
async function wsEcho(ws, text, what) {
  ws.send(`42${JSON.stringify(["message", text])}`);
  const reply = await ws.next(`${what}: "message-back"`);
  assert.equal(reply, `42${JSON.stringify(["message-back", text])}`, `${what}: "message-back"`);
}

// Upgrades a polling session to websocket: pending GET, probe, noop, "5".
async function upgrade(session) {
  step("upgrade: pending GET poll");
  const pending = session.get();
  await sleep(20); // let the GET reach the server before the probe

  step("upgrade: open websocket with sid");
  const ws = new WsClient({ sid: session.sid });
  await ws.opened;
  ws.send("2probe");
  step('upgrade: "2probe" -> "3probe"');
  assert.equal(await ws.next('"3probe"'), "3probe", "probe answer");

  // The pending poll must be released with a noop ("6"). Should a ping have
  // been sent before it, answer it and poll again.
  step('upgrade: pending GET poll returns noop "6"');
  let res = await pending;
  for (let polls = 1; ; polls++) {
    assert.equal(res.status, 200, `pending poll: HTTP status (body ${JSON.stringify(res.text)})`);
    const packets = res.text.split(SEPARATOR);
    if (packets.includes("6")) break;
    assert.ok(
      packets.every((p) => p === "2") && polls < 5,
      `pending poll: expected noop "6", got ${JSON.stringify(res.text)}`,
    );
    await session.postOk("3", "pong");
    res = await session.get();
  }

  step('upgrade: send "5"');
  ws.send("5");
  return ws;
}

// socket.io-client (websocket only) that has received its "auth" event.
async function goodClient(what) {
  const socket = io(URL, { forceNew: true, reconnection: false, transports: ["websocket"] });
  openSockets.add(socket);
  const auth = new Promise((resolve, reject) => {
    socket.once("auth", resolve);
    socket.once("connect_error", (err) => reject(new Error(`${what}: connect_error ${err.message}`)));
  });
  assert.deepStrictEqual(await auth, {}, `${what}: "auth" event`);
  return socket;
}

async function goodClientEcho(socket, text, what) {
  assert.equal(socket.connected, true, `${what}: should be connected`);
  const back = new Promise((resolve) => socket.once("message-back", (...args) => resolve(args)));
  socket.emit("message", text);
  assert.deepStrictEqual(await back, [text], `${what}: "message-back"`);
}

// ---------------------------------------------------------------------------
// Scenarios

const scenarios = {
  // Open packet over polling and over a direct websocket.
  async handshake() {
    step("polling handshake");
    const a = await PollingSession.open();
    assert.match(a.handshake.type ?? "", /^text\/plain/, "handshake content-type");
    const b = await PollingSession.open();
    assert.notEqual(a.sid, b.sid, "two handshakes must get different sids");

    step('close packet "1" over polling frees the session');
    await a.postOk("1", 'POST "1"');
    assertEngineError(await a.get(), 1, "Session ID unknown", "GET after close");
    await b.postOk("1", 'POST "1"');

    step("direct websocket handshake");
    const ws = new WsClient({});
    await ws.opened;
    assertOpenPacket(await ws.next("open packet"), [], "websocket handshake");
  },

  // HTTP error answers and protocol violations.
  async errors() {
    step("unknown transport");
    assertEngineError(await request("GET", { transport: "foo" }), 0, "Transport unknown", "transport=foo");

    step("unsupported protocol version");
    const v5 = [5, "Unsupported protocol version"];
    assertEngineError(await request("GET", { EIO: "3", transport: "polling" }), ...v5, "EIO=3");
    assertEngineError(await request("GET", { EIO: undefined, transport: "polling" }), ...v5, "no EIO");

    step("unknown sid");
    const v1 = [1, "Session ID unknown"];
    assertEngineError(await request("GET", { transport: "polling", sid: "no-such-sid" }), ...v1, "GET unknown sid");
    assertEngineError(
      await request("POST", { transport: "polling", sid: "no-such-sid" }, "3"),
      ...v1,
      "POST unknown sid",
    );

    step("POST handshake");
    assertEngineError(await request("POST", { transport: "polling" }, "3"), 2, "Bad handshake method", "POST handshake");

    // Official server: the overlapping GET gets a bare 400 (empty body), the
    // pending GET gets a close packet "1" and the session is gone.
    step("duplicate GET poll");
    const dup = await PollingSession.open();
    const pending = dup.get();
    await sleep(50);
    const second = await dup.get();
    assert.equal(second.status, 400, `overlapping GET: HTTP status (body ${JSON.stringify(second.text)})`);
    const first = await pending;
    assert.equal(first.status, 200, "pending GET: HTTP status");
    assert.equal(first.text, "1", "pending GET: expected a close packet");
    assertEngineError(await dup.get(), 1, "Session ID unknown", "GET after overlap");

    step("polling after upgrade");
    const session = await PollingSession.open();
    const ws = await upgrade(session);
    await socketIoConnect(ws, "upgraded websocket");
    assertEngineError(await session.get(), 3, "Bad request", "GET after upgrade");

    // Official server: the second websocket handshake succeeds (101), then
    // the server closes it at once without sending anything.
    step("second websocket on an upgraded sid");
    const intruder = new WsClient({ sid: session.sid });
    const closed = await within(2000, intruder.closed, "second websocket was not closed by the server");
    assert.deepStrictEqual(intruder.queue, [], `second websocket got messages (close code ${closed.code})`);

    step("first websocket still works");
    assert.ok(ws.isOpen, "first websocket should still be open");
    await wsEcho(ws, "still here", "first websocket");
  },

  // Ping/pong over polling and websocket.
  async heartbeat() {
    step("polling: first ping");
    const session = await PollingSession.open();
    const t0 = Date.now();
    const ping = await session.get();
    const pingAfter = Date.now() - t0;
    assert.equal(ping.status, 200, "first poll: HTTP status");
    assert.equal(ping.text, "2", "first poll: expected a ping");
    assert.ok(pingAfter >= PING_INTERVAL * 0.8, `first ping came too early: ${pingAfter} ms after the handshake`);
    assert.ok(pingAfter <= PING_INTERVAL + SLACK_MS, `first ping came too late: ${pingAfter} ms`);

    step("polling: pong");
    await session.postOk("3", "pong");
    const tPong = Date.now();

    // Keep polling without answering pings until the session is freed.
    step("polling: session freed after an unanswered ping");
    const freeBy = tPong + PING_INTERVAL + PING_TIMEOUT + SLACK_MS;
    const stillAlive = `session not freed within ${freeBy - tPong} ms after the last pong`;
    let pings = 0;
    for (;;) {
      const res = await within(Math.max(freeBy - Date.now(), 0), session.get(), stillAlive);
      const elapsed = Date.now() - tPong;
      if (res.status === 400) {
        assertEngineError(res, 1, "Session ID unknown", "GET after ping timeout");
        assert.ok(pings >= 1, "session freed without a ping after the last pong");
        assert.ok(elapsed >= PING_INTERVAL * 0.8, `session freed too early: ${elapsed} ms after the pong`);
        break;
      }
      assert.equal(res.status, 200, `poll: HTTP status (body ${JSON.stringify(res.text)})`);
      const packets = res.text.split(SEPARATOR);
      assert.ok(
        packets.every((p) => p === "2" || p === "1"),
        `poll: expected only pings/close, got ${JSON.stringify(res.text)}`,
      );
      pings += packets.filter((p) => p === "2").length;
      assert.ok(Date.now() <= freeBy, stillAlive);
    }

    step("websocket: silent client is closed, answering client stays");
    const silent = new WsClient({}, { autoPong: false });
    const answering = new WsClient({}, { autoPong: true });
    await Promise.all([silent.opened, answering.opened]);
    assertOpenPacket(await silent.next("open packet"), [], "silent websocket");
    assertOpenPacket(await answering.next("open packet"), [], "answering websocket");

    const deadline = PING_INTERVAL + PING_TIMEOUT + SLACK_MS;
    const closed = await within(
      silent.openedAt + deadline - Date.now(),
      silent.closed,
      `silent websocket still open ${deadline} ms after it opened`,
    );
    const lifetime = closed.at - silent.openedAt;
    assert.ok(silent.pings >= 1, "silent websocket was closed without being pinged");
    assert.ok(lifetime >= PING_INTERVAL * 0.8, `silent websocket closed too early (${lifetime} ms)`);

    await sleep(answering.openedAt + 3 * PING_INTERVAL + PING_TIMEOUT - Date.now());
    assert.ok(answering.isOpen, `answering websocket was closed (${JSON.stringify(answering.closeInfo)})`);
    assert.ok(answering.pings >= 2, `answering websocket got ${answering.pings} pings in 3 intervals`);
  },

  // Polling -> websocket upgrade, then the session lives on the websocket.
  async upgrade() {
    step("polling handshake");
    const session = await PollingSession.open();
    const ws = await upgrade(session);

    step("Socket.IO connect over the upgraded websocket");
    await socketIoConnect(ws, "upgraded websocket");
    await wsEcho(ws, "over ws", "upgraded websocket");

    step("polling GET after upgrade");
    assertEngineError(await session.get(), 3, "Bad request", "GET after upgrade");

    step("websocket still works after the rejected poll");
    await wsEcho(ws, "still over ws", "upgraded websocket");
  },

  // maxPayload: a body / frame of exactly maxPayload bytes is accepted, one
  // more byte is refused.
  async "max-payload"() {
    // '42["message","yyy"]' padded to exactly `size` bytes.
    const sized = (size) => {
      const pad = size - '42["message",""]'.length;
      return { packet: `42["message","${"y".repeat(pad)}"]`, back: `42["message-back","${"y".repeat(pad)}"]` };
    };
    const fits = sized(MAX_PAYLOAD);
    const tooBig = sized(MAX_PAYLOAD + 1);

    step("polling: Socket.IO connect");
    const session = await PollingSession.open();
    await session.postOk("40", 'POST "40"');
    assert.match(await session.nextPacket('"40{sid}"'), /^40\{/, "polling CONNECT");
    assert.equal(await session.nextPacket('"auth"'), '42["auth",{}]', 'polling "auth"');

    step("polling: POST of exactly maxPayload bytes");
    await session.postOk(fits.packet, "POST maxPayload bytes");
    assert.equal(await session.nextPacket('"message-back"'), fits.back, 'polling "message-back"');

    step("polling: POST of maxPayload + 1 bytes");
    const big = await session.post(tooBig.packet);
    assert.equal(big.status, 413, `oversized POST: HTTP status (body ${JSON.stringify(big.text)})`);

    step("websocket: Socket.IO connect");
    const ws = new WsClient({});
    await ws.opened;
    assertOpenPacket(await ws.next("open packet"), [], "websocket handshake");
    await socketIoConnect(ws, "websocket");

    step("websocket: frame of exactly maxPayload bytes");
    ws.send(fits.packet);
    assert.equal(await ws.next('"message-back"'), fits.back, 'websocket "message-back"');

    step("websocket: frame of maxPayload + 1 bytes");
    ws.send(tooBig.packet);
    const closed = await within(2000, ws.closed, "websocket still open 2 s after an oversized frame");
    // Official server: close code 1009; 1006 = connection dropped without close frame.
    assert.ok([1009, 1006].includes(closed.code), `oversized frame: close code ${closed.code}, expected 1009`);
  },

  // Broken packets close the offending connection only.
  async "bad-packets"() {
    step("good client (before)");
    const before = await goodClient("client connected before");
    await goodClientEcho(before, "before", "client connected before");

    step("raw websocket: broken Socket.IO packet");
    const ws = new WsClient({});
    await ws.opened;
    assertOpenPacket(await ws.next("open packet"), [], "websocket handshake");
    await socketIoConnect(ws, "raw websocket");
    ws.send("4" + "2[broken");
    await within(2000, ws.closed, 'websocket still open 2 s after "42[broken"');

    step("raw websocket: broken Engine.IO packet");
    const ws2 = new WsClient({});
    await ws2.opened;
    assertOpenPacket(await ws2.next("open packet"), [], "websocket handshake");
    ws2.send("x-not-a-packet");
    await within(2000, ws2.closed, 'websocket still open 2 s after "x-not-a-packet"');

    step("good client (before) still works");
    await goodClientEcho(before, "after garbage", "client connected before");

    step("good client (after)");
    const after = await goodClient("client connected after");
    await goodClientEcho(after, "after", "client connected after");
  },
};

// ---------------------------------------------------------------------------
// Runner

run("raw_engine", scenarios, { where: URL, timeoutMs: SCENARIO_TIMEOUT_MS });
