// Presence across a cluster, for real: the official clients (phoenix.js with its `Presence`,
// socket.io-client with phoenix.js's `Presence.syncState` / `syncDiff` applied to the
// `chats/1/presence_state` and `chats/1/presence_diff` events) against example nodes sharing
// one Redis server; tests/presence_cluster.rs starts Redis and, when asked, the nodes.
//
// Usage: REDIS_PORT=P node tests/js/presence_cluster.mjs <scenario>
// Exit code 0 = pass; on failure a message goes to stderr and the exit code is 1. A view that
// disagrees is shown with the presence events its member received about the wrong keys.
// Optional: CHURN_JOINS (10000) and CHURN_ROUNDS (10) for `churn`; REDIS_MONITOR=<file>
// records every command Redis runs during `churn` (redis-cli MONITOR), for diagnosis.
//
// Everything the test must do (start node i, SIGKILL node i, SIGKILL Redis, start it again on
// the same port) is asked for on stdout as `@@ <action>`; the test answers one line on stdin:
// `ok` (after `start-node i`: `ok <url>`), or an error message. Lines starting with `#` are
// measurements, for the log.
//
// What every check compares: the members still connected (by name, with how many connections
// each) against each member's synced view, each node's own copy (`GET /online` on the chat
// example) and the channel's hash in Redis (with the node each record belongs to, the nodes'
// `presence-refs:<node>` indexes and the `presence-nodes` set).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import { Socket, Presence } from "phoenix";
import { io } from "socket.io-client";
import WebSocket from "ws";
import { REDIS_PORT, control, redis } from "./cluster.mjs";
import { step, sleep, within, abort, openSockets, poller, run } from "./harness.mjs";

const PREFIX = "tidings:";
const NODE_NAMES = ["A", "B", "C"];
// The base URL of each node, once started.
const NODES = [];
// How long the views may take to agree after a change with everything up.
const CONVERGE_MS = 5_000;
// How long a dead node's entries may stay (the brief: within 10 s).
const NODE_DEATH_MS = 10_000;
// How long the cluster may take to agree again once Redis is back.
const RECOVERY_MS = 15_000;
// How long we watch a settled state to be sure that nothing comes back.
const STABLE_MS = 2_500;

const info = (line) => console.log(`# ${line}`);
// Polls a check every 25 ms (see `poller`).
const until = poller(25);

// Diagnostics, opt-in: REDIS_MONITOR=<file> records every command Redis runs (redis-cli
// MONITOR), to see in which order the nodes wrote, published, subscribed and read.
function monitorRedis() {
  const file = process.env.REDIS_MONITOR;
  if (!file) return;
  const out = fs.openSync(file, "w");
  const monitor = spawn("redis-cli", ["-p", String(REDIS_PORT), "MONITOR"], { stdio: ["ignore", out, "ignore"] });
  openSockets.add({ close: () => monitor.kill() });
}

// ---------------------------------------------------------------------------
// The test driving us (`control` of cluster.mjs): `@@ action` out, `ok [value]` back.

async function startNode(i) {
  NODES[i] = (await control(`start-node ${i}`)).replace(/\/+$/, "");
  return NODES[i];
}

const killNode = (i) => control(`kill-node ${i}`);
const killRedis = () => control("kill-redis");
const startRedis = () => control("start-redis");

// ---------------------------------------------------------------------------
// Redis, spoken directly (`redis` of cluster.mjs)

async function hgetall(key) {
  const flat = await redis("HGETALL", key);
  const map = new Map();
  for (let i = 0; i < flat.length; i += 2) map.set(flat[i], flat[i + 1]);
  return map;
}

// The records of `channel` in Redis: [{ref, node, key, meta}].
async function redisRecords(channel) {
  const hash = await hgetall(`${PREFIX}presence:${channel}`);
  return [...hash].map(([ref, json]) => {
    const stored = JSON.parse(json);
    return { ref, node: stored.node, key: stored.key, meta: stored.meta };
  });
}

const redisNodes = async () => (await redis("SMEMBERS", `${PREFIX}presence-nodes`)).sort();

// ---------------------------------------------------------------------------
// Views: `Map(key -> number of metas)`, compared as sorted `key×n` lists.

function countsOfState(state) {
  return new Map(Object.entries(state).map(([key, { metas }]) => [key, metas.length]));
}

function refsOfState(state) {
  return Object.entries(state)
    .flatMap(([key, { metas }]) => metas.map((m) => `${key} ${m.phx_ref}`))
    .sort();
}

const show = (counts) =>
  [...counts]
    .filter(([, n]) => n > 0)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, n]) => (n === 1 ? key : `${key}×${n}`))
    .join(" ");

function countsOf(names) {
  const counts = new Map();
  for (const name of names) counts.set(name, (counts.get(name) ?? 0) + 1);
  return counts;
}

// ---------------------------------------------------------------------------
// Clients

/** A socket.io-client connection to the chat example under `name`, in `chats/1` when asked. */
class SioMember {
  constructor(name, node, { watch = true } = {}) {
    this.name = name;
    this.node = node;
    this.watch = watch;
    this.joined = false;
    this.reset();
    this.socket = io(NODES[node], {
      auth: { name },
      transports: ["websocket"],
      reconnection: false,
      forceNew: true,
    });
    openSockets.add(this.socket);
    this.socket.on("connect_error", (err) =>
      abort(new Error(`${name}: unexpected connect_error on node ${NODE_NAMES[node]}: ${err.message}`)),
    );
    this.socket.on("disconnect", (reason) => {
      if (!this.closing) abort(new Error(`${name} (node ${NODE_NAMES[node]}) disconnected: ${reason}`));
    });
    if (watch) {
      this.socket.on("chats/1/presence_state", (state) => {
        if (!this.joined) return;
        this.history.push({ at: performance.now(), kind: "state", state });
        this.states += 1;
        if (this.firstState === null) this.firstState = state;
        this.state = Presence.syncState(this.state ?? {}, state);
        for (const diff of this.pending) this.state = Presence.syncDiff(this.state, diff);
        this.pending = [];
      });
      this.socket.on("chats/1/presence_diff", (diff) => {
        if (!this.joined) return;
        this.history.push({ at: performance.now(), kind: "diff", diff });
        this.diffs += 1;
        for (const key of Object.keys(diff.leaves)) this.leftKeys.push(key);
        if (this.state === null) this.pending.push(diff);
        else this.state = Presence.syncDiff(this.state, diff);
      });
    }
  }

  reset() {
    // What it received since it subscribed, in order (for failure messages).
    this.history = [];
    this.state = null;
    this.firstState = null;
    this.pending = [];
    this.states = 0;
    this.diffs = 0;
    this.leftKeys = [];
  }

  get who() {
    return `${this.name} (node ${NODE_NAMES[this.node]})`;
  }

  async connected() {
    if (!this.socket.connected) {
      await within(5000, new Promise((resolve) => this.socket.once("connect", resolve)), `${this.who}: no connect`);
    }
    return this;
  }

  async subscribe() {
    this.joined = true;
    const reply = await this.socket.timeout(10_000).emitWithAck("subscribe", "chats/1");
    assert.deepEqual(reply, { status: "ok" }, `${this.who}: subscribe chats/1`);
  }

  async unsubscribe() {
    const reply = await this.socket.timeout(10_000).emitWithAck("unsubscribe", "chats/1");
    assert.deepEqual(reply, { status: "ok" }, `${this.who}: unsubscribe chats/1`);
    this.joined = false;
    this.reset();
  }

  /** Its view: key -> metas, or null before its first presence_state. */
  counts() {
    return this.state === null ? null : countsOfState(this.state);
  }

  refs() {
    return this.state === null ? null : refsOfState(this.state);
  }

  /**
   * What it received about `key`, as text: the refs it holds under `key` now, and every
   * presence_state / presence_diff that named one of them (for failure messages).
   */
  historyOf(key, limit = 12) {
    const held = new Set((this.state?.[key]?.metas ?? []).map((m) => m.phx_ref));
    const t0 = this.history[0]?.at ?? 0;
    const lines = [];
    for (const [i, item] of this.history.entries()) {
      const at = `#${i} +${(item.at - t0).toFixed(1)}ms`;
      if (item.kind === "state") {
        const refs = (item.state[key]?.metas ?? []).map((m) => m.phx_ref);
        const named = refs.filter((r) => held.has(r));
        if (named.length > 0 || held.size === 0) lines.push(`${at} presence_state (${Object.keys(item.state).length} keys) with ${key} [${refs}]`);
      } else {
        for (const kind of ["joins", "leaves"]) {
          const refs = (item.diff[kind][key]?.metas ?? []).map((m) => m.phx_ref);
          if (refs.some((r) => held.has(r)) || (held.size === 0 && refs.length > 0)) {
            lines.push(`${at} presence_diff ${kind} ${key} [${refs}]`);
          }
        }
      }
    }
    return (
      `${key}: holds [${[...held]}] (${this.history.length} presence events since it joined); ` +
      `${lines.length > limit ? `the last ${limit} of ` : ""}${lines.length} events naming them: ${lines.slice(-limit).join(" | ")}`
    );
  }

  /** Its node is about to be killed: its disconnection is expected. */
  expectDeath() {
    this.closing = true;
  }

  close() {
    this.closing = true;
    this.joined = false;
    this.socket.close();
    openSockets.delete(this.socket);
  }
}

async function sioMembers(specs, options) {
  const all = specs.map(([name, node]) => new SioMember(name, node, options));
  await Promise.all(all.map((m) => m.connected()));
  await Promise.all(all.map((m) => m.subscribe()));
  return all;
}

/** A phoenix.js socket to the phoenix_chat example as `user`, in `room:lobby`, with a Presence. */
class PhxMember {
  constructor(user, node) {
    this.name = user;
    this.node = node;
    this.socket = new Socket(`${NODES[node].replace(/^http/, "ws")}/socket`, {
      params: { user },
      transport: WebSocket,
      reconnectAfterMs: () => 200,
    });
    this.socket.connect();
    openSockets.add({ close: () => this.socket.disconnect() });
    this.channel = this.socket.channel("room:lobby", {});
    this.presence = new Presence(this.channel);
    this.syncs = 0;
    this.presence.onSync(() => {
      this.syncs += 1;
    });
    this.firstState = null;
    this.channel.on("presence_state", (state) => {
      if (this.firstState === null) this.firstState = state;
    });
  }

  get who() {
    return `${this.name} (node ${NODE_NAMES[this.node]})`;
  }

  join() {
    return within(
      10_000,
      new Promise((resolve, reject) =>
        this.channel
          .join()
          .receive("ok", resolve)
          .receive("error", (e) => reject(new Error(`${this.who}: join refused ${JSON.stringify(e)}`)))
          .receive("timeout", () => reject(new Error(`${this.who}: join timeout`))),
      ),
      `${this.who}: no join reply`,
    );
  }

  push(event, payload) {
    return within(
      10_000,
      new Promise((resolve, reject) =>
        this.channel
          .push(event, payload)
          .receive("ok", resolve)
          .receive("error", (e) => reject(new Error(`${this.who}: ${event} refused ${JSON.stringify(e)}`)))
          .receive("timeout", () => reject(new Error(`${this.who}: ${event} timeout`))),
      ),
      `${this.who}: no reply to ${event}`,
    );
  }

  /** phoenix.js's Presence list, as key -> metas; null before its first sync. */
  counts() {
    if (this.syncs === 0) return null;
    return new Map(this.presence.list((key, { metas }) => [key, metas.length]));
  }

  refs() {
    if (this.syncs === 0) return null;
    return refsOfState(Object.fromEntries(this.presence.list((key, p) => [key, p])));
  }

  metas(key) {
    const found = this.presence.list((k, { metas }) => (k === key ? metas : null)).find(Boolean);
    return found ?? [];
  }
}

async function phxMembers(specs) {
  const all = specs.map(([name, node]) => new PhxMember(name, node));
  await Promise.all(all.map((m) => m.join()));
  return all;
}

// ---------------------------------------------------------------------------
// Checks

/** `GET /online` on node `i` (chat example): key -> connections. */
async function online(i) {
  const response = await fetch(`${NODES[i]}/online`, { signal: AbortSignal.timeout(5000) });
  const text = await response.text();
  assert.equal(response.status, 200, `GET /online on node ${NODE_NAMES[i]}: ${response.status} ${text}`);
  return new Map(JSON.parse(text).users.map(({ name, connections }) => [name, connections]));
}

/**
 * Waits until every view agrees with `expected` (key -> connections): each watcher's synced
 * state and, for `nodes`, each node's `GET /online`. Returns the time it took, in ms.
 */
async function converge(label, expected, { watchers = [], nodes = [], ms = CONVERGE_MS } = {}) {
  step(`converge: ${label}`);
  const want = show(expected);
  const started = performance.now();
  let last = [];
  await until(
    () => `${label}: every view = [${want}]; last disagreeing: ${last.join("; ")}`,
    ms,
    async () => {
      last = [];
      for (const w of watchers) {
        const counts = w.counts();
        const got = counts === null ? "(no presence_state yet)" : show(counts);
        if (got !== want) {
          const keys = new Set([...(counts ?? new Map()).keys(), ...expected.keys()]);
          const wrong = [...keys].filter((k) => (counts?.get(k) ?? 0) !== (expected.get(k) ?? 0));
          const histories = w.historyOf ? wrong.slice(0, 3).map((k) => w.historyOf(k)) : [];
          last.push(`${w.who} sees [${got}]${histories.length ? ` {${histories.join("; ")}}` : ""}`);
        }
      }
      for (const i of nodes) {
        const got = show(await online(i));
        if (got !== want) last.push(`GET /online on node ${NODE_NAMES[i]} = [${got}]`);
      }
      return last.length === 0;
    },
  );
  return performance.now() - started;
}

/** Every watcher holds exactly the refs Redis holds (same metas, not only the same counts). */
async function sameRefsAsRedis(channel, watchers) {
  step(`${channel}: every member's refs are those in Redis`);
  const stored = (await redisRecords(channel)).map((r) => `${r.key} ${r.ref}`).sort();
  for (const w of watchers) {
    assert.deepEqual(w.refs(), stored, `${w.who}: its view's phx_refs against HGETALL ${PREFIX}presence:${channel}`);
  }
}

/**
 * The Redis side holds exactly `expected` for `channel`: the channel's hash (each record on
 * the node its member is connected to, per `nodeOf(key)` -> node id), each live node's
 * `presence-refs:<node>` index, and `presence-nodes` = `liveNodes`. Waits up to `ms`.
 */
async function redisHolds(channel, expected, { nodeOf, liveNodes, deadNodes = [], ms = CONVERGE_MS }) {
  step(`Redis holds exactly the members of ${channel}`);
  const want = show(expected);
  let last = "";
  const started = performance.now();
  await until(
    () => `Redis for ${channel}: ${last}`,
    ms,
    async () => {
      const records = await redisRecords(channel);
      const got = show(countsOf(records.map((r) => r.key)));
      if (got !== want) {
        last = `HGETALL ${PREFIX}presence:${channel} keys = [${got}], expected [${want}]`;
        return false;
      }
      const misplaced = records.filter((r) => nodeOf && nodeOf(r.key) !== undefined && !nodeOf(r.key).includes(r.node));
      if (misplaced.length > 0) {
        last = `records on the wrong node: ${JSON.stringify(misplaced)}`;
        return false;
      }
      const ghosts = records.filter((r) => deadNodes.includes(r.node));
      if (ghosts.length > 0) {
        last = `records of dead nodes: ${JSON.stringify(ghosts)}`;
        return false;
      }
      for (const node of liveNodes) {
        const index = await hgetall(`${PREFIX}presence-refs:${node}`);
        const mine = records.filter((r) => r.node === node).map((r) => r.ref).sort();
        const indexed = [...index.keys()].sort();
        if (JSON.stringify(mine) !== JSON.stringify(indexed)) {
          last = `${PREFIX}presence-refs:${node} = [${indexed}], the channel's records of that node = [${mine}]`;
          return false;
        }
        const elsewhere = [...index.values()].filter((c) => c !== channel);
        if (elsewhere.length > 0) {
          last = `${PREFIX}presence-refs:${node} names other channels: ${elsewhere}`;
          return false;
        }
      }
      for (const node of deadNodes) {
        const index = await hgetall(`${PREFIX}presence-refs:${node}`);
        if (index.size > 0) {
          last = `${PREFIX}presence-refs:${node} (dead) still holds ${index.size} refs`;
          return false;
        }
      }
      const nodes = await redisNodes();
      if (JSON.stringify(nodes) !== JSON.stringify([...liveNodes].sort())) {
        last = `SMEMBERS ${PREFIX}presence-nodes = [${nodes}], expected the live nodes [${[...liveNodes].sort()}]`;
        return false;
      }
      return true;
    },
  );
  return performance.now() - started;
}

/** The node id of each node index, from where Redis stores the records of its members. */
async function nodeIds(channel, membersByNode) {
  step("node ids from the records in Redis");
  const ids = [];
  await until(
    "every node's members are in Redis",
    CONVERGE_MS,
    async () => {
      const records = await redisRecords(channel);
      for (const [i, names] of membersByNode.entries()) {
        const nodes = new Set(records.filter((r) => names.includes(r.key)).map((r) => r.node));
        if (nodes.size !== 1) return false;
        ids[i] = [...nodes][0];
      }
      return true;
    },
  );
  assert.equal(new Set(ids).size, ids.length, `distinct node ids: ${ids}`);
  return ids;
}

/** Checks again, `STABLE_MS` later, that the state did not move (nothing came back). */
async function stillThere(label, expected, options) {
  step(`stable: ${label}`);
  await sleep(STABLE_MS);
  await converge(`${label} (still, ${STABLE_MS} ms later)`, expected, { ...options, ms: 0 });
}

const liveNames = (members) => members.filter((m) => m.joined).map((m) => m.name);

// ---------------------------------------------------------------------------
// Scenarios

const scenarios = {
  // Three phoenix_chat nodes; phoenix.js clients on each, their `Presence` as the view. C
  // starts once A and B have members: its first member's first presence_state is the whole
  // cluster. Then every view converges, an update (set_status) too.
  async "converge-phoenix"() {
    await startNode(0);
    await startNode(1);
    step("members join room:lobby on A and B (ada twice: on A and on B)");
    const early = await phxMembers([
      ["ada", 0],
      ["alan", 0],
      ["ada", 1],
      ["barbara", 1],
      ["bob", 1],
    ]);
    let expected = countsOf(early.map((m) => m.name));
    const abTime = await converge("A and B", expected, { watchers: early });
    info(`A and B agree ${abTime.toFixed(0)} ms after the last join`);

    step("C starts late; carol joins on C");
    await startNode(2);
    const [carol] = await phxMembers([["carol", 2]]);
    expected = countsOf([...early, carol].map((m) => m.name));
    assert.notEqual(carol.firstState, null, "carol got a presence_state");
    assert.equal(
      show(countsOfState(carol.firstState)),
      show(expected),
      "carol's first presence_state (node C started late) holds the whole cluster",
    );
    const joinTime = await converge("all after carol's join", expected, { watchers: [...early, carol] });
    info(`carol's join on C (late node): in every phoenix.js Presence ${joinTime.toFixed(0)} ms after her join reply`);

    step("more members on every node");
    const late = await phxMembers([
      ["cecil", 2],
      ["ada", 2],
      ["alice", 0],
      ["bea", 1],
    ]);
    const all = [...early, carol, ...late];
    expected = countsOf(all.map((m) => m.name));
    const moreTime = await converge("all after four more joins", expected, { watchers: all });
    info(`four joins on A, B, C: every view agrees ${moreTime.toFixed(0)} ms after the last join reply`);
    await sameRefsAsRedis("room:lobby", all);
    const ids = await nodeIds("room:lobby", [["alan", "alice"], ["barbara", "bob", "bea"], ["carol", "cecil"]]);
    const nodeOf = (key) =>
      ({ ada: ids, alan: [ids[0]], alice: [ids[0]], barbara: [ids[1]], bob: [ids[1]], bea: [ids[1]], carol: [ids[2]], cecil: [ids[2]] })[key];
    await redisHolds("room:lobby", expected, { nodeOf, liveNodes: ids });

    step("an update on C (set_status) reaches every view, as one meta replaced");
    const statusStarted = performance.now();
    await late[0].push("set_status", { status: "away" });
    await until(
      () => `cecil's status "away" in every Presence: ${all.map((m) => `${m.who}: ${JSON.stringify(m.metas("cecil"))}`).join("; ")}`,
      CONVERGE_MS,
      () => all.every((m) => m.metas("cecil").length === 1 && m.metas("cecil")[0].status === "away"),
    );
    info(`set_status on C: in every view ${(performance.now() - statusStarted).toFixed(0)} ms after its reply`);
    await converge("all after the update", expected, { watchers: all });
    await sameRefsAsRedis("room:lobby", all);

    step("leaves on every node");
    const leaving = [early[1], early[2], late[1]]; // alan (A), ada on B, ada on C
    for (const m of leaving) {
      await within(5000, new Promise((resolve) => m.channel.leave().receive("ok", resolve)), `${m.who}: leave`);
    }
    const staying = all.filter((m) => !leaving.includes(m));
    expected = countsOf(staying.map((m) => m.name));
    const leaveTime = await converge("all after three leaves", expected, { watchers: staying });
    info(`three leaves on A, B, C: every view agrees ${leaveTime.toFixed(0)} ms after the last leave reply`);
    await sameRefsAsRedis("room:lobby", staying);
    await redisHolds("room:lobby", expected, { nodeOf, liveNodes: ids });
  },

  // Three chat nodes; socket.io members on each, GET /online on each. C starts once A and B
  // have members: its GET /online (no member there yet: read from Redis) and its first
  // member's first presence_state are the whole cluster.
  async "converge-chat"() {
    await startNode(0);
    await startNode(1);
    step("members join chats/1 on A and B (twin on both)");
    const early = await sioMembers([
      ["anna", 0],
      ["twin", 0],
      ["boris", 1],
      ["twin", 1],
    ]);
    let expected = countsOf(early.map((m) => m.name));
    const abTime = await converge("A and B", expected, { watchers: early, nodes: [0, 1] });
    info(`A and B agree ${abTime.toFixed(0)} ms after the last join`);

    step("C starts late: its GET /online (no member there: from Redis) is the whole cluster");
    await startNode(2);
    await converge("C's /online before any member there", expected, { nodes: [2] });
    const [clara] = await sioMembers([["clara", 2]]);
    expected = countsOf([...early, clara].map((m) => m.name));
    await until("clara's first presence_state", CONVERGE_MS, () => clara.firstState !== null);
    assert.equal(
      show(countsOfState(clara.firstState)),
      show(expected),
      "clara's first presence_state (node C started late) holds the whole cluster",
    );
    const joinTime = await converge("all after clara's join", expected, { watchers: [...early, clara], nodes: [0, 1, 2] });
    info(`clara's join on C (late node): in every view ${joinTime.toFixed(0)} ms after her subscribe ack`);

    step("one more member on each node");
    const late = await sioMembers([
      ["alex", 0],
      ["bert", 1],
      ["twin", 2],
    ]);
    const all = [...early, clara, ...late];
    expected = countsOf(all.map((m) => m.name));
    const moreTime = await converge("all after three more joins", expected, { watchers: all, nodes: [0, 1, 2] });
    info(`three joins on A, B, C: every view agrees ${moreTime.toFixed(0)} ms after the last ack`);
    await sameRefsAsRedis("chats/1", all);
    const ids = await nodeIds("chats/1", [["anna", "alex"], ["boris", "bert"], ["clara"]]);
    const nodeOf = (key) => ({ twin: ids, anna: [ids[0]], alex: [ids[0]], boris: [ids[1]], bert: [ids[1]], clara: [ids[2]] })[key];
    await redisHolds("chats/1", expected, { nodeOf, liveNodes: ids });
  },

  // A node is SIGKILLed: its members leave every other node's view (presence_diff leaves)
  // and Redis (its records, its refs index, its place in presence-nodes) within 10 s.
  async "node-death"() {
    // Started half a second apart: each node checks the leases once a second from its start,
    // so the survivors do not check in the same instant (as in a real cluster).
    for (const i of [0, 1, 2]) {
      await startNode(i);
      await sleep(500);
    }
    step("two members and a watcher on each node");
    const members = await sioMembers([
      ["w-a", 0],
      ["ann", 0],
      ["twin", 0],
      ["w-b", 1],
      ["ben", 1],
      ["w-c", 2],
      ["cat", 2],
      ["twin", 2],
    ]);
    let expected = countsOf(members.map((m) => m.name));
    await converge("before the crash", expected, { watchers: members, nodes: [0, 1, 2] });
    const ids = await nodeIds("chats/1", [["w-a", "ann"], ["w-b", "ben"], ["w-c", "cat"]]);
    const nodeOf = (key) => ({ twin: [ids[0], ids[2]], "w-a": [ids[0]], ann: [ids[0]], "w-b": [ids[1]], ben: [ids[1]], "w-c": [ids[2]], cat: [ids[2]] })[key];
    await redisHolds("chats/1", expected, { nodeOf, liveNodes: ids });
    info(`node ids: A ${ids[0]}, B ${ids[1]}, C ${ids[2]}`);

    const survivors = members.filter((m) => m.node !== 2);
    for (const m of survivors) m.leftKeys = [];
    // C's members stay connected: the kill is what takes them.
    for (const m of members.filter((m) => m.node === 2)) m.expectDeath();
    await killNode(2);
    const killedAt = performance.now();
    expected = countsOf(survivors.map((m) => m.name));
    const viewTime = await converge("after C's death", expected, { watchers: survivors, nodes: [0, 1], ms: NODE_DEATH_MS + 2_000 });
    const redisTime = await redisHolds("chats/1", expected, {
      nodeOf,
      liveNodes: [ids[0], ids[1]],
      deadNodes: [ids[2]],
      ms: NODE_DEATH_MS + 2_000,
    });
    const total = performance.now() - killedAt;
    info(`SIGKILL of C -> gone from every view on A and B: ${viewTime.toFixed(0)} ms; from Redis: ${total.toFixed(0)} ms`);
    assert.ok(viewTime <= NODE_DEATH_MS, `C's members left the views after ${viewTime.toFixed(0)} ms (> ${NODE_DEATH_MS} ms)`);
    assert.ok(total <= NODE_DEATH_MS + 1_000, `C's records left Redis after ${total.toFixed(0)} ms`);
    for (const m of survivors) {
      assert.deepEqual(
        [...new Set(m.leftKeys)].sort(),
        ["cat", "twin", "w-c"],
        `${m.who}: the presence_diff leaves it got (C's members, nobody else)`,
      );
    }
    assert.equal(await redis("EXISTS", `${PREFIX}presence-lease:${ids[2]}`), 0, "C's lease is gone");
    await sameRefsAsRedis("chats/1", survivors);

    step("the cluster goes on: a join on B reaches A");
    const [bo] = await sioMembers([["bo", 1]]);
    const after = [...survivors, bo];
    expected = countsOf(after.map((m) => m.name));
    await converge("a join after the crash", expected, { watchers: after, nodes: [0, 1] });
    await stillThere("after the crash", expected, { watchers: after, nodes: [0, 1] });
  },

  // Redis is SIGKILLed while every node has members; during the outage a member leaves on A,
  // one disconnects on C, one joins on B (each node's own members hear of its own changes);
  // Redis restarts empty on the same port: every node ends with exactly who is connected,
  // and Redis is refilled with exactly that.
  async outage() {
    for (const i of [0, 1, 2]) await startNode(i);
    const members = await sioMembers([
      ["w-a", 0],
      ["amy", 0],
      ["ari", 0],
      ["w-b", 1],
      ["bill", 1],
      ["w-c", 2],
      ["cid", 2],
      ["twin", 0],
      ["twin", 2],
    ]);
    let expected = countsOf(liveNames(members));
    await converge("before the outage", expected, { watchers: members, nodes: [0, 1, 2] });
    const ids = await nodeIds("chats/1", [["w-a", "amy"], ["w-b", "bill"], ["w-c", "cid"]]);
    const names = { "w-a": 0, amy: 0, ari: 0, "w-b": 1, bill: 1, bea: 1, "w-c": 2, cid: 2 };
    const nodeOf = (key) => (key === "twin" ? [ids[0], ids[2]] : names[key] === undefined ? undefined : [ids[names[key]]]);
    await redisHolds("chats/1", expected, { nodeOf, liveNodes: ids });

    await killRedis();
    step("during the outage: ari unsubscribes on A, twin (on C) disconnects, bea joins on B");
    await sleep(300);
    const [wa, amy, ari, wb, , wc, , , twinC] = members;
    await ari.unsubscribe();
    twinC.close();
    const [bea] = await sioMembers([["bea", 1]]);
    const now = [...members.filter((m) => m.joined), bea];
    expected = countsOf(now.map((m) => m.name));
    step("during the outage: each node's own members hear of its own changes");
    await until(() => `w-a (A) sees ari leave: [${show(wa.counts())}]`, CONVERGE_MS, () => !wa.counts().has("ari"));
    await until(() => `w-c (C) sees its twin leave: [${show(wc.counts())}]`, CONVERGE_MS, () => wc.counts().get("twin") === 1);
    await until(() => `w-b (B) sees bea join: [${show(wb.counts())}]`, CONVERGE_MS, () => wb.counts().has("bea"));
    await sleep(2_000); // an outage of a few seconds: the nodes notice and retry

    await startRedis();
    const back = performance.now();
    const viewTime = await converge("after the outage", expected, { watchers: now, nodes: [0, 1, 2], ms: RECOVERY_MS });
    const redisTime = await redisHolds("chats/1", expected, { nodeOf, liveNodes: ids, ms: RECOVERY_MS });
    info(
      `Redis back (empty) -> every view agrees on who is connected: ${viewTime.toFixed(0)} ms; ` +
        `Redis refilled exactly: ${(performance.now() - back).toFixed(0)} ms`,
    );
    await sameRefsAsRedis("chats/1", now);
    await stillThere("after the outage", expected, { watchers: now, nodes: [0, 1, 2] });
    await redisHolds("chats/1", expected, { nodeOf, liveNodes: ids, ms: 0 });
    void amy;
    void redisTime;

    step("after the outage a join on C reaches every view");
    const [cy] = await sioMembers([["cy", 2]]);
    const after = [...now, cy];
    expected = countsOf(after.map((m) => m.name));
    await converge("a join after the outage", expected, { watchers: after, nodes: [0, 1, 2] });
  },

  // As `outage`, but node C is SIGKILLed while Redis is down (and ann joins on A): once
  // Redis is back, C's members are gone everywhere, from Redis too.
  async "outage-node-death"() {
    for (const i of [0, 1, 2]) await startNode(i);
    const members = await sioMembers([
      ["w-a", 0],
      ["al", 0],
      ["w-b", 1],
      ["bo", 1],
      ["w-c", 2],
      ["cy", 2],
      ["twin", 1],
      ["twin", 2],
    ]);
    let expected = countsOf(members.map((m) => m.name));
    await converge("before the outage", expected, { watchers: members, nodes: [0, 1, 2] });
    const ids = await nodeIds("chats/1", [["w-a", "al"], ["w-b", "bo"], ["w-c", "cy"]]);
    const names = { "w-a": 0, al: 0, ann: 0, "w-b": 1, bo: 1, "w-c": 2, cy: 2 };
    const nodeOf = (key) => (key === "twin" ? [ids[1]] : names[key] === undefined ? undefined : [ids[names[key]]]);

    await killRedis();
    await sleep(300);
    step("during the outage: C is SIGKILLed, ann joins on A");
    for (const m of members.filter((m) => m.node === 2)) m.expectDeath();
    await killNode(2);
    const [ann] = await sioMembers([["ann", 0]]);
    const now = [...members.filter((m) => m.node !== 2), ann];
    for (const m of now) m.leftKeys = [];
    expected = countsOf(now.map((m) => m.name));
    await sleep(2_000);

    await startRedis();
    const back = performance.now();
    const viewTime = await converge("after the outage, C dead", expected, { watchers: now, nodes: [0, 1], ms: RECOVERY_MS });
    await redisHolds("chats/1", expected, { nodeOf, liveNodes: [ids[0], ids[1]], deadNodes: [ids[2]], ms: RECOVERY_MS });
    info(
      `Redis back (empty), C died during the outage -> every view agrees: ${viewTime.toFixed(0)} ms; ` +
        `Redis exact: ${(performance.now() - back).toFixed(0)} ms`,
    );
    for (const m of now.filter((m) => m !== ann)) {
      assert.deepEqual(
        [...new Set(m.leftKeys)].sort(),
        ["cy", "twin", "w-c"],
        `${m.who}: the presence_diff leaves it got since C's death`,
      );
    }
    await sameRefsAsRedis("chats/1", now);
    await stillThere("after the outage, C dead", expected, { watchers: now, nodes: [0, 1] });
    await redisHolds("chats/1", expected, { nodeOf, liveNodes: [ids[0], ids[1]], deadNodes: [ids[2]], ms: 0 });
  },

  // Churn: socket.io members join and leave chats/1 on the three nodes, CHURN_JOINS joins and
  // as many leaves (the last of some by disconnecting), in CHURN_ROUNDS rounds. A and B have
  // members who stay; C has only a few churners, so its channel empties and opens again and
  // again (a fresh read of Redis each time). Watchers join during the churn: late-a and late-b
  // in the first round (they stay), and in every round a `pin-c<r>` on C, three quarters in,
  // which keeps C's channel open until the round ends. After each round: no ghost in any view,
  // in any node's copy, in Redis; then the pin leaves. At the end the watchers there from the
  // start must have been told of every join and every leave, once.
  async churn() {
    const TOTAL = Number(process.env.CHURN_JOINS ?? 10_000);
    const ROUNDS = Number(process.env.CHURN_ROUNDS ?? 10);
    const PER_NODE = [8, 8, 3];
    for (const i of [0, 1, 2]) await startNode(i);
    monitorRedis();
    const stayers = await sioMembers([
      ["w-a", 0],
      ["w-b", 1],
      ["twin", 0],
      ["stay-b", 1],
    ]);
    const first = stayers.filter((m) => m.name.startsWith("w-"));
    await converge("before the churn", countsOf(stayers.map((m) => m.name)), { watchers: stayers, nodes: [0, 1, 2] });
    const ids = await nodeIds("chats/1", [["w-a"], ["w-b", "stay-b"]]);
    let idC = null;

    // Some churners share a key across nodes (several metas under one key while churning).
    const churners = [];
    for (const node of [0, 1, 2]) {
      for (let i = 0; i < PER_NODE[node]; i++) {
        const name = i % 3 === 0 ? `shared-${i}` : `churn-${NODE_NAMES[node]}${i}`;
        churners.push(new SioMember(name, node, { watch: false }));
      }
    }
    await Promise.all(churners.map((m) => m.connected()));
    const isChurner = (key) => key.startsWith("churn-") || key.startsWith("shared-");
    const churnMetas = { joins: new Map(), leaves: new Map() };
    // Diffs that carry more than one meta (for the log).
    const merged = new Map();
    const mergedExample = new Map();
    for (const w of first) {
      churnMetas.joins.set(w, 0);
      churnMetas.leaves.set(w, 0);
      w.socket.on("chats/1/presence_diff", ({ joins, leaves }) => {
        const metas = [...Object.values(joins), ...Object.values(leaves)].reduce((n, { metas }) => n + metas.length, 0);
        if (metas > 1) {
          merged.set(w, (merged.get(w) ?? 0) + 1);
          if (!mergedExample.has(w)) mergedExample.set(w, JSON.stringify({ joins, leaves }));
        }
        for (const [key, { metas }] of Object.entries(joins)) {
          if (isChurner(key)) churnMetas.joins.set(w, churnMetas.joins.get(w) + metas.length);
        }
        for (const [key, { metas }] of Object.entries(leaves)) {
          if (isChurner(key)) churnMetas.leaves.set(w, churnMetas.leaves.get(w) + metas.length);
        }
      });
    }

    // How often C had nobody in chats/1 (so was not subscribed to it), sampled: for the log.
    let sampling = true;
    let samples = 0;
    let emptyOnC = 0;
    const sampler = (async () => {
      while (sampling) {
        const [, subscribers] = await redis("PUBSUB", "NUMSUB", `${PREFIX}chats/1`);
        samples += 1;
        if (subscribers < 3) emptyOnC += 1;
        await sleep(10);
      }
    })();

    let started = 0;
    let joins = 0;
    let leaves = 0;
    let disconnects = 0;
    let churnTime = 0;
    const staying = [...stayers];
    for (let round = 0; round < ROUNDS; round++) {
      const end = Math.floor((TOTAL * (round + 1)) / ROUNDS);
      const begin = started;
      const last = round === ROUNDS - 1;
      step(`churn round ${round + 1}/${ROUNDS}: joins ${begin + 1}..${end}`);
      const lateAt = new Map([[begin + Math.floor(((end - begin) * 3) / 4), [`pin-c${round}`, 2]]]);
      if (round === 0) {
        lateAt.set(Math.floor(end / 4), ["late-a", 0]);
        lateAt.set(Math.floor(end / 2), ["late-b", 1]);
      }
      const lateJoins = [];
      const roundStarted = performance.now();
      await Promise.all(
        churners.map(async (m, index) => {
          while (started < end) {
            started += 1;
            if (lateAt.has(started)) lateJoins.push(sioMembers([lateAt.get(started)]));
            await m.subscribe();
            joins += 1;
            if (last && started >= end && index % 2 === 1) {
              // The last join of this one ends with a disconnect, not an unsubscribe.
              m.close();
              disconnects += 1;
            } else {
              await m.unsubscribe();
            }
            leaves += 1;
          }
        }),
      );
      churnTime += performance.now() - roundStarted;
      const late = (await Promise.all(lateJoins)).flat();
      const pin = late.find((m) => m.name.startsWith("pin-"));
      staying.push(...late.filter((m) => m !== pin));
      const all = [...staying, pin];
      const expected = countsOf(all.map((m) => m.name));
      await converge(`after churn round ${round + 1}`, expected, { watchers: all, nodes: [0, 1, 2], ms: 10_000 });
      if (idC === null) {
        [idC] = await nodeIds("chats/1", [[pin.name]]);
        ids.push(idC);
      }
      const names = { "w-a": 0, "late-a": 0, twin: 0, "w-b": 1, "stay-b": 1, "late-b": 1, [pin.name]: 2 };
      const nodeOf = (key) => (names[key] === undefined ? undefined : [ids[names[key]]]);
      await redisHolds("chats/1", expected, { nodeOf, liveNodes: ids });
      await sameRefsAsRedis("chats/1", all);
      step(`${pin.who} leaves`);
      await pin.unsubscribe();
      pin.close();
      await converge(`${pin.name} gone`, countsOf(staying.map((m) => m.name)), { watchers: staying, nodes: [0, 1, 2] });
    }
    sampling = false;
    await sampler;
    assert.equal(joins, TOTAL, "joins made");
    assert.equal(leaves, TOTAL, "leaves made");
    info(
      `churn: ${joins} joins and ${leaves} leaves (${disconnects} by disconnecting) by ${churners.length} sockets ` +
        `on 3 nodes in ${ROUNDS} rounds, ${churnTime.toFixed(0)} ms of churn (${((joins * 1000) / churnTime).toFixed(0)} joins/s); ` +
        `C was not subscribed to chats/1 in ${emptyOnC} of ${samples} samples of PUBSUB NUMSUB`,
    );
    const expected = countsOf(staying.map((m) => m.name));
    for (const w of first) {
      assert.deepEqual(
        { joins: churnMetas.joins.get(w), leaves: churnMetas.leaves.get(w) },
        { joins: TOTAL, leaves: TOTAL },
        `${w.who}: churners' metas in the presence_diffs it got (each join and each leave once)`,
      );
    }
    info(
      `w-a / w-b got ${first.map((m) => m.diffs).join(" / ")} presence_diffs in all; ` +
        `diffs with several metas: ${first.map((w) => `${w.name} ${merged.get(w) ?? 0}${mergedExample.has(w) ? ` (e.g. ${mergedExample.get(w)})` : ""}`).join(", ")}`,
    );
    await stillThere("after the churn", expected, { watchers: staying, nodes: [0, 1, 2] });

    step("a fresh member on each node gets exactly the members who stayed, and itself");
    for (const node of [0, 1, 2]) {
      const [fresh] = await sioMembers([[`fresh-${NODE_NAMES[node]}`, node]]);
      await until(`${fresh.who}: presence_state`, CONVERGE_MS, () => fresh.firstState !== null);
      const want = new Map(expected);
      want.set(fresh.name, 1);
      assert.equal(show(countsOfState(fresh.firstState)), show(want), `${fresh.who}: its first presence_state`);
      await fresh.unsubscribe();
      fresh.close();
      await converge(`${fresh.name} gone`, expected, { watchers: staying, nodes: [0, 1, 2] });
    }
  },
};

run("presence_cluster.mjs", scenarios, {
  where: `Redis on port ${REDIS_PORT}`,
  timeoutMs: (name) => (name === "churn" ? 100_000 : 60_000),
});
