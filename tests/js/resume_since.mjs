// Resuming a channel from an offset (`since` in the join payload) with the official phoenix
// client and a plain WebSocket, against the chat example (connection state recovery on): the
// events after the offset arrive after the join reply, in order and once each, then a
// `recovery` event; an offset that is no offset is answered `{"recovered": false}`.
//
// Usage: TIDINGS_URL=http://127.0.0.1:PORT node tests/js/resume_since.mjs <phoenix|plain>
import assert from "node:assert/strict";
import { Socket } from "phoenix";
import WebSocket from "ws";
import { step, sleep, within, run, openSockets } from "./harness.mjs";

const URL = (process.env.TIDINGS_URL ?? "http://127.0.0.1:8080").replace(/\/+$/, "");
const WS = URL.replace(/^http/, "ws");
const WAIT_MS = 5_000;
const CHANNEL = "chats/1";

async function post(message) {
  const res = await fetch(`${URL}/chat`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ message }),
  });
  assert.equal(res.status, 204, `POST /chat ${message}`);
}

/** Resolves once `check()` is true, polling; fails after WAIT_MS with `what`. */
async function until(check, what) {
  await within(
    WAIT_MS,
    (async () => {
      while (!check()) await sleep(10);
    })(),
    `timed out waiting for ${what}`,
  );
}

/** A phoenix.js socket on the chat example, recording chats/1's messages and recovery. */
function phoenixMember() {
  const socket = new Socket(`${WS}/socket`, { transport: WebSocket, reconnectAfterMs: () => 200 });
  socket.connect();
  openSockets.add({ close: () => socket.disconnect() });
  return socket;
}

function joinPhoenix(socket, payload) {
  const got = [];
  const channel = socket.channel(CHANNEL, payload);
  channel.on("message", (body, ref) => got.push({ event: "message", message: body.message, offset: ref }));
  channel.on("recovery", (body) => got.push({ event: "recovery", ...body }));
  return new Promise((resolve, reject) => {
    channel
      .join()
      .receive("ok", () => resolve({ channel, got }))
      .receive("error", (e) => reject(new Error(`join refused: ${JSON.stringify(e)}`)))
      .receive("timeout", () => reject(new Error("join timed out")));
  });
}

/** A plain WebSocket on `/ws`, every frame parsed, in order. */
async function plainMember() {
  const ws = new WebSocket(`${WS}/ws`);
  openSockets.add({ close: () => ws.terminate() });
  const frames = [];
  ws.on("message", (data) => frames.push(JSON.parse(data.toString())));
  await within(WAIT_MS, new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  }), "plain WebSocket open");
  return { ws, frames };
}

async function joinPlain(member, payload, ref) {
  member.ws.send(JSON.stringify({ type: "subscribe", channel: CHANNEL, payload, ref }));
  await until(() => member.frames.some((f) => f.type === "reply" && f.ref === ref), `reply ${ref}`);
  const reply = member.frames.find((f) => f.type === "reply" && f.ref === ref);
  assert.equal(reply.status, "ok", `join ${ref}: ${JSON.stringify(reply)}`);
}

const plainEvents = (member) =>
  member.frames
    // Presence (chats/1 tracks who is online) is not what this is about.
    .filter((f) => f.type === "event" && f.channel === CHANNEL && !f.event.startsWith("presence_"))
    .map((f) =>
      f.event === "recovery"
        ? { event: "recovery", ...f.data }
        : { event: f.event, message: f.data?.message, offset: f.offset },
    );

function assertResumed(events, expected, label) {
  const messages = events.filter((e) => e.event === "message");
  assert.deepEqual(
    messages.map((e) => e.message),
    expected,
    `${label}: the missed messages, in order, once each`,
  );
  const offsets = messages.map((e) => Number(e.offset));
  for (let i = 1; i < offsets.length; i++) {
    assert.ok(offsets[i] > offsets[i - 1], `${label}: offsets increase: ${offsets}`);
  }
  const last = events.at(-1);
  assert.deepEqual(
    last,
    { event: "recovery", recovered: true, replayed: expected.length },
    `${label}: the recovery event comes after the replay`,
  );
}

const scenarios = {
  async phoenix() {
    step("a phoenix.js member of chats/1 gets events with their offsets as the ref");
    const socket = phoenixMember();
    const first = await joinPhoenix(socket, {});
    await post("before");
    await until(() => first.got.length === 1, "the first message");
    const since = first.got[0].offset;
    assert.match(String(since), /^[1-9][0-9]*$/, "the ref carries the offset");

    step("it leaves; five messages are posted meanwhile");
    await new Promise((resolve) => first.channel.leave().receive("ok", resolve));
    const missed = ["m1", "m2", "m3", "m4", "m5"];
    for (const m of missed) await post(m);

    step("joining again with since: the five, in order, then recovery");
    const back = await joinPhoenix(socket, { since });
    await until(() => back.got.some((e) => e.event === "recovery"), "the recovery event");
    assertResumed(back.got, missed, "phoenix.js");

    step("a new message arrives live after the replay");
    await post("live");
    await until(() => back.got.at(-1)?.message === "live", "the live message");
    assert.ok(Number(back.got.at(-1).offset) > Number(back.got.at(-2)?.offset ?? 0));

    step("since that is no offset: recovered false, nothing replayed");
    const other = phoenixMember();
    const odd = await joinPhoenix(other, { since: "yesterday" });
    await until(() => odd.got.some((e) => e.event === "recovery"), "the recovery event");
    assert.deepEqual(odd.got, [{ event: "recovery", recovered: false }]);
  },

  async plain() {
    step("a plain WebSocket member of chats/1 gets events with an offset field");
    const first = await plainMember();
    await joinPlain(first, null, "1");
    await post("before");
    await until(() => plainEvents(first).length === 1, "the first message");
    const since = plainEvents(first)[0].offset;
    assert.equal(typeof since, "number", "the offset field");
    first.ws.close();

    step("five messages while it is away");
    const missed = ["p1", "p2", "p3", "p4", "p5"];
    for (const m of missed) await post(m);

    step("a new socket joins with since: the five, in order, then recovery");
    const back = await plainMember();
    await joinPlain(back, { since }, "2");
    await until(() => plainEvents(back).some((e) => e.event === "recovery"), "the recovery event");
    const replyAt = back.frames.findIndex((f) => f.type === "reply" && f.ref === "2");
    const firstEventAt = back.frames.findIndex((f) => f.type === "event" && f.event === "message");
    assert.ok(replyAt < firstEventAt, "the join reply comes before the replayed events");
    assertResumed(plainEvents(back), missed, "plain WebSocket");

    step("since as a string works the same; a too-old one is answered not recovered");
    const again = await plainMember();
    await joinPlain(again, { since: String(since) }, "3");
    await until(() => plainEvents(again).some((e) => e.event === "recovery"), "the recovery event");
    assertResumed(plainEvents(again), missed, "plain WebSocket, string since");
    const odd = await plainMember();
    await joinPlain(odd, { since: -1 }, "4");
    await until(() => plainEvents(odd).length > 0, "the recovery event");
    assert.deepEqual(plainEvents(odd), [{ event: "recovery", recovered: false }]);
  },
};

await run("resume_since", scenarios, { where: URL, timeoutMs: 30_000 });
