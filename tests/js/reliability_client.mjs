// Reliability tests against the in-process server of tests/reliability.rs: channel chats/:id,
// POST /flood {channel, from, count, event?} -> {queued_total}, GET /stats[?summary=1] ->
// {connections, subscriptions, channels, left_count, left: [[member, channel, reason]...],
// rss_kib} (`left` only without summary=1).
//
// Usage: TIDINGS_URL=http://127.0.0.1:PORT TIDINGS_RESULTS=/tmp/out.json \
//        node tests/js/reliability_client.mjs <scenario>
// The measurements go to TIDINGS_RESULTS (JSON) and to stdout. Optional knobs for manual
// runs: TIDINGS_PAD (slow-consumer padding, default 200 bytes), TIDINGS_CHURN_CYCLES
// (default 10000).
// Exit code 0 = pass; on failure a message goes to stderr and the exit code is 1.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { io } from "socket.io-client";
import WebSocket from "ws";
import { step, sleep, within, abort, aborted, openSockets, run } from "./harness.mjs";

const URL = (process.env.TIDINGS_URL ?? "http://127.0.0.1:3000").replace(/\/+$/, "");
const WS_URL = `${URL.replace(/^http/, "ws")}/socket.io/?EIO=4&transport=websocket`;
const RESULTS = process.env.TIDINGS_RESULTS;
const SCENARIO_TIMEOUT_MS = {
  "slow-consumer": 80_000,
  "stalled-large": 80_000,
  churn: 80_000,
  attackers: 50_000,
  limits: 25_000,
};
// How long an HTTP request to the server may take.
const HTTP_TIMEOUT_MS = 10_000;
// How long a protocol answer (open packet, CONNECT, ack) may take.
const ANSWER_MS = 5_000;
// How long we wait to be sure that something does NOT arrive.
const QUIET_MS = 300;
// How far behind the stream a good client may be before the next batch is posted: the
// server's queue (4096 frames) must never fill up for a client that reads.
const MAX_LAG = 1_000;

const OK = { status: "ok" };
const INVALID = { status: "error", reason: "invalid" };

const results = {};

// Polls `probe` (sync or async) until it returns a truthy value, which it resolves with;
// fails with `message()` after `ms`.
async function until(ms, probe, message, every = 20) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() >= deadline) throw new Error(`${message()} (after ${ms} ms)`);
    await sleep(every);
  }
}

const count = (map, key) => {
  map[key] = (map[key] ?? 0) + 1;
};

// [3, 3, 3, 2] -> "3 x3, 2 x1"
function runs(values) {
  const out = [];
  for (const v of values) {
    const last = out.at(-1);
    if (last && last[0] === v) last[1]++;
    else out.push([v, 1]);
  }
  return out.map(([v, n]) => `${v} x${n}`).join(", ");
}

// ---------------------------------------------------------------------------
// HTTP

async function http(method, path, body) {
  const init = { method, signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) };
  if (body !== undefined) {
    init.headers = { "content-type": "application/json" };
    init.body = JSON.stringify(body);
  }
  const res = await fetch(URL + path, init);
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json };
}

// GET /stats; `summary` leaves the `left` list out.
async function stats({ summary = true } = {}) {
  const res = await http("GET", summary ? "/stats?summary=1" : "/stats");
  assert.equal(res.status, 200, `GET /stats: HTTP status (body ${res.text})`);
  return res.json;
}

// POST /flood of `count` messages {i: from..from+count} to chats/1, each with `pad` bytes of
// padding when given; resolves with queued_total.
async function flood(from, count, pad) {
  const res = await http("POST", "/flood", { channel: "chats/1", from, count, ...(pad ? { pad } : {}) });
  assert.equal(res.status, 200, `POST /flood: HTTP status (body ${res.text})`);
  return res.json.queued_total;
}

// ---------------------------------------------------------------------------
// Raw Engine.IO / Socket.IO client over `ws`: queues incoming messages, answers pings ("2")
// with "3" while `autoPong` is set. Pings are not queued.

class RawClient {
  constructor({ autoPong = true } = {}) {
    this.autoPong = autoPong;
    this.pings = 0;
    this.received = 0;
    this.queue = [];
    this.waiter = null;
    this.closeInfo = null;
    this.openedAt = null;
    this.ws = new WebSocket(WS_URL, { perMessageDeflate: false });
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
        openSockets.delete(this);
        this.waiter?.fail(new Error(`websocket closed (code ${code}) while waiting for ${this.waiter.what}`));
        resolve(this.closeInfo);
      });
    });
    this.ws.on("error", (err) => {
      this.error = err; // the "close" event follows and is what we check
    });
    this.ws.on("message", (data, isBinary) => {
      const msg = isBinary ? data : data.toString();
      this.received++;
      if (msg === "2") {
        this.pings++;
        if (this.autoPong) this.ws.send("3");
        return;
      }
      if (this.waiter) this.waiter.ok(msg);
      else this.queue.push(msg);
    });
  }

  send(data, options) {
    this.ws.send(data, options);
  }

  // Next non-ping message, within `ms`.
  next(what, ms = ANSWER_MS) {
    if (this.queue.length > 0) return Promise.resolve(this.queue.shift());
    if (this.closeInfo) {
      return Promise.reject(new Error(`websocket closed (code ${this.closeInfo.code}) before ${what}`));
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new Error(`no ${what} within ${ms} ms`));
      }, ms);
      const done = (f) => (v) => {
        clearTimeout(timer);
        this.waiter = null;
        f(v);
      };
      this.waiter = { ok: done(resolve), fail: done(reject), what };
    });
  }

  // Open packet, "40", "40{sid}"; resolves with the socket id (the channel member id).
  async handshake(what) {
    await within(ANSWER_MS, this.opened, `${what}: websocket not open within ${ANSWER_MS} ms`);
    const open = await this.next(`${what}: open packet`);
    assert.ok(open.startsWith("0{"), `${what}: expected an open packet, got ${JSON.stringify(open)}`);
    this.send("40");
    const connected = await this.next(`${what}: "40{sid}"`);
    assert.match(connected, /^40\{/, `${what}: expected a Socket.IO CONNECT "40{...}"`);
    this.sid = JSON.parse(connected.slice(2)).sid;
    assert.equal(typeof this.sid, "string", `${what}: CONNECT sid`);
    return this.sid;
  }

  // `42<id>["subscribe",channel]` -> `43<id>[answer]`; resolves with the answer.
  async subscribe(channel, id, what) {
    return this.ask(["subscribe", channel], id, `${what}: subscribe ${channel.slice(0, 40)}`);
  }

  async ask(args, id, what) {
    this.send(`42${id}${JSON.stringify(args)}`);
    const ack = await this.next(`${what}: ack ${id}`);
    const prefix = `43${id}[`;
    assert.ok(ack.startsWith(prefix), `${what}: expected "${prefix}...", got ${JSON.stringify(ack).slice(0, 200)}`);
    return JSON.parse(ack.slice(prefix.length - 1))[0];
  }

  // Stops / restarts reading from the TCP socket.
  pause() {
    this.ws._socket.pause();
  }

  resume() {
    this.ws._socket.resume();
  }

  get isOpen() {
    return this.ws.readyState === WebSocket.OPEN;
  }

  close() {
    this.ws.terminate();
  }
}

// ---------------------------------------------------------------------------
// A socket.io-client (websocket only) subscribed to chats/1 that checks the stream of
// "chats/1/message" {i} as it comes: i = 0, 1, 2 ... exactly once each, in order. Anything
// else, or a disconnect, aborts the scenario.

class StreamClient {
  constructor(who) {
    this.who = who;
    this.expected = 0;
    this.leaving = false;
    this.socket = io(URL, { forceNew: true, reconnection: false, transports: ["websocket"] });
    openSockets.add(this.socket);
    this.socket.on("chats/1/message", (message) => {
      if (message?.i !== this.expected) {
        abort(new Error(`${who}: expected {"i":${this.expected}}, got ${JSON.stringify(message)}`));
        return;
      }
      this.expected++;
    });
    this.socket.on("disconnect", (reason) => {
      if (!this.leaving) {
        abort(new Error(`${who}: disconnected (${reason}) after ${this.expected} messages`));
      }
    });
    this.socket.on("connect_error", (err) => abort(new Error(`${who}: connect_error ${err.message}`)));
  }

  async start() {
    await within(
      ANSWER_MS,
      new Promise((resolve) => this.socket.once("connect", resolve)),
      `${this.who}: not connected within ${ANSWER_MS} ms`,
    );
    const ack = await this.socket.timeout(ANSWER_MS).emitWithAck("subscribe", "chats/1");
    assert.deepStrictEqual(ack, OK, `${this.who}: subscribe ack`);
    return this;
  }
}

const startClients = (n, prefix) =>
  Promise.all(Array.from({ length: n }, (_, k) => new StreamClient(`${prefix} ${k}`).start()));

// Waits until every client of `clients` received at least `n` messages.
function receivedAll(clients, n, ms) {
  return until(
    ms,
    () => clients.every((c) => c.expected >= n),
    () => `good clients received ${clients.map((c) => c.expected).join(", ")} of ${n}`,
    5,
  );
}

// After the stream: every client got exactly `n` messages (nothing extra after a quiet
// moment) and is still connected.
async function checkStreamComplete(clients, n, ms) {
  await receivedAll(clients, n, ms);
  await sleep(QUIET_MS);
  for (const c of clients) {
    assert.equal(c.expected, n, `${c.who}: messages received`);
    assert.equal(c.socket.connected, true, `${c.who}: should still be connected`);
  }
}

// Waits for `member`'s entry in the server's `left` log and checks that it left chats/1 as a
// slow consumer; resolves with the entry [member, channel, reason].
async function leftAsSlowConsumer(member) {
  const left = await until(
    10_000,
    async () => (await stats({ summary: false })).left.find(([m]) => m === member),
    () => `stalled member ${member} not in the left log`,
    100,
  );
  assert.equal(left[1], "chats/1", "left log: channel");
  assert.match(left[2], /slow consumer/, "left log: reason");
  return left;
}

// ---------------------------------------------------------------------------
// Scenarios

const scenarios = {
  // Two clients that read, one that stops reading; 100 x 1,000 emits.
  //
  // The messages carry PAD bytes of padding: bare {"i":n} messages (~36 bytes on the wire,
  // 3.5 MB for all 100,000) fit entirely in the kernel's socket buffers of the stalled
  // connection (Linux tcp_wmem grows the send buffer up to 4 MB), so the server's queue
  // would never fill and the stalled client would never count as slow.
  async "slow-consumer"() {
    const BATCHES = 100;
    const BATCH = 1_000;
    const TOTAL = BATCHES * BATCH;
    const PAD = Number(process.env.TIDINGS_PAD ?? 200);

    step("baseline RSS");
    const baseline = (await stats()).rss_kib;

    step("good clients subscribe");
    const good = await startClients(2, "good");

    step("stalled client: handshake and subscribe");
    const stalled = new RawClient();
    const stalledSid = await stalled.handshake("stalled client");
    assert.deepStrictEqual(await stalled.subscribe("chats/1", 0, "stalled client"), OK, "stalled subscribe ack");
    await sleep(300); // reads and answers pings for a moment ...
    stalled.pause(); // ... then stops reading
    const stalledReceived = stalled.received;

    let peak = baseline;
    const queued = [];
    const t0 = Date.now();
    for (let b = 0; b < BATCHES; b++) {
      const from = b * BATCH;
      step(`batch ${b}: good clients within ${MAX_LAG} messages of ${from}`);
      await receivedAll(good, from - MAX_LAG, 20_000);
      step(`batch ${b}: POST /flood`);
      queued.push(await flood(from, BATCH, PAD));
      step(`batch ${b}: RSS`);
      peak = Math.max(peak, (await stats()).rss_kib);
    }
    const postedMs = Date.now() - t0;
    const firstShort = queued.findIndex((q) => q < 3 * BATCH);
    Object.assign(results, {
      messages: TOTAL,
      pad_bytes: PAD,
      posted_ms: postedMs,
      stalled_member: stalledSid,
      stalled_dropped_during_batch: firstShort,
      queued_total_per_batch: runs(queued),
      rss_baseline_kib: baseline,
      rss_peak_kib: peak,
    });
    assert.ok(firstShort >= 0, `the stalled client was never dropped: queued_total per batch ${runs(queued)}`);
    assert.ok(
      queued.slice(firstShort + 1).every((q) => q === 2 * BATCH),
      `after the drop every batch must reach exactly the 2 good clients: ${runs(queued)}`,
    );

    step("good clients: every message once, in order");
    await checkStreamComplete(good, TOTAL, 30_000);
    const deliveredMs = Date.now() - t0 - QUIET_MS;

    step("stalled client in the left log as a slow consumer");
    const left = await leftAsSlowConsumer(stalledSid);

    step("server forgets the stalled connection");
    const after = await until(
      5_000,
      async () => {
        const s = await stats();
        return s.connections === 2 && s.subscriptions === 2 ? s : null;
      },
      () => "connections / subscriptions did not come down to 2",
      100,
    );

    step("stalled client resumes reading: the server closed it");
    stalled.resume();
    const closed = await within(10_000, stalled.closed, "stalled client still open 10 s after resuming");

    Object.assign(results, {
      delivered_ms: deliveredMs,
      messages_per_s_per_client: Math.round(TOTAL / (deliveredMs / 1000)),
      stalled_left_reason: left[2],
      stalled_received_before_pause: stalledReceived,
      stalled_received_in_all: stalled.received,
      stalled_close_code: closed.code,
      rss_final_kib: after.rss_kib,
    });
    for (const c of good) c.leaving = true;
  },

  // Twenty clients that read, one that stops reading; 3,000 emits of about 10 KB. The frame
  // bound (4,096) never fills: the stalled client must be cut by the byte bound (1 MiB), and
  // its TCP connection closed by the server within a second, whatever it does.
  async "stalled-large"() {
    const TOTAL = 3_000;
    const BATCH = 50;
    const PAD = 10_000;
    const GOOD = 20;
    // Readers may fall this far behind before the next batch (kernel buffers hold it).
    const LAG = 100;

    step("baseline RSS");
    const baseline = (await stats()).rss_kib;

    step("good clients subscribe");
    const good = await startClients(GOOD, "good");

    step("stalled client: handshake and subscribe");
    const stalled = new RawClient();
    const stalledSid = await stalled.handshake("stalled client");
    assert.deepStrictEqual(await stalled.subscribe("chats/1", 0, "stalled client"), OK, "stalled subscribe ack");
    stalled.pause();
    const stalledPort = stalled.ws._socket.localPort;
    const stalledFds = (await http("GET", `/stats?summary=1&peer_port=${stalledPort}`)).json.peer_fds;

    assert.ok(stalledFds >= 1, `the server holds no descriptor of the stalled connection (${stalledFds})`);

    let peak = baseline;
    const queued = [];
    // When the cut showed in the left log, and when the server held no descriptor of the
    // stalled connection any more.
    let cutAt = null;
    let closedAt = null;
    const held = async () => (await http("GET", `/stats?summary=1&peer_port=${stalledPort}`)).json.peer_fds;
    for (let from = 0; from < TOTAL; from += BATCH) {
      step(`batch from ${from}: good clients within ${LAG} messages`);
      await receivedAll(good, from - LAG, 20_000);
      step(`batch from ${from}: POST /flood`);
      queued.push(await flood(from, BATCH, PAD));
      const s = await stats();
      peak = Math.max(peak, s.rss_kib);
      if (cutAt === null && s.left_count > 0) cutAt = Date.now();
      if (cutAt !== null && closedAt === null && (await held()) === 0) closedAt = Date.now();
    }
    const firstShort = queued.findIndex((q) => q < (GOOD + 1) * BATCH);
    Object.assign(results, {
      messages: TOTAL,
      pad_bytes: PAD,
      stalled_member: stalledSid,
      stalled_dropped_during_batch: firstShort,
      queued_total_per_batch: runs(queued),
      rss_baseline_kib: baseline,
      rss_peak_kib: peak,
    });
    assert.ok(firstShort >= 0, `the stalled client was never dropped: queued_total per batch ${runs(queued)}`);
    assert.ok(
      queued.slice(firstShort + 1).every((q) => q === GOOD * BATCH),
      `after the drop every batch must reach exactly the ${GOOD} good clients: ${runs(queued)}`,
    );

    step("good clients: every message once, in order");
    await checkStreamComplete(good, TOTAL, 30_000);

    step("stalled client in the left log as a slow consumer");
    const left = await leftAsSlowConsumer(stalledSid);
    cutAt ??= Date.now();

    step("the server closes the stalled TCP connection (its descriptors go)");
    let fdsNow;
    await until(
      3_000,
      async () => (fdsNow = await held()) === 0,
      () => `the server still holds ${fdsNow} descriptors of the stalled client's connection`,
      20,
    );
    closedAt ??= Date.now();
    const closedAfterCutMs = closedAt - cutAt;

    step("the stalled client reads again: everything sent, then the end");
    const resumedAt = Date.now();
    stalled.resume();
    const closed = await within(5_000, stalled.closed, "stalled client still open 5 s after it resumed reading");
    Object.assign(results, {
      stalled_left_reason: left[2],
      stalled_connection_fds_before: stalledFds,
      server_closed_within_ms_of_the_cut: closedAfterCutMs,
      stalled_received_in_all: stalled.received,
      stalled_end_after_resume_ms: closed.at - resumedAt,
      stalled_close_code: closed.code,
    });
    assert.ok(closedAfterCutMs <= 2_000, `the server closed the connection ${closedAfterCutMs} ms after the cut`);
    for (const c of good) c.leaving = true;
  },

  // 10,000 connect / subscribe / disconnect cycles, 100 at a time, ending in thirds: clean
  // ("41" + close handshake), dropped TCP, ping timeout (no pong, no reading).
  async churn() {
    const CYCLES = Number(process.env.TIDINGS_CHURN_CYCLES ?? 10_000);
    const CONCURRENCY = 100;
    const CHANNELS = 20;
    // Must match the server of this test (tests/reliability.rs); the timeout leaves busy
    // machines room to answer pings in time.
    const PING_INTERVAL = 250;
    const PING_TIMEOUT = 1000;
    const KINDS = ["clean", "drop", "ping-timeout"];

    step("RSS before");
    const before = (await stats()).rss_kib;

    // Samples RSS and connections every 100 ms while the churn runs.
    let peak = before;
    let peakConnections = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const s = await stats();
        peak = Math.max(peak, s.rss_kib);
        peakConnections = Math.max(peakConnections, s.connections);
        await sleep(100);
      }
    })();

    const members = Object.fromEntries(KINDS.map((k) => [k, new Map()])); // sid -> channel
    const failures = [];
    const stopped = { closedByServer: 0, notClosed: 0, codes: {} };
    const watchers = [];

    // A ping-timeout client: not reading; after the server's deadline has passed, read again
    // and expect its close; give up (and close it ourselves) 3 s after it went silent.
    async function watch(client) {
      const silentAt = Date.now();
      await sleep(PING_INTERVAL + PING_TIMEOUT + 300);
      client.resume();
      try {
        const info = await within(Math.max(silentAt + 3_000 - Date.now(), 0), client.closed, "not closed");
        stopped.closedByServer++;
        count(stopped.codes, info.code);
      } catch {
        stopped.notClosed++;
        client.close();
      }
    }

    async function cycle(n) {
      const kind = KINDS[n % KINDS.length];
      const channel = `chats/${n % CHANNELS}`;
      const client = new RawClient();
      try {
        const sid = await client.handshake(`cycle ${n} (${kind})`);
        const ack = await client.subscribe(channel, 1, `cycle ${n} (${kind})`);
        assert.deepStrictEqual(ack, OK, `cycle ${n}: subscribe ack`);
        members[kind].set(sid, channel);
        if (kind === "clean") {
          client.send("41");
          client.ws.close(1000);
          await within(3_000, client.closed, `cycle ${n}: no close handshake within 3 s`);
        } else if (kind === "drop") {
          client.ws._socket.destroy();
        } else {
          client.autoPong = false;
          client.pause();
          watchers.push(watch(client));
        }
      } catch (err) {
        failures.push(`cycle ${n} (${kind}): ${err.message}`);
        client.close();
      }
    }

    step(`${CYCLES} cycles`);
    const t0 = Date.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        for (let n = next++; n < CYCLES; n = next++) await cycle(n);
      }),
    );
    const cyclesMs = Date.now() - t0;
    step("ping-timeout clients closed by the server");
    await Promise.all(watchers);
    sampling = false;
    await sampler;

    step("server forgets everything");
    const t1 = Date.now();
    await until(
      10_000,
      async () => {
        const s = await stats();
        return s.connections === 0 && s.subscriptions === 0 && s.channels === 0 ? s : null;
      },
      () => "connections / subscriptions / channels did not all come down to 0",
      50,
    );
    const emptyMs = Date.now() - t1;
    await sleep(500);
    const after = await stats({ summary: false });

    // Every subscription left once, with the reason of its ending.
    const leftBy = new Map(after.left.map(([member, channel, reason]) => [member, { channel, reason }]));
    const reasons = Object.fromEntries(KINDS.map((k) => [k, {}]));
    const missing = [];
    for (const kind of KINDS) {
      for (const [sid, channel] of members[kind]) {
        const left = leftBy.get(sid);
        if (!left || left.channel !== channel) missing.push(sid);
        else count(reasons[kind], left.reason);
      }
    }

    Object.assign(results, {
      cycles: CYCLES,
      concurrency: CONCURRENCY,
      cycles_ms: cyclesMs,
      cycles_per_s: Math.round(CYCLES / (cyclesMs / 1000)),
      failures: failures.length,
      first_failures: failures.slice(0, 5),
      peak_connections: peakConnections,
      ping_timeout_clients: stopped,
      ms_to_empty_after_last_cycle: emptyMs,
      left_entries: after.left.length,
      left_reasons: reasons,
      missing_left_entries: missing.length,
      rss_before_kib: before,
      rss_peak_kib: peak,
      rss_after_kib: after.rss_kib,
    });
    assert.deepStrictEqual(failures, [], "cycles that failed");
    assert.equal(stopped.notClosed, 0, "ping-timeout clients the server did not close within 3 s");
    assert.equal(missing.length, 0, `subscriptions without their left entry, e.g. ${missing.slice(0, 3)}`);
    assert.equal(after.left.length, CYCLES, "left entries");
    assert.deepStrictEqual(reasons["ping-timeout"], { "disconnected: ping timeout": members["ping-timeout"].size });
    assert.deepStrictEqual(reasons.clean, { "disconnected: client left": members.clean.size });
    const dropReasons = Object.keys(reasons.drop).filter(
      (r) => r !== "disconnected: client left" && r !== "disconnected: transport error",
    );
    assert.deepStrictEqual(dropReasons, [], "reasons of dropped connections");
  },

  // Five clients receive a stream while 39 connections send garbage.
  async attackers() {
    const PING_INTERVAL = 500;
    const PING_TIMEOUT = 500;
    const CLOSE_LIMIT_MS = 2_000;
    const SILENT_LIMIT_MS = PING_INTERVAL + PING_TIMEOUT + 1_000;
    const BATCH = 100;
    const placeholder = (num) => `451-["x",{"_placeholder":true,"num":${num}}]`;

    // Each attack runs after a valid "40" (and a subscribe to chats/2).
    const ATTACKS = {
      "engineio garbage": (c) => c.send("garbage text, not a packet"),
      "socketio garbage": (c) => c.send("4garbage"),
      "broken json": (c) => c.send("4" + "2[broken"),
      "truncated binary event": (c) => {
        c.send(placeholder(0));
        c.send('42["x"]');
      },
      "bad placeholder": (c) => {
        c.send(placeholder(7));
        c.send(Buffer.from([1, 2, 3]));
      },
      "connect_error from client": (c) => c.send('44{"message":"x"}'),
      "open from client": (c) => c.send("0"),
      "binary ack without id": (c) => {
        c.send('461-[{"_placeholder":true,"num":0}]');
        c.send(Buffer.from([1]));
      },
      "invalid utf-8 text frame": (c) => c.send(Buffer.from([0x34, 0x32, 0x5b, 0x22, 0xff, 0xfe, 0x22, 0x5d]), { binary: false }),
      "huge ack id": (c) => c.send('42184467440737095516150["x"]'),
      "reserved event name": (c) => c.send('42["disconnect"]'),
      "oversized frame": (c) => c.send(`42["x","${"y".repeat(20_000)}"]`),
      "silent attachments": (c) => c.send(placeholder(0)),
    };

    step("good clients subscribe");
    const good = await startClients(5, "good");

    // The stream: 100 messages every 20 ms (later when the good clients lag).
    let sent = 0;
    let streaming = true;
    const queued = {};
    const stream = (async () => {
      while (streaming) {
        const t = Date.now();
        await receivedAll(good, sent - MAX_LAG, 20_000);
        count(queued, await flood(sent, BATCH));
        sent += BATCH;
        await sleep(Math.max(0, 20 - (Date.now() - t)));
      }
    })();
    stream.catch(abort);

    async function attack(kind, send) {
      const c = new RawClient();
      await c.handshake(kind);
      assert.deepStrictEqual(await c.subscribe("chats/2", 0, kind), OK, `${kind}: subscribe ack`);
      const sentAt = Date.now();
      send(c);
      try {
        const info = await within(5_000, c.closed, "not closed");
        return { kind, code: info.code, ms: info.at - sentAt };
      } catch {
        c.close();
        return { kind, code: null, ms: null };
      }
    }

    step("attack");
    const attacks = [];
    for (let round = 0; round < 3; round++) {
      for (const [kind, send] of Object.entries(ATTACKS)) {
        attacks.push(attack(kind, send));
        await sleep(40);
      }
    }
    const outcomes = await Promise.all(attacks);
    await sleep(300);
    streaming = false;
    await stream;

    step("good clients: every message of the stream once, in order");
    await checkStreamComplete(good, sent, 20_000);

    step("server alive; only the good clients remain");
    const after = await until(
      5_000,
      async () => {
        const s = await stats();
        return s.connections === 5 && s.subscriptions === 5 && s.channels === 1 ? s : null;
      },
      () => "connections / subscriptions / channels did not come down to 5 / 5 / 1",
      100,
    );

    // kind -> "close codes 1002,1002,1002; ms 12,3,5"
    const byKind = {};
    for (const kind of Object.keys(ATTACKS)) {
      const mine = outcomes.filter((o) => o.kind === kind);
      byKind[kind] = `close codes ${mine.map((o) => o.code).join(",")}; ms ${mine.map((o) => o.ms).join(",")}`;
    }
    const timed = outcomes.filter((o) => o.kind !== "silent attachments");
    const silent = outcomes.filter((o) => o.kind === "silent attachments");
    const slowest = (list) => (list.some((o) => o.ms === null) ? null : Math.max(...list.map((o) => o.ms)));
    Object.assign(results, {
      attackers: outcomes.length,
      stream_messages: sent,
      queued_total_counts: queued,
      by_kind: byKind,
      slowest_close_ms: slowest(timed),
      silent_attachments_close_ms_max: slowest(silent),
      connections_after: after.connections,
    });
    const neverClosed = outcomes.filter((o) => o.ms === null).map((o) => o.kind);
    assert.deepStrictEqual(neverClosed, [], "attackers the server never closed (waited 5 s)");
    const late = timed.filter((o) => o.ms > CLOSE_LIMIT_MS).map((o) => `${o.kind}: ${o.ms} ms`);
    assert.deepStrictEqual(late, [], `attackers closed after more than ${CLOSE_LIMIT_MS} ms`);
    const lateSilent = silent.filter((o) => o.ms > SILENT_LIMIT_MS).map((o) => o.ms);
    assert.deepStrictEqual(lateSilent, [], `silent attachments closed after more than ${SILENT_LIMIT_MS} ms`);
    assert.deepStrictEqual(Object.keys(queued), ["500"], "every batch must reach exactly the 5 good clients");
    // The close says why: 1007 for invalid UTF-8, 1009 for an oversized frame, 1002 for the rest.
    const codeFor = (kind) => ({ "invalid utf-8 text frame": 1007, "oversized frame": 1009 })[kind] ?? 1002;
    const wrongCodes = outcomes.filter((o) => o.code !== codeFor(o.kind)).map((o) => `${o.kind}: ${o.code}`);
    assert.deepStrictEqual(wrongCodes, [], "close codes");
    for (const c of good) c.leaving = true;
  },

  // Subscription limit, name limits, connect timeout.
  async limits() {
    step("100 subscriptions");
    const many = new RawClient();
    await many.handshake("subscriber");
    for (let k = 0; k < 100; k++) {
      assert.deepStrictEqual(await many.subscribe(`chats/${k}`, k, "subscriber"), OK, `subscribe chats/${k}`);
    }
    step("the 101st is refused");
    assert.deepStrictEqual(await many.subscribe("chats/100", 100, "subscriber"), INVALID, "101st subscription");
    step("after an unsubscribe there is room again");
    assert.deepStrictEqual(await many.ask(["unsubscribe", "chats/0"], 101, "subscriber"), OK, "unsubscribe");
    assert.deepStrictEqual(await many.subscribe("chats/100", 102, "subscriber"), OK, "subscription after unsubscribe");
    assert.equal((await stats()).subscriptions, 100, "subscriptions on the server");

    step("300-character channel name");
    const names = new RawClient();
    await names.handshake("names");
    assert.deepStrictEqual(await names.subscribe(`chats/${"1".repeat(294)}`, 0, "names"), INVALID, "300 characters");
    assert.deepStrictEqual(await names.subscribe(`chats/${"1".repeat(250)}`, 1, "names"), OK, "256 characters");

    step("event name of 129 characters from the server");
    const longEvent = await http("POST", "/flood", { channel: "chats/1", from: 0, count: 1, event: "e".repeat(129) });
    assert.ok(
      longEvent.status >= 400 && longEvent.status < 600,
      `129-character event: HTTP ${longEvent.status} (body ${longEvent.text})`,
    );
    step("event name of 128 characters is delivered");
    const fits = await http("POST", "/flood", { channel: "chats/1", from: 7, count: 1, event: "e".repeat(128) });
    assert.equal(fits.status, 200, `128-character event: HTTP status (body ${fits.text})`);
    assert.deepStrictEqual(fits.json, { queued_total: 1 }, "128-character event: reaches the one member");
    assert.equal(await many.next("128-character event"), `42["chats/1/${"e".repeat(128)}",{"i":7}]`);

    step("connection without a Socket.IO CONNECT");
    const idle = new RawClient();
    const control = new RawClient();
    await within(ANSWER_MS, idle.opened, "idle websocket not open");
    assert.ok((await idle.next("idle: open packet")).startsWith("0{"), "idle: open packet");
    await control.handshake("control");
    const closed = await within(5_000, idle.closed, "connection without CONNECT still open 5 s later");
    const closeMs = closed.at - idle.openedAt;
    step("a connected client outlives the connect timeout");
    await sleep(Math.max(0, control.openedAt + 1_500 - Date.now()));
    assert.ok(control.isOpen, `connected client was closed: ${JSON.stringify(control.closeInfo)}`);
    assert.ok(many.isOpen && names.isOpen, "the subscribers must still be open");

    Object.assign(results, {
      event_129_status: longEvent.status,
      event_129_body: longEvent.json ?? longEvent.text,
      connect_timeout_close_ms: closeMs,
      connect_timeout_close_code: closed.code,
      connect_timeout_close_reason: closed.reason,
    });
    assert.ok(closeMs >= 400 && closeMs <= 2_000, `closed ${closeMs} ms after opening (connect timeout 500 ms)`);
  },
};

// ---------------------------------------------------------------------------
// Runner

run("reliability_client", scenarios, {
  where: URL,
  timeoutMs: (name) => SCENARIO_TIMEOUT_MS[name],
  finish: () => {
    console.log(JSON.stringify(results));
    if (RESULTS) writeFileSync(RESULTS, JSON.stringify(results));
  },
});
