// Every case of the socket.io maintainers' protocol test suites (the `test-suite/` folders of
// socketio/engine.io-protocol and socketio/socket.io-protocol), written anew for our servers:
// raw fetch() and `ws` against the engine_echo example (bare Engine.IO at /engine.io/) and the
// echo example (Socket.IO at /socket.io/), both run with pingInterval 300 ms, pingTimeout
// 200 ms and maxPayload 1,000,000 as the suites expect, and echo with a 1 s connect timeout.
//
// Usage: TIDINGS_URL=http://127.0.0.1:PORT node tests/js/protocol_suites.mjs <scenario>
//   engine.io  the Engine.IO suite at /engine.io/ (engine_echo: messages are echoed)
//   engine.io-under-socket.io
//              the Engine.IO part of the Socket.IO suite, at /socket.io/ (echo)
//   socket.io  the Socket.IO part of the Socket.IO suite (echo)
// TIDINGS_ONLY=<text> runs only the cases whose name contains it.
// Exit code 0 = pass; on failure a message goes to stderr and the exit code is 1.
import assert from "node:assert/strict";
import WebSocket from "ws";
import { step, sleep, within, openSockets, run } from "./harness.mjs";

const URL = (process.env.TIDINGS_URL ?? "http://127.0.0.1:3000").replace(/\/+$/, "");
const WS_URL = URL.replace(/^http/, "ws");
const PING_INTERVAL = 300;
const PING_TIMEOUT = 200;
const MAX_PAYLOAD = 1_000_000;
// How long a closing or an answer may take before the case fails (the suites run under
// mocha's 2 s default).
const WITHIN_MS = 2_000;

// ---------------------------------------------------------------------------
// Helpers

// A raw WebSocket that queues what it receives (text as strings, binary as Uint8Array).
class Ws {
  constructor(url) {
    this.queue = [];
    this.waiters = [];
    this.ws = new WebSocket(url, { perMessageDeflate: false });
    this.ws.binaryType = "nodebuffer";
    openSockets.add(this);
    this.opened = new Promise((resolve, reject) => {
      this.ws.once("open", resolve);
      this.ws.once("close", () => reject(new Error("closed before open")));
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => {
      this.ws.once("close", (code) => {
        for (const w of this.waiters.splice(0)) w.reject(new Error(`closed (code ${code}) while waiting for a message`));
        resolve(code);
      });
    });
    this.ws.on("error", () => {}); // a refused handshake; "close" follows
    this.ws.on("message", (data, isBinary) => {
      const message = isBinary ? new Uint8Array(data) : data.toString();
      const waiter = this.waiters.shift();
      if (waiter) waiter.resolve(message);
      else this.queue.push(message);
    });
  }

  // The next message, pings included.
  next(what) {
    if (this.queue.length > 0) return Promise.resolve(this.queue.shift());
    const message = new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
    return within(WITHIN_MS, message, `no ${what} within ${WITHIN_MS} ms`);
  }

  // The next `count` messages that are not pings.
  async packets(count, what) {
    const out = [];
    while (out.length < count) {
      const message = await this.next(what);
      if (message !== "2") out.push(message);
    }
    return out;
  }

  send(data) {
    this.ws.send(data);
  }

  // Resolves with the close code once the server has closed the connection.
  waitClosed(what) {
    return within(WITHIN_MS, this.closed, `${what}: still open after ${WITHIN_MS} ms`);
  }

  close() {
    this.ws.terminate();
  }
}

function expectOpenPacket(text, upgrades, what) {
  assert.equal(typeof text, "string", `${what}: open packet must be text`);
  assert.ok(text.startsWith("0"), `${what}: expected an open packet, got ${JSON.stringify(text)}`);
  const value = JSON.parse(text.slice(1));
  assert.deepStrictEqual(
    Object.keys(value).sort(),
    ["maxPayload", "pingInterval", "pingTimeout", "sid", "upgrades"],
    `${what}: open packet keys`,
  );
  assert.equal(typeof value.sid, "string", `${what}: sid`);
  assert.deepStrictEqual(value.upgrades, upgrades, `${what}: upgrades`);
  assert.equal(value.pingInterval, PING_INTERVAL, `${what}: pingInterval`);
  assert.equal(value.pingTimeout, PING_TIMEOUT, `${what}: pingTimeout`);
  assert.equal(value.maxPayload, MAX_PAYLOAD, `${what}: maxPayload`);
  return value;
}

const bytes = (...values) => Uint8Array.from(values);

// ---------------------------------------------------------------------------
// The Engine.IO suite, at `path`; `echo` when the server echoes messages (engine_echo).

function engineSuite(path, echo) {
  const http = (query = "") => `${URL}${path}?${query}`;
  const polling = (sid) => http(`EIO=4&transport=polling&sid=${sid}`);
  const websocket = (query) => `${WS_URL}${path}?${query}`;

  async function openPolling() {
    const res = await fetch(http("EIO=4&transport=polling"));
    assert.equal(res.status, 200, "handshake: HTTP status");
    return JSON.parse((await res.text()).slice(1)).sid;
  }

  async function expectRefusedWebSocket(query, what) {
    const ws = new Ws(websocket(query));
    await assert.rejects(within(WITHIN_MS, ws.opened, `${what}: neither opened nor refused`), /closed before open/, what);
  }

  // A polling session upgraded to WebSocket: probe, then "5".
  async function upgraded() {
    const sid = await openPolling();
    const ws = new Ws(websocket(`EIO=4&transport=websocket&sid=${sid}`));
    await within(WITHIN_MS, ws.opened, "upgrade websocket not open");
    ws.send("2probe");
    ws.send("5");
    assert.equal(await ws.next('"3probe"'), "3probe");
    return { sid, ws };
  }

  const cases = [
    ["handshake / polling: opens a session", async () => {
      const res = await fetch(http("EIO=4&transport=polling"));
      assert.equal(res.status, 200, "HTTP status");
      expectOpenPacket(await res.text(), ["websocket"], "polling handshake");
    }],
    ["handshake / polling: fails with an invalid EIO", async () => {
      assert.equal((await fetch(http("transport=polling"))).status, 400, "no EIO");
      assert.equal((await fetch(http("EIO=abc&transport=polling"))).status, 400, "EIO=abc");
    }],
    ["handshake / polling: fails with an invalid transport", async () => {
      assert.equal((await fetch(http("EIO=4"))).status, 400, "no transport");
      assert.equal((await fetch(http("EIO=4&transport=abc"))).status, 400, "transport=abc");
    }],
    ["handshake / polling: fails with an invalid method", async () => {
      assert.equal((await fetch(http("EIO=4&transport=polling"), { method: "post" })).status, 400, "POST");
      assert.equal((await fetch(http("EIO=4&transport=polling"), { method: "put" })).status, 400, "PUT");
    }],
    ["handshake / websocket: opens a session", async () => {
      const ws = new Ws(websocket("EIO=4&transport=websocket"));
      expectOpenPacket(await ws.next("open packet"), [], "websocket handshake");
      ws.close();
    }],
    ["handshake / websocket: fails with an invalid EIO", async () => {
      await expectRefusedWebSocket("transport=websocket", "no EIO");
      await expectRefusedWebSocket("EIO=abc&transport=websocket", "EIO=abc");
    }],
    ["handshake / websocket: fails with an invalid transport", async () => {
      await expectRefusedWebSocket("EIO=4", "no transport");
      await expectRefusedWebSocket("EIO=4&transport=abc", "transport=abc");
    }],
    ...(echo ? [
      ["message / polling: one plain text packet", async () => {
        const sid = await openPolling();
        const push = await fetch(polling(sid), { method: "post", body: "4hello" });
        assert.equal(push.status, 200, "POST status");
        const poll = await fetch(polling(sid));
        assert.equal(poll.status, 200, "GET status");
        assert.equal(await poll.text(), "4hello");
      }],
      ["message / polling: several plain text packets", async () => {
        const sid = await openPolling();
        const body = "4abc\x1e4def\x1e4ghi";
        assert.equal((await fetch(polling(sid), { method: "post", body })).status, 200, "POST status");
        const poll = await fetch(polling(sid));
        assert.equal(poll.status, 200, "GET status");
        assert.equal(await poll.text(), body);
      }],
      ["message / polling: plain text and binary packets", async () => {
        const sid = await openPolling();
        const body = "4hello\x1ebAQIDBA==";
        assert.equal((await fetch(polling(sid), { method: "post", body })).status, 200, "POST status");
        const poll = await fetch(polling(sid));
        assert.equal(poll.status, 200, "GET status");
        assert.equal(await poll.text(), body);
      }],
    ] : []),
    ["message / polling: an invalid packet closes the session", async () => {
      const sid = await openPolling();
      const push = await fetch(polling(sid), { method: "post", body: "abc" }).catch(() => null);
      if (push) assert.equal(push.status, 400, "POST of an invalid packet");
      assert.equal((await fetch(polling(sid))).status, 400, "GET after the invalid packet");
    }],
    ["message / polling: duplicate polls close the session", async () => {
      const sid = await openPolling();
      const [first, second] = await Promise.all([
        fetch(polling(sid)),
        sleep(5).then(() => fetch(`${polling(sid)}&t=burst`)),
      ]);
      assert.equal(first.status, 200, "pending poll status");
      assert.equal(await first.text(), "1", "pending poll gets a close packet");
      assert.ok([400, 500].includes(second.status), `overlapping poll status ${second.status}`);
      assert.equal((await fetch(polling(sid))).status, 400, "GET after the overlap");
    }],
    ...(echo ? [
      ["message / websocket: a plain text packet", async () => {
        const ws = new Ws(websocket("EIO=4&transport=websocket"));
        await ws.next("open packet");
        ws.send("4hello");
        assert.equal(await ws.next("echo"), "4hello");
        ws.close();
      }],
      ["message / websocket: a binary packet", async () => {
        const ws = new Ws(websocket("EIO=4&transport=websocket"));
        await ws.next("open packet");
        ws.send(bytes(1, 2, 3, 4));
        assert.deepStrictEqual(await ws.next("echo"), bytes(1, 2, 3, 4));
        ws.close();
      }],
    ] : []),
    ["message / websocket: an invalid packet closes the connection", async () => {
      const ws = new Ws(websocket("EIO=4&transport=websocket"));
      await ws.next("open packet");
      ws.send("abc");
      await ws.waitClosed('"abc"');
    }],
    ["heartbeat / polling: ping and pong", async () => {
      const sid = await openPolling();
      for (let i = 0; i < 3; i++) {
        const poll = await fetch(polling(sid));
        assert.equal(poll.status, 200, `poll ${i}: status`);
        assert.equal(await poll.text(), "2", `poll ${i}: a ping`);
        const push = await fetch(polling(sid), { method: "post", body: "3" });
        assert.equal(push.status, 200, `pong ${i}: status`);
      }
    }],
    ["heartbeat / polling: the session is gone upon ping timeout", async () => {
      const sid = await openPolling();
      await sleep(PING_INTERVAL + PING_TIMEOUT);
      const poll = await fetch(polling(sid));
      assert.equal(poll.status, 400, `GET after pingInterval + pingTimeout (body ${JSON.stringify(await poll.text())})`);
    }],
    ["heartbeat / websocket: ping and pong", async () => {
      const ws = new Ws(websocket("EIO=4&transport=websocket"));
      await ws.next("open packet");
      for (let i = 0; i < 3; i++) {
        assert.equal(await ws.next(`ping ${i}`), "2", `message ${i}`);
        ws.send("3");
      }
      ws.close();
    }],
    ["heartbeat / websocket: closed upon ping timeout", async () => {
      const ws = new Ws(websocket("EIO=4&transport=websocket"));
      await ws.waitClosed("a client that never answers pings");
    }],
    ["close / polling: the client closes the session", async () => {
      const sid = await openPolling();
      // The close must find the poll pending: the reference suite sends both at once and
      // counts on the GET arriving first; give it a moment, not a race.
      const [poll, push] = await Promise.all([
        fetch(polling(sid)),
        sleep(20).then(() => fetch(polling(sid), { method: "post", body: "1" })),
      ]);
      assert.equal(push.status, 200, "POST of the close packet");
      assert.equal(poll.status, 200, "pending poll status");
      assert.equal(await poll.text(), "6", "pending poll ends with a noop");
      assert.equal((await fetch(polling(sid))).status, 400, "GET after the close");
    }],
    ["close / websocket: the client closes the session", async () => {
      const ws = new Ws(websocket("EIO=4&transport=websocket"));
      await ws.next("open packet");
      ws.send("1");
      await ws.waitClosed('"1"');
    }],
    ["upgrade: from polling to websocket", async () => {
      const sid = await openPolling();
      const ws = new Ws(websocket(`EIO=4&transport=websocket&sid=${sid}`));
      await within(WITHIN_MS, ws.opened, "upgrade websocket not open");
      ws.send("2probe");
      assert.equal(await ws.next('"3probe"'), "3probe");
      const poll = await fetch(polling(sid));
      assert.equal(poll.status, 200, "poll during the upgrade");
      assert.equal(await poll.text(), "6", "the poll is released with a noop");
      ws.send("5");
      if (echo) {
        ws.send("4hello");
        assert.equal(await ws.next("echo"), "4hello");
      }
      ws.close();
    }],
    ["upgrade: HTTP requests with the same sid are refused after it", async () => {
      const { sid, ws } = await upgraded();
      assert.equal((await fetch(polling(sid))).status, 400, "GET after the upgrade");
      if (echo) {
        ws.send("4hello");
        assert.equal(await ws.next("echo"), "4hello");
      }
      ws.close();
    }],
    ["upgrade: a second websocket with the same sid is closed", async () => {
      const { sid, ws } = await upgraded();
      const second = new Ws(websocket(`EIO=4&transport=websocket&sid=${sid}`));
      await second.waitClosed("second websocket");
      if (echo) {
        ws.send("4hello");
        assert.equal(await ws.next("echo"), "4hello");
      }
      ws.close();
    }],
  ];
  return cases;
}

// ---------------------------------------------------------------------------
// The Socket.IO suite (echo at /socket.io/).

function socketSuite() {
  const url = `${WS_URL}/socket.io/?EIO=4&transport=websocket`;

  // Engine.IO open, "40", "40{sid}", the "auth" event.
  async function connected() {
    const ws = new Ws(url);
    await ws.next("open packet");
    ws.send("40");
    await ws.next("CONNECT");
    await ws.next('"auth"');
    return ws;
  }

  async function expectConnect(send, prefix, auth) {
    const ws = new Ws(url);
    await ws.next("open packet");
    ws.send(send);
    const data = await ws.next("CONNECT");
    assert.ok(data.startsWith(prefix), `expected ${prefix}..., got ${JSON.stringify(data)}`);
    const handshake = JSON.parse(data.slice(prefix.length));
    assert.deepStrictEqual(Object.keys(handshake), ["sid"], "CONNECT payload keys");
    assert.equal(typeof handshake.sid, "string", "CONNECT sid");
    assert.equal(await ws.next('"auth"'), auth);
    ws.close();
  }

  const placeholders = '{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}';
  return [
    ["connect: the main namespace", () => expectConnect("40", "40", '42["auth",{}]')],
    ["connect: the main namespace with a payload", () =>
      expectConnect('40{"token":"123"}', "40", '42["auth",{"token":"123"}]')],
    ["connect: a custom namespace", () => expectConnect("40/custom,", "40/custom,", '42/custom,["auth",{}]')],
    ["connect: a custom namespace with a payload", () =>
      expectConnect('40/custom,{"token":"abc"}', "40/custom,", '42/custom,["auth",{"token":"abc"}]')],
    ["connect: an unknown namespace is refused", async () => {
      const ws = new Ws(url);
      await ws.next("open packet");
      ws.send("40/random");
      assert.equal(await ws.next("CONNECT_ERROR"), '44/random,{"message":"Invalid namespace"}');
      ws.close();
    }],
    ["connect: an invalid handshake closes the connection", async () => {
      const ws = new Ws(url);
      await ws.next("open packet");
      ws.send("4abc");
      await ws.waitClosed('"4abc"');
    }],
    ["connect: no handshake closes the connection", async () => {
      const ws = new Ws(url);
      await ws.waitClosed("a connection that never sends CONNECT");
    }],
    ["disconnect: from the main namespace", async () => {
      const ws = await connected();
      ws.send("41");
      assert.equal(await ws.next("the next packet"), "2", "after leaving, the next packet is the ping");
      ws.close();
    }],
    ["disconnect: connect then disconnect a custom namespace", async () => {
      const ws = await connected();
      assert.equal(await ws.next("ping"), "2");
      ws.send("40/custom");
      await ws.next("CONNECT /custom");
      await ws.next('"auth" in /custom');
      ws.send("41/custom");
      ws.send('42["message","message to main namespace"]');
      assert.equal(await ws.next('"message-back"'), '42["message-back","message to main namespace"]');
      ws.close();
    }],
    ["message: a plain text packet", async () => {
      const ws = await connected();
      ws.send('42["message",1,"2",{"3":[true]}]');
      assert.equal(await ws.next('"message-back"'), '42["message-back",1,"2",{"3":[true]}]');
      ws.close();
    }],
    ["message: a packet with binary attachments", async () => {
      const ws = await connected();
      ws.send(`452-["message",${placeholders}]`);
      ws.send(bytes(1, 2, 3));
      ws.send(bytes(4, 5, 6));
      const packets = await ws.packets(3, '"message-back" and its attachments');
      assert.equal(packets[0], `452-["message-back",${placeholders}]`);
      assert.deepStrictEqual(packets[1], bytes(1, 2, 3));
      assert.deepStrictEqual(packets[2], bytes(4, 5, 6));
      ws.close();
    }],
    ["message: a plain text packet with an ack", async () => {
      const ws = await connected();
      ws.send('42456["message-with-ack",1,"2",{"3":[false]}]');
      assert.equal(await ws.next("ack"), '43456[1,"2",{"3":[false]}]');
      ws.close();
    }],
    ["message: a packet with binary attachments and an ack", async () => {
      const ws = await connected();
      ws.send(`452-789["message-with-ack",${placeholders}]`);
      ws.send(bytes(1, 2, 3));
      ws.send(bytes(4, 5, 6));
      const packets = await ws.packets(3, "binary ack and its attachments");
      assert.equal(packets[0], `462-789[${placeholders}]`);
      assert.deepStrictEqual(packets[1], bytes(1, 2, 3));
      assert.deepStrictEqual(packets[2], bytes(4, 5, 6));
      ws.close();
    }],
    ["message: an unknown packet type closes the connection", async () => {
      const ws = await connected();
      ws.send("4abc");
      await ws.waitClosed('"4abc"');
    }],
    ["message: an invalid payload closes the connection", async () => {
      const ws = await connected();
      ws.send("42{}");
      await ws.waitClosed('"42{}"');
    }],
    ["message: an invalid ack id closes the connection", async () => {
      const ws = await connected();
      ws.send('42abc["message-with-ack",1,"2",{"3":[false]}]');
      await ws.waitClosed('"42abc[...]"');
    }],
  ];
}

// ---------------------------------------------------------------------------
// Runner: every case of a scenario in turn, each named as a step.

async function runCases(all) {
  // TIDINGS_ONLY=<text> runs only the cases whose name contains it (for manual runs).
  const only = process.env.TIDINGS_ONLY;
  const cases = only ? all.filter(([name]) => name.includes(only)) : all;
  assert.ok(cases.length > 0, `no case matches ${only}`);
  for (const [name, body] of cases) {
    step(name);
    await body();
    for (const socket of openSockets) socket.close();
    openSockets.clear();
  }
  console.log(`${cases.length} cases passed`);
}

const scenarios = {
  "engine.io": () => runCases(engineSuite("/engine.io/", true)),
  "engine.io-under-socket.io": () => runCases(engineSuite("/socket.io/", false)),
  "socket.io": () => runCases(socketSuite()),
};

run("protocol_suites", scenarios, { where: URL, timeoutMs: 60_000 });
