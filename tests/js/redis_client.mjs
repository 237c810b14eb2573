// Scale-out tests: the official socket.io-client against several tidings nodes sharing one
// Redis server (tests/redis_fanout.rs starts the nodes and Redis).
//
// Usage: TIDINGS_NODES=http://127.0.0.1:P1,http://127.0.0.1:P2 REDIS_PORT=P \
//        node tests/js/redis_client.mjs <scenario>
// Exit code 0 = pass; on failure a message goes to stderr and the exit code is 1.
//
// When a scenario needs the test to act (kill Redis, restart it, kill a node), it prints
// `@@ <action>` on stdout and waits for a line on stdin: `ok`, or an error message.
// Other stdout lines starting with `#` are measurements, for the log.
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { REDIS_PORT, control, redis } from "./cluster.mjs";
import { step, sleep, within, abort, aborted, openSockets, poller, run } from "./harness.mjs";

const NODES = (process.env.TIDINGS_NODES ?? "")
  .split(",")
  .map((url) => url.trim().replace(/\/+$/, ""))
  .filter(Boolean);
const PREFIX = "tidings:";
const SCENARIO_TIMEOUT_MS = 90_000;
// How long we wait to be sure that something does NOT arrive (more).
const QUIET_MS = 500;
// How long a cluster may take to propagate a subscription to Redis.
const SUBSCRIBE_WAIT_MS = 5_000;
// How long a node may take to be back on Redis once it is up again.
const RECOVERY_MS = 10_000;

const info = (line) => console.log(`# ${line}`);
// Polls a check every 50 ms (see `poller`).
const until = poller(50);

// ---------------------------------------------------------------------------
// Redis, spoken directly (`redis` of cluster.mjs): what is the cluster subscribed to?

// How many Redis connections (nodes) are subscribed to the tidings channel `channel`.
async function numsub(channel) {
  const [, count] = await redis("PUBSUB", "NUMSUB", PREFIX + channel);
  return count;
}

async function redisChannels() {
  return redis("PUBSUB", "CHANNELS", `${PREFIX}*`);
}

async function waitNumsub(channel, expected) {
  step(`Redis: ${expected} node(s) subscribed to ${channel}`);
  let last;
  await until(() => `PUBSUB NUMSUB ${PREFIX}${channel} == ${expected} (last: ${last})`, SUBSCRIBE_WAIT_MS, async () => {
    last = await numsub(channel);
    return last === expected;
  });
}

// ---------------------------------------------------------------------------
// HTTP

async function post(node, path, body, contentType = "application/json") {
  const response = await fetch(NODES[node] + path, {
    method: "POST",
    headers: { "content-type": contentType },
    body: contentType === "application/json" ? JSON.stringify(body) : body,
    signal: AbortSignal.timeout(5000),
  });
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // not JSON; the caller checks the status
  }
  return { status: response.status, json, text };
}

// POST /emit on `node` (bench_server).
function emit(node, data, { channel = "chats/1", event = "tick", except } = {}) {
  return post(node, "/emit", { channel, event, data, ...(except ? { except } : {}) });
}

async function emitOk(node, data, options = {}) {
  const answer = await emit(node, data, options);
  assert.equal(answer.status, 200, `emit on node ${node} (${JSON.stringify(data)}): status ${answer.status} ${answer.text}`);
  return answer.json;
}

// Waits until `node` publishes to Redis (its /emit answers 200 for a channel nobody is in).
async function waitPublisher(node) {
  step(`node ${node} publishes to Redis`);
  let last;
  await until(() => `node ${node} /emit answers 200 (last: ${last})`, SUBSCRIBE_WAIT_MS, async () => {
    const answer = await emit(node, "warm-up", { channel: "chats/warm-up" });
    last = `${answer.status} ${answer.text}`;
    return answer.status === 200;
  });
}

// ---------------------------------------------------------------------------
// Clients

// One socket.io-client on node `node`, recording everything it receives.
class Client {
  constructor(name, node, opts = {}) {
    this.name = name;
    this.node = node;
    this.events = [];
    this.disconnected = null;
    this.socket = io(NODES[node], { reconnection: false, ...opts });
    openSockets.add(this.socket);
    this.socket.onAny((event, ...args) => this.events.push({ event, args, at: performance.now() }));
    this.socket.on("connect_error", (err) =>
      abort(new Error(`${name}: unexpected connect_error on node ${node}: ${err.message}`)),
    );
    this.socket.on("disconnect", (reason) => {
      this.disconnected = reason;
    });
  }

  async connected() {
    step(`${this.name}: connect to node ${this.node}`);
    if (!this.socket.connected) await new Promise((resolve) => this.socket.once("connect", resolve));
    return this;
  }

  get id() {
    return this.socket.id;
  }

  async subscribe(channel) {
    step(`${this.name}: subscribe ${channel}`);
    const reply = await this.socket.timeout(5000).emitWithAck("subscribe", channel);
    assert.deepEqual(reply, { status: "ok" }, `${this.name}: subscribe ${channel} ack`);
  }

  async unsubscribe(channel) {
    step(`${this.name}: unsubscribe ${channel}`);
    const reply = await this.socket.timeout(5000).emitWithAck("unsubscribe", channel);
    assert.deepEqual(reply, { status: "ok" }, `${this.name}: unsubscribe ${channel} ack`);
  }

  // The `seq` of every `event` received, in order.
  seqs(event = "chats/1/tick") {
    return this.events.filter((e) => e.event === event).map((e) => e.args[0]?.seq);
  }

  close() {
    this.socket.close();
    openSockets.delete(this.socket);
  }
}

async function clients(specs) {
  const all = specs.map(([name, node, opts]) => new Client(name, node, opts));
  await Promise.all(all.map((c) => c.connected()));
  return all;
}

// Waits until `client` has at least `count` `event`s.
async function waitCount(client, count, event = "chats/1/tick", ms = 5000) {
  step(`${client.name}: ${count} × ${event}`);
  await until(
    () => `${client.name} (node ${client.node}) received ${count} "${event}" (has ${client.seqs(event).length}: ${client.seqs(event).join(" ")})`,
    ms,
    () => client.seqs(event).length >= count,
    10,
  );
}

// Asserts that `client` received exactly the seqs `expected`, each once (any order).
function assertExactly(client, expected, event = "chats/1/tick") {
  const got = client.seqs(event);
  const counts = new Map();
  for (const seq of got) counts.set(seq, (counts.get(seq) ?? 0) + 1);
  const twice = [...counts].filter(([, n]) => n > 1).map(([seq, n]) => `${seq}×${n}`);
  assert.deepEqual(twice, [], `${client.name} (node ${client.node}): events received more than once`);
  const missing = expected.filter((seq) => !counts.has(seq));
  assert.deepEqual(missing, [], `${client.name} (node ${client.node}): events never received`);
  const extra = got.filter((seq) => !expected.includes(seq));
  assert.deepEqual(extra, [], `${client.name} (node ${client.node}): events it must not get`);
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
}

// ---------------------------------------------------------------------------
// Scenarios

const scenarios = {
  // Three nodes: two chats/1 clients on each, one chats/2 client as a control. Emits on each
  // node in turn reach every chats/1 client on every node exactly once, the control none.
  // Then a burst from one node: exactly once under load, with the rate and latency seen.
  async fanout() {
    assert.equal(NODES.length, 3, "fanout needs 3 nodes");
    const members = await clients([
      ["a1", 0],
      ["a2", 0, { transports: ["websocket"] }],
      ["b1", 1],
      ["b2", 1, { transports: ["websocket"] }],
      ["c1", 2],
      ["c2", 2, { transports: ["polling"] }],
    ]);
    const [control] = await clients([["control", 2]]);
    for (const c of members) await c.subscribe("chats/1");
    await control.subscribe("chats/2");
    await waitNumsub("chats/1", 3);
    await waitNumsub("chats/2", 1);
    for (const node of [0, 1, 2]) await waitPublisher(node);

    const sent = [];
    for (let round = 0; round < 5; round++) {
      for (const node of [0, 1, 2]) {
        const seq = `n${node}-r${round}`;
        step(`emit ${seq}`);
        const answer = await emitOk(node, { seq });
        assert.deepEqual(answer, { delivered: 2 }, `emit ${seq}: local deliveries on node ${node}`);
        sent.push(seq);
      }
    }
    for (const c of members) await waitCount(c, sent.length);
    step("nothing more arrives");
    await sleep(QUIET_MS);
    for (const c of members) assertExactly(c, sent);
    assert.deepEqual(
      control.events.map((e) => e.event),
      [],
      "control (chats/2 on node 2): must receive nothing",
    );

    // Load: BURST emits from node 0, CONCURRENCY at a time.
    const BURST = 2000;
    const CONCURRENCY = 32;
    step(`burst of ${BURST} emits from node 0`);
    const postedAt = new Map();
    const burst = [];
    for (let i = 0; i < BURST; i++) burst.push(`burst-${i}`);
    const started = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < burst.length) {
          const seq = burst[next++];
          postedAt.set(seq, performance.now());
          await emitOk(0, { seq });
        }
      }),
    );
    const posted = performance.now() - started;
    const total = sent.length + BURST;
    for (const c of members) await waitCount(c, total, "chats/1/tick", 30_000);
    const done = Math.max(...members.map((c) => c.events.at(-1).at)) - started;
    await sleep(QUIET_MS);
    for (const c of members) assertExactly(c, [...sent, ...burst]);
    assert.deepEqual(control.events.length, 0, "control: must receive nothing");
    const remote = members.filter((c) => c.node !== 0);
    const latencies = remote
      .flatMap((c) => c.events.filter((e) => postedAt.has(e.args[0]?.seq)).map((e) => e.at - postedAt.get(e.args[0].seq)))
      .sort((a, b) => a - b);
    info(
      `burst: ${BURST} emits posted on node 0 in ${posted.toFixed(0)} ms (${((BURST * 1000) / posted).toFixed(0)} emits/s), ` +
        `all ${members.length} clients had every event after ${done.toFixed(0)} ms ` +
        `(${((BURST * 1000) / done).toFixed(0)} emits/s cross-node)`,
    );
    info(
      `post-to-receive latency at clients on other nodes (under load): p50 ${percentile(latencies, 50).toFixed(1)} ms, ` +
        `p99 ${percentile(latencies, 99).toFixed(1)} ms, max ${latencies.at(-1).toFixed(1)} ms`,
    );

    // Idle latency: one emit at a time.
    step("idle latency");
    const idle = [];
    for (let i = 0; i < 50; i++) {
      const seq = `idle-${i}`;
      const before = members[4].seqs().length;
      const at = performance.now();
      await emitOk(0, { seq });
      await until(`c1 received ${seq}`, 5000, () => members[4].seqs().length > before, 1);
      idle.push(members[4].events.at(-1).at - at);
    }
    idle.sort((a, b) => a - b);
    info(`idle post-to-receive latency node 0 -> node 2: p50 ${percentile(idle, 50).toFixed(2)} ms, max ${idle.at(-1).toFixed(2)} ms`);
  },

  // `except` works across nodes: the left-out socket is on another node than the emit.
  async except() {
    assert.equal(NODES.length, 3, "except needs 3 nodes");
    const [a1, b1, b2, c1] = await clients([
      ["a1", 0],
      ["b1", 1],
      ["b2", 1],
      ["c1", 2],
    ]);
    for (const c of [a1, b1, b2, c1]) await c.subscribe("chats/1");
    await waitNumsub("chats/1", 3);
    for (const node of [0, 1, 2]) await waitPublisher(node);

    const notB1 = [];
    const notA1 = [];
    for (const node of [0, 1, 2]) {
      step(`emit on node ${node} except b1`);
      await emitOk(node, { seq: `not-b1-${node}` }, { except: b1.id });
      notB1.push(`not-b1-${node}`);
      step(`emit on node ${node} except a1`);
      await emitOk(node, { seq: `not-a1-${node}` }, { except: a1.id });
      notA1.push(`not-a1-${node}`);
    }
    for (const c of [b2, c1]) await waitCount(c, 6);
    await waitCount(a1, 3);
    await waitCount(b1, 3);
    step("nothing more arrives");
    await sleep(QUIET_MS);
    assertExactly(a1, notB1);
    assertExactly(b1, notA1);
    assertExactly(b2, [...notB1, ...notA1]);
    assertExactly(c1, [...notB1, ...notA1]);
  },

  // A node subscribes in Redis only to the channels it has members in.
  async subscriptions() {
    assert.equal(NODES.length, 2, "subscriptions needs 2 nodes");
    const [x, x2, y, y2] = await clients([
      ["x", 0],
      ["x2", 0],
      ["y", 1],
      ["y2", 1],
    ]);
    await y.subscribe("chats/1");
    await waitNumsub("chats/1", 1);
    step("nobody in chats/9: no node subscribed to it");
    assert.equal(await numsub("chats/9"), 0, "NUMSUB tidings:chats/9 before any member");
    let channels = await redisChannels();
    assert.deepEqual(channels, [`${PREFIX}chats/1`], "PUBSUB CHANNELS: only the channel with members");

    await x.subscribe("chats/9");
    await waitNumsub("chats/9", 1);
    channels = await redisChannels();
    assert.deepEqual(channels.sort(), [`${PREFIX}chats/1`, `${PREFIX}chats/9`], "PUBSUB CHANNELS after x joined chats/9");

    step("a second member on the same node: still one subscription");
    await x2.subscribe("chats/9");
    await sleep(300);
    assert.equal(await numsub("chats/9"), 1, "NUMSUB tidings:chats/9 with two members on node 0");

    await y2.subscribe("chats/9");
    await waitNumsub("chats/9", 2);

    step("x leaves: x2 keeps node 0 subscribed");
    await x.unsubscribe("chats/9");
    await sleep(300);
    assert.equal(await numsub("chats/9"), 2, "NUMSUB tidings:chats/9 after x left");

    step("x2 disconnects: node 0 unsubscribes");
    x2.close();
    await waitNumsub("chats/9", 1);

    step("y2 leaves: nobody is subscribed to chats/9");
    await y2.unsubscribe("chats/9");
    await waitNumsub("chats/9", 0);
    channels = await redisChannels();
    assert.deepEqual(channels, [`${PREFIX}chats/1`], "PUBSUB CHANNELS after everyone left chats/9");

    step("a node with no member gets no traffic: emits still reach y only");
    await waitPublisher(0);
    await emitOk(0, { seq: "to-y" });
    await waitCount(y, 1);
    await sleep(QUIET_MS);
    assertExactly(y, ["to-y"]);
    assertExactly(x, []);
  },

  // Redis dies: node A keeps delivering locally and says the fan-out failed; Redis comes back
  // on the same port: cross-node delivery resumes within RECOVERY_MS, exactly once.
  async outage() {
    assert.equal(NODES.length, 2, "outage needs 2 nodes");
    const [a1, b1] = await clients([
      ["a1", 0],
      ["b1", 1],
    ]);
    await a1.subscribe("chats/1");
    await b1.subscribe("chats/1");
    await waitNumsub("chats/1", 2);
    for (const node of [0, 1]) await waitPublisher(node);

    step("before the outage: both nodes get it");
    await emitOk(0, { seq: "before" });
    await waitCount(b1, 1);
    await waitCount(a1, 1);

    await control("kill-redis");

    step("emits on A while Redis is down: the fan-out error comes back");
    const down = [];
    const accepted = [];
    await until("an /emit on node 0 answering 503 after Redis was killed", 5000, async () => {
      const seq = `down-${down.length}`;
      const answer = await emit(0, { seq });
      down.push(seq);
      if (answer.status === 200) accepted.push(seq);
      else return answer.status === 503;
      return false;
    });
    info(`after the kill, ${accepted.length} emit(s) were accepted before the adapter noticed`);
    for (let i = 0; i < 5; i++) {
      const seq = `down-late-${i}`;
      const answer = await emit(0, { seq });
      down.push(seq);
      assert.equal(answer.status, 503, `emit ${seq} while Redis is down: ${answer.status} ${answer.text}`);
      assert.match(answer.json?.error ?? "", /Redis/, `emit ${seq}: the error names Redis`);
      assert.equal(answer.json?.delivered, "local", `emit ${seq}: delivered locally`);
    }
    step("A's own member got every emit made during the outage");
    await waitCount(a1, 1 + down.length);
    await sleep(QUIET_MS);
    assertExactly(a1, ["before", ...down]);
    assertExactly(b1, ["before"]);

    await control("start-redis");

    step("Redis is back: A's emits reach B again");
    const started = performance.now();
    const probes = [];
    await until("a client on node 1 receiving an emit of node 0 after Redis restarted", RECOVERY_MS, async () => {
      const seq = `probe-a-${probes.length}`;
      const answer = await emit(0, { seq });
      if (answer.status === 200) probes.push(seq);
      await sleep(100);
      return b1.seqs().some((s) => s.startsWith("probe-a-"));
    }, 100);
    info(`cross-node delivery back ${(performance.now() - started).toFixed(0)} ms after Redis restarted`);
    step("and B's emits reach A");
    const probesB = [];
    await until("a client on node 0 receiving an emit of node 1", RECOVERY_MS, async () => {
      const seq = `probe-b-${probesB.length}`;
      const answer = await emit(1, { seq });
      if (answer.status === 200) probesB.push(seq);
      await sleep(100);
      return a1.seqs().some((s) => s.startsWith("probe-b-"));
    }, 100);

    step("after recovery: exactly once again");
    const finalSeqs = [];
    for (const node of [0, 1, 0, 1]) {
      const seq = `after-${finalSeqs.length}-n${node}`;
      await emitOk(node, { seq });
      finalSeqs.push(seq);
    }
    const isFinal = (s) => s.startsWith("after-");
    await until("both clients received the emits made after recovery", 5000, () =>
      [a1, b1].every((c) => c.seqs().filter(isFinal).length >= finalSeqs.length),
    );
    await sleep(QUIET_MS);
    for (const c of [a1, b1]) {
      const got = c.seqs().filter(isFinal);
      assert.deepEqual([...got].sort(), [...finalSeqs].sort(), `${c.name}: the emits after recovery, once each`);
    }
  },

  // A node crashes: the others keep serving and delivering to each other.
  async crash() {
    assert.equal(NODES.length, 3, "crash needs 3 nodes");
    const [a1, b1, c1] = await clients([
      ["a1", 0],
      ["b1", 1],
      ["c1", 2],
    ]);
    for (const c of [a1, b1, c1]) await c.subscribe("chats/1");
    await waitNumsub("chats/1", 3);
    for (const node of [0, 1, 2]) await waitPublisher(node);
    const before = [];
    for (const node of [0, 1, 2]) {
      await emitOk(node, { seq: `before-${node}` });
      before.push(`before-${node}`);
    }
    for (const c of [a1, b1, c1]) await waitCount(c, 3);

    await control("kill-node 1");
    step("b1 sees its node go");
    await until("b1 disconnected", 5000, () => b1.disconnected !== null);
    await waitNumsub("chats/1", 2);

    const after = [];
    for (let round = 0; round < 3; round++) {
      for (const node of [0, 2]) {
        const seq = `after-n${node}-r${round}`;
        await emitOk(node, { seq });
        after.push(seq);
      }
    }
    for (const c of [a1, c1]) await waitCount(c, before.length + after.length);
    await sleep(QUIET_MS);
    assertExactly(a1, [...before, ...after]);
    assertExactly(c1, [...before, ...after]);
    assertExactly(b1, before);
  },

  // The chat example on two nodes: a form posted on node 0 shows on a page of node 1.
  async chat() {
    assert.equal(NODES.length, 2, "chat needs 2 nodes");
    const [reader] = await clients([["reader", 1]]);
    await reader.subscribe("chats/1");
    await waitNumsub("chats/1", 1);
    step("POST /chat on node 0");
    let message;
    await until("POST /chat on node 0 answering 204", SUBSCRIBE_WAIT_MS, async () => {
      message = `hello from node 0 (${Date.now()})`;
      const answer = await post(0, "/chat", `message=${encodeURIComponent(message)}`, "application/x-www-form-urlencoded");
      return answer.status === 204;
    });
    step("the reader on node 1 gets it");
    await until(`reader received "chats/1/message" ${JSON.stringify(message)}`, 5000, () =>
      reader.events.some((e) => e.event === "chats/1/message" && e.args[0]?.message === message),
    );
    const got = reader.events.filter((e) => e.event === "chats/1/message" && e.args[0]?.message === message);
    assert.equal(got.length, 1, "the reader got the message once");
    // The chat example keeps channel history (connection state recovery): the event's last
    // argument is its offset on the node that delivered it.
    assert.deepEqual(got[0].args[0], { message }, "the message event carries {message}");
    assert.equal(got[0].args.length, 2, "and its offset");
    assert.match(got[0].args[1], /^[1-9][0-9]*$/, "the offset is a decimal string");
  },
};

// ---------------------------------------------------------------------------
// Runner

if (NODES.length === 0) {
  console.error("TIDINGS_NODES is empty: give the node URLs as a comma list");
  process.exit(1);
}
run("redis_client", scenarios, {
  where: `${NODES.join(", ")}, Redis on ${REDIS_PORT}`,
  timeoutMs: SCENARIO_TIMEOUT_MS,
});
