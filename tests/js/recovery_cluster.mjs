// Connection state recovery ACROSS THE NODES of a cluster, through Redis: two `chat` example
// nodes (A and B, recovery on with its defaults, `--redis`) sharing one redis-server, which
// tests/recovery_cluster.rs starts (and kills and starts again, empty, when asked). Clients are
// the official socket.io-client and phoenix packages, and a plain WebSocket (`ws`).
//
// What is specified (one scenario each):
// - `other-node`: a socket.io-client behind a TCP proxy (a load balancer) is on A; the
//   network drops, 100 messages are posted meanwhile, alternating between A's and B's
//   `POST /chat`, each awaited; the client comes back through the proxy, which now sends it to
//   B: recovered (`socket.recovered`, same `socket.id`), the 100 once each in the order posted
//   with strictly increasing offsets, then live messages posted on A and on B, once each.
// - `same-node-last-member`: the client is A's only member of chats/1; it drops, 50 messages
//   are posted on B only; it comes back to A: recovered, the 50 once each, in order.
// - `one-offset`: a member on A and one on B see the same messages with the same offsets
//   (one offset per event in the cluster), strictly increasing, even though A has carried
//   an event B never saw (in `private/vip`, where B has no member).
// - `redis-restart`: clients dropped (one coming back to A, one to B); messages posted; Redis
//   SIGKILLed and started again empty; more messages once both nodes serve again; the clients
//   come back: fresh sessions (`recovered` false, a new id, in no channel until they subscribe
//   again), never "recovered" with a silent gap.
// - `phoenix-since-other-node`: phoenix.js on A gets a message and its offset (the message
//   ref), leaves; 20 messages posted (alternating A / B); phoenix.js on B joins with
//   `{since}`: after the join reply the 20 in order once each, then `recovery`
//   `{recovered: true, replayed: 20}`, then live messages.
// - `plain-since-other-node`: the same with a plain WebSocket (events carry `offset`).
// - `since-after-redis-restart`: a `since` taken before Redis was restarted empty, used after
//   it on A and on B: `{recovered: false}` and nothing replayed.
//
// Offsets are compared as decimal numbers; an offset shaped like a Redis stream id
// (`<ms>-<seq>`) is compared as such (the spec does not fix their text, only their order).
//
// The proxy: a node:net server on 127.0.0.1 that pipes each accepted connection to its current
// target node. `drop()` resets every proxied connection at once (RST both ways: no WebSocket
// close, no Socket.IO disconnect: a network drop); while `refusing`, it resets every new
// connection as soon as it is accepted, so that the client stays away (it retries every 100 to
// 200 ms and counts connect_errors) until the scenario lets it back.
//
// Usage: NODE_A=http://127.0.0.1:P1 NODE_B=http://127.0.0.1:P2 REDIS_PORT=P \
//        node tests/js/recovery_cluster.mjs <scenario>
// The test answers `@@ kill-redis` and `@@ start-redis` (SIGKILL Redis by PID; start it again
// on the same port, empty) on stdin with `ok` or an error. Lines starting with `#` are
// measurements, for the log. Exit code 0 = pass; on failure a message goes to stderr, exit 1.
//
// A check of this harness against single-node recovery: RECOVERY_CLUSTER_ONE_NODE=1 makes
// every "B" the node A (then `other-node`, `same-node-last-member`, `one-offset` and the two
// `since` scenarios on the other node pass against a runtime whose recovery is per node).
import assert from "node:assert/strict";
import net from "node:net";
import { Socket } from "phoenix";
import { io } from "socket.io-client";
import WebSocket from "ws";
import { REDIS_PORT, control, redis } from "./cluster.mjs";
import { step, sleep, within, abort, openSockets, poller, run } from "./harness.mjs";

const trim = (url) => (url ?? "").trim().replace(/\/+$/, "");
const ONE_NODE = process.env.RECOVERY_CLUSTER_ONE_NODE === "1";
const NODES = {
  A: trim(process.env.NODE_A),
  B: trim(ONE_NODE ? process.env.NODE_A : process.env.NODE_B),
};
const PREFIX = "tidings:";
const CHANNEL = "chats/1";
const MESSAGE = `${CHANNEL}/message`;

const SCENARIO_TIMEOUT_MS = 60_000;
// How long we wait to be sure that nothing more arrives.
const QUIET_MS = 400;
// How long an HTTP request or an ack may take.
const HTTP_MS = 5_000;
const ACK_MS = 5_000;
// How long a (re)connection may take once the proxy lets it through.
const RECONNECT_MS = 8_000;
// How long expected messages may take to arrive.
const EVENTS_MS = 8_000;
// How long the nodes may take to deliver across the cluster (at the start, after a restart).
const READY_MS = 15_000;
// Messages missed while away, per scenario.
const OTHER_NODE_MISSED = 100;
const LAST_MEMBER_MISSED = 50;
const ONE_OFFSET_MESSAGES = 10;
const SINCE_MISSED = 20;

const info = (line) => console.log(`# ${line}`);
const range = (n) => Array.from({ length: n }, (_, i) => i);
const show = (v) => JSON.stringify(v);
// The node a message of a run alternating A / B is posted on: A first.
const alternate = (i) => (i % 2 === 0 ? "A" : "B");
// Polls a check every 20 ms (see `poller`).
const until = poller(20);

// ---------------------------------------------------------------------------
// The test driving us (`control` of cluster.mjs): `@@ action` out, `ok` back.

/** SIGKILLs Redis, waits `downMs`, starts it again empty on the same port. */
async function restartRedis(downMs = 1_000) {
  await control("kill-redis");
  await sleep(downMs);
  await control("start-redis");
}

// ---------------------------------------------------------------------------
// Redis, spoken directly (`redis` of cluster.mjs), for the log only.

/** How many nodes listen to `channel` in Redis (PUBSUB NUMSUB), or a text saying why not. */
async function numsub(channel) {
  try {
    const [, count] = await redis("PUBSUB", "NUMSUB", `${PREFIX}${channel}`);
    return count;
  } catch (err) {
    return `unknown (${err.message})`;
  }
}

// ---------------------------------------------------------------------------
// Offsets

/** An offset as a comparable key: [n] for a decimal, [ms, seq] for a Redis stream id. */
function offsetKey(offset, what) {
  const text = typeof offset === "number" && Number.isSafeInteger(offset) ? String(offset) : offset;
  if (typeof text === "string") {
    if (/^[0-9]+$/.test(text)) return [BigInt(text)];
    const id = /^([0-9]+)-([0-9]+)$/.exec(text);
    if (id) return [BigInt(id[1]), BigInt(id[2])];
  }
  assert.fail(`${what}: ${show(offset)} is no offset (a decimal number, or a Redis stream id)`);
}

/** Whether offset `a` comes after offset `b` (both of the same shape). */
function isAfter(a, b, what) {
  const [ka, kb] = [offsetKey(a, what), offsetKey(b, what)];
  assert.equal(ka.length, kb.length, `${what}: offsets of two shapes: ${show(a)} and ${show(b)}`);
  for (let i = 0; i < ka.length; i++) {
    if (ka[i] !== kb[i]) return ka[i] > kb[i];
  }
  return false;
}

/** Asserts that `offsets` strictly increase, all after `after` (when given). */
function assertIncreasing(offsets, after, what) {
  let previous = after;
  for (const [i, offset] of offsets.entries()) {
    offsetKey(offset, what);
    if (previous !== undefined && previous !== null) {
      assert.ok(
        isAfter(offset, previous, what),
        `${what}: offsets must strictly increase: ${show(offset)} (#${i}) after ${show(previous)}; all: ${show(offsets)}`,
      );
    }
    previous = offset;
  }
}

// ---------------------------------------------------------------------------
// HTTP

/** POST /chat on `node` ("A" or "B"); resolves with the HTTP status. */
async function postStatus(node, message) {
  const res = await fetch(`${NODES[node]}/chat`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ message }),
    signal: AbortSignal.timeout(HTTP_MS),
  });
  await res.text();
  return res.status;
}

/** The node each message was posted on. */
const POSTED = new Map();

/** POST /chat on `node`, which must answer 204. */
async function post(node, message) {
  POSTED.set(message, node);
  const status = await postStatus(node, message);
  assert.equal(status, 204, `POST /chat ${show(message)} on node ${node}: HTTP status`);
}

/** Posts `texts` in this order, each awaited, on the node `nodeOf(i)` says. */
async function postAll(texts, nodeOf) {
  step(`posting ${texts.length} messages (${texts[0]} .. ${texts.at(-1)})`);
  const started = performance.now();
  for (const [i, text] of texts.entries()) await post(nodeOf(i), text);
  return performance.now() - started;
}

// ---------------------------------------------------------------------------
// The proxy (a load balancer in front of A and B)

class Proxy {
  constructor(name, target) {
    this.name = name;
    this.target = target;
    this.refusing = false;
    this.refused = 0;
    // The node each accepted (forwarded) connection went to, in order.
    this.routed = [];
    this.pairs = new Set();
  }

  async listen() {
    this.server = net.createServer((client) => this.accept(client));
    await new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(0, "127.0.0.1", resolve);
    });
    openSockets.add(this);
    return this;
  }

  get url() {
    return `http://127.0.0.1:${this.server.address().port}`;
  }

  accept(client) {
    if (this.refusing) {
      this.refused += 1;
      client.on("error", () => {});
      reset(client);
      return;
    }
    const target = this.target;
    this.routed.push(target);
    const port = Number(new URL(NODES[target]).port);
    const upstream = net.connect(port, "127.0.0.1");
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const pair = { client, upstream };
    this.pairs.add(pair);
    const end = () => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) {
      s.on("error", end);
      s.on("close", end);
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** Resets every connection it carries, both ways (a network drop). */
  drop() {
    step(`proxy ${this.name}: drop ${this.pairs.size} connection(s)`);
    for (const { client, upstream } of this.pairs) {
      reset(client);
      reset(upstream);
    }
    this.pairs.clear();
  }

  close() {
    for (const { client, upstream } of this.pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.pairs.clear();
    this.server?.close();
  }
}

function reset(socket) {
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}

// ---------------------------------------------------------------------------
// socket.io-client

/** A socket.io-client socket to `url` (a node, or a proxy), recording all it receives. */
class SioClient {
  constructor(who, url, { auth = { name: who }, reconnect = false } = {}) {
    this.who = who;
    // Everything received, in order: application events, and `$connect` / `$disconnect`.
    this.log = [];
    this.connectErrors = 0;
    this.connectErrorExpected = reconnect;
    this.closing = false;
    this.socket = io(url, {
      forceNew: true,
      transports: ["websocket"],
      auth,
      reconnection: reconnect,
      reconnectionDelay: 100,
      reconnectionDelayMax: 200,
    });
    openSockets.add(this.socket);
    this.socket.onAny((event, ...args) => this.log.push({ event, args, at: performance.now() }));
    this.socket.on("connect", () => this.log.push({ event: "$connect", args: [], at: performance.now() }));
    this.socket.on("disconnect", (reason) => {
      this.log.push({ event: "$disconnect", args: [reason], at: performance.now() });
      if (!reconnect && !this.closing) abort(new Error(`${who}: unexpected disconnect (${reason})`));
    });
    this.socket.on("connect_error", (err) => {
      this.connectErrors += 1;
      if (!this.connectErrorExpected) abort(new Error(`${who}: unexpected connect_error: ${err.message}`));
    });
  }

  async connected() {
    step(`${this.who}: connect`);
    if (!this.socket.connected) {
      await within(RECONNECT_MS, new Promise((resolve) => this.socket.once("connect", resolve)), `${this.who}: not connected`);
    }
    return this;
  }

  async subscribe(channel = CHANNEL) {
    step(`${this.who}: subscribe ${channel}`);
    const reply = await this.socket.timeout(ACK_MS).emitWithAck("subscribe", channel);
    assert.deepEqual(reply, { status: "ok" }, `${this.who}: subscribe ${channel}`);
  }

  /** The chats/1 messages logged from index `from` on: {message, offset}. */
  messages(from = 0) {
    return this.log
      .slice(from)
      .filter((e) => e.event === MESSAGE)
      .map((e) => ({ message: e.args[0]?.message, offset: e.args.length > 1 ? e.args.at(-1) : undefined, at: e.at }));
  }

  /** Whether a `$disconnect` / `$connect` was logged from `from` on. */
  logged(event, from) {
    return this.log.slice(from).some((e) => e.event === event);
  }

  close() {
    this.closing = true;
    this.socket.close();
    openSockets.delete(this.socket);
  }
}

/** How long `replay` (messages) took to arrive after `client` reconnected (the first
 *  `$connect` from log index `from` on), for the log. */
function replayTime(client, from, replay) {
  const connect = client.log.slice(from).find((e) => e.event === "$connect");
  return connect && replay.length > 0 ? `${(replay.at(-1).at - connect.at).toFixed(0)} ms` : "n/a";
}

/** Connects a socket.io-client that must stay connected (no reconnection) to node `node`. */
async function sioMember(who, node) {
  const client = await new SioClient(who, NODES[node]).connected();
  await client.subscribe();
  return client;
}

/**
 * Waits until `client` has `count` messages passing `filter` from log index `from` on, then
 * QUIET_MS more; returns all of them (so that one too many shows).
 */
async function collect(client, from, count, what, filter = () => true) {
  step(`${client.who}: collecting ${count} messages (${what})`);
  const matching = () => client.messages(from).filter((m) => filter(m.message));
  await until(
    () => `${client.who}: ${what}: got ${matching().length} of ${count}: last ${show(matching().slice(-3))}`,
    EVENTS_MS,
    () => matching().length >= count,
    10,
  );
  await sleep(QUIET_MS);
  return matching();
}

/**
 * Posts probes `<tag>-<n>` on `node` until one is accepted (204) and reaches `receiver`
 * (anything with `who` and `messages()`) within 250 ms. Then QUIET_MS, so that late probes are
 * in before what follows. Posts a node refuses (Redis not back yet: it may still deliver them
 * to its own members) do not count. Returns how many probes were posted, and those the node
 * accepted (204) that never reached `receiver`.
 */
async function probe(node, receiver, tag, ms = READY_MS) {
  step(`${tag}: a message posted on ${node} reaches ${receiver.who}`);
  let n = 0;
  let lastStatus = null;
  const accepted = [];
  const arrived = (text) => receiver.messages().some((m) => m.message === text);
  await until(
    () => `${tag}: a message posted on node ${node} accepted and reaching ${receiver.who} (${n} posted, last status ${lastStatus})`,
    ms,
    async () => {
      const text = `${tag}-${n++}`;
      try {
        lastStatus = await postStatus(node, text);
        if (lastStatus === 204) accepted.push(text);
      } catch (err) {
        lastStatus = err.message;
      }
      const deadline = Date.now() + 250;
      while (!arrived(text) && Date.now() < deadline) await sleep(10);
      return lastStatus === 204 && arrived(text);
    },
    0,
  );
  await sleep(QUIET_MS);
  return { posted: n, lost: accepted.filter((text) => !arrived(text)) };
}

/**
 * Both nodes deliver across the cluster: a member on each, a message posted on A reaches B's
 * and one posted on B reaches A's. Returns the two members (`close` them when not wanted).
 */
async function clusterReady(tag) {
  const started = performance.now();
  const wa = await sioMember(`${tag}-watcher-A`, "A");
  const wb = await sioMember(`${tag}-watcher-B`, "B");
  await probe("A", wb, `${tag}-a2b`);
  await probe("B", wa, `${tag}-b2a`);
  info(`${tag}: both nodes deliver across the cluster after ${(performance.now() - started).toFixed(0)} ms`);
  return [wa, wb];
}

/**
 * Drops `client`'s connection through `proxy` (which refuses new connections from then on)
 * and waits until the client has seen it go. Returns what the comeback needs.
 */
async function dropBehind(client, proxy, { to } = {}) {
  const id = client.socket.id;
  const mark = client.log.length;
  proxy.refusing = true;
  if (to) proxy.target = to;
  proxy.drop();
  step(`${client.who}: waiting for the disconnect`);
  await until(`${client.who}: disconnected after the drop`, RECONNECT_MS, () => client.logged("$disconnect", mark), 5);
  const reason = client.log.slice(mark).find((e) => e.event === "$disconnect").args[0];
  assert.ok(!client.socket.connected, `${client.who}: not connected after the drop`);
  return { id, mark, reason, at: performance.now() };
}

/** Lets `client` back through `proxy` and waits for its reconnection. */
async function comeBack(client, proxy, dropped) {
  const errorsBefore = client.connectErrors;
  const refused = proxy.refused;
  const routedBefore = proxy.routed.length;
  proxy.refusing = false;
  const opened = performance.now();
  step(`${client.who}: waiting for the reconnection (through proxy ${proxy.name}, to node ${proxy.target})`);
  await until(`${client.who}: reconnected after the drop (${dropped.reason})`, RECONNECT_MS, () => client.logged("$connect", dropped.mark), 5);
  assert.ok(proxy.routed.length > routedBefore, `${client.who}: the comeback went through the proxy`);
  const node = proxy.routed.at(-1);
  step(`${client.who}: checking the comeback on node ${node}`);
  info(
    `${client.who}: away ${(opened - dropped.at).toFixed(0)} ms (${refused} connection(s) refused, ` +
      `${errorsBefore} connect_error(s) seen), back on node ${node} ${(performance.now() - opened).toFixed(0)} ms ` +
      `after the proxy let it through; recovered: ${client.socket.recovered}`,
  );
  return node;
}

function assertRecovered(client, dropped, what) {
  assert.equal(
    client.socket.recovered,
    true,
    `${client.who}: ${what}: socket.recovered (disconnect reason "${dropped.reason}"; new id ${client.socket.id}, ` +
      `was ${dropped.id}; messages since: ${show(client.messages(dropped.mark).slice(0, 5))})`,
  );
  assert.equal(client.socket.id, dropped.id, `${client.who}: ${what}: the same socket.id`);
}

/**
 * `got` holds exactly `texts`, each once, in the order posted as far as a cluster orders them:
 * messages posted on one node keep their order, while two messages posted on different nodes
 * may come either way. A POST answers once its emit is queued for Redis, and Redis orders the
 * nodes' emits as they arrive; that one order, which the offsets carry, is what every client
 * sees (checked with the offsets).
 */
function assertPostedOrder(got, texts, what) {
  assert.deepEqual([...got].sort(), [...texts].sort(), `${what}: every message once`);
  const nodes = new Set(texts.map((t) => POSTED.get(t) ?? "?"));
  for (const node of nodes) {
    const on = (list) => list.filter((t) => (POSTED.get(t) ?? "?") === node);
    assert.deepEqual(on(got), on(texts), `${what}: the messages posted on ${node}, in the order posted`);
  }
}

/** The messages `texts` arrived exactly, in the order posted, with strictly increasing offsets. */
function assertExactly(got, texts, after, what) {
  assertPostedOrder(
    got.map((m) => m.message),
    texts,
    what,
  );
  assertIncreasing(
    got.map((m) => m.offset),
    after,
    what,
  );
}

// ---------------------------------------------------------------------------
// phoenix.js

function phoenixSocket(node, name) {
  const socket = new Socket(`${NODES[node].replace(/^http/, "ws")}/socket`, {
    transport: WebSocket,
    params: { name },
    reconnectAfterMs: () => 200,
  });
  socket.connect();
  openSockets.add({ close: () => socket.disconnect() });
  return socket;
}

/**
 * Joins chats/1 with `payload`; `got` records, in order, `$joined` (the join reply), the
 * messages ({message, offset}: the ref) and `recovery` events.
 */
function joinPhoenix(socket, payload, who) {
  const got = [];
  const channel = socket.channel(CHANNEL, payload);
  channel.on("message", (body, ref) => got.push({ event: "message", message: body?.message, offset: ref }));
  channel.on("recovery", (body) => got.push({ event: "recovery", ...body }));
  step(`${who}: join ${CHANNEL} ${show(payload)}`);
  return within(
    ACK_MS,
    new Promise((resolve, reject) =>
      channel
        .join()
        .receive("ok", () => {
          got.push({ event: "$joined" });
          resolve({ channel, got, who, messages: () => got.filter((e) => e.event === "message") });
        })
        .receive("error", (e) => reject(new Error(`${who}: join refused: ${show(e)}`)))
        .receive("timeout", () => reject(new Error(`${who}: join timed out`))),
    ),
    `${who}: no join reply`,
  );
}

function leavePhoenix(member) {
  step(`${member.who}: leave`);
  return within(
    ACK_MS,
    new Promise((resolve) => member.channel.leave().receive("ok", resolve)),
    `${member.who}: no reply to leave`,
  ).then(() => member.channel.socket.disconnect());
}

// ---------------------------------------------------------------------------
// Plain WebSocket

async function plainSocket(node, name) {
  const ws = new WebSocket(`${NODES[node].replace(/^http/, "ws")}/ws?name=${encodeURIComponent(name)}`);
  openSockets.add({ close: () => ws.terminate() });
  const frames = [];
  ws.on("message", (data) => frames.push(JSON.parse(data.toString())));
  ws.on("error", () => {});
  await within(
    ACK_MS,
    new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    }),
    `${name}: plain WebSocket open`,
  );
  return { ws, frames, who: name };
}

async function joinPlain(member, payload, ref) {
  step(`${member.who}: subscribe ${CHANNEL} ${show(payload)}`);
  member.ws.send(JSON.stringify({ type: "subscribe", channel: CHANNEL, payload, ref }));
  await until(`${member.who}: reply ${ref}`, ACK_MS, () => member.frames.some((f) => f.type === "reply" && f.ref === ref));
  const reply = member.frames.find((f) => f.type === "reply" && f.ref === ref);
  assert.equal(reply.status, "ok", `${member.who}: join: ${show(reply)}`);
}

/**
 * The frames of `member` as a phoenix `got` list: `$joined` (the reply `ref`), messages
 * ({message, offset}) and `recovery` events; presence is left out.
 */
function plainGot(member, ref) {
  const got = [];
  for (const f of member.frames) {
    if (f.type === "reply" && f.ref === ref) got.push({ event: "$joined" });
    if (f.type !== "event" || f.channel !== CHANNEL) continue;
    if (f.event === "message") got.push({ event: "message", message: f.data?.message, offset: f.offset });
    if (f.event === "recovery") got.push({ event: "recovery", ...f.data });
  }
  return got;
}

// ---------------------------------------------------------------------------
// `since` on the other node (phoenix.js or plain WebSocket), shared by two scenarios

/**
 * `got` (a `$joined` / message / recovery list) after a join with `since`: the join reply,
 * then exactly `texts` in order with offsets after `since`, then
 * `{recovered: true, replayed: texts.length}`. Returns the last offset.
 */
function assertSinceReplay(got, texts, since, what) {
  step(`${what}: checking the replay`);
  assert.deepEqual(got[0], { event: "$joined" }, `${what}: the join reply comes first: ${show(got.slice(0, 3))}`);
  const recoveryAt = got.findIndex((e) => e.event === "recovery");
  assert.ok(recoveryAt > 0, `${what}: a recovery event: ${show(got)}`);
  const replayed = got.slice(1, recoveryAt);
  assertPostedOrder(
    replayed.map((e) => e.message),
    texts,
    `${what}: between the join reply and the recovery event, the missed messages ` +
      `(recovery event: ${show(got[recoveryAt])})`,
  );
  assert.deepEqual(
    got[recoveryAt],
    { event: "recovery", recovered: true, replayed: texts.length },
    `${what}: the recovery event`,
  );
  assertIncreasing(
    replayed.map((e) => e.offset),
    since,
    `${what}: offsets of the replay (after since ${show(since)})`,
  );
  assert.deepEqual(
    got.slice(recoveryAt + 1).filter((e) => e.event !== "message" || !texts.includes(e.message)),
    got.slice(recoveryAt + 1),
    `${what}: nothing replayed twice`,
  );
  return replayed.at(-1)?.offset ?? since;
}

/** Live messages after a replay: one posted on A, one on B, arriving once each, in order. */
async function assertLiveAfter(messagesOf, lastOffset, tag, what) {
  const texts = [`${tag}-live-A`, `${tag}-live-B`];
  const before = messagesOf().length;
  await post("A", texts[0]);
  await post("B", texts[1]);
  step(`${what}: the live messages`);
  await until(
    () => `${what}: the live messages ${show(texts)}: got ${show(messagesOf().slice(before))}`,
    EVENTS_MS,
    () => messagesOf().length >= before + 2,
    10,
  );
  await sleep(QUIET_MS);
  const live = messagesOf().slice(before);
  assertExactly(live, texts, lastOffset, `${what}: live after the replay`);
}

/**
 * Once the cluster delivers across nodes: ann, a socket.io-client with reconnection on,
 * connected to A through a proxy (the load balancer) and subscribed to chats/1.
 */
async function annBehindProxyOnA() {
  const watchers = await clusterReady("ready");
  for (const w of watchers) w.close();
  const proxy = await new Proxy("lb", "A").listen();
  const ann = new SioClient("ann", proxy.url, { reconnect: true });
  await ann.connected();
  await ann.subscribe();
  return { proxy, ann };
}

// ---------------------------------------------------------------------------
// Scenarios

const scenarios = {
  // 1. A socket.io-client's session comes back on the other node.
  async "other-node"() {
    const { proxy, ann } = await annBehindProxyOnA();
    step("ann gets a first message, posted on A, with its offset");
    await post("A", "first");
    await until("ann: the first message", EVENTS_MS, () => ann.messages().some((m) => m.message === "first"));
    const first = ann.messages().find((m) => m.message === "first");
    offsetKey(first.offset, "the first message's last argument");
    await sleep(QUIET_MS);
    const lastBefore = ann.messages().at(-1).offset;
    assert.deepEqual(proxy.routed, ["A"], "ann is connected to A through the proxy");

    const dropped = await dropBehind(ann, proxy, { to: "B" });
    const texts = range(OTHER_NODE_MISSED).map((i) => `m${i}`);
    const took = await postAll(texts, alternate);
    info(`${texts.length} messages posted alternately on A and B while ann was away: ${took.toFixed(0)} ms`);
    assert.ok(!ann.socket.connected, "ann stayed away while the messages were posted");

    const node = await comeBack(ann, proxy, dropped);
    assert.equal(node, "B", "the proxy sent the comeback to B");
    assertRecovered(ann, dropped, "back on node B");
    const replay = await collect(ann, dropped.mark, texts.length, "the messages missed", () => true);
    info(`ann, recovered on B: ${replay.length} messages replayed, the last ${replayTime(ann, dropped.mark, replay)} after the reconnection`);
    assertExactly(replay, texts, lastBefore, "ann, recovered on B");

    step("live after the replay: a message posted on A, one on B");
    await assertLiveAfter(() => ann.messages(dropped.mark), replay.at(-1).offset, "ann", "ann on B");
    assertExactly(
      ann.messages(dropped.mark),
      [...texts, "ann-live-A", "ann-live-B"],
      lastBefore,
      "ann: everything since the drop",
    );
  },

  // 2. The last member of chats/1 on A drops; messages are posted on B only; it comes back to A.
  async "same-node-last-member"() {
    const { proxy, ann } = await annBehindProxyOnA();
    step("ann (A's only member of chats/1) gets a message posted on B");
    await probe("B", ann, "first");
    const lastBefore = ann.messages().at(-1).offset;
    offsetKey(lastBefore, "the last argument of the message before the drop");

    const dropped = await dropBehind(ann, proxy);
    // Let A notice (and, today, stop listening to chats/1 in Redis).
    await sleep(500);
    info(`nodes listening to ${PREFIX}${CHANNEL} in Redis while ann is away: ${await numsub(CHANNEL)}`);
    const texts = range(LAST_MEMBER_MISSED).map((i) => `b${i}`);
    const took = await postAll(texts, () => "B");
    info(`${texts.length} messages posted on B while ann was away: ${took.toFixed(0)} ms`);

    const node = await comeBack(ann, proxy, dropped);
    assert.equal(node, "A", "the proxy sent the comeback to A");
    assertRecovered(ann, dropped, "back on node A");
    const replay = await collect(ann, dropped.mark, texts.length, "the messages missed", () => true).catch((err) => {
      throw new Error(`${err.message}\nann got, since the drop: ${show(ann.messages(dropped.mark).map((m) => m.message))}`);
    });
    info(`ann, recovered on A: ${replay.length} messages replayed, the last ${replayTime(ann, dropped.mark, replay)} after the reconnection`);
    assertExactly(replay, texts, lastBefore, "ann, recovered on A");
    await assertLiveAfter(() => ann.messages(dropped.mark), replay.at(-1).offset, "ann", "ann back on A");
  },

  // 3. One event, one offset, whichever node delivers it.
  async "one-offset"() {
    const [wa, wb] = await clusterReady("ready");
    step("A carries events B never sees: private/vip, where B has no member");
    const vip = await new SioClient("vip", NODES.A, { auth: { name: "vip", token: "northle-vip" } }).connected();
    await vip.subscribe("private/vip");
    for (const n of range(3)) {
      const reply = await vip.socket.timeout(ACK_MS).emitWithAck("private/vip/message", { text: `vip-${n}` });
      assert.deepEqual(reply, { status: "ok" }, "vip: private/vip/message");
    }

    const from = [wa.log.length, wb.log.length];
    const texts = range(ONE_OFFSET_MESSAGES).map((i) => `s${i}`);
    await postAll(texts, alternate);
    const isMine = (m) => texts.includes(m);
    const [onA, onB] = [
      await collect(wa, from[0], texts.length, "the messages on A", isMine),
      await collect(wb, from[1], texts.length, "the messages on B", isMine),
    ];
    info(`offsets on A: ${onA.map((m) => m.offset).join(" ")}; on B: ${onB.map((m) => m.offset).join(" ")}`);
    assertExactly(onA, texts, undefined, "the member on A");
    assertExactly(onB, texts, undefined, "the member on B");
    for (const m of [...onA, ...onB]) {
      assert.equal(typeof m.offset, "string", `the offset of ${m.message} is a string: ${show(m.offset)}`);
    }
    assert.deepEqual(
      onB.map((m) => [m.message, m.offset]),
      onA.map((m) => [m.message, m.offset]),
      "the members on A and on B see each message with the same offset",
    );
  },

  // 4. Redis restarted empty between the drop and the comeback: fresh sessions, on A and on B.
  async "redis-restart"() {
    const [wa, wb] = await clusterReady("ready");
    const lbA = await new Proxy("lb-A", "A").listen();
    const lbB = await new Proxy("lb-B", "A").listen();
    const ann = new SioClient("ann", lbA.url, { reconnect: true });
    const bob = new SioClient("bob", lbB.url, { reconnect: true });
    for (const c of [ann, bob]) {
      await c.connected();
      await c.subscribe();
    }
    step("ann and bob (both on A) get a message posted on B");
    await probe("B", ann, "first");
    await until("bob: the first message", EVENTS_MS, () => bob.messages().some((m) => m.message.startsWith("first-")));

    const droppedAnn = await dropBehind(ann, lbA);
    const droppedBob = await dropBehind(bob, lbB, { to: "B" });
    await sleep(300);
    const before = range(5).map((i) => `r${i}`);
    await postAll(before, alternate);
    step("Redis dies and comes back empty");
    await restartRedis();
    await clusterReadyWith(wa, wb, "after-restart");
    const probes = [...wa.messages(), ...wb.messages()].map((m) => m.message).filter((t) => t.startsWith("after-restart-"));
    const missed = [...before, ...new Set(probes)];

    for (const [client, proxy, dropped, node] of [
      [ann, lbA, droppedAnn, "A"],
      [bob, lbB, droppedBob, "B"],
    ]) {
      const back = await comeBack(client, proxy, dropped);
      assert.equal(back, node, `${client.who}: the proxy sent the comeback to ${node}`);
      await sleep(QUIET_MS);
      const got = client.messages(dropped.mark).map((m) => m.message);
      assert.ok(
        !client.socket.recovered,
        `${client.who} (back on ${node}): Redis lost everything while it was away, so socket.recovered must be false; ` +
          `it got ${got.length} message(s) since the drop: ${show(got)}, of ${show(missed)} posted meanwhile ` +
          `(${missed.filter((t) => !got.includes(t)).length} missing)`,
      );
      assert.notEqual(client.socket.id, dropped.id, `${client.who} (back on ${node}): a new socket.id`);
      assert.deepEqual(got, [], `${client.who} (back on ${node}): a fresh session gets no replay`);
    }

    step("fresh sessions are in no channel until they subscribe again");
    const marks = [ann.log.length, bob.log.length, wa.log.length, wb.log.length];
    await post("A", "fresh-1");
    await post("B", "fresh-2");
    for (const [w, mark] of [
      [wa, marks[2]],
      [wb, marks[3]],
    ]) {
      await collect(w, mark, 2, "the messages after the comeback", (t) => t.startsWith("fresh-"));
    }
    assert.deepEqual(ann.messages(marks[0]), [], "ann, not subscribed again: no message");
    assert.deepEqual(bob.messages(marks[1]), [], "bob, not subscribed again: no message");
    for (const c of [ann, bob]) await c.subscribe();
    const again = [ann.log.length, bob.log.length];
    await post("A", "again-1");
    await post("B", "again-2");
    for (const [c, mark] of [
      [ann, again[0]],
      [bob, again[1]],
    ]) {
      const got = await collect(c, mark, 2, "after subscribing again");
      assertExactly(got, ["again-1", "again-2"], undefined, `${c.who}, subscribed again`);
    }
  },

  // 5. phoenix.js: `since` taken on A, used on B.
  async "phoenix-since-other-node"() {
    const watchers = await clusterReady("ready");
    for (const w of watchers) w.close();

    const pat = await joinPhoenix(phoenixSocket("A", "pat"), {}, "pat on A");
    step("pat (on A) gets a message posted on B, its offset as the ref");
    await probe("B", { who: "pat on A", messages: pat.messages }, "first");
    const since = pat.messages().at(-1).offset;
    offsetKey(since, "the ref of the message");
    await leavePhoenix(pat);

    const texts = range(SINCE_MISSED).map((i) => `p${i}`);
    await postAll(texts, alternate);

    const back = await joinPhoenix(phoenixSocket("B", "pat"), { since }, "pat on B");
    await until(() => `pat on B: a recovery event: ${show(back.got)}`, EVENTS_MS, () => back.got.some((e) => e.event === "recovery"));
    await sleep(QUIET_MS);
    const last = assertSinceReplay(back.got, texts, since, `phoenix.js on B, since ${since} from A`);
    await assertLiveAfter(back.messages, last, "pat", "phoenix.js on B");
  },

  // 6. A plain WebSocket: `since` taken on A, used on B.
  async "plain-since-other-node"() {
    const watchers = await clusterReady("ready");
    for (const w of watchers) w.close();

    const first = await plainSocket("A", "pia");
    await joinPlain(first, null, "1");
    const onA = { who: "pia on A", messages: () => plainGot(first, "1").filter((e) => e.event === "message") };
    step("pia (on A) gets a message posted on B, with an offset field");
    await probe("B", onA, "first");
    const since = onA.messages().at(-1).offset;
    offsetKey(since, "the offset field of the message");
    first.ws.close();

    const texts = range(SINCE_MISSED).map((i) => `w${i}`);
    await postAll(texts, alternate);

    const back = await plainSocket("B", "pia");
    await joinPlain(back, { since }, "2");
    const got = () => plainGot(back, "2");
    await until(() => `pia on B: a recovery event: ${show(got())}`, EVENTS_MS, () => got().some((e) => e.event === "recovery"));
    await sleep(QUIET_MS);
    const last = assertSinceReplay(got(), texts, since, `plain WebSocket on B, since ${since} from A`);
    await assertLiveAfter(() => got().filter((e) => e.event === "message"), last, "pia", "plain WebSocket on B");
  },

  // 7. A `since` from before a Redis restart (empty), on A and on B: not recovered.
  async "since-after-redis-restart"() {
    const [wa, wb] = await clusterReady("ready");
    const pat = await joinPhoenix(phoenixSocket("A", "pat"), {}, "pat on A");
    await probe("B", { who: "pat on A", messages: pat.messages }, "first");
    const since = pat.messages().at(-1).offset;
    offsetKey(since, "the ref of the message");
    await leavePhoenix(pat);
    await postAll(
      range(5).map((i) => `q${i}`),
      alternate,
    );

    step("Redis dies and comes back empty");
    await restartRedis();
    await clusterReadyWith(wa, wb, "after-restart");

    for (const node of ["A", "B"]) {
      const who = `pat again on ${node}`;
      const back = await joinPhoenix(phoenixSocket(node, "pat"), { since }, who);
      await until(() => `${who}: a recovery event: ${show(back.got)}`, EVENTS_MS, () => back.got.some((e) => e.event === "recovery"));
      await sleep(QUIET_MS);
      assert.deepEqual(
        back.got,
        [{ event: "$joined" }, { event: "recovery", recovered: false }],
        `${who}, since ${since} from before Redis restarted empty: not recovered, nothing replayed`,
      );
      await assertLiveAfter(back.messages, undefined, `pat-${node}`, who);
    }
  },
};

/** As clusterReady, with the members already there (after a Redis restart). */
async function clusterReadyWith(wa, wb, tag) {
  const started = performance.now();
  const a2b = await probe("A", wb, `${tag}-a2b`);
  const b2a = await probe("B", wa, `${tag}-b2a`);
  info(
    `${tag}: both nodes deliver across the cluster again after ${(performance.now() - started).toFixed(0)} ms ` +
      `(probes posted A->B ${a2b.posted}, B->A ${b2a.posted}; accepted with 204 but never delivered across: ` +
      `${show([...a2b.lost, ...b2a.lost])})`,
  );
  // Redis is back and answering: an emit a node accepts (204) reaches the other node, even the
  // first ones after Redis restarted empty (the emit script is loaded again on NOSCRIPT).
  assert.deepEqual(
    [...a2b.lost, ...b2a.lost],
    [],
    `${tag}: emits accepted with 204 after Redis was back must reach the other node`,
  );
}

if (!NODES.A || !NODES.B) {
  console.error("NODE_A and NODE_B must give the two nodes' URLs");
  process.exit(1);
}
if (ONE_NODE) info("RECOVERY_CLUSTER_ONE_NODE=1: B is node A (a check of the harness)");
await run("recovery_cluster.mjs", scenarios, {
  where: `A ${NODES.A}, B ${NODES.B}, Redis on ${REDIS_PORT}`,
  timeoutMs: SCENARIO_TIMEOUT_MS,
});
