// Interop tests of the Phoenix Channels gateway: the official `phoenix` npm client (1.8.16, and
// 1.7.23 as `phoenix17`) against the in-process server of tests/phoenix_interop.rs (connect hook
// wanting a `user` param; channels chats/:id, lobby:*room, full:*x, crashy:*x; routes POST /emit,
// POST /close-all, GET /stats).
//
// Usage: TIDINGS_URL=http://127.0.0.1:PORT node tests/js/phoenix_client.mjs <scenario>:<transport>
// with <transport> `websocket` (phoenix.js with `transport: WebSocket` from `ws`, as Node 20 has
// no global WebSocket) or `longpoll` (phoenix.js's LongPoll over `fetch`, what 1.8 picks on
// Node 20 when given no transport). Exit code 0 = pass; on failure a message goes to stderr and
// the exit code is 1.
//
// Frames are checked as phoenix.js decodes them (`socket.onMessage`), written like V2 frames:
// [join_ref, ref, topic, event, payload].
import assert from "node:assert/strict";
import { isDeepStrictEqual } from "node:util";
import { Socket, LongPoll } from "phoenix";
import { Socket as Socket17 } from "phoenix17";
import WebSocket from "ws";
import { io } from "socket.io-client";
import { step, sleep, openSockets, run } from "./harness.mjs";

const URL = (process.env.TIDINGS_URL ?? "http://127.0.0.1:4000").replace(/\/+$/, "");
const WS_URL = URL.replace(/^http/, "ws");
const SOCKET_URL = `${WS_URL}/socket`;
const SCENARIO_TIMEOUT_MS = 15_000;
// How long one expected thing (a frame, a reply, an open) may take.
const STEP_MS = 5_000;
// How long we wait to be sure that something does NOT arrive.
const QUIET_MS = 500;
// phoenix.js push and join timeout in these tests (its default is 10 s).
const PUSH_TIMEOUT_MS = 5_000;
const HTTP_TIMEOUT_MS = 3_000;

const OK_EMPTY = { status: "ok", response: {} };
const okWith = (response) => ({ status: "ok", response });
const refusal = (reason) => ({ status: "error", response: { reason } });
// The reply of a lobby:<room> join.
const welcome = (room, user) => okWith({ welcome: room, user });

// ---------------------------------------------------------------------------
// Helpers

function isBinary(v) {
  return v instanceof ArrayBuffer || ArrayBuffer.isView(v);
}
function bytesOf(v) {
  if (v instanceof ArrayBuffer) return Buffer.from(v);
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

// JSON text of a value with every binary replaced by a hex marker, for messages.
function show(v) {
  return JSON.stringify(v, (_, x) =>
    isBinary(x) ? `<binary ${bytesOf(x).toString("hex")}>` : x,
  );
}

// A frame as phoenix.js decoded it, as a V2 array.
const asArray = (f) => [f.join_ref, f.ref, f.topic, f.event, f.payload];

// {status, response} of a join or push answer.
const answerOf = (a) => ({ status: a.status, response: a.response });

// Waits until `cond()` is truthy (checked every 5 ms), failing after `ms` with `what`.
async function until(cond, what, ms = STEP_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = cond();
    if (value) return value;
    if (Date.now() > deadline) {
      throw new Error(`${typeof what === "function" ? what() : what} (waited ${ms} ms)`);
    }
    await sleep(5);
  }
}

// A WebSocket class (for phoenix.js's `transport` option) that records the raw wire:
// what was sent and received, the selected subprotocol and the close code.
function recordingWebSocket(wire) {
  return class RecordingWebSocket extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols);
      wire.push({ dir: "connect", url, protocols });
      this.on("open", () => wire.push({ dir: "open", protocol: this.protocol }));
      this.on("message", (data, binary) =>
        wire.push({ dir: "in", binary, data: binary ? bytesOf(data) : data.toString() }),
      );
      this.on("close", (code, reason) =>
        wire.push({ dir: "close", code, reason: reason.toString() }),
      );
    }

    send(data, ...rest) {
      const binary = typeof data !== "string";
      wire.push({ dir: "out", binary, data: binary ? bytesOf(data) : data });
      return super.send(data, ...rest);
    }
  };
}

// The text frames a recording WebSocket received, parsed.
const received = (client) =>
  client.wire.filter((w) => w.dir === "in" && !w.binary).map((w) => JSON.parse(w.data));

// Every frame one phoenix.js socket decoded, in order. `next(pred)` takes the first frame
// not taken yet that matches (already received or still to come).
class Frames {
  constructor(who) {
    this.who = who;
    this.list = [];
  }

  add(msg) {
    this.list.push({ ...msg, at: Date.now(), taken: false });
  }

  dump(pred = () => true) {
    return this.list
      .filter(pred)
      .map((f) => show(asArray(f)))
      .join("\n  ");
  }

  async next(pred, what, ms = STEP_MS) {
    const frame = await until(
      () => this.list.find((f) => !f.taken && pred(f)),
      () => `${this.who}: no frame ${what}; frames seen:\n  ${this.dump()}`,
      ms,
    );
    frame.taken = true;
    return frame;
  }

  // The next frame of `topic` (and `event`, when given).
  of(topic, event, what = `${topic} ${event ?? ""}`) {
    return this.next((f) => f.topic === topic && (event === undefined || f.event === event), what);
  }

  // The reply to the push `ref` (replies are matched by ref only).
  reply(ref, what = `phx_reply to ref ${ref}`) {
    return this.next((f) => f.event === "phx_reply" && f.ref === ref, what);
  }

  // Fails if a frame matching `pred` and not taken arrives within `ms`.
  async none(pred, what, ms = QUIET_MS) {
    await sleep(ms);
    const hit = this.list.filter((f) => !f.taken && pred(f));
    assert.deepStrictEqual(
      hit.map((f) => show(asArray(f))),
      [],
      `${this.who}: expected no frame ${what} within ${ms} ms`,
    );
  }
}

// Checks a frame against [join_ref, ref, topic, event, payload].
function expectFrame(frame, expected, what) {
  assert.deepStrictEqual(
    asArray(frame),
    expected,
    `${what}: got ${show(asArray(frame))}, expected ${show(expected)}`,
  );
}

// Takes the next frame of `expected`'s topic at `client` and checks it is `expected`.
async function nextFrame(client, expected, what) {
  const topic = expected[2];
  expectFrame(await client.frames.of(topic, undefined, `(${what})`), expected, what);
}

// Takes the reply to `expected`'s ref at `client` and checks it is `expected`.
async function replyFrame(client, expected, what) {
  expectFrame(await client.frames.reply(expected[1], `(${what})`), expected, what);
}

// One phoenix.js socket and what it saw. `transport` is "websocket" or "longpoll"; `lib` the
// Socket class (phoenix 1.8 or 1.7); `params` the socket params (default {user: who}).
class Client {
  constructor(who, transport, { lib = Socket, params, ...opts } = {}) {
    this.who = who;
    this.transport = transport;
    this.wire = [];
    this.frames = new Frames(who);
    this.opens = 0;
    this.closes = [];
    this.errors = [];
    this.socket = new lib(SOCKET_URL, {
      transport: transport === "websocket" ? recordingWebSocket(this.wire) : LongPoll,
      params: params ?? { user: who },
      timeout: PUSH_TIMEOUT_MS,
      ...opts,
    });
    this.socket.onOpen(() => this.opens++);
    this.socket.onClose((event) => this.closes.push({ code: event?.code, reason: event?.reason }));
    this.socket.onError((error) => this.errors.push(error?.message ?? error));
    this.socket.onMessage((msg) => this.frames.add(msg));
    openSockets.add({ close: () => this.socket.disconnect() });
  }

  connect() {
    this.socket.connect();
    return this;
  }

  // Waits until the socket has opened `n` times.
  async opened(n = 1) {
    step(`${this.who}: socket open #${n} (${this.transport})`);
    await until(
      () => this.opens >= n,
      () =>
        `${this.who}: socket not open (${this.opens} opens; errors ${show(this.errors)}; ` +
        `closes ${show(this.closes)})`,
    );
  }

  // A raw message through phoenix.js's socket.push (not tied to a Channel, so phoenix.js sends
  // it as it is); `joinRef` "$ref" stands for the message's own ref. Returns its ref.
  raw(topic, event, payload, joinRef = null) {
    const ref = this.socket.makeRef();
    const join_ref = joinRef === "$ref" ? ref : joinRef;
    this.socket.push({ topic, event, payload, ref, join_ref });
    return ref;
  }
}

// Opens a client and waits for its socket to open.
async function connected(who, transport, opts) {
  const client = new Client(who, transport, opts).connect();
  await client.opened();
  return client;
}

// Joins `topic` on `client`, recording every join answer, channel error, close and the listed
// events.
function joinChannel(client, topic, params = {}, events = []) {
  const channel = client.socket.channel(topic, params);
  const log = { joins: [], errors: [], closes: [], events: [] };
  for (const event of events) {
    channel.on(event, (payload, ref, joinRef) => log.events.push({ event, payload, ref, joinRef }));
  }
  channel.onError((payload) => log.errors.push({ payload, at: Date.now() }));
  channel.onClose((payload) => log.closes.push(payload));
  const push = channel.join();
  const answer = (status) => (response) =>
    log.joins.push({ status, response, joinRef: channel.joinRef(), at: Date.now() });
  push
    .receive("ok", answer("ok"))
    .receive("error", answer("error"))
    .receive("timeout", answer("timeout"));
  return { client, channel, topic, log };
}

// Waits for join answer number `n` (1-based) of a channel.
async function joinAnswer(ch, n = 1) {
  step(`${ch.client.who}: join answer #${n} for ${ch.topic}`);
  return until(
    () => ch.log.joins[n - 1],
    () => `${ch.client.who}: no join answer #${n} for ${ch.topic}; answers ${show(ch.log.joins)}`,
  );
}

// Joins and checks the first answer is exactly `expected` ({status, response}); returns the
// channel.
async function join(client, topic, expected = OK_EMPTY, params = {}, events = []) {
  const ch = joinChannel(client, topic, params, events);
  const got = await joinAnswer(ch);
  assert.deepStrictEqual(answerOf(got), expected, `${client.who}: join ${topic} ${show(params)}`);
  return ch;
}

// The payloads a channel got for its listed events.
const payloads = (ch) => ch.log.events.map((e) => e.payload);

// Pushes through a channel; resolves with {status, response, ref} once answered.
function push(ch, event, payload, timeout = PUSH_TIMEOUT_MS) {
  const p = ch.channel.push(event, payload, timeout);
  return new Promise((resolve) => {
    const done = (status) => (response) => resolve({ status, response, ref: p.ref });
    p.receive("ok", done("ok")).receive("error", done("error")).receive("timeout", done("timeout"));
  });
}

// Pushes and checks the answer is exactly `expected`; returns the push's ref.
async function expectPush(ch, event, payload, expected) {
  const what = `${ch.client.who}: push ${ch.topic} ${event} ${show(payload)}`;
  step(what);
  const got = await push(ch, event, payload);
  assert.deepStrictEqual(answerOf(got), expected, `reply to ${what}`);
  return got.ref;
}

async function request(method, path, body) {
  const res = await fetch(`${URL}${path}`, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
  });
  const text = await res.text();
  try {
    return { status: res.status, json: JSON.parse(text) };
  } catch {
    assert.fail(`${method} ${path}: response is not JSON (HTTP ${res.status}): ${text}`);
  }
}

// POST /emit that must reach exactly `delivered` members.
async function emit(body, delivered) {
  step(`POST /emit ${show(body)}`);
  const { status, json } = await request("POST", "/emit", body);
  assert.equal(status, 200, `POST /emit ${show(body)}: HTTP status (body ${show(json)})`);
  assert.deepStrictEqual(json, { delivered }, `POST /emit ${show(body)}: response`);
}

// Polls GET /stats until it equals `expected`.
async function stats(expected, what) {
  step(`GET /stats until ${show(expected)} (${what})`);
  let last;
  const deadline = Date.now() + STEP_MS;
  while (Date.now() < deadline) {
    last = (await request("GET", "/stats")).json;
    if (isDeepStrictEqual(last, expected)) return;
    await sleep(50);
  }
  assert.deepStrictEqual(last, expected, `GET /stats (${what})`);
}

// A raw WebSocket handshake to `path`: resolves {status: 101, ws} or {status: <HTTP status>}.
function wsHandshake(path, protocols) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${WS_URL}${path}`, protocols);
    ws.on("unexpected-response", (req, res) => {
      resolve({ status: res.statusCode });
      req.destroy();
    });
    ws.on("open", () => {
      openSockets.add(ws);
      resolve({ status: 101, ws });
    });
    ws.on("error", reject);
  });
}

// Sends `text` on a raw WebSocket and resolves with the next text message, parsed.
function wsRoundTrip(ws, text) {
  return new Promise((resolve) => {
    ws.once("message", (data) => resolve(JSON.parse(data.toString())));
    ws.send(text);
  });
}

// One raw LongPoll request: {http, body, contentType}.
async function longpoll(method, query, body) {
  const headers = { accept: "application/json" };
  if (body) headers["content-type"] = "application/x-ndjson";
  const res = await fetch(`${URL}/socket/longpoll?${query}`, {
    method,
    headers,
    body,
    signal: AbortSignal.timeout(STEP_MS),
  });
  const text = await res.text();
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    assert.fail(`${method} /socket/longpoll?${query}: not JSON (HTTP ${res.status}): ${text}`);
  }
  return { http: res.status, body: parsed, contentType: res.headers.get("content-type") };
}

const V2_HEARTBEAT = (ref) => `[null,"${ref}","phoenix","heartbeat",{}]`;
const V1_HEARTBEAT = (ref) => `{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"${ref}"}`;

// ---------------------------------------------------------------------------
// Scenarios, by transport

const scenarios = {
  // Checklist 1: vsn 2.0.x -> V2, no vsn -> V1, other vsn -> 403; the connect hook's refusal
  // (no `user` param) -> 403, which phoenix.js reports as a socket error and never opens.
  async handshake(transport) {
    step("phoenix.js without the user param");
    const refused = new Client("nobody", transport, { params: {} }).connect();
    await until(
      () => refused.errors.length > 0,
      () => `nobody: no socket error (opens ${refused.opens}, closes ${show(refused.closes)})`,
    );
    if (transport === "longpoll") {
      // LongPoll: {"status":403} -> onerror(403), close 1008 "forbidden".
      assert.equal(refused.errors[0], 403, `nobody: LongPoll error ${show(refused.errors)}`);
      await until(() => refused.closes.length > 0, "nobody: no close after 403");
      assert.deepStrictEqual(refused.closes[0], { code: 1008, reason: "forbidden" }, "nobody");
    }
    await sleep(QUIET_MS);
    assert.equal(refused.opens, 0, "nobody: a refused socket must never open");
    refused.socket.disconnect();

    if (transport === "websocket") {
      const path = "/socket/websocket";
      const cases = [
        [`${path}?vsn=2.0.0`, undefined, 403, "no user param"],
        [`${path}?user=u&vsn=2.1.0`, undefined, 403, "vsn 2.1.0"],
        [`${path}?user=u&vsn=3.0.0`, undefined, 403, "vsn 3.0.0"],
        [`${path}?user=u&vsn=abc`, undefined, 403, "vsn abc"],
        [`${path}?user=u&vsn=2.0.0`, ["other"], 403, "subprotocol other, no phoenix"],
        [`${path}?user=u&vsn=2.0.0`, ["phoenix"], 101, "subprotocol phoenix"],
        [`${path}?user=u&vsn=2.0.0`, undefined, 101, "vsn 2.0.0"],
        [`${path}?user=u&vsn=2.0.1`, undefined, 101, "vsn 2.0.1"],
      ];
      for (const [url, protocols, expected, what] of cases) {
        step(`raw WebSocket: ${what}`);
        const got = await wsHandshake(url, protocols);
        assert.equal(got.status, expected, `GET ${url} ${show(protocols)} (${what}): HTTP status`);
        if (protocols?.includes("phoenix")) {
          assert.equal(got.ws.protocol, "phoenix", `${what}: selected subprotocol`);
        }
        got.ws?.close();
      }
      step("raw WebSocket: V2 heartbeat");
      const v2 = await wsHandshake(`${path}?user=u&vsn=2.0.0`);
      assert.deepStrictEqual(
        await wsRoundTrip(v2.ws, V2_HEARTBEAT(7)),
        [null, "7", "phoenix", "phx_reply", OK_EMPTY],
        "V2 heartbeat reply",
      );
      step("raw WebSocket: no vsn means V1");
      const v1 = await wsHandshake(`${path}?user=u`);
      assert.deepStrictEqual(
        await wsRoundTrip(v1.ws, V1_HEARTBEAT(8)),
        { topic: "phoenix", event: "phx_reply", payload: OK_EMPTY, ref: "8" },
        "V1 heartbeat reply (no join_ref key)",
      );
    } else {
      for (const [query, what] of [
        ["vsn=2.0.0", "no user param"],
        ["user=u&vsn=2.1.0", "vsn 2.1.0"],
        ["user=u&vsn=abc", "vsn abc"],
      ]) {
        step(`raw LongPoll: ${what}`);
        const got = await longpoll("GET", query);
        assert.equal(got.http, 200, `GET ?${query} (${what}): the HTTP status is always 200`);
        assert.equal(got.body.status, 403, `GET ?${query} (${what}): body ${show(got.body)}`);
      }
      step("raw LongPoll: open a V2 session");
      const open = await longpoll("GET", "user=u&vsn=2.0.0&");
      assert.equal(open.http, 200, "open: HTTP status");
      assert.match(open.contentType ?? "", /^application\/json/, "open: content-type");
      assert.equal(open.body.status, 410, `open: body ${show(open.body)}`);
      assert.equal(typeof open.body.token, "string", `open: token in ${show(open.body)}`);
      assert.deepStrictEqual(open.body.messages, [], "open: messages");
      const session = `user=u&vsn=2.0.0&token=${encodeURIComponent(open.body.token)}`;
      step("raw LongPoll: POST a heartbeat");
      const posted = await longpoll("POST", session, V2_HEARTBEAT(5));
      assert.deepStrictEqual([posted.http, posted.body.status], [200, 200], show(posted.body));
      step("raw LongPoll: poll the heartbeat reply");
      const polled = await longpoll("GET", session);
      assert.equal(polled.body.status, 200, `poll: ${show(polled.body)}`);
      assert.deepStrictEqual(
        polled.body.messages.map((m) => JSON.parse(m)),
        [[null, "5", "phoenix", "phx_reply", OK_EMPTY]],
        "poll: messages (each one serialized frame)",
      );
      step("raw LongPoll: unknown token");
      const gone = await longpoll("GET", "user=u&vsn=2.0.0&token=nope");
      assert.equal(gone.body.status, 410, `unknown token GET: ${show(gone.body)}`);
      const goneUp = await longpoll("POST", "user=u&vsn=2.0.0&token=nope", V2_HEARTBEAT(1));
      assert.equal(goneUp.body.status, 410, `unknown token POST: ${show(goneUp.body)}`);
      step("raw LongPoll: no vsn means V1");
      const v1 = await longpoll("GET", "user=u");
      const v1session = `user=u&token=${encodeURIComponent(v1.body.token)}`;
      await longpoll("POST", v1session, V1_HEARTBEAT(3));
      const v1poll = await longpoll("GET", v1session);
      assert.deepStrictEqual(
        v1poll.body.messages.map((m) => JSON.parse(m)),
        [{ topic: "phoenix", event: "phx_reply", payload: OK_EMPTY, ref: "3" }],
        "V1 heartbeat reply over LongPoll (no join_ref key)",
      );
    }

    step("phoenix.js with the user param connects");
    const ann = await connected("ann", transport);
    await join(ann, "chats/1");
  },

  // Checklist 4: join ok, `{}` by default and the join's reply map; join_ref = ref = the join's.
  async "join-ok"(transport) {
    const ann = await connected("ann", transport);
    const chat = await join(ann, "chats/1");
    const jr = chat.channel.joinRef();
    await nextFrame(ann, [jr, jr, "chats/1", "phx_reply", OK_EMPTY], "join reply");
    const lobby = await join(ann, "lobby:main", welcome("main", "ann"));
    const jr2 = lobby.channel.joinRef();
    assert.notEqual(jr2, jr, "each join has its own join_ref");
    await nextFrame(
      ann,
      [jr2, jr2, "lobby:main", "phx_reply", welcome("main", "ann")],
      "join reply with a reply map",
    );
    assert.equal(chat.channel.state, "joined", "chats/1 state");
    assert.equal(lobby.channel.state, "joined", "lobby:main state");
    await stats({ connections: 1, subscriptions: 2 }, "two joins");
    if (transport === "websocket") {
      // (A LongPoll client that stops polling is only noticed after the session timeout.)
      step("disconnect");
      ann.socket.disconnect();
      await stats({ connections: 0, subscriptions: 0 }, "after disconnect");
    }
  },

  // Checklist 4: refusals with their reasons: the channel's `unauthorized` and its own
  // `room_full`, `unmatched topic` (join_ref null) and `join crashed`; a refused join is retried
  // by phoenix.js after 1 s with a new join_ref; the socket stays up.
  async "join-refusals"(transport) {
    const ann = await connected("ann", transport);
    const cases = [
      ["chats/abc", "unauthorized", true],
      ["full:1", "room_full", true],
      ["nope/1", "unmatched topic", false],
      ["crashy:1", "join crashed", true],
    ];
    const channels = [];
    for (const [topic, reason, hasJoinRef] of cases) {
      const ch = await join(ann, topic, refusal(reason));
      const jr = ch.log.joins[0].joinRef;
      const expected = [hasJoinRef ? jr : null, jr, topic, "phx_reply", refusal(reason)];
      await nextFrame(ann, expected, `refused join of ${topic}`);
      channels.push(ch);
    }
    step("phoenix.js retries a refused join after 1 s, with a new join_ref");
    const full = channels[1];
    const second = await joinAnswer(full, 2);
    const first = full.log.joins[0];
    assert.deepStrictEqual(answerOf(second), refusal("room_full"), "retry");
    assert.notEqual(second.joinRef, first.joinRef, "the retry has a new join_ref");
    const waited = second.at - first.at;
    assert.ok(waited >= 800 && waited <= 3000, `retry after ${waited} ms, expected about 1000`);
    const jr2 = second.joinRef;
    await nextFrame(ann, [jr2, jr2, "full:1", "phx_reply", refusal("room_full")], "2nd refusal");
    for (const ch of channels) ch.channel.leave();
    step("the socket survives the refusals");
    await join(ann, "chats/2");
    assert.equal(ann.opens, 1, "one open");
    assert.deepStrictEqual(ann.closes, [], "no close");
    await stats({ connections: 1, subscriptions: 1 }, "refused joins do not subscribe");
  },

  // Checklist 4: the join reply goes out before anything else of that join: the `joined`
  // hook's direct push ([jr, null, ...]) and broadcast ([null, null, ...]) come after it, in
  // the order the hook made them; so do emits to the topic made while it joins.
  async "join-reply-first"(transport) {
    const ann = await connected("ann", transport);
    const rooms = Array.from({ length: 8 }, (_, i) => `r${i}`);
    const seen = new Map(rooms.map((room) => [room, []]));
    const chans = rooms.map((room) => {
      const ch = joinChannel(ann, `lobby:${room}`);
      ch.channel.on("hello", () => seen.get(room).push("hello"));
      ch.channel.on("arrived", () => seen.get(room).push("arrived"));
      ch.channel.joinPush.receive("ok", () => seen.get(room).push("reply"));
      return ch;
    });
    for (const [i, ch] of chans.entries()) {
      const room = rooms[i];
      const topic = ch.topic;
      const answer = await joinAnswer(ch);
      const jr = answer.joinRef;
      assert.deepStrictEqual(answerOf(answer), welcome(room, "ann"), `join ${topic}`);
      step(`${topic}: reply, then hello, then arrived`);
      await until(() => seen.get(room).length >= 3, () => `${topic}: ${show(seen.get(room))}`);
      assert.deepStrictEqual(
        seen.get(room),
        ["reply", "hello", "arrived"],
        `${topic}: phoenix.js callbacks in order`,
      );
      const reply = [jr, jr, topic, "phx_reply", welcome(room, "ann")];
      await nextFrame(ann, reply, `${topic}: first frame`);
      await nextFrame(ann, [jr, null, topic, "hello", { to: "ann" }], `${topic}: 2nd (push)`);
      await nextFrame(ann, [null, null, topic, "arrived", { user: "ann" }], `${topic}: 3rd`);
    }

    step("join lobby:busy while emits stream to it");
    let streaming = true;
    let sentCount = 0;
    let delivered = 0;
    const streamer = (async () => {
      while (streaming) {
        const tick = { channel: "lobby:busy", event: "tick", data: { i: sentCount++ } };
        delivered += (await request("POST", "/emit", tick)).json.delivered;
      }
    })();
    await sleep(50);
    const busy = joinChannel(ann, "lobby:busy");
    await joinAnswer(busy);
    await sleep(100);
    streaming = false;
    await streamer;
    const ticksReceived = () => ann.frames.list.filter((f) => f.event === "tick").length;
    await until(
      () => ticksReceived() >= delivered,
      () => `ticks: ${delivered} delivered, ${ticksReceived()} received`,
    );
    const busyFrames = ann.frames.list.filter((f) => f.topic === "lobby:busy");
    const bjr = busy.channel.joinRef();
    expectFrame(
      busyFrames[0],
      [bjr, bjr, "lobby:busy", "phx_reply", welcome("busy", "ann")],
      "first frame of lobby:busy",
    );
    const ticks = busyFrames.filter((f) => f.event === "tick").map((f) => f.payload.i);
    assert.ok(ticks.length > 0, `ticks after the join (${sentCount} emitted)`);
    assert.equal(ticks.length, delivered, "one tick per delivered emit");
    assert.deepStrictEqual(ticks, ticks.toSorted((x, y) => x - y), "ticks in order");
    for (const f of busyFrames) f.taken = true;

    step("bob joins lobby:r0: ann gets his arrival, not his hello");
    const bob = await connected("bob", transport);
    const bobs = await join(bob, "lobby:r0", welcome("r0", "bob"));
    const j = bobs.channel.joinRef();
    await nextFrame(bob, [j, j, "lobby:r0", "phx_reply", welcome("r0", "bob")], "bob: 1st frame");
    await nextFrame(bob, [j, null, "lobby:r0", "hello", { to: "bob" }], "bob: 2nd frame");
    await nextFrame(bob, [null, null, "lobby:r0", "arrived", { user: "bob" }], "bob: 3rd frame");
    await nextFrame(ann, [null, null, "lobby:r0", "arrived", { user: "bob" }], "ann: bob arrived");
    await ann.frames.none((f) => f.topic.startsWith("lobby:"), "other than bob's arrival");
  },

  // Checklist 4: a second phx_join of a joined topic (phoenix.js never sends one itself, so it
  // goes through socket.push) closes the first join (phx_close with its join_ref: the
  // Channel's onClose) and then joins anew; the old join_ref is stale from then on.
  async "duplicate-join"(transport) {
    const ann = await connected("ann", transport);
    const chat = await join(ann, "chats/1", OK_EMPTY, {}, ["news"]);
    const jr1 = chat.channel.joinRef();
    await ann.frames.of("chats/1", "phx_reply");
    step("second phx_join of chats/1");
    const jr2 = ann.raw("chats/1", "phx_join", {}, "$ref");
    await nextFrame(ann, [jr1, jr1, "chats/1", "phx_close", {}], "phx_close of the first join");
    await nextFrame(ann, [jr2, jr2, "chats/1", "phx_reply", OK_EMPTY], "second join's reply");
    await until(() => chat.log.closes.length > 0, "the first Channel's onClose");
    assert.deepStrictEqual(chat.log.closes, [{}], "onClose payload: the phx_close payload");
    assert.equal(chat.channel.state, "closed", "the first Channel is closed");
    await stats({ connections: 1, subscriptions: 1 }, "one membership after the duplicate join");
    await emit({ channel: "chats/1", event: "news", data: { n: 1 } }, 1);
    await nextFrame(ann, [null, null, "chats/1", "news", { n: 1 }], "news to the second join");
    assert.deepStrictEqual(chat.log.events, [], "the closed Channel gets nothing");
    step("a push with the new join_ref is answered, one with the old join_ref is stale");
    const ok = ann.raw("chats/1", "echo", { x: 1 }, jr2);
    await replyFrame(ann, [jr2, ok, "chats/1", "phx_reply", okWith({ x: 1 })], "echo, new ref");
    const stale = ann.raw("chats/1", "echo", { x: 2 }, jr1);
    await ann.frames.none((f) => f.ref === stale, `answering a stale push (join_ref ${jr1})`);

    // phoenix.js's own way: a second Channel of a joined topic leaves the first one
    // (phx_leave with its join_ref) before it joins.
    step("two Channels of chats/2");
    const first = await join(ann, "chats/2", OK_EMPTY, {}, ["news"]);
    const f1 = first.channel.joinRef();
    await nextFrame(ann, [f1, f1, "chats/2", "phx_reply", OK_EMPTY], "first join of chats/2");
    const second = await join(ann, "chats/2", OK_EMPTY, {}, ["news"]);
    const f2 = second.channel.joinRef();
    assert.deepStrictEqual(first.log.closes, ["leave"], "phoenix.js left the first Channel");
    const leave = await ann.frames.of("chats/2", undefined, "after the second Channel's join");
    expectFrame(leave, [f1, leave.ref, "chats/2", "phx_reply", OK_EMPTY], "first Channel left");
    await nextFrame(ann, [f1, f1, "chats/2", "phx_close", {}], "phx_close of the first Channel");
    await nextFrame(ann, [f2, f2, "chats/2", "phx_reply", OK_EMPTY], "second Channel's join");
    await emit({ channel: "chats/2", event: "news", data: { n: 2 } }, 1);
    await until(() => second.log.events.length > 0, "second Channel: news");
    assert.deepStrictEqual(payloads(second), [{ n: 2 }], "second Channel: news");
    assert.deepStrictEqual(first.log.events, [], "first Channel: nothing");
  },

  // Checklist 4: a second phx_join that comes while the first join of the topic is still
  // being decided (both in one LongPoll upload, or back to back over WebSocket). Phoenix joins
  // synchronously, so the first join's reply goes out before the socket even reads the second
  // join: [jr1, jr1, reply ok], then [jr1, jr1, phx_close], then [jr2, jr2, reply ok].
  async "duplicate-join-pending"(transport) {
    const ann = await connected("ann", transport);
    for (let id = 10; id < 15; id++) {
      const topic = `chats/${id}`;
      step(`${topic}: two phx_join in one tick`);
      const jr1 = ann.raw(topic, "phx_join", {}, "$ref");
      const jr2 = ann.raw(topic, "phx_join", {}, "$ref");
      await nextFrame(ann, [jr1, jr1, topic, "phx_reply", OK_EMPTY], `${topic}: 1st join's reply`);
      await nextFrame(ann, [jr1, jr1, topic, "phx_close", {}], `${topic}: 1st join closed`);
      await nextFrame(ann, [jr2, jr2, topic, "phx_reply", OK_EMPTY], `${topic}: 2nd join's reply`);
    }
    await stats({ connections: 1, subscriptions: 5 }, "one membership per topic");
  },

  // Checklist 6: a channel that crashed is gone for this client: pushes sent right behind the
  // crashing one (before the client saw phx_error) are not handled by it. Phoenix loses them
  // with the dead channel process (the client sees a timeout) or, once the socket has
  // processed the crash, answers [null, ref, topic, "phx_reply", {"status":"error",
  // "response":{"reason":"unmatched topic"}}]; never an ok reply from the crashed channel.
  async "crash-drops-queued-pushes"(transport) {
    const ann = await connected("ann", transport);
    const chats = [];
    for (let id = 1; id <= 4; id++) chats.push(await join(ann, `chats/${id}`));
    // Four channels at once, so that over WebSocket too some echo is read before its
    // channel's boom has been handled (over LongPoll all twelve pushes come in one upload).
    step("on each channel: boom, then two echos, all in the same tick");
    const answers = await Promise.all(
      chats.flatMap((chat) => [
        push(chat, "boom", {}, 1500),
        push(chat, "echo", { topic: chat.topic }, 1500),
        push(chat, "echo", { topic: chat.topic, n: 2 }, 1500),
      ]),
    );
    for (const [i, chat] of chats.entries()) {
      const [boom, ...echos] = answers.slice(3 * i, 3 * i + 3);
      assert.equal(boom.status, "timeout", `${chat.topic}: boom: ${show(boom)}`);
      for (const echo of echos) {
        const reply = ann.frames.list.find((f) => f.ref === echo.ref);
        const unmatched = [null, echo.ref, chat.topic, "phx_reply", refusal("unmatched topic")];
        assert.ok(
          echo.status === "timeout" || (reply && isDeepStrictEqual(asArray(reply), unmatched)),
          `${chat.topic}: a push queued behind the crash must not be handled by the crashed ` +
            `channel: got ${show(echo)}, frames:\n  ` +
            ann.frames.dump((f) => f.topic === chat.topic),
        );
      }
    }
  },

  // Checklist 5, 7: replies echo ref and join_ref; ok with the handler's value, error with its
  // reason; many pushes at once each get their own reply, in order.
  async "push-replies"(transport) {
    const ann = await connected("ann", transport);
    const chat = await join(ann, "chats/1");
    const jr = chat.channel.joinRef();
    const value = { text: "héllo ✓", list: [1, "x", null, { deep: true }], n: 2.5 };
    let ref = await expectPush(chat, "echo", value, okWith(value));
    await replyFrame(ann, [jr, ref, "chats/1", "phx_reply", okWith(value)], "echo reply");
    ref = await expectPush(chat, "fail", {}, refusal("nope"));
    await replyFrame(ann, [jr, ref, "chats/1", "phx_reply", refusal("nope")], "fail reply");
    ref = await expectPush(chat, "whatever", {}, refusal("unknown_event"));
    const unknown = [jr, ref, "chats/1", "phx_reply", refusal("unknown_event")];
    await replyFrame(ann, unknown, "unknown event reply");
    // 150 in one tick: over LongPoll phoenix.js sends them in POSTs of at most 100 lines.
    step("150 pushes at once: each reply matches its push");
    const many = Array.from({ length: 150 }, (_, i) => i);
    const answers = await Promise.all(many.map((i) => push(chat, "echo", { i })));
    assert.deepStrictEqual(
      answers.map(answerOf),
      many.map((i) => okWith({ i })),
      "replies of 150 concurrent pushes",
    );
    const refs = answers.map((a) => a.ref);
    const replyRefs = ann.frames.list.filter((f) => refs.includes(f.ref)).map((f) => f.ref);
    assert.deepStrictEqual(replyRefs, refs, "replies in the order of the pushes");
    assert.equal(ann.opens, 1, "the socket stayed up");
  },

  // Checklist 5: a push to a topic with no live channel gets `unmatched topic` with a null
  // join_ref; a push with a stale join_ref (not the topic's current one) is ignored; a null
  // join_ref is accepted. phoenix.js's Channel never sends either (it buffers pushes until
  // joined, see the leave scenario), so they go through socket.push.
  async "unmatched-topic"(transport) {
    const ann = await connected("ann", transport);
    const chat = await join(ann, "chats/1");
    const jr = chat.channel.joinRef();
    const unmatched = (ref) => [null, ref, "chats/9", "phx_reply", refusal("unmatched topic")];
    step("push to chats/9, never joined");
    let ref = ann.raw("chats/9", "echo", { a: 1 });
    await replyFrame(ann, unmatched(ref), "push to an unjoined topic");
    step("push to chats/9 with a join_ref of its own");
    ref = ann.raw("chats/9", "echo", { a: 1 }, "77");
    await replyFrame(ann, unmatched(ref), "push with a join_ref to an unjoined topic");
    step("push to joined chats/1 with a stale join_ref");
    const stale = ann.raw("chats/1", "echo", { a: 2 }, "999");
    await ann.frames.none((f) => f.ref === stale, `answering a push with join_ref 999 (${stale})`);
    step("push to joined chats/1 with a null join_ref");
    ref = ann.raw("chats/1", "echo", { a: 3 }, null);
    await replyFrame(ann, [jr, ref, "chats/1", "phx_reply", okWith({ a: 3 })], "null join_ref");
    step("the Channel still works");
    await expectPush(chat, "echo", { a: 4 }, okWith({ a: 4 }));
  },

  // Checklist 6: leave -> ok reply (with the leave's ref), then [jr, jr, topic, "phx_close", {}];
  // phoenix.js closes the Channel at once ("leave"). A leave of a topic not joined gets ok with
  // its own join_ref and no phx_close; a leave with a stale join_ref is ignored.
  async leave(transport) {
    const ann = await connected("ann", transport);
    const chat = await join(ann, "chats/1", OK_EMPTY, {}, ["news"]);
    const jr = chat.channel.joinRef();
    await ann.frames.of("chats/1", "phx_reply");
    step("leave chats/1");
    const leaving = chat.channel.leave();
    assert.deepStrictEqual(chat.log.closes, ["leave"], 'phoenix.js fires onClose("leave") at once');
    await nextFrame(ann, [jr, leaving.ref, "chats/1", "phx_reply", OK_EMPTY], "leave reply");
    await nextFrame(ann, [jr, jr, "chats/1", "phx_close", {}], "phx_close after the leave reply");
    await stats({ connections: 1, subscriptions: 0 }, "after leave");
    await emit({ channel: "chats/1", event: "news", data: { n: 1 } }, 0);
    await ann.frames.none((f) => f.topic === "chats/1", "for chats/1 after leaving");
    assert.deepStrictEqual(chat.log.events, [], "the left Channel got nothing");

    step("phoenix.js buffers a push on a left Channel: it is never sent and times out");
    const late = await push(chat, "echo", { late: true }, 300);
    assert.equal(late.status, "timeout", `push after leave: ${show(late)}`);
    await ann.frames.none((f) => f.ref === late.ref, "answering the buffered push");

    step("leave of a topic not joined");
    const notJoined = ann.raw("chats/5", "phx_leave", {}, "50");
    await replyFrame(ann, ["50", notJoined, "chats/5", "phx_reply", OK_EMPTY], "leave, not joined");
    await ann.frames.none((f) => f.topic === "chats/5", "after the leave of a topic not joined");

    step("leave right after join, before its reply");
    const quick = joinChannel(ann, "chats/3");
    const q = quick.channel.joinRef();
    const quickLeave = quick.channel.leave();
    await nextFrame(ann, [q, q, "chats/3", "phx_reply", OK_EMPTY], "chats/3: join reply");
    await nextFrame(ann, [q, quickLeave.ref, "chats/3", "phx_reply", OK_EMPTY], "chats/3: leave");
    await nextFrame(ann, [q, q, "chats/3", "phx_close", {}], "chats/3: phx_close");
    await stats({ connections: 1, subscriptions: 0 }, "after the quick leave");

    step("leave with a stale join_ref");
    const two = await join(ann, "chats/2", OK_EMPTY, {}, ["news"]);
    await ann.frames.of("chats/2", "phx_reply");
    const staleLeave = ann.raw("chats/2", "phx_leave", {}, "999");
    await ann.frames.none(
      (f) => f.ref === staleLeave || f.topic === "chats/2",
      "answering the stale leave",
    );
    await emit({ channel: "chats/2", event: "news", data: { n: 2 } }, 1);
    await until(() => two.log.events.length > 0, "chats/2 still joined: news");
    assert.deepStrictEqual(payloads(two), [{ n: 2 }], "chats/2 events");
  },

  // Checklist 6: a handle_in panic -> [jr, jr, topic, "phx_error", {"reason":"channel_crash"}];
  // phoenix.js's onError gets the payload, and the Channel rejoins by itself after about 1 s
  // with a new join_ref, then gets emits again.
  async "crash-rejoin"(transport) {
    const ann = await connected("ann", transport);
    const chat = await join(ann, "chats/1", OK_EMPTY, {}, ["news"]);
    const jr1 = chat.channel.joinRef();
    await ann.frames.of("chats/1", "phx_reply");
    step("push boom");
    push(chat, "boom", {});
    const error = await ann.frames.of("chats/1", undefined, "phx_error after boom");
    expectFrame(error, [jr1, jr1, "chats/1", "phx_error", { reason: "channel_crash" }], "crash");
    await until(() => chat.log.errors.length > 0, "Channel onError");
    assert.deepStrictEqual(chat.log.errors[0].payload, { reason: "channel_crash" }, "onError");
    step("automatic rejoin");
    const rejoin = await joinAnswer(chat, 2);
    assert.equal(rejoin.status, "ok", `rejoin: ${show(rejoin)}`);
    const jr2 = rejoin.joinRef;
    assert.notEqual(jr2, jr1, "the rejoin has a new join_ref");
    const waited = rejoin.at - error.at;
    assert.ok(waited >= 800 && waited <= 3000, `rejoined ${waited} ms after phx_error, not ~1 s`);
    await nextFrame(ann, [jr2, jr2, "chats/1", "phx_reply", OK_EMPTY], "rejoin reply");
    await stats({ connections: 1, subscriptions: 1 }, "after the rejoin");
    await emit({ channel: "chats/1", event: "news", data: { after: "crash" } }, 1);
    await until(() => chat.log.events.length > 0, "news after the rejoin");
    assert.deepStrictEqual(payloads(chat), [{ after: "crash" }], "events after the rejoin");
    await expectPush(chat, "echo", { again: 1 }, okWith({ again: 1 }));
    assert.equal(ann.opens, 1, "the socket stayed up");
  },

  // Checklist 7: an emit reaches each member once as [null, null, topic, event, payload], and
  // nobody else; 200 emits arrive in order.
  async broadcasts(transport) {
    const ann = await connected("ann", transport);
    const bob = await connected("bob", transport);
    const cy = await connected("cy", transport);
    const a = await join(ann, "chats/1", OK_EMPTY, {}, ["news"]);
    const b = await join(bob, "chats/1", OK_EMPTY, {}, ["news"]);
    const c = await join(cy, "chats/2", OK_EMPTY, {}, ["news"]);
    for (const client of [ann, bob, cy]) {
      await client.frames.next((f) => f.event === "phx_reply", "join reply");
    }
    await emit({ channel: "chats/1", event: "news", data: { n: 1 } }, 2);
    for (const [client, ch] of [
      [ann, a],
      [bob, b],
    ]) {
      await nextFrame(client, [null, null, "chats/1", "news", { n: 1 }], `${client.who}: news`);
      await until(() => ch.log.events.length > 0, `${client.who}: channel.on("news")`);
    }
    step("one copy each, nothing for chats/2");
    await Promise.all([
      ann.frames.none(() => true, "after the one news"),
      bob.frames.none(() => true, "after the one news"),
      cy.frames.none(() => true, "for chats/1"),
    ]);
    assert.deepStrictEqual(payloads(a), [{ n: 1 }], "ann: news");
    assert.deepStrictEqual(payloads(b), [{ n: 1 }], "bob: news");

    step("200 emits to chats/2, in order");
    const many = Array.from({ length: 200 }, (_, i) => i);
    for (const i of many) {
      const { status, json } = await request("POST", "/emit", {
        channel: "chats/2",
        event: "news",
        data: { i },
      });
      assert.deepStrictEqual([status, json], [200, { delivered: 1 }], `emit ${i}`);
    }
    await until(() => c.log.events.length >= 200, () => `cy: ${c.log.events.length} of 200 news`);
    assert.deepStrictEqual(payloads(c), many.map((i) => ({ i })), "cy: news in order");
    await sleep(QUIET_MS);
    assert.equal(c.log.events.length, 200, "cy: exactly 200 news");
  },

  // Checklist 3, 8: heartbeats every 100 ms are answered
  // [null, ref, "phoenix", "phx_reply", {"status":"ok","response":{}}] and keep the socket up.
  // LongPoll sends none (phoenix.js sets skipHeartbeat), so there socket.ping() sends them.
  async heartbeat(transport) {
    const ann = await connected("ann", transport, { heartbeatIntervalMs: 100 });
    const chat = await join(ann, "chats/1", OK_EMPTY, {}, ["news"]);
    const started = Date.now();
    if (transport === "websocket") {
      step("1.5 s of heartbeats");
      await sleep(1500);
      const sent = ann.wire
        .filter((w) => w.dir === "out" && !w.binary)
        .map((w) => JSON.parse(w.data))
        .filter((m) => m[2] === "phoenix");
      assert.ok(sent.length >= 5, `at least 5 heartbeats sent in 1.5 s, got ${sent.length}`);
      for (const m of sent) {
        assert.deepStrictEqual(m, [null, m[1], "phoenix", "heartbeat", {}], "heartbeat frame");
      }
      const replies = ann.frames.list.filter((f) => f.topic === "phoenix");
      assert.ok(
        replies.length >= sent.length - 1,
        `${replies.length} heartbeat replies for ${sent.length} heartbeats`,
      );
      for (const [i, f] of replies.entries()) {
        const expected = [null, sent[i][1], "phoenix", "phx_reply", OK_EMPTY];
        expectFrame(f, expected, `heartbeat reply ${i}`);
      }
    } else {
      step("pings over LongPoll for 1.5 s");
      let pongs = 0;
      while (Date.now() - started < 1500) {
        const rtt = await new Promise((resolve) => {
          assert.ok(ann.socket.ping(resolve), "ping sent");
        });
        assert.ok(rtt >= 0, "ping rtt");
        pongs++;
        await sleep(100);
      }
      assert.ok(pongs >= 5, `pongs: ${pongs}`);
      const replies = ann.frames.list.filter((f) => f.topic === "phoenix");
      assert.equal(replies.length, pongs, "one reply per ping");
      for (const f of replies) {
        expectFrame(f, [null, f.ref, "phoenix", "phx_reply", OK_EMPTY], "ping reply");
      }
    }
    assert.deepStrictEqual(ann.errors, [], "no socket error (no heartbeat_timeout)");
    assert.deepStrictEqual(ann.closes, [], "no socket close");
    assert.deepStrictEqual(chat.log.errors, [], "no channel error");
    assert.equal(ann.opens, 1, "one open");
    assert.ok(ann.socket.isConnected(), "still connected");
    await emit({ channel: "chats/1", event: "news", data: { alive: true } }, 1);
    await until(() => chat.log.events.length > 0, "news after the heartbeats");
  },

  // Checklist 8: POST /close-all closes every socket (WebSocket: 1001, not 1000; LongPoll: the
  // session is gone, 410 -> close 3410); phoenix.js reconnects and the Channel rejoins with a new
  // join_ref and gets later emits.
  async reconnect(transport) {
    const ann = await connected("ann", transport);
    const chat = await join(ann, "chats/1", OK_EMPTY, {}, ["news"]);
    const jr1 = chat.channel.joinRef();
    await emit({ channel: "chats/1", event: "news", data: { n: 1 } }, 1);
    await until(() => chat.log.events.length === 1, "news before the close");
    step("POST /close-all");
    const closed = await request("POST", "/close-all");
    assert.equal(closed.status, 200, "POST /close-all");
    await until(() => ann.closes.length > 0, "socket onClose after /close-all");
    const expectedClose = transport === "websocket" ? 1001 : 3410;
    assert.equal(ann.closes[0].code, expectedClose, `close ${show(ann.closes[0])}`);
    await until(() => chat.log.errors.length > 0, "Channel onError after the close");
    const chanError = chat.log.errors[0].payload;
    assert.equal(chanError?.source, "transport", `Channel error ${show(chanError)}`);
    step("reconnect and rejoin");
    await ann.opened(2);
    const rejoin = await joinAnswer(chat, 2);
    assert.equal(rejoin.status, "ok", `rejoin ${show(rejoin)}`);
    assert.notEqual(rejoin.joinRef, jr1, "the rejoin has a new join_ref");
    await stats({ connections: 1, subscriptions: 1 }, "the old socket gone, the new one joined");
    await emit({ channel: "chats/1", event: "news", data: { n: 2 } }, 1);
    await until(() => chat.log.events.length === 2, "news after the rejoin");
    assert.deepStrictEqual(payloads(chat), [{ n: 1 }, { n: 2 }], "news");
    const last = ann.frames.list.filter((f) => f.event === "news").at(-1);
    expectFrame(last, [null, null, "chats/1", "news", { n: 2 }], "news after the rejoin");
  },

  // Checklist 2, 10: binary payloads. WebSocket: the client's ArrayBuffer push goes up as a
  // binary frame (kind 0); the server's push of it comes back as a binary push frame
  // (kind 0, its join_ref) before the reply, and an emit of binary data as a binary broadcast
  // (kind 2); phoenix.js hands both over as ArrayBuffers. LongPoll has no binary downlink:
  // phoenix.js sends its ArrayBuffer push as a base64 line, and a binary payload from the
  // server arrives as the JSON object {"binary": "<base64>"}.
  async binary(transport) {
    const ann = await connected("ann", transport);
    const chat = await join(ann, "chats/1", OK_EMPTY, {}, ["bin", "file"]);
    const jr = chat.channel.joinRef();
    await ann.frames.of("chats/1", "phx_reply");
    const bytes = Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00, 0xff, 0x7b]);
    step("push an ArrayBuffer");
    const ref = await expectPush(chat, "bin", new Uint8Array(bytes).buffer, OK_EMPTY);
    const back = await ann.frames.of("chats/1", "bin");
    const reply = await ann.frames.reply(ref);
    expectFrame(reply, [jr, ref, "chats/1", "phx_reply", OK_EMPTY], "reply to the binary push");
    assert.ok(
      ann.frames.list.indexOf(back) < ann.frames.list.indexOf(reply),
      "the push made in handle_in comes before its reply",
    );
    const text = "hi ✓ \u0000 bytes";
    if (transport === "websocket") {
      const sent = ann.wire.find((w) => w.dir === "out" && w.binary);
      assert.ok(sent, "the ArrayBuffer push went as a binary frame");
      assert.equal(sent.data[0], 0, "client binary frame kind 0");
      assert.ok(back.payload instanceof ArrayBuffer, `binary push payload: ${show(back.payload)}`);
      expectFrame({ ...back, payload: null }, [jr, null, "chats/1", "bin", null], "binary push");
      assert.deepStrictEqual(bytesOf(back.payload), bytes, "binary push bytes");
      const raw = ann.wire.find((w) => w.dir === "in" && w.binary);
      // kind 0 from the server: join_ref, topic and event lengths, then those, then the bytes.
      const header = Buffer.from([0, jr.length, "chats/1".length, "bin".length]);
      assert.deepStrictEqual(
        raw?.data,
        Buffer.concat([header, Buffer.from(`${jr}chats/1bin`), bytes]),
        "server push frame bytes (kind 0: join_ref, topic, event)",
      );
      step("emit binary data");
      await emit({ channel: "chats/1", event: "file", data: text, binary: true }, 1);
      const file = await ann.frames.of("chats/1", "file");
      assert.ok(file.payload instanceof ArrayBuffer, `binary emit payload: ${show(file.payload)}`);
      const broadcast = [null, null, "chats/1", "file", null];
      expectFrame({ ...file, payload: null }, broadcast, "binary broadcast frame");
      assert.deepStrictEqual(bytesOf(file.payload), Buffer.from(text), "binary broadcast bytes");
      const rawFile = ann.wire.filter((w) => w.dir === "in" && w.binary).at(-1);
      assert.equal(rawFile.data[0], 2, "server broadcast frame kind 2");
    } else {
      const base64 = { binary: bytes.toString("base64") };
      expectFrame(back, [jr, null, "chats/1", "bin", base64], "binary push over LongPoll");
      step("emit binary data");
      await emit({ channel: "chats/1", event: "file", data: text, binary: true }, 1);
      await nextFrame(
        ann,
        [null, null, "chats/1", "file", { binary: Buffer.from(text).toString("base64") }],
        "binary broadcast over LongPoll",
      );
    }
    await until(() => chat.log.events.length >= 2, "channel.on bin and file");
    assert.deepStrictEqual(chat.log.events.map((e) => e.event), ["bin", "file"], "events");
  },

  // The 1.7.23 client (transport is required there): join, replies, refusals, the join reply
  // first, broadcasts, binary both ways, leave.
  async phoenix17(transport) {
    const old = await connected("old", transport, { lib: Socket17 });
    const chat = await join(old, "chats/1", OK_EMPTY, {}, ["news"]);
    const jr = chat.channel.joinRef();
    await nextFrame(old, [jr, jr, "chats/1", "phx_reply", OK_EMPTY], "join reply");
    const ref = await expectPush(chat, "echo", { v: "1.7" }, okWith({ v: "1.7" }));
    await replyFrame(old, [jr, ref, "chats/1", "phx_reply", okWith({ v: "1.7" })], "echo reply");
    const failRef = await expectPush(chat, "fail", {}, refusal("nope"));
    await replyFrame(old, [jr, failRef, "chats/1", "phx_reply", refusal("nope")], "fail reply");
    await join(old, "full:1", refusal("room_full"));
    const lobby = await join(old, "lobby:x", welcome("x", "old"));
    const l = lobby.channel.joinRef();
    await nextFrame(old, [l, l, "lobby:x", "phx_reply", welcome("x", "old")], "lobby reply first");
    await nextFrame(old, [l, null, "lobby:x", "hello", { to: "old" }], "lobby hello");
    await nextFrame(old, [null, null, "lobby:x", "arrived", { user: "old" }], "lobby arrived");
    await emit({ channel: "chats/1", event: "news", data: { n: 17 } }, 1);
    await until(() => chat.log.events.length > 0, "news");
    assert.deepStrictEqual(payloads(chat), [{ n: 17 }], "news");

    step("1.7: binary both ways");
    const bytes = Buffer.from([1, 2, 3, 0xff]);
    await expectPush(chat, "bin", new Uint8Array(bytes).buffer, OK_EMPTY);
    const back = await old.frames.of("chats/1", "bin");
    assert.ok(back.payload instanceof ArrayBuffer, `1.7: binary push: ${show(back.payload)}`);
    expectFrame({ ...back, payload: null }, [jr, null, "chats/1", "bin", null], "1.7: binary push");
    assert.deepStrictEqual(bytesOf(back.payload), bytes, "1.7: binary push bytes");
    await emit({ channel: "chats/1", event: "file", data: "abc", binary: true }, 1);
    const file = await old.frames.of("chats/1", "file");
    assert.deepStrictEqual(
      [file.join_ref, file.ref, bytesOf(file.payload)],
      [null, null, Buffer.from("abc")],
      "1.7: binary broadcast",
    );

    const leaving = chat.channel.leave();
    await replyFrame(old, [jr, leaving.ref, "chats/1", "phx_reply", OK_EMPTY], "leave reply");
    const close = await old.frames.of("chats/1", "phx_close");
    expectFrame(close, [jr, jr, "chats/1", "phx_close", {}], "phx_close");
  },

  // The `authToken` option (1.8): over WebSocket a subprotocol (the server must select
  // `phoenix`, else ws aborts the connection), over LongPoll the X-Phoenix-AuthToken header; it
  // reaches the connect hook as the auth {"token": T}. A token the hook refuses: no open.
  async "auth-token"(transport) {
    // 8 bytes: btoa pads it with "=", which phoenix.js strips.
    const token = "tok-en_1";
    const ann = await connected("ann", transport, { authToken: token });
    if (transport === "websocket") {
      const connect = ann.wire.find((w) => w.dir === "connect");
      assert.deepStrictEqual(
        connect.protocols,
        ["phoenix", `base64url.bearer.phx.${btoa(token).replace(/=/g, "")}`],
        "offered subprotocols",
      );
      const open = ann.wire.find((w) => w.dir === "open");
      assert.equal(open?.protocol, "phoenix", "selected subprotocol");
    }
    const chat = await join(ann, "chats/1");
    await expectPush(chat, "whoami", {}, okWith({ user: "ann", token }));
    step("a socket without authToken");
    const bob = await connected("bob", transport);
    const bobs = await join(bob, "chats/1");
    await expectPush(bobs, "whoami", {}, okWith({ user: "bob", token: null }));
    step("a token the connect hook refuses");
    const bad = new Client("mallory", transport, { authToken: "bad-token" }).connect();
    await until(() => bad.errors.length > 0, "mallory: socket error");
    if (transport === "longpoll") {
      assert.equal(bad.errors[0], 403, `mallory: error ${show(bad.errors)}`);
    }
    await sleep(QUIET_MS);
    assert.equal(bad.opens, 0, "mallory: never open");
    bad.socket.disconnect();
  },

  // The V1 serializer (vsn 1.0.0, through phoenix.js's encode/decode options): objects both ways,
  // and the server's have no join_ref key (as Phoenix's V1 serializer: ref, topic, event,
  // payload).
  async v1(transport) {
    const ann = await connected("ann", transport, {
      vsn: "1.0.0",
      encode: ({ topic, event, payload, ref, join_ref }, cb) =>
        cb(JSON.stringify({ topic, event, payload, ref, join_ref })),
      decode: (raw, cb) => {
        const { topic, event, payload, ref, join_ref } = JSON.parse(raw);
        cb({ join_ref: join_ref ?? null, ref: ref ?? null, topic, event, payload });
      },
    });
    const url = ann.wire.find((w) => w.dir === "connect").url;
    assert.match(url, /[?&]vsn=1\.0\.0$/, "vsn=1.0.0 in the URL");
    const v1 = (topic, event, payload, ref) => ({ topic, event, payload, ref });
    const chat = await join(ann, "chats/1", OK_EMPTY, {}, ["news"]);
    const jr = chat.channel.joinRef();
    const ref = await expectPush(chat, "echo", { v: 1 }, okWith({ v: 1 }));
    const lobby = await join(ann, "lobby:v1", welcome("v1", "ann"), {}, ["hello", "arrived"]);
    const ljr = lobby.channel.joinRef();
    await emit({ channel: "chats/1", event: "news", data: { n: 1 } }, 1);
    await until(
      () => chat.log.events.length > 0 && lobby.log.events.length >= 2,
      "news, hello and arrived",
    );
    const pong = await new Promise((resolve) => ann.socket.ping(resolve));
    assert.ok(pong >= 0, "ping");
    const pingRef = JSON.parse(ann.wire.filter((w) => w.dir === "out").at(-1).data).ref;
    step("an unmatched topic in V1");
    const nope = await join(ann, "nope/1", refusal("unmatched topic"));
    const nopeRef = nope.log.joins[0].joinRef;
    const nopeLeave = nope.channel.leave();
    await until(() => received(ann).length >= 9, "the leave reply of nope/1");
    assert.deepStrictEqual(
      received(ann),
      [
        v1("chats/1", "phx_reply", OK_EMPTY, jr),
        v1("chats/1", "phx_reply", okWith({ v: 1 }), ref),
        v1("lobby:v1", "phx_reply", welcome("v1", "ann"), ljr),
        v1("lobby:v1", "hello", { to: "ann" }, null),
        v1("lobby:v1", "arrived", { user: "ann" }, null),
        v1("chats/1", "news", { n: 1 }, null),
        v1("phoenix", "phx_reply", OK_EMPTY, pingRef),
        v1("nope/1", "phx_reply", refusal("unmatched topic"), nopeRef),
        v1("nope/1", "phx_reply", OK_EMPTY, nopeLeave.ref),
      ],
      "V1 frames from the server",
    );
    for (const frame of received(ann)) {
      const keys = Object.keys(frame).sort();
      assert.deepStrictEqual(keys, ["event", "payload", "ref", "topic"], `keys of ${show(frame)}`);
    }
    step("leave in V1");
    const leaving = chat.channel.leave();
    await until(() => received(ann).length >= 11, "leave reply and phx_close");
    assert.deepStrictEqual(
      received(ann).slice(9),
      [v1("chats/1", "phx_reply", OK_EMPTY, leaving.ref), v1("chats/1", "phx_close", {}, jr)],
      "V1 leave reply and phx_close",
    );
  },

  // A socket.io-client member and a phoenix.js member of chats/1 get the same emit, and each
  // other's broadcasts.
  async mixed(transport) {
    step("socket.io-client connects and subscribes");
    const sio = io(URL, {
      forceNew: true,
      reconnection: false,
      transports: ["websocket"],
      query: { user: "sio" },
    });
    openSockets.add(sio);
    const sioEvents = [];
    sio.onAny((event, ...args) => sioEvents.push({ event, args }));
    await until(() => sio.connected, "socket.io-client connected");
    const ack = await sio.timeout(STEP_MS).emitWithAck("subscribe", "chats/1");
    assert.deepStrictEqual(ack, { status: "ok" }, "socket.io subscribe ack");
    const ann = await connected("ann", transport);
    const chat = await join(ann, "chats/1", OK_EMPTY, {}, ["news", "shout"]);
    await ann.frames.of("chats/1", "phx_reply");
    await stats({ connections: 2, subscriptions: 2 }, "both members");

    await emit({ channel: "chats/1", event: "news", data: { n: 1 } }, 2);
    await nextFrame(ann, [null, null, "chats/1", "news", { n: 1 }], "phoenix member: news");
    await until(() => sioEvents.length > 0, "socket.io member: news");
    assert.deepStrictEqual(
      sioEvents,
      [{ event: "chats/1/news", args: [{ n: 1 }] }],
      "socket.io member: news",
    );

    step("the phoenix member shouts");
    const shoutRef = await expectPush(chat, "shout", { from: "ann" }, OK_EMPTY);
    const own = await ann.frames.of("chats/1", "shout");
    expectFrame(own, [null, null, "chats/1", "shout", { from: "ann" }], "its own shout");
    const shoutReply = await ann.frames.reply(shoutRef);
    const jr = chat.channel.joinRef();
    expectFrame(shoutReply, [jr, shoutRef, "chats/1", "phx_reply", OK_EMPTY], "shout reply");
    assert.ok(
      ann.frames.list.indexOf(own) < ann.frames.list.indexOf(shoutReply),
      "a broadcast made in handle_in comes before the reply (as from one Phoenix channel process)",
    );
    await until(() => sioEvents.length > 1, "socket.io member: ann's shout");
    assert.deepStrictEqual(
      sioEvents[1],
      { event: "chats/1/shout", args: [{ from: "ann" }] },
      "socket.io member: ann's shout",
    );

    step("the socket.io member shouts");
    const reply = await sio.timeout(STEP_MS).emitWithAck("chats/1/shout", { from: "sio" });
    assert.deepStrictEqual(reply, { status: "ok" }, "socket.io shout ack");
    await nextFrame(ann, [null, null, "chats/1", "shout", { from: "sio" }], "sio's shout");
    await ann.frames.none((f) => f.topic === "chats/1", "beyond one copy of each");
    assert.deepStrictEqual(
      chat.log.events.map((e) => [e.event, e.payload]),
      [
        ["news", { n: 1 }],
        ["shout", { from: "ann" }],
        ["shout", { from: "sio" }],
      ],
      "phoenix member: channel.on events",
    );
  },
};

// Which transports each scenario runs over (phoenix17 needs a transport class and has no
// working LongPoll on Node; custom encode/decode are not used over LongPoll).
const WEBSOCKET_ONLY = new Set(["phoenix17", "v1"]);

const byName = {};
for (const [name, scenario] of Object.entries(scenarios)) {
  for (const transport of ["websocket", "longpoll"]) {
    if (transport === "longpoll" && WEBSOCKET_ONLY.has(name)) continue;
    byName[`${name}:${transport}`] = () => scenario(transport);
  }
}

run("phoenix_client.mjs", byName, { where: URL, timeoutMs: SCENARIO_TIMEOUT_MS });
