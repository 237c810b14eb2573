// The ws_chat example (the Azu seed, ported) with plain WebSockets (`ws`, no library protocol):
// the `chat`, `secure` and `rooms/:room_id` channels bound by path, and two nodes through Redis.
//
// Usage: TIDINGS_URL=http://127.0.0.1:PORT [TIDINGS_URL2=...] node tests/js/ws_chat.mjs <scenario>
import assert from "node:assert/strict";
import WebSocket from "ws";
import { step, sleep, within, run, openSockets } from "./harness.mjs";

const URL = (process.env.TIDINGS_URL ?? "http://127.0.0.1:4001").replace(/\/+$/, "");
const URL2 = (process.env.TIDINGS_URL2 ?? "").replace(/\/+$/, "");
const WAIT_MS = 5_000;
const QUIET_MS = 400;

/** A plain WebSocket to `path`, with every frame it gets kept in order. */
class Client {
  constructor(path, base = URL) {
    this.frames = [];
    this.waiters = [];
    this.ws = new WebSocket(`${base.replace(/^http/, "ws")}${path}`);
    this.opened = new Promise((resolve) => this.ws.on("open", resolve));
    this.closed = new Promise((resolve) => this.ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })));
    this.ws.on("message", (data) => {
      const frame = JSON.parse(data.toString());
      const i = this.waiters.findIndex((w) => w.match(frame));
      if (i >= 0) this.waiters.splice(i, 1)[0].resolve(frame);
      else this.frames.push(frame);
    });
    openSockets.add({ close: () => this.ws.terminate() });
  }
  /** The next frame that `match`es (already received or to come). */
  next(match, what) {
    const i = this.frames.findIndex(match);
    if (i >= 0) return Promise.resolve(this.frames.splice(i, 1)[0]);
    return within(WAIT_MS, new Promise((resolve) => this.waiters.push({ match, resolve })), `never got ${what}`);
  }
  event(name) {
    return this.next((f) => f.type === "event" && f.event === name, `event ${name}`);
  }
  reply(ref) {
    return this.next((f) => f.type === "reply" && f.ref === ref, `reply ${ref}`);
  }
  /** Sends once the socket is open (frames keep their order). */
  send(message) {
    this.opened.then(() => this.ws.send(JSON.stringify(message)));
  }
  push(channel, event, data, ref) {
    this.send({ type: "event", channel, event, data, ref });
  }
  async nothing(name, who) {
    await sleep(QUIET_MS);
    const got = this.frames.filter((f) => f.type === "event" && f.event === name);
    assert.deepEqual(got, [], `${who} got unexpected ${name}`);
  }
  close() {
    this.ws.close();
  }
}

/** Opens `/ws/<channel>` and checks its first frame is the ok reply. */
async function bound(channel, who, base = URL) {
  const client = new Client(`/ws/${channel}`, base);
  const first = await client.next(() => true, `${who}: first frame`);
  assert.deepEqual(first, { type: "reply", status: "ok", channel: channel.split("?")[0] }, `${who}: first frame`);
  return client;
}

const scenarios = {
  async "northle-chat"() {
    step("the chat example over /ws: chats/1 joined, a POST /chat arrives");
    const guest = new Client("/ws");
    guest.send({ type: "subscribe", channel: "chats/1", ref: "s" });
    assert.deepEqual(await guest.reply("s"), { type: "reply", ref: "s", status: "ok" });
    const posted = await fetch(`${URL}/chat`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ message: "to every protocol" }),
    });
    assert.equal(posted.status, 204);
    const message = await guest.event("message");
    // The chat example keeps channel history (connection state recovery): events carry
    // their offset.
    assert.ok(Number.isInteger(message.offset) && message.offset > 0, `offset: ${JSON.stringify(message)}`);
    delete message.offset;
    assert.deepEqual(message, {
      type: "event",
      channel: "chats/1",
      event: "message",
      data: { message: "to every protocol" },
    });
    step("private/vip needs the VIP token: refused without, joined with it in the query");
    guest.send({ type: "subscribe", channel: "private/vip", ref: "v" });
    assert.deepEqual(await guest.reply("v"), { type: "reply", ref: "v", status: "error", reason: "unauthorized" });
    const vip = await bound("private/vip?token=northle-vip", "vip");
    vip.push("private/vip", "message", { text: "psst" }, "p");
    assert.deepEqual(await vip.reply("p"), { type: "reply", ref: "p", status: "ok" });
    assert.deepEqual((await vip.event("message")).data, { text: "psst" });
  },

  async chat() {
    step("ann joins chat: welcome, then the user count");
    const ann = await bound("chat", "ann");
    assert.deepEqual((await ann.event("connected")).data, { message: "Welcome!" });
    assert.deepEqual((await ann.event("users")).data, { count: 1 });

    step("ben joins: both get the new count");
    const ben = await bound("chat", "ben");
    assert.deepEqual((await ben.event("connected")).data, { message: "Welcome!" });
    assert.deepEqual((await ann.event("users")).data, { count: 2 });
    assert.deepEqual((await ben.event("users")).data, { count: 2 });

    step("a message goes to everyone, the sender included");
    ann.push("chat", "message", { content: "hello" }, "m1");
    assert.deepEqual(await ann.reply("m1"), { type: "reply", ref: "m1", status: "ok" });
    assert.deepEqual((await ann.event("message")).data, { content: "hello" });
    assert.deepEqual((await ben.event("message")).data, { content: "hello" });

    step("typing goes to the others only");
    ann.push("chat", "typing", { user: "ann" }, "t1");
    await ann.reply("t1");
    assert.deepEqual((await ben.event("typing")).data, { user: "ann" });
    await ann.nothing("typing", "ann");

    step("ping replies pong; an unknown event is refused");
    ben.push("chat", "ping", null, 7);
    assert.deepEqual(await ben.reply(7), { type: "reply", ref: 7, status: "ok", response: "pong" });
    ben.push("chat", "dance", {}, "d");
    assert.deepEqual(await ben.reply("d"), { type: "reply", ref: "d", status: "error", reason: "unknown_event" });

    step("ben leaves: ann gets the count down");
    ben.close();
    assert.deepEqual((await ann.event("users")).data, { count: 1 });
  },

  async secure() {
    step("a bad token: an error frame, then close 1008");
    const bad = new Client("/ws/secure?token=wrong");
    const error = await bad.next(() => true, "first frame");
    assert.equal(error.type, "error");
    assert.equal(error.reason, "unauthorized");
    const closed = await within(WAIT_MS, bad.closed, "no close");
    assert.equal(closed.code, 1008);

    step("no token at all: refused the same way");
    const none = new Client("/ws/secure");
    assert.equal((await none.next(() => true, "first frame")).reason, "unauthorized");
    assert.equal((await within(WAIT_MS, none.closed, "no close")).code, 1008);

    step("the right token: joined, then authenticated");
    const good = await bound("secure?token=azu-secret", "good");
    const authenticated = await good.event("authenticated");
    assert.match(authenticated.data.user, /^user-/);
  },

  async rooms() {
    step("a and b in room 1, c in room 2; joins are announced to the room only");
    const a = await bound("rooms/1", "a");
    assert.deepEqual((await a.event("joined")).data, { room: "1" });
    const b = await bound("rooms/1", "b");
    assert.deepEqual((await a.event("joined")).data, { room: "1" });
    assert.deepEqual((await b.event("joined")).data, { room: "1" });
    const c = await bound("rooms/2", "c");
    assert.deepEqual((await c.event("joined")).data, { room: "2" });
    await a.nothing("joined", "a");

    step("a message goes to the others of the room only");
    a.push("rooms/1", "message", { text: "hi room 1" }, "r");
    await a.reply("r");
    assert.deepEqual((await b.event("message")).data, { text: "hi room 1" });
    await a.nothing("message", "a");
    await c.nothing("message", "c");
  },

  async "two-nodes"() {
    assert.ok(URL2, "TIDINGS_URL2 is set");
    step("ann on node 1 and ben on node 2 join chat");
    const ann = await bound("chat", "ann", URL);
    const ben = await bound("chat", "ben", URL2);
    await ann.event("connected");
    await ben.event("connected");
    // Each node counts its own members until presence gives a cluster-wide count.
    step("a message on each node reaches the other");
    await sleep(300); // node 2's subscription in Redis
    ann.push("chat", "message", { content: "from 1" }, "1");
    assert.deepEqual((await ben.event("message")).data, { content: "from 1" });
    ben.push("chat", "message", { content: "from 2" }, "2");
    assert.deepEqual((await ann.event("message")).data, { content: "from 1" });
    assert.deepEqual((await ann.event("message")).data, { content: "from 2" });
    step("typing from node 2 reaches node 1, not its sender");
    ben.push("chat", "typing", { user: "ben" }, "3");
    assert.deepEqual((await ann.event("typing")).data, { user: "ben" });
    await ben.nothing("typing", "ben");
  },
};

run("ws_chat.mjs", scenarios, { where: URL, timeoutMs: 20_000 });
