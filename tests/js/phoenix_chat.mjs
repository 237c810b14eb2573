// The phoenix_chat example (the Phoenix and trillium seeds, ported) against the official
// phoenix npm client, over WebSocket (`ws` on Node) and LongPoll (fetch), in headless Chromium
// (the browser's own WebSocket, phoenix.js served from node_modules), and on two nodes joined
// through Redis.
//
// Usage: TIDINGS_URL=http://127.0.0.1:PORT [TIDINGS_URL2=...] node tests/js/phoenix_chat.mjs <scenario>
import assert from "node:assert/strict";
import { Socket, LongPoll } from "phoenix";
import WebSocket from "ws";
import { step, sleep, within, run, launchChromium, openSockets } from "./harness.mjs";

const URL = (process.env.TIDINGS_URL ?? "http://127.0.0.1:4000").replace(/\/+$/, "");
const URL2 = (process.env.TIDINGS_URL2 ?? "").replace(/\/+$/, "");
const WAIT_MS = 5_000;
// How long we wait to be sure that something does NOT arrive.
const QUIET_MS = 500;

/** A phoenix.js socket for `user` on `base` over `transport` ("ws" or "longpoll"). */
function connect(user, transport, base = URL) {
  const options = { params: user === null ? {} : { user }, reconnectAfterMs: () => 200 };
  options.transport = transport === "ws" ? WebSocket : LongPoll;
  const socket = new Socket(`${base.replace(/^http/, "ws")}/socket`, options);
  socket.connect();
  openSockets.add({ close: () => socket.disconnect() });
  return socket;
}

/** Everything a channel receives, by event, so nothing is missed between a push and a wait. */
class Inbox {
  constructor(channel, events) {
    this.items = [];
    this.waiters = [];
    for (const event of events) channel.on(event, (payload) => this.push(event, payload));
  }
  push(event, payload) {
    const i = this.waiters.findIndex((w) => w.event === event);
    if (i >= 0) this.waiters.splice(i, 1)[0].resolve(payload);
    else this.items.push({ event, payload });
  }
  next(event, who) {
    const i = this.items.findIndex((it) => it.event === event);
    if (i >= 0) return Promise.resolve(this.items.splice(i, 1)[0].payload);
    const wait = new Promise((resolve) => this.waiters.push({ event, resolve }));
    return within(WAIT_MS, wait, `${who} never got ${event}`);
  }
  async nothing(event, who) {
    await sleep(QUIET_MS);
    const got = this.items.filter((it) => it.event === event);
    assert.deepEqual(got, [], `${who} got unexpected ${event}`);
  }
}

/** Joins `topic`; resolves with the join reply, rejects with the refusal. */
function join(channel, who) {
  return within(
    WAIT_MS,
    new Promise((resolve, reject) =>
      channel
        .join()
        .receive("ok", resolve)
        .receive("error", (e) => reject(new Error(`${who}: join refused ${JSON.stringify(e)}`)))
        .receive("timeout", () => reject(new Error(`${who}: join timeout`))),
    ),
    `${who}: no join reply`,
  );
}

/** The refusal reason of a join that must be refused. */
function refusal(channel, who) {
  return within(
    WAIT_MS,
    new Promise((resolve, reject) =>
      channel
        .join()
        .receive("ok", () => reject(new Error(`${who}: join accepted, expected a refusal`)))
        .receive("error", ({ reason }) => {
          channel.leave(); // no rejoin loop
          resolve(reason);
        })
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
        .receive("error", (e) => reject(new Error(`${who}: ${event} refused ${JSON.stringify(e)}`)))
        .receive("timeout", () => reject(new Error(`${who}: ${event} timeout`))),
    ),
    `${who}: no reply to ${event}`,
  );
}

/** Phoenix's RoomChannel seed: user_joined with the per-member ignore filter, new_msg. */
async function roomLobby(transport) {
  step("alice (ignoring carol) and bob join room:lobby");
  const alice = connect("alice", transport);
  const bob = connect("bob", transport);
  const aliceRoom = alice.channel("room:lobby", { ignore: ["carol"] });
  const bobRoom = bob.channel("room:lobby", {});
  const aliceIn = new Inbox(aliceRoom, ["user_joined", "new_msg"]);
  const bobIn = new Inbox(bobRoom, ["user_joined", "new_msg"]);
  assert.deepEqual(await join(aliceRoom, "alice"), {});
  assert.deepEqual(await aliceIn.next("user_joined", "alice"), { user: "alice" });
  assert.deepEqual(await join(bobRoom, "bob"), {});
  assert.deepEqual(await bobIn.next("user_joined", "bob"), { user: "bob" });
  assert.deepEqual(await aliceIn.next("user_joined", "alice"), { user: "bob" });

  step("carol joins: bob hears of it, alice (who ignores carol) does not");
  const carol = connect("carol", transport);
  const carolRoom = carol.channel("room:lobby", {});
  const carolIn = new Inbox(carolRoom, ["new_msg"]);
  await join(carolRoom, "carol");
  assert.deepEqual(await bobIn.next("user_joined", "bob"), { user: "carol" });
  await aliceIn.nothing("user_joined", "alice");

  step("bob's new_msg reaches everyone, bob included, with his name; his push is answered ok");
  assert.deepEqual(await push(bobRoom, "new_msg", { body: "hello" }, "bob"), {});
  for (const [inbox, who] of [[aliceIn, "alice"], [bobIn, "bob"], [carolIn, "carol"]]) {
    assert.deepEqual(await inbox.next("new_msg", who), { body: "hello", user: "bob" });
  }

  step("other room:* topics are private; unknown topics are unmatched; unknown events refused");
  assert.equal(await refusal(alice.channel("room:secret", {}), "alice"), "unauthorized");
  assert.equal(await refusal(alice.channel("nowhere:1", {}), "alice"), "unmatched topic");
  await assert.rejects(push(aliceRoom, "shout", {}, "alice"), /shout refused.*unknown_event/);

  step("challenges:<id> (the seed's second socket) lets anyone in");
  await join(carol.channel("challenges:42", {}), "carol");
}

/** trillium's chat: rooms:lobby, user:entered, new:msg to every member. */
async function trilliumLobby(transport) {
  step("two users join rooms:lobby; each join is announced");
  const ann = connect("ann", transport);
  const ben = connect("ben", transport);
  const annRoom = ann.channel("rooms:lobby", { nick: "ann" });
  const benRoom = ben.channel("rooms:lobby", { nick: "ben" });
  const annIn = new Inbox(annRoom, ["user:entered", "new:msg"]);
  const benIn = new Inbox(benRoom, ["user:entered", "new:msg"]);
  await join(annRoom, "ann");
  assert.deepEqual(await annIn.next("user:entered", "ann"), { user: "ann" });
  await join(benRoom, "ben");
  assert.deepEqual(await annIn.next("user:entered", "ann"), { user: "ben" });
  assert.deepEqual(await benIn.next("user:entered", "ben"), { user: "ben" });

  step("new:msg goes to every member, the sender too, payload unchanged");
  await push(annRoom, "new:msg", { body: "hi", n: 1 }, "ann");
  assert.deepEqual(await annIn.next("new:msg", "ann"), { body: "hi", n: 1 });
  assert.deepEqual(await benIn.next("new:msg", "ben"), { body: "hi", n: 1 });
}

/** Without a `user` param the connect hook refuses the socket: it never opens. */
async function refusedWithoutUser(transport) {
  step("connect without a user");
  const socket = connect(null, transport);
  let opened = false;
  socket.onOpen(() => (opened = true));
  const errors = [];
  socket.onError((e) => errors.push(e));
  await within(WAIT_MS, (async () => { while (errors.length === 0) await sleep(20); })(), "no socket error");
  await sleep(QUIET_MS);
  assert.equal(opened, false, "a socket without a user opened");
  if (transport === "longpoll") assert.equal(errors[0], 403, "LongPoll status 403");
  socket.disconnect();
}

/** Two nodes through Redis: a phoenix.js client on each hears the other's messages. */
async function twoNodes() {
  assert.ok(URL2, "TIDINGS_URL2 is set");
  step("ann on node 1 and ben on node 2 join room:lobby (ann ignores carol)");
  const ann = connect("ann", "ws", URL);
  const ben = connect("ben", "longpoll", URL2);
  const annRoom = ann.channel("room:lobby", { ignore: ["carol"] });
  const benRoom = ben.channel("room:lobby", {});
  const annIn = new Inbox(annRoom, ["user_joined", "new_msg"]);
  const benIn = new Inbox(benRoom, ["user_joined", "new_msg"]);
  await join(annRoom, "ann");
  await join(benRoom, "ben");
  // Node 2's join broadcast reaches node 1 once node 1 is subscribed in Redis.
  assert.deepEqual(await annIn.next("user_joined", "ann"), { user: "ann" });
  assert.deepEqual(await annIn.next("user_joined", "ann"), { user: "ben" });

  step("carol joins on node 2: ben hears it; ann on node 1 filters it out");
  const carol = connect("carol", "ws", URL2);
  await join(carol.channel("room:lobby", {}), "carol");
  await benIn.next("user_joined", "ben"); // ben himself
  assert.deepEqual(await benIn.next("user_joined", "ben"), { user: "carol" });
  await annIn.nothing("user_joined", "ann");

  step("a message on each node reaches the other");
  await push(annRoom, "new_msg", { body: "from 1" }, "ann");
  assert.deepEqual(await benIn.next("new_msg", "ben"), { body: "from 1", user: "ann" });
  await push(benRoom, "new_msg", { body: "from 2" }, "ben");
  assert.deepEqual(await annIn.next("new_msg", "ann"), { body: "from 1", user: "ann" });
  assert.deepEqual(await annIn.next("new_msg", "ann"), { body: "from 2", user: "ben" });
}

/** The example's page in Chromium (its own WebSocket, or LongPoll), talking with a Node client. */
async function browser(transport) {
  step("launch chromium");
  const chromium = await launchChromium();
  try {
    const page = await chromium.newPage();
    const errors = [];
    page.on("pageerror", (err) => errors.push(err.message));
    const query = transport === "longpoll" ? "&transport=longpoll" : "";
    step("open the page as ada");
    await page.goto(`${URL}/?user=ada${query}`);
    await page.waitForFunction(() => document.getElementById("status")?.textContent === "joined as ada", null, {
      timeout: 20_000,
    });
    const kind = await page.evaluate(() => window.tidings.socket.transport.name);
    assert.equal(kind, transport === "longpoll" ? "LongPoll" : "WebSocket", "transport in the page");

    step("a Node client joins: the page shows it, and its message");
    const node = connect("node", "ws");
    const room = node.channel("room:lobby", {});
    const inbox = new Inbox(room, ["new_msg"]);
    await join(room, "node");
    await push(room, "new_msg", { body: "hello page" }, "node");
    await page.waitForFunction(
      () => [...document.querySelectorAll("#log p")].map((p) => p.textContent).includes("node: hello page"),
      null,
      { timeout: WAIT_MS },
    );
    const log = await page.locator("#log p").allTextContents();
    assert.ok(log.includes("node joined"), `page log ${JSON.stringify(log)}`);

    step("the page sends: the Node client gets it");
    await page.fill("#body", "hello node");
    await page.click("button");
    assert.deepEqual(await inbox.next("new_msg", "node"), { body: "hello page", user: "node" });
    assert.deepEqual(await inbox.next("new_msg", "node"), { body: "hello node", user: "ada" });
    assert.deepEqual(errors, [], "no page errors");
  } finally {
    await chromium.close();
  }
}

/** The Northle chat example's channels, reached by phoenix.js instead of socket.io-client. */
async function northleChat() {
  step("a phoenix.js socket joins chats/1; a POST /chat reaches it");
  const guest = connect("guest", "ws");
  const room = guest.channel("chats/1", {});
  const inbox = new Inbox(room, ["message"]);
  await join(room, "guest");
  const posted = await fetch(`${URL}/chat`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ message: "from the form" }),
  });
  assert.equal(posted.status, 204);
  assert.deepEqual(await inbox.next("message", "guest"), { message: "from the form" });

  step("private/vip: refused without the VIP token, joined with it as phoenix.js's authToken");
  assert.equal(await refusal(guest.channel("private/vip", {}), "guest"), "unauthorized");
  const vip = new Socket(`${URL.replace(/^http/, "ws")}/socket`, { transport: WebSocket, authToken: "northle-vip" });
  vip.connect();
  openSockets.add({ close: () => vip.disconnect() });
  const vipRoom = vip.channel("private/vip", {});
  const vipIn = new Inbox(vipRoom, ["message"]);
  await join(vipRoom, "vip");
  await push(vipRoom, "message", { text: "psst" }, "vip");
  assert.deepEqual(await vipIn.next("message", "vip"), { text: "psst" });
}

const scenarios = {
  "northle-chat": northleChat,
  "room-lobby-ws": () => roomLobby("ws"),
  "room-lobby-longpoll": () => roomLobby("longpoll"),
  "trillium-lobby-ws": () => trilliumLobby("ws"),
  "trillium-lobby-longpoll": () => trilliumLobby("longpoll"),
  "refused-ws": () => refusedWithoutUser("ws"),
  "refused-longpoll": () => refusedWithoutUser("longpoll"),
  "two-nodes": twoNodes,
  "browser-ws": () => browser("ws"),
  "browser-longpoll": () => browser("longpoll"),
};

run("phoenix_chat.mjs", scenarios, {
  where: URL,
  timeoutMs: (name) => (name.startsWith("browser") ? 60_000 : 20_000),
});
