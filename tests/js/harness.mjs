// The harness every Node test script shares: the current step (named when a scenario fails or
// times out), waits and polls, an abort channel for failures seen in event handlers, the sockets
// to close at the end, and the runner that picks the scenario named in argv, guards it with a
// timeout and sets the exit code (0 = pass, 1 = fail with a message on stderr).
import assert from "node:assert/strict";

let currentStep = "start";

/** Names the step in progress, for failure and timeout messages. */
export const step = (name) => {
  currentStep = name;
};

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Rejects with `message` if `promise` does not settle within `ms`. */
export function within(ms, promise, message) {
  let timer;
  const guard = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, guard]).finally(() => clearTimeout(timer));
}

/**
 * An `until(what, ms, check, every = defaultEvery)`: polls `check` (async; truthy = done, and
 * returned) every `every` ms, and fails with `what` (a text, or a function giving it at that
 * moment) after `ms`. Each script picks its own default interval.
 */
export function poller(defaultEvery) {
  return async function until(what, ms, check, every = defaultEvery) {
    const deadline = Date.now() + ms;
    for (;;) {
      const result = await check();
      if (result) return result;
      if (Date.now() > deadline) assert.fail(`${typeof what === "function" ? what() : what}: not within ${ms} ms`);
      await sleep(every);
    }
  };
}

// Anything that must end the scenario at once (an unexpected connect_error, say) calls
// `abort(error)`; the scenario races against `aborted`.
let rejectAborted;
export const aborted = new Promise((_, reject) => {
  rejectAborted = reject;
});
aborted.catch(() => {});
export const abort = (error) => rejectAborted(error);

/** Sockets (anything with `close()`) closed when the scenario ends. */
export const openSockets = new Set();

/**
 * Everything a socket.io-client socket receives, in order: application events by name, and
 * `$connect`, `$connect_error`, `$disconnect`. `next(event)` takes the next one of a name,
 * already received or still to come. Scripts extend it with their own expectations.
 */
export class Inbox {
  constructor(socket) {
    this.items = [];
    this.waiters = [];
    socket.onAny((event, ...args) => this.push(event, args));
    socket.on("connect", () => this.push("$connect", []));
    socket.on("connect_error", (err) => this.push("$connect_error", [err]));
    socket.on("disconnect", (...args) => this.push("$disconnect", args));
  }

  push(event, args) {
    const i = this.waiters.findIndex((w) => w.event === event);
    if (i >= 0) this.waiters.splice(i, 1)[0].resolve(args);
    else this.items.push({ event, args });
  }

  // Resolves with the args of the next `event` (already received or future).
  next(event) {
    const i = this.items.findIndex((it) => it.event === event);
    if (i >= 0) return Promise.resolve(this.items.splice(i, 1)[0].args);
    return new Promise((resolve) => this.waiters.push({ event, resolve }));
  }
}

function describeError(err) {
  if (err instanceof assert.AssertionError) return err.message;
  const text = err?.constructor === Error ? err.message : (err?.stack ?? String(err));
  return err?.cause ? `${text}\ncause: ${err.cause.message ?? err.cause}` : text;
}

/**
 * Runs the scenario named by `process.argv[2]` and exits.
 * - `script`: the script's name, for messages;
 * - `where`: what it runs against (a URL), for failure messages;
 * - `timeoutMs`: a number, or a function of the scenario's name;
 * - `finish`: called at the end, pass or fail (to write results).
 */
export async function run(script, scenarios, { where, timeoutMs, finish = () => {} }) {
  const name = process.argv[2];
  const scenario = scenarios[name];
  if (!scenario) {
    console.error(`unknown scenario "${name}"; known: ${Object.keys(scenarios).join(", ")}`);
    process.exit(1);
  }

  const limit = typeof timeoutMs === "function" ? timeoutMs(name) : timeoutMs;
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timeout (${limit} ms) in ${currentStep}`)), limit);
  });

  let code = 0;
  try {
    await Promise.race([scenario(), aborted, timeout]);
    console.log(`${script} ${name}: ok`);
  } catch (err) {
    console.error(`${script} ${name}: FAILED in step "${currentStep}" (${where})`);
    console.error(describeError(err));
    code = 1;
  } finally {
    clearTimeout(timer);
    finish();
    for (const socket of openSockets) socket.close();
  }
  process.exit(code);
}

/**
 * Debian's Chromium, headless, through playwright-core, with the flags this machine needs (no
 * sandbox as root, no background networking, which a closed network refuses). `TIDINGS_CHROMIUM`
 * overrides the path.
 */
export async function launchChromium() {
  const { chromium } = await import("playwright-core");
  return chromium.launch({
    executablePath: process.env.TIDINGS_CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}
