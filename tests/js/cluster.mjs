// What the cluster scripts share (redis_client.mjs, presence_cluster.mjs, recovery_cluster.mjs;
// their tests start Redis and the nodes through tests/support/redis.rs): the Redis port they
// were given, the test driving them over stdin / stdout, and Redis spoken directly.
import net from "node:net";
import readline from "node:readline";
import { step } from "./harness.mjs";

/** The port of the test's redis-server on 127.0.0.1 (`REDIS_PORT`). */
export const REDIS_PORT = Number(process.env.REDIS_PORT ?? 6379);

// ---------------------------------------------------------------------------
// The test driving us: `@@ action` out, `ok [value]` back.

const stdinLines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

/**
 * Asks the test for `action` (prints `@@ <action>` on stdout) and waits for its answer on
 * stdin: `ok` or `ok <value>` resolve with the value (empty after a bare `ok`); anything else
 * is an error message, thrown.
 */
export async function control(action) {
  step(`test action "${action}"`);
  console.log(`@@ ${action}`);
  const { value, done } = await stdinLines.next();
  if (done) throw new Error(`test action "${action}": stdin closed`);
  const reply = value.trim();
  if (reply !== "ok" && !reply.startsWith("ok ")) throw new Error(`test action "${action}" failed: ${reply}`);
  return reply.slice(3);
}

// ---------------------------------------------------------------------------
// Redis, spoken directly (RESP over TCP)

function encodeCommand(args) {
  const parts = [`*${args.length}\r\n`];
  for (const arg of args) {
    const text = String(arg);
    parts.push(`$${Buffer.byteLength(text)}\r\n${text}\r\n`);
  }
  return parts.join("");
}

// Parses one RESP value at `at`; null when more bytes are needed.
function parseReply(buf, at = 0) {
  const end = buf.indexOf("\r\n", at);
  if (end < 0) return null;
  const kind = String.fromCharCode(buf[at]);
  const line = buf.toString("utf8", at + 1, end);
  const next = end + 2;
  switch (kind) {
    case "+":
      return { value: line, next };
    case "-":
      return { value: new Error(line), next };
    case ":":
      return { value: Number(line), next };
    case "$": {
      const len = Number(line);
      if (len < 0) return { value: null, next };
      if (buf.length < next + len + 2) return null;
      return { value: buf.toString("utf8", next, next + len), next: next + len + 2 };
    }
    case "*": {
      const count = Number(line);
      if (count < 0) return { value: null, next };
      const items = [];
      let pos = next;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buf, pos);
        if (!item) return null;
        items.push(item.value);
        pos = item.next;
      }
      return { value: items, next: pos };
    }
    default:
      throw new Error(`unexpected RESP reply ${JSON.stringify(buf.toString())}`);
  }
}

/**
 * Runs one command on Redis (a connection of its own) and resolves with its reply: a string,
 * a number, null or an array of those; a Redis error, no connection, or no answer within 2 s
 * rejects.
 */
export function redis(...args) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(REDIS_PORT, "127.0.0.1");
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`redis ${args.join(" ")}: no answer within 2 s`));
    }, 2000);
    socket.on("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`redis ${args.join(" ")}: ${err.message}`));
    });
    socket.on("data", (data) => {
      buf = Buffer.concat([buf, data]);
      const reply = parseReply(buf);
      if (!reply) return;
      clearTimeout(timer);
      socket.end();
      if (reply.value instanceof Error) reject(reply.value);
      else resolve(reply.value);
    });
    socket.write(encodeCommand(args));
  });
}
