// The plain WebSocket protocol with clients that have no library (see tests/plainws_interop.rs
// for the server: channels chats/:id and greet/:name; routes POST /emit, GET /stats,
// POST /close-all, GET /page; pings every 300 ms of silence, closed 300 ms later; 64 KiB
// messages; 64 queued frames).
//
// Usage: TIDINGS_URL=http://127.0.0.1:PORT node tests/js/plainws_interop.mjs <scenario>
import assert from "node:assert/strict";
import WebSocket from "ws";
import { io } from "socket.io-client";
import { Socket as PhoenixSocket } from "phoenix";
import { step, sleep, within, run, openSockets, launchChromium } from "./harness.mjs";

const URL = (process.env.TIDINGS_URL ?? "http://127.0.0.1:3000").replace(/\/+$/, "");
const WS = URL.replace(/^http/, "ws");
const WAIT_MS = 5_000;
const QUIET_MS = 400;

/** A raw WebSocket with every text frame kept in order (JSON-parsed) and its close. */
class Client {
  constructor(path, options = {}) {
    this.frames = [];
    this.waiters = [];
    this.pings = 0;
    this.ws = new WebSocket(`${WS}${path}`, options);
    this.opened = new Promise((resolve, reject) => {
      this.ws.once("open", resolve);
      this.ws.once("unexpected-response", (_, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
      this.ws.once("error", reject);
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => this.ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })));
    this.ws.on("ping", () => this.pings++);
    this.ws.on("message", (data, binary) => {
      const frame = binary ? { binary: data } : JSON.parse(data.toString());
      const i = this.waiters.findIndex((w) => w.match(frame));
      if (i >= 0) this.waiters.splice(i, 1)[0].resolve(frame);
      else this.frames.push(frame);
    });
    openSockets.add({ close: () => this.ws.terminate() });
  }
  next(match, what) {
    const i = this.frames.findIndex(match);
    if (i >= 0) return Promise.resolve(this.frames.splice(i, 1)[0]);
    return within(WAIT_MS, new Promise((resolve) => this.waiters.push({ match, resolve })), `never got ${what}`);
  }
  reply(ref) {
    return this.next((f) => f.type === "reply" && f.ref === ref, `reply ${JSON.stringify(ref)}`);
  }
  event(name) {
    return this.next((f) => f.type === "event" && f.event === name, `event ${name}`);
  }
  async send(message) {
    await this.opened;
    this.ws.send(typeof message === "string" || Buffer.isBuffer(message) ? message : JSON.stringify(message));
  }
  async request(message) {
    await this.send(message);
    return this.reply(message.ref);
  }
}

async function emit(channel, event, data, binary = false) {
  const res = await fetch(`${URL}/emit`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ channel, event, data, binary }),
  });
  assert.equal(res.status, 200, `POST /emit ${await res.text()}`);
}

async function stats() {
  return (await fetch(`${URL}/stats`)).json();
}

async function until(what, check, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(25);
  }
  assert.fail(`${what} within ${ms} ms`);
}

/** A member of chats/1 that counts what it gets, to show bad clients hurt nobody else. */
async function goodMember() {
  const good = new Client("/ws");
  assert.equal((await good.request({ type: "subscribe", channel: "chats/1", ref: "g" })).status, "ok");
  return good;
}

async function stillServed(good, tag) {
  await emit("chats/1", "check", { tag });
  const frame = await good.event("check");
  assert.deepEqual(frame.data, { tag }, "the good member still gets emits");
}

const scenarios = {
  async protocol() {
    const c = new Client("/ws");
    step("subscribe: refs come back as sent (string, number, none)");
    assert.deepEqual(await c.request({ type: "subscribe", channel: "chats/1", ref: "1" }), { type: "reply", ref: "1", status: "ok" });
    assert.deepEqual(await c.request({ type: "subscribe", channel: "chats/2", ref: 2 }), { type: "reply", ref: 2, status: "ok" });
    await c.send({ type: "subscribe", channel: "chats/3" });
    assert.deepEqual(await c.next((f) => f.type === "reply" && !("ref" in f), "a reply without ref"), { type: "reply", status: "ok" });

    step("a join with a payload and a reply; the reply before the joined hook's push and broadcast");
    await c.send({ type: "subscribe", channel: "greet/lobby", payload: { nick: "ann" }, ref: "g" });
    const order = [];
    const seen = new Promise((resolve) => {
      const check = () => {
        const names = c.frames.map((f) => (f.type === "reply" ? `reply:${f.ref}` : f.event));
        if (["reply:g", "welcome", "arrived"].every((n) => names.includes(n))) resolve(names);
        else setTimeout(check, 10);
      };
      check();
    });
    order.push(...(await within(WAIT_MS, seen, "join reply, welcome and arrived")));
    const relevant = order.filter((n) => ["reply:g", "welcome", "arrived"].includes(n));
    assert.deepEqual(relevant, ["reply:g", "welcome", "arrived"], "the join reply comes first");
    const joined = c.frames.find((f) => f.type === "reply" && f.ref === "g");
    assert.deepEqual(joined.response, { hello: "ann", room: "lobby", query: { nick: "ann" } });

    step("refusals: unauthorized, the channel's own reason, unknown_channel, invalid");
    const refused = async (message) => (await c.request(message)).reason;
    assert.equal(await refused({ type: "subscribe", channel: "greet/x", ref: "r1" }), "unauthorized");
    assert.equal(await refused({ type: "subscribe", channel: "greet/x", payload: { nick: "taken" }, ref: "r2" }), "nick_taken");
    assert.equal(await refused({ type: "subscribe", channel: "nowhere/1", ref: "r3" }), "unknown_channel");
    assert.equal(await refused({ type: "subscribe", channel: "chats/abc", ref: "r4" }), "invalid");

    step("events: replies ok, ok with a response, error; panics answered handler_failed");
    assert.deepEqual(await c.request({ type: "event", channel: "chats/1", event: "echo", data: { a: [1, 2] }, ref: "e1" }), {
      type: "reply",
      ref: "e1",
      status: "ok",
      response: { a: [1, 2] },
    });
    assert.deepEqual(await c.request({ type: "event", channel: "chats/1", event: "fail", ref: "e2" }), {
      type: "reply",
      ref: "e2",
      status: "error",
      reason: "nope",
    });
    assert.equal((await c.request({ type: "event", channel: "chats/1", event: "boom", ref: "e3" })).reason, "handler_failed");
    assert.equal((await c.request({ type: "event", channel: "chats/9", event: "echo", ref: "e4" })).reason, "not_subscribed");

    step("unsubscribe, then no more events from that channel");
    assert.deepEqual(await c.request({ type: "unsubscribe", channel: "chats/2", ref: "u" }), { type: "reply", ref: "u", status: "ok" });
    await emit("chats/2", "late", { n: 1 });
    await sleep(QUIET_MS);
    assert.equal(c.frames.filter((f) => f.event === "late").length, 0, "an event after unsubscribe");

    step("application ping");
    await c.send({ type: "ping" });
    await c.next((f) => f.type === "pong", "pong");

    step("emits arrive as they were emitted, in order; binary as base64");
    await emit("chats/1", "obj", { message: "hi", n: [1, { b: null }] });
    assert.deepEqual(await c.event("obj"), { type: "event", channel: "chats/1", event: "obj", data: { message: "hi", n: [1, { b: null }] } });
    await emit("chats/1", "str", "just text");
    assert.equal((await c.event("str")).data, "just text");
    await emit("chats/1", "bin", "bytes", true);
    assert.deepEqual((await c.event("bin")).data, { binary: Buffer.from("bytes").toString("base64") });
    for (let i = 0; i < 200; i++) await emit("chats/1", "seq", { i });
    for (let i = 0; i < 200; i++) assert.deepEqual((await c.event("seq")).data, { i }, `emit ${i} in order`);
    await c.send({ type: "event", channel: "chats/1", event: "shout", data: { x: 1 }, ref: "s" });
    await c.reply("s");
    assert.deepEqual((await c.event("shouted")).data, { x: 1 });
  },

  async errors() {
    const c = new Client("/ws");
    for (const [name, text, reason] of [
      ["not JSON", "hello", "invalid_json"],
      ["a JSON array", "[1,2]", "invalid_json"],
      ["no type", "{}", "unknown_type"],
      ["an unknown type", '{"type":"dance"}', "unknown_type"],
      ["no channel", '{"type":"subscribe","ref":"x"}', "invalid"],
      ["no event", '{"type":"event","channel":"chats/1"}', "invalid"],
      ["a number for a channel", '{"type":"unsubscribe","channel":5}', "invalid"],
    ]) {
      step(name);
      await c.send(text);
      const error = await c.next((f) => f.type === "error", `error for ${name}`);
      assert.equal(error.reason, reason, name);
      assert.ok(typeof error.message === "string" && error.message.length > 0, `${name}: a message for humans`);
      const ok = await c.request({ type: "subscribe", channel: "chats/1", ref: `after ${name}` });
      assert.equal(ok.status, "ok", `${name}: the connection goes on`);
    }
  },

  async "path-bound"() {
    step("/ws/greet/lobby?nick=bo&x=1: joined as it opens, the query as the join payload");
    const bound = new Client("/ws/greet/lobby?nick=bo&x=1");
    const first = await bound.next(() => true, "first frame");
    assert.deepEqual(first, {
      type: "reply",
      status: "ok",
      channel: "greet/lobby",
      response: { hello: "bo", room: "lobby", query: { nick: "bo", x: "1" } },
    });
    assert.equal((await bound.event("welcome")).data.to, "you");
    await emit("greet/lobby", "news", { n: 1 });
    assert.deepEqual((await bound.event("news")).data, { n: 1 });

    step("a refused join: an error frame, then close 1008");
    const refused = new Client("/ws/greet/lobby");
    const error = await refused.next(() => true, "first frame");
    assert.equal(error.type, "error");
    assert.equal(error.reason, "unauthorized");
    assert.equal((await within(WAIT_MS, refused.closed, "no close")).code, 1008);

    step("a path no pattern matches: 404 before the upgrade");
    await assert.rejects(new Client("/ws/nowhere/1").opened, (err) => err.status === 404);
    step("the connect hook refuses: 403");
    await assert.rejects(new Client("/ws/chats/1?user=mallory").opened, (err) => err.status === 403);
    await assert.rejects(new Client("/ws?user=mallory").opened, (err) => err.status === 403);
    step("a foreign origin: 403; none and the server's own: open");
    await assert.rejects(new Client("/ws", { origin: "http://evil.example" }).opened, (err) => err.status === 403);
    await new Client("/ws", { origin: URL }).opened;
    await new Client("/ws").opened;
  },

  async "bad-input"() {
    const good = await goodMember();
    for (const [name, code, attack] of [
      ["a binary frame", 1003, (ws) => ws.send(Buffer.from([1, 2, 3]))],
      ["invalid UTF-8", 1007, (ws) => ws.send(Buffer.from([0x7b, 0xc3, 0x28, 0x7d]), { binary: false })],
      ["a message over max_payload", 1009, (ws) => ws.send(JSON.stringify({ type: "ping", pad: "x".repeat(70 * 1024) }))],
      ["continuations over max_payload", 1009, (ws) => {
        const part = "y".repeat(40 * 1024);
        ws.send(part, { fin: false });
        ws.send(part, { fin: true });
      }],
    ]) {
      step(name);
      const bad = new Client("/ws");
      await bad.opened;
      attack(bad.ws);
      const closed = await within(WAIT_MS, bad.closed, `${name}: not closed`);
      assert.equal(closed.code, code, `${name}: close code (reason ${closed.reason})`);
      await stillServed(good, name);
    }
  },

  async liveness() {
    step("a client that answers pings and one that does not, both silent");
    const alive = new Client("/ws");
    const deaf = new Client("/ws", { autoPong: false });
    await Promise.all([alive.opened, deaf.opened]);
    const started = Date.now();
    const closed = await within(3_000, deaf.closed, "the silent client that ignores pings was never closed");
    const after = Date.now() - started;
    assert.ok(after >= 400, `closed after ${after} ms, before a ping interval and timeout`);
    assert.ok(deaf.pings >= 1, "the server pinged it");
    assert.equal(closed.code, 1000, `close code ${closed.code} (${closed.reason})`);
    step("the one answering pings stays, 2 s of silence later");
    await sleep(2_000);
    assert.equal(alive.ws.readyState, WebSocket.OPEN, "the client answering pings was closed");
    assert.ok(alive.pings >= 2, `pinged ${alive.pings} times`);
    await until("one connection left", async () => (await stats()).connections === 1);
  },

  async "slow-consumer"() {
    const good = await goodMember();
    const slow = new Client("/ws");
    assert.equal((await slow.request({ type: "subscribe", channel: "chats/1", ref: "s" })).status, "ok");
    slow.ws._socket.pause();
    step("3,000 emits of 1 KB while one member does not read");
    const pad = "z".repeat(1024);
    let seen = 0;
    const counted = new Promise((resolve) => {
      good.ws.on("message", (data) => {
        const frame = JSON.parse(data.toString());
        if (frame.event === "bulk") {
          assert.equal(frame.data.i, seen, "in order");
          if (++seen === 3000) resolve();
        }
      });
    });
    for (let i = 0; i < 3000; i++) await emit("chats/1", "bulk", { i, pad });
    await within(10_000, counted, `the good member got ${seen} of 3000`);
    await until("the slow consumer cut", async () => (await stats()).connections === 1, 10_000);
  },

  async shutdown() {
    const c = await goodMember();
    c.ws._socket.pause();
    for (let i = 0; i < 40; i++) await emit("chats/1", "queued", { i });
    step("shutdown: what was queued, then 1001");
    await fetch(`${URL}/close-all`, { method: "POST" });
    c.ws._socket.resume();
    const closed = await within(WAIT_MS, c.closed, "no close");
    assert.equal(closed.code, 1001);
    const got = c.frames.filter((f) => f.event === "queued").map((f) => f.data.i);
    assert.deepEqual(got, [...Array(40).keys()], "every queued event before the close");
  },

  async "three-protocols"() {
    step("a socket.io-client, a phoenix.js and a plain member of chats/1");
    const sio = io(URL, { transports: ["websocket"], forceNew: true, reconnection: false });
    openSockets.add(sio);
    await within(WAIT_MS, new Promise((resolve) => sio.once("connect", resolve)), "socket.io connect");
    assert.deepEqual(await sio.timeout(WAIT_MS).emitWithAck("subscribe", "chats/1"), { status: "ok" });
    const sioGot = new Promise((resolve) => sio.once("chats/1/news", resolve));

    const phx = new PhoenixSocket(`${WS}/socket`, { transport: WebSocket });
    phx.connect();
    openSockets.add({ close: () => phx.disconnect() });
    const channel = phx.channel("chats/1", {});
    const phxGot = new Promise((resolve) => channel.on("news", resolve));
    await within(WAIT_MS, new Promise((resolve, reject) => channel.join().receive("ok", resolve).receive("error", reject)), "phoenix join");

    const plain = await goodMember();

    step("one emit, each in its protocol's shape");
    await emit("chats/1", "news", { headline: "one emit" });
    assert.deepEqual(await within(WAIT_MS, sioGot, "socket.io event"), { headline: "one emit" });
    assert.deepEqual(await within(WAIT_MS, phxGot, "phoenix event"), { headline: "one emit" });
    assert.deepEqual(await plain.event("news"), { type: "event", channel: "chats/1", event: "news", data: { headline: "one emit" } });
  },

  async browser() {
    const chromium = await launchChromium();
    try {
      const page = await chromium.newPage();
      await page.goto(`${URL}/page`);
      step("the page's own WebSocket subscribes over /ws and gets an emit");
      const outcome = page.evaluate(
        ([ws, waitMs]) =>
          new Promise((resolve) => {
            const socket = new WebSocket(`${ws}/ws`);
            const frames = [];
            socket.onmessage = (event) => {
              const frame = JSON.parse(event.data);
              frames.push(frame);
              if (frame.type === "reply") window.__subscribed = true;
              if (frame.type === "event") resolve(frames);
            };
            socket.onopen = () => socket.send(JSON.stringify({ type: "subscribe", channel: "chats/1", ref: "b" }));
            setTimeout(() => resolve(frames), waitMs);
          }),
        [WS, WAIT_MS],
      );
      await page.waitForFunction(() => window.__subscribed === true, null, { timeout: WAIT_MS });
      await emit("chats/1", "hello", { to: "browser" });
      assert.deepEqual(await outcome, [
        { type: "reply", ref: "b", status: "ok" },
        { type: "event", channel: "chats/1", event: "hello", data: { to: "browser" } },
      ]);
      step("a path-bound socket from the page gets its ok reply");
      const first = await page.evaluate(
        (ws) =>
          new Promise((resolve) => {
            const socket = new WebSocket(`${ws}/ws/chats/7`);
            socket.onmessage = (event) => resolve(JSON.parse(event.data));
          }),
        WS,
      );
      assert.deepEqual(first, { type: "reply", status: "ok", channel: "chats/7" });
    } finally {
      await chromium.close();
    }
  },
};

run("plainws_interop.mjs", scenarios, { where: URL, timeoutMs: 40_000 });
