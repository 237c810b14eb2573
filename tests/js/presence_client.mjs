// Presence (Phoenix Presence's payloads) with the official clients: phoenix.js's `Presence`
// against the phoenix_chat example's `room:lobby` (join, leave, update, two tabs, rejoin), the
// same state read over Phoenix, Socket.IO and plain WebSocket, channels without presence that
// never send it, and the ws_chat example's user count.
//
// Usage: TIDINGS_URL=http://127.0.0.1:PORT node tests/js/presence_client.mjs <scenario>
import assert from "node:assert/strict";
import { Socket, Presence } from "phoenix";
import { io } from "socket.io-client";
import WebSocket from "ws";
import { step, sleep, within, run, openSockets } from "./harness.mjs";

const URL = (process.env.TIDINGS_URL ?? "http://127.0.0.1:4000").replace(/\/+$/, "");
const WS = URL.replace(/^http/, "ws");
const WAIT_MS = 5_000;
// How long we wait to be sure that something does NOT arrive.
const QUIET_MS = 500;
const LOBBY = "room:lobby";

const sorted = (values) => [...values].sort();
const show = (value) => JSON.stringify(value);

/** Polls `check` until it holds, failing with `what` (and `detail()`) after `ms`. */
async function until(what, check, detail = () => "", ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (check()) return;
    await sleep(20);
  }
  assert.fail(`${what} within ${ms} ms; ${detail()}`);
}

/** A `phx_ref` as the brief has it: 16 URL-safe characters. */
function assertRef(ref, what) {
  assert.equal(typeof ref, "string", `${what}: phx_ref ${show(ref)}`);
  assert.match(ref, /^[A-Za-z0-9_-]{16}$/, `${what}: phx_ref ${show(ref)}`);
}

/** Every phx_ref of a state (`{key: {metas: [...]}}`), sorted. */
const refsOf = (state) => sorted(Object.values(state).flatMap((p) => p.metas.map((m) => m.phx_ref)));

// ---------------------------------------------------------------------------------------------
// phoenix.js

/** A phoenix.js socket for `user` over WebSocket (`ws`). */
function phoenixSocket(user) {
  const socket = new Socket(`${WS}/socket`, {
    transport: WebSocket,
    params: { user },
    reconnectAfterMs: () => 200,
    rejoinAfterMs: () => 200,
  });
  socket.connect();
  openSockets.add({ close: () => socket.disconnect() });
  return socket;
}

/**
 * A channel with phoenix.js's `Presence` on it, recording everything: the callbacks (onJoin,
 * onLeave, onSync with the list at that moment) and the raw `presence_state` / `presence_diff`
 * payloads, all bound before the join.
 */
class PresenceView {
  constructor(socket, topic = LOBBY, who = "?") {
    this.who = who;
    this.channel = socket.channel(topic, {});
    this.states = [];
    this.diffs = [];
    this.joins = [];
    this.leaves = [];
    this.syncs = [];
    // Bound before the Presence's own bindings, so they run first.
    this.channel.on("presence_state", (payload) => this.states.push(structuredClone(payload)));
    this.channel.on("presence_diff", (payload) => this.diffs.push(structuredClone(payload)));
    this.presence = new Presence(this.channel);
    this.presence.onJoin((key, current, added) =>
      this.joins.push({ key, current: current && structuredClone(current), added: structuredClone(added) }),
    );
    this.presence.onLeave((key, current, left) =>
      this.leaves.push({ key, current: structuredClone(current), left: structuredClone(left) }),
    );
    this.presence.onSync(() => this.syncs.push({ states: this.states.length, list: this.state() }));
  }

  /** The synced state as `{key: metas}`, keys sorted. */
  state() {
    const out = {};
    for (const { key, metas } of this.presence.list((key, p) => ({ key, metas: structuredClone(p.metas) }))) {
      out[key] = metas;
    }
    return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : 1)));
  }

  keys() {
    return Object.keys(this.state());
  }

  metas(key) {
    return this.state()[key] ?? [];
  }

  /** Waits until the synced keys are exactly `keys` and `check(state)` holds. */
  async until(what, keys, check = () => true) {
    await until(
      `${this.who}: ${what}`,
      () => this.syncs.length > 0 && show(this.keys()) === show(sorted(keys)) && check(this.state()),
      () => `synced ${show(this.state())}, presence_state ${this.states.length}x, diffs ${show(this.diffs)}`,
    );
  }

  join() {
    return join(this.channel, this.who);
  }

  leave() {
    return within(
      WAIT_MS,
      new Promise((resolve, reject) =>
        this.channel
          .leave()
          .receive("ok", resolve)
          .receive("timeout", () => reject(new Error(`${this.who}: leave timeout`))),
      ),
      `${this.who}: no leave reply`,
    );
  }
}

/** Joins `channel`; resolves with the join reply, rejects with the refusal. */
function join(channel, who) {
  return within(
    WAIT_MS,
    new Promise((resolve, reject) =>
      channel
        .join()
        .receive("ok", resolve)
        .receive("error", (e) => reject(new Error(`${who}: join refused ${show(e)}`)))
        .receive("timeout", () => reject(new Error(`${who}: join timeout`))),
    ),
    `${who}: no join reply`,
  );
}

function push(channel, event, payload, who) {
  return within(
    WAIT_MS,
    new Promise((resolve, reject) =>
      channel
        .push(event, payload)
        .receive("ok", resolve)
        .receive("error", (e) => reject(new Error(`${who}: ${event} refused ${show(e)}`)))
        .receive("timeout", () => reject(new Error(`${who}: ${event} timeout`))),
    ),
    `${who}: no reply to ${event}`,
  );
}

/** A phoenix.js member of the lobby: its socket and its presence view, joined. */
async function phoenixMember(user, who = user) {
  const socket = phoenixSocket(user);
  const view = new PresenceView(socket, LOBBY, who);
  await view.join();
  return { socket, view };
}

// ---------------------------------------------------------------------------------------------
// The other protocols: the state kept with phoenix.js's own `Presence.syncState` /
// `Presence.syncDiff`, diffs held until the first `presence_state`, as phoenix.js does.

class Tracker {
  constructor(who) {
    this.who = who;
    this.state = {};
    this.synced = false;
    this.pending = [];
    this.states = [];
    this.diffs = [];
  }
  onState(payload) {
    this.states.push(structuredClone(payload));
    this.state = Presence.syncState(this.state, payload);
    for (const diff of this.pending) this.state = Presence.syncDiff(this.state, diff);
    this.pending = [];
    this.synced = true;
  }
  onDiff(payload) {
    this.diffs.push(structuredClone(payload));
    if (this.synced) this.state = Presence.syncDiff(this.state, payload);
    else this.pending.push(payload);
  }
  /** The state as `{key: metas}`, keys sorted (as `PresenceView.state`). */
  view() {
    return Object.fromEntries(
      Object.keys(this.state)
        .sort()
        .map((key) => [key, structuredClone(this.state[key].metas)]),
    );
  }
}

/** A socket.io-client member of `channel` (the connect hook reads `auth.user`). */
async function socketIoMember(user, channel = LOBBY) {
  const socket = io(URL, { forceNew: true, reconnection: false, auth: { user } });
  openSockets.add(socket);
  const tracker = new Tracker(`${user} (socket.io)`);
  const events = [];
  socket.onAny((event, ...args) => {
    events.push({ event, args });
    if (event === `${channel}/presence_state`) tracker.onState(args[0]);
    if (event === `${channel}/presence_diff`) tracker.onDiff(args[0]);
  });
  socket.on("connect_error", (err) => events.push({ event: "$connect_error", args: [err.message] }));
  const ack = await within(
    WAIT_MS,
    new Promise((resolve) => socket.emit("subscribe", channel, resolve)),
    `${user}: no subscribe ack for ${channel}`,
  );
  assert.deepEqual(ack, { status: "ok" }, `${user}: subscribe ${channel}`);
  return { socket, tracker, events };
}

function ack(socket, event, payload, who) {
  return within(
    WAIT_MS,
    new Promise((resolve) => socket.emit(event, payload, resolve)),
    `${who}: no ack for ${event}`,
  );
}

/** A plain WebSocket (`ws`) with every frame kept in order, presence frames tracked. */
class PlainClient {
  constructor(path, who) {
    this.who = who;
    this.frames = [];
    this.waiters = [];
    this.trackers = new Map();
    this.ws = new WebSocket(`${WS}${path}`);
    this.opened = new Promise((resolve, reject) => {
      this.ws.once("open", resolve);
      this.ws.once("unexpected-response", (_, res) => reject(new Error(`${who}: HTTP ${res.statusCode}`)));
      this.ws.once("error", reject);
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => this.ws.on("close", (code) => resolve(code)));
    this.ws.on("message", (data) => {
      const frame = JSON.parse(data.toString());
      if (frame.type === "event" && (frame.event === "presence_state" || frame.event === "presence_diff")) {
        const tracker = this.tracker(frame.channel);
        if (frame.event === "presence_state") tracker.onState(frame.data);
        else tracker.onDiff(frame.data);
      }
      this.frames.push(frame);
      const i = this.waiters.findIndex((w) => w.match(frame));
      if (i >= 0) this.waiters.splice(i, 1)[0].resolve(frame);
    });
    openSockets.add({ close: () => this.ws.terminate() });
  }
  tracker(channel) {
    if (!this.trackers.has(channel)) this.trackers.set(channel, new Tracker(`${this.who} (${channel})`));
    return this.trackers.get(channel);
  }
  /** The next frame (received from now on, or already received and not yet taken) that matches. */
  next(match, what) {
    const taken = (this.taken ??= new Set());
    const old = this.frames.find((f) => !taken.has(f) && match(f));
    if (old) {
      taken.add(old);
      return Promise.resolve(old);
    }
    const wait = new Promise((resolve) =>
      this.waiters.push({
        match: (f) => !taken.has(f) && match(f),
        resolve: (f) => {
          taken.add(f);
          resolve(f);
        },
      }),
    );
    return within(WAIT_MS, wait, `${this.who}: never got ${what}`);
  }
  async request(message) {
    await this.opened;
    this.ws.send(JSON.stringify(message));
    return this.next((f) => f.type === "reply" && f.ref === message.ref, `reply ${message.ref}`);
  }
  /** The events named `name` received so far, in order. */
  events(name, channel) {
    return this.frames.filter((f) => f.type === "event" && f.event === name && (!channel || f.channel === channel));
  }
  close() {
    this.ws.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Scenarios

/** 1. phoenix.js's Presence: self, a join, an update (raw diff checked), a leave. */
async function phoenixPresence() {
  step("ada joins room:lobby: presence_state is ada alone, and onSync shows her");
  const ada = await phoenixMember("ada");
  await ada.view.until("ada alone after her join", ["ada"]);
  const [adaState] = ada.view.states;
  assert.deepEqual(Object.keys(adaState), ["ada"], `ada's presence_state ${show(adaState)}`);
  assert.equal(adaState.ada.metas.length, 1, `ada's presence_state ${show(adaState)}`);
  const adaMeta = adaState.ada.metas[0];
  assertRef(adaMeta.phx_ref, "ada's meta");
  assert.deepEqual(sorted(Object.keys(adaMeta)), ["online_at", "phx_ref"], `ada's meta ${show(adaMeta)}`);
  assert.ok(Number.isInteger(adaMeta.online_at) && adaMeta.online_at > 1.6e12, `online_at ${adaMeta.online_at}`);
  assert.deepEqual(ada.view.metas("ada"), [adaMeta], "ada's synced metas");
  assert.ok(ada.view.syncs.every((s) => s.states > 0), "onSync only once presence_state arrived");
  // The state and the diff of her own track may both call onJoin(ada) (as with Phoenix, where
  // the channel tracks and pushes the list, and the track's diff follows).
  assert.ok(ada.view.joins.length >= 1, "onJoin(ada) was called");
  assert.ok(ada.view.joins.every((j) => j.key === "ada"), `ada's onJoin calls ${show(ada.view.joins)}`);
  assert.equal(ada.view.joins[0].current, undefined, "ada was not present before");

  step("bob joins: ada's onJoin(bob) with the new presence; both sync to ada and bob");
  const bob = await phoenixMember("bob");
  await ada.view.until("ada sees bob", ["ada", "bob"]);
  const bobJoin = ada.view.joins.find((j) => j.key === "bob");
  assert.ok(bobJoin, `ada's onJoin calls ${show(ada.view.joins)}`);
  assert.equal(bobJoin.current, undefined, "bob was not present before");
  assert.equal(bobJoin.added.metas.length, 1, `onJoin(bob) ${show(bobJoin)}`);
  const bobMeta = bobJoin.added.metas[0];
  assertRef(bobMeta.phx_ref, "bob's meta");
  assert.notEqual(bobMeta.phx_ref, adaMeta.phx_ref, "each meta its own ref");
  assert.deepEqual(ada.view.metas("bob"), [bobMeta], "ada's view of bob");
  await bob.view.until("bob sees ada and himself", ["ada", "bob"]);
  assert.deepEqual(bob.view.state(), { ada: [adaMeta], bob: [bobMeta] }, "bob's state is ada's");
  assert.deepEqual(
    sorted(Object.keys(bob.view.states[0])),
    ["ada", "bob"],
    `bob's presence_state ${show(bob.view.states[0])}`,
  );

  step("ada sets her status: one meta, the new status; the raw diff joins new (phx_ref_prev) and leaves old");
  const diffsBefore = ada.view.diffs.length;
  assert.deepEqual(await push(ada.view.channel, "set_status", { status: "away" }, "ada"), {});
  const away = (state) => state.ada?.length === 1 && state.ada[0].status === "away";
  await ada.view.until("ada away in ada's view", ["ada", "bob"], away);
  await bob.view.until("ada away in bob's view", ["ada", "bob"], away);
  const updates = ada.view.diffs.slice(diffsBefore);
  assert.equal(updates.length, 1, `one diff for the update, got ${show(updates)}`);
  const [update] = updates;
  assert.deepEqual(sorted(Object.keys(update)), ["joins", "leaves"], `diff ${show(update)}`);
  assert.deepEqual(Object.keys(update.joins), ["ada"], `diff ${show(update)}`);
  assert.equal(update.joins.ada.metas.length, 1, `diff ${show(update)}`);
  const newMeta = update.joins.ada.metas[0];
  assertRef(newMeta.phx_ref, "ada's updated meta");
  assert.deepEqual(
    newMeta,
    { phx_ref: newMeta.phx_ref, phx_ref_prev: adaMeta.phx_ref, online_at: adaMeta.online_at, status: "away" },
    "the new meta: its own ref, the old one as phx_ref_prev, online_at kept",
  );
  assert.deepEqual(update.leaves, { ada: { metas: [adaMeta] } }, "the old meta leaves, as it was");
  assert.deepEqual(ada.view.metas("ada"), [newMeta], "ada's synced metas after the update");
  assert.deepEqual(bob.view.metas("ada"), [newMeta], "bob's synced metas of ada after the update");
  assert.deepEqual(bob.view.diffs.at(-1), update, "bob got the same diff");

  step("bob leaves the channel: ada's onLeave(bob) with no metas left; the key is gone");
  await bob.view.leave();
  await ada.view.until("bob gone from ada's view", ["ada"]);
  const bobLeave = ada.view.leaves.find((l) => l.key === "bob");
  assert.ok(bobLeave, `ada's onLeave calls ${show(ada.view.leaves)}`);
  assert.deepEqual(bobLeave.current.metas, [], "no metas of bob remain");
  assert.deepEqual(bobLeave.left, { metas: [bobMeta] }, "the meta that left is bob's");
  assert.deepEqual(ada.view.diffs.at(-1), { joins: {}, leaves: { bob: { metas: [bobMeta] } } }, "bob's leave diff");

  step("every ref distinct");
  const refs = [adaMeta.phx_ref, bobMeta.phx_ref, newMeta.phx_ref];
  assert.equal(new Set(refs).size, refs.length, `refs ${show(refs)}`);
}

/** 2. One user in two tabs: one key with two metas; closing tabs removes them one by one. */
async function twoTabs() {
  step("an observer joins");
  const obs = await phoenixMember("obs");
  await obs.view.until("obs alone", ["obs"]);

  step("tom's first tab joins");
  const tab1 = await phoenixMember("tom", "tom tab 1");
  await tab1.view.until("tab 1 sees obs and tom", ["obs", "tom"], (s) => s.tom.length === 1);
  const [ref1] = tab1.view.metas("tom").map((m) => m.phx_ref);
  assertRef(ref1, "tab 1");
  await obs.view.until("obs sees tom once", ["obs", "tom"], (s) => s.tom.length === 1);

  step("tom's second tab joins: one key tom, two metas; onJoin(tom) with tom already present");
  const tab2 = await phoenixMember("tom", "tom tab 2");
  await obs.view.until("obs sees tom twice", ["obs", "tom"], (s) => s.tom.length === 2);
  const tomJoins = obs.view.joins.filter((j) => j.key === "tom");
  assert.equal(tomJoins.length, 2, `obs's onJoin(tom) calls ${show(tomJoins)}`);
  assert.deepEqual(tomJoins[1].current?.metas.map((m) => m.phx_ref), [ref1], "tab 1 was present");
  assert.equal(tomJoins[1].added.metas.length, 1, `second onJoin(tom) ${show(tomJoins[1])}`);
  const ref2 = tomJoins[1].added.metas[0].phx_ref;
  assertRef(ref2, "tab 2");
  assert.notEqual(ref2, ref1, "two tabs, two refs");
  assert.deepEqual(sorted(obs.view.metas("tom").map((m) => m.phx_ref)), sorted([ref1, ref2]), "obs's metas of tom");
  await tab2.view.until("tab 2 sees both tabs", ["obs", "tom"], (s) => s.tom.length === 2);
  await tab1.view.until("tab 1 sees both tabs", ["obs", "tom"], (s) => s.tom.length === 2);

  step("tab 1 closes: tom stays with tab 2's meta; onLeave(tom) with the remaining meta");
  tab1.socket.disconnect();
  await obs.view.until("obs sees tom once more", ["obs", "tom"], (s) => s.tom.length === 1);
  assert.deepEqual(obs.view.metas("tom").map((m) => m.phx_ref), [ref2], "tab 2's meta remains");
  let tomLeaves = obs.view.leaves.filter((l) => l.key === "tom");
  assert.equal(tomLeaves.length, 1, `obs's onLeave(tom) calls ${show(tomLeaves)}`);
  assert.deepEqual(tomLeaves[0].current.metas.map((m) => m.phx_ref), [ref2], "remaining metas");
  assert.deepEqual(tomLeaves[0].left.metas.map((m) => m.phx_ref), [ref1], "the meta that left");
  await tab2.view.until("tab 2 sees itself only", ["obs", "tom"], (s) => s.tom.length === 1);

  step("tab 2 closes: tom is gone");
  tab2.socket.disconnect();
  await obs.view.until("tom gone", ["obs"]);
  tomLeaves = obs.view.leaves.filter((l) => l.key === "tom");
  assert.equal(tomLeaves.length, 2, `obs's onLeave(tom) calls ${show(tomLeaves)}`);
  assert.deepEqual(tomLeaves[1].current.metas, [], "no metas remain");
  assert.deepEqual(tomLeaves[1].left.metas.map((m) => m.phx_ref), [ref2], "the meta that left");
}

/** 3. After every (re)join a fresh presence_state: phoenix.js syncs again. */
async function rejoin() {
  step("ada and bob join");
  const ada = await phoenixMember("ada");
  const bob = await phoenixMember("bob");
  await ada.view.until("ada sees both", ["ada", "bob"]);
  await bob.view.until("bob sees both", ["ada", "bob"]);
  const ref0 = ada.view.metas("ada")[0].phx_ref;
  assert.equal(ada.view.states.length, 1, "one presence_state so far");

  step("ada's transport drops: phoenix.js reconnects, rejoins, gets a fresh presence_state and syncs");
  const dropped = ada.socket.conn;
  dropped.terminate();
  await ada.view.until(
    "ada synced after the drop",
    ["ada", "bob"],
    (s) => ada.view.states.length === 2 && s.ada.length === 1 && s.ada[0].phx_ref !== ref0,
  );
  assert.notEqual(ada.socket.conn, dropped, "a new connection");
  const ref1 = ada.view.metas("ada")[0].phx_ref;
  assertRef(ref1, "ada after the drop");
  assert.deepEqual(
    Object.keys(ada.view.states[1]).sort(),
    ["ada", "bob"],
    `second presence_state ${show(ada.view.states[1])}`,
  );
  assert.deepEqual(ada.view.states[1].ada.metas.map((m) => m.phx_ref), [ref1], "the fresh state has ada's new meta only");
  await bob.view.until("bob sees ada's new meta only", ["ada", "bob"], (s) => s.ada.length === 1 && s.ada[0].phx_ref === ref1);

  step("ada disconnects; meanwhile bob leaves and carl joins");
  ada.socket.disconnect();
  await bob.view.until("bob sees ada gone", ["bob"]);
  const carl = await phoenixMember("carl");
  await carl.view.until("carl sees bob and himself (ada gone)", ["bob", "carl"]);
  await bob.view.leave();
  await carl.view.until("carl alone", ["carl"]);
  const syncsBefore = ada.view.syncs.length;
  assert.deepEqual(ada.view.keys(), ["ada", "bob"], "ada's view is stale while she is away");

  step("ada connects again: the channel rejoins; the fresh presence_state shows carl and not bob");
  ada.socket.connect();
  await ada.view.until(
    "ada synced after reconnecting",
    ["ada", "carl"],
    (s) => ada.view.states.length === 3 && s.ada.length === 1 && ![ref0, ref1].includes(s.ada[0].phx_ref),
  );
  assert.ok(ada.view.syncs.length > syncsBefore, "onSync fired again");
  const bobLeaves = ada.view.leaves.filter((l) => l.key === "bob");
  assert.equal(bobLeaves.length, 1, `onLeave(bob) from the fresh state: ${show(ada.view.leaves)}`);
  assert.ok(ada.view.joins.some((j) => j.key === "carl"), `onJoin(carl) from the fresh state: ${show(ada.view.joins)}`);
  assert.ok(
    ada.view.syncs.slice(syncsBefore).every((s) => s.states === 3),
    "no onSync after reconnecting before the fresh presence_state",
  );

  step("ada leaves and joins room:lobby again on a new channel: its Presence syncs from its own presence_state");
  await ada.view.leave();
  await carl.view.until("carl alone again", ["carl"]);
  const again = new PresenceView(ada.socket, LOBBY, "ada again");
  await again.join();
  await again.until("ada synced on the new channel", ["ada", "carl"]);
  assert.equal(again.states.length, 1, "one presence_state on the new channel");
  assert.ok(again.syncs.every((s) => s.states > 0), "no onSync before presence_state");
  await carl.view.until("carl sees ada back", ["ada", "carl"]);
  const refs = [ref0, ref1, ada.view.states[2].ada.metas[0].phx_ref, again.metas("ada")[0].phx_ref];
  assert.equal(new Set(refs).size, refs.length, `every join its own ref: ${show(refs)}`);
}

/** 4. One state seen over Phoenix, Socket.IO and plain WebSocket. */
async function threeProtocols() {
  step("ada (phoenix.js), sid (socket.io-client) and wes (plain WebSocket) join room:lobby");
  const ada = await phoenixMember("ada");
  const sid = await socketIoMember("sid");
  const wes = new PlainClient("/ws?user=wes", "wes");
  assert.deepEqual(await wes.request({ type: "subscribe", channel: LOBBY, ref: "s" }), {
    type: "reply",
    ref: "s",
    status: "ok",
  });
  const wesTracker = wes.tracker(LOBBY);
  const views = {
    phoenix: () => ada.view.state(),
    "socket.io": () => sid.tracker.view(),
    plain: () => wesTracker.view(),
  };
  const detail = () => show(Object.fromEntries(Object.entries(views).map(([name, view]) => [name, view()])));
  const allAt = async (what, keys, check = () => true) => {
    await until(
      what,
      () =>
        ada.view.syncs.length > 0 &&
        sid.tracker.synced &&
        wesTracker.synced &&
        Object.values(views).every((view) => show(Object.keys(view())) === show(sorted(keys)) && check(view())),
      detail,
    );
    const [first, ...rest] = Object.values(views).map((view) => view());
    for (const other of rest) assert.deepEqual(other, first, "the three protocols see the same state");
    return first;
  };
  await allAt("everyone sees ada, sid and wes", ["ada", "sid", "wes"]);
  assert.ok(sid.tracker.states.length === 1 && wesTracker.states.length === 1, "one presence_state each");

  step("pat (phoenix.js), sue (socket.io-client) and pim (plain WebSocket, bound by path) join");
  const pat = await phoenixMember("pat");
  const sue = await socketIoMember("sue");
  const pim = new PlainClient(`/ws/${LOBBY}?user=pim`, "pim");
  assert.deepEqual(await pim.next(() => true, "pim's first frame"), { type: "reply", status: "ok", channel: LOBBY });
  const six = await allAt("everyone sees six", ["ada", "pat", "pim", "sid", "sue", "wes"]);
  const refs6 = refsOf(Object.fromEntries(Object.entries(six).map(([k, metas]) => [k, { metas }])));
  assert.equal(new Set(refs6).size, 6, `six distinct refs ${show(refs6)}`);
  refs6.forEach((ref) => assertRef(ref, "a member"));

  step("each protocol updates its status");
  assert.deepEqual(await push(ada.view.channel, "set_status", { status: "busy" }, "ada"), {});
  assert.deepEqual(await ack(sid.socket, `${LOBBY}/set_status`, { status: "away" }, "sid"), { status: "ok" });
  assert.deepEqual(
    await wes.request({ type: "event", channel: LOBBY, event: "set_status", data: { status: "here" }, ref: "u" }),
    { type: "reply", ref: "u", status: "ok" },
  );
  const statuses = { ada: "busy", sid: "away", wes: "here" };
  await allAt("everyone sees the new statuses", ["ada", "pat", "pim", "sid", "sue", "wes"], (state) =>
    Object.entries(statuses).every(([key, status]) => state[key].length === 1 && state[key][0].status === status),
  );

  step("pat leaves, sue disconnects, pim closes");
  await pat.view.leave();
  sue.socket.disconnect();
  pim.close();
  const final = await allAt("everyone sees ada, sid and wes with their statuses", ["ada", "sid", "wes"], (state) =>
    Object.entries(statuses).every(([key, status]) => state[key].length === 1 && state[key][0].status === status),
  );
  const finalRefs = refsOf(Object.fromEntries(Object.entries(final).map(([k, metas]) => [k, { metas }])));
  assert.equal(new Set(finalRefs).size, 3, `three refs ${show(finalRefs)}`);
  for (const ref of finalRefs) {
    assertRef(ref, "a final meta");
    assert.ok(!refs6.includes(ref), "each update gave a new ref");
  }
  for (const [key, status] of Object.entries(statuses)) {
    const [meta] = final[key];
    const prev = six[key][0].phx_ref;
    assert.equal(meta.phx_ref_prev, prev, `${key}'s meta replaces the one before (${show(meta)})`);
    assert.equal(meta.status, status);
  }
}

/** 5. Channels without presence never send presence_state or presence_diff. */
async function noPresence() {
  const QUIET = ["rooms:lobby", "challenges:7"];
  const isPresence = (event) => event === "presence_state" || event === "presence_diff";

  step("nia (phoenix.js), sol (socket.io-client) and pia (plain WebSocket) join rooms:lobby and challenges:7");
  const nia = phoenixSocket("nia");
  const niaSeen = [];
  nia.onMessage(({ topic, event }) => niaSeen.push({ topic, event }));
  for (const topic of QUIET) await join(nia.channel(topic, {}), `nia ${topic}`);
  const sol = await socketIoMember("sol", "rooms:lobby");
  assert.deepEqual(await ack(sol.socket, "subscribe", "challenges:7", "sol"), { status: "ok" });
  const pia = new PlainClient("/ws?user=pia", "pia");
  for (const [i, channel] of QUIET.entries()) {
    assert.equal((await pia.request({ type: "subscribe", channel, ref: `q${i}` })).status, "ok", `pia ${channel}`);
  }

  step("noa joins both, says something in rooms:lobby, and leaves");
  const noa = phoenixSocket("noa");
  const noaRooms = noa.channel("rooms:lobby", {});
  await join(noaRooms, "noa rooms:lobby");
  await join(noa.channel("challenges:7", {}), "noa challenges:7");
  await push(noaRooms, "new:msg", { body: "hi" }, "noa");
  await until("nia hears noa's message", () =>
    niaSeen.some((m) => m.topic === "rooms:lobby" && m.event === "new:msg"),
  );
  await until("sol hears noa's message", () => sol.events.some((e) => e.event === "rooms:lobby/new:msg"));
  await pia.next((f) => f.type === "event" && f.event === "new:msg", "noa's message");
  noa.disconnect();
  await sleep(QUIET_MS);

  step("nothing about presence arrived on these channels");
  assert.deepEqual(niaSeen.filter((m) => isPresence(m.event)), [], "phoenix.js got presence events");
  assert.deepEqual(
    sol.events.filter((e) => /presence_(state|diff)$/.test(e.event)).map((e) => e.event),
    [],
    "socket.io-client got presence events",
  );
  assert.deepEqual(pia.frames.filter((f) => f.type === "event" && isPresence(f.event)), [], "plain got presence events");

  step("the same clients do get presence in room:lobby (so they would have seen it)");
  await join(nia.channel(LOBBY, {}), "nia room:lobby");
  assert.deepEqual(await ack(sol.socket, "subscribe", LOBBY, "sol"), { status: "ok" });
  assert.equal((await pia.request({ type: "subscribe", channel: LOBBY, ref: "l" })).status, "ok");
  await until("nia's presence_state for room:lobby", () =>
    niaSeen.some((m) => m.topic === LOBBY && m.event === "presence_state"),
  );
  await until("sol's presence_state for room:lobby", () =>
    sol.events.some((e) => e.event === `${LOBBY}/presence_state`),
  );
  await pia.next((f) => f.type === "event" && f.event === "presence_state" && f.channel === LOBBY, "presence_state");
  await sleep(QUIET_MS);
  assert.deepEqual(
    niaSeen.filter((m) => isPresence(m.event) && m.topic !== LOBBY),
    [],
    "phoenix.js: presence only in room:lobby",
  );
  assert.deepEqual(
    sol.events.filter((e) => /presence_(state|diff)$/.test(e.event) && !e.event.startsWith(`${LOBBY}/`)).map((e) => e.event),
    [],
    "socket.io-client: presence only in room:lobby",
  );
  assert.deepEqual(
    pia.frames.filter((f) => f.type === "event" && isPresence(f.event) && f.channel !== LOBBY),
    [],
    "plain: presence only in room:lobby",
  );
}

/** 6. ws_chat: `users` counts follow joins and leaves; members get presence_diff. */
async function wsChatCount() {
  const bound = async (who) => {
    const client = new PlainClient("/ws/chat", who);
    assert.deepEqual(await client.next(() => true, `${who}: first frame`), { type: "reply", status: "ok", channel: "chat" });
    return client;
  };
  const counts = (client) => client.events("users").map((f) => f.data.count);
  const diffs = (client) => client.events("presence_diff").map((f) => f.data);
  const untilCounts = (client, expected) =>
    until(`${client.who}: users counts ${show(expected)}`, () => show(counts(client)) === show(expected), () =>
      show(counts(client)),
    );
  const stateKeys = (client) => Object.keys(client.tracker("chat").state).sort();
  const joinOf = (key) => ({ joins: { [key]: { metas: [{ phx_ref: refOf[key] }] } }, leaves: {} });
  const refOf = {};
  /** The presence_state of a new member: the keys before it plus its own; learns its key. */
  const newKey = async (client, before) => {
    await until(`${client.who}: presence_state`, () => client.tracker("chat").states.length === 1);
    const [state] = client.tracker("chat").states;
    const keys = Object.keys(state).filter((k) => !before.includes(k));
    assert.equal(keys.length, 1, `${client.who}: presence_state ${show(state)} after ${show(before)}`);
    assert.equal(Object.keys(state).length, before.length + 1, `${client.who}: presence_state ${show(state)}`);
    const [key] = keys;
    assert.equal(state[key].metas.length, 1);
    const [meta] = state[key].metas;
    assertRef(meta.phx_ref, `${client.who}'s meta`);
    assert.deepEqual(meta, { phx_ref: meta.phx_ref }, `${client.who}'s meta: the example tracks {}`);
    refOf[key] = meta.phx_ref;
    return key;
  };

  step("a joins: count 1; its presence_state has itself");
  const a = await bound("a");
  await untilCounts(a, [1]);
  const keyA = await newKey(a, []);

  step("b joins: both count 2; a gets b's join as presence_diff");
  const b = await bound("b");
  await untilCounts(a, [1, 2]);
  await untilCounts(b, [2]);
  const keyB = await newKey(b, [keyA]);

  step("c joins: everyone counts 3");
  const c = await bound("c");
  await untilCounts(a, [1, 2, 3]);
  await untilCounts(b, [2, 3]);
  await untilCounts(c, [3]);
  const keyC = await newKey(c, [keyA, keyB]);
  assert.equal(new Set([keyA, keyB, keyC]).size, 3, "a key per connection");
  assert.equal(new Set(Object.values(refOf)).size, 3, "a ref per connection");

  step("c closes: a and b count 2 and get c's leave");
  c.close();
  await untilCounts(a, [1, 2, 3, 2]);
  await untilCounts(b, [2, 3, 2]);
  const leaveC = { joins: {}, leaves: { [keyC]: { metas: [{ phx_ref: refOf[keyC] }] } } };
  assert.deepEqual(diffs(a), [joinOf(keyA), joinOf(keyB), joinOf(keyC), leaveC], "a's presence_diffs");
  assert.deepEqual(diffs(b), [joinOf(keyB), joinOf(keyC), leaveC], "b's presence_diffs");
  assert.deepEqual(stateKeys(a), sorted([keyA, keyB]), "a's state");
  assert.deepEqual(stateKeys(b), sorted([keyA, keyB]), "b's state");
  await sleep(QUIET_MS);
  assert.deepEqual(counts(a), [1, 2, 3, 2], "no further counts");
  assert.equal(diffs(a).length, 4, "no further diffs");
}

const scenarios = {
  "phoenix-presence": phoenixPresence,
  "two-tabs": twoTabs,
  rejoin,
  "three-protocols": threeProtocols,
  "no-presence": noPresence,
  "ws-chat-count": wsChatCount,
};

run("presence_client.mjs", scenarios, { where: URL, timeoutMs: 20_000 });
