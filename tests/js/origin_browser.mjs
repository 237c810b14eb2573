// The origin policy in a real browser: headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core) visits the chat server A (its VIP token in a cookie, as a site that
// authenticates by cookie would have it), then a page of another origin, B (another chat
// server, another port of 127.0.0.1), tries to connect to A with that cookie.
//
//   refused  A runs with the default policy: B's page cannot connect over WebSocket or
//            polling, with the official client, with phoenix.js or by hand; Node clients without an Origin are
//            unaffected, a forged foreign Origin from Node is refused.
//   allowed  A runs with --allow-origin <B>: B's page connects with the official client over
//            polling (CORS, with credentials: the cookie reaches A) and WebSocket, joins the
//            VIP room and gets A's messages; so does phoenix.js over WebSocket (LongPoll
//            connects through CORS, without the cookie); a forged Origin of B from Node is accepted
//            (origin checks protect browsers, not servers).
//
// Usage: TIDINGS_URL=<A> TIDINGS_FOREIGN_URL=<B> node tests/js/origin_browser.mjs <scenario>
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { launchChromium, step, run } from "./harness.mjs";

const A = (process.env.TIDINGS_URL ?? "http://127.0.0.1:8080").replace(/\/+$/, "");
const B = (process.env.TIDINGS_FOREIGN_URL ?? "http://127.0.0.1:8081").replace(/\/+$/, "");
const ENGINE = "/socket.io/?EIO=4";
const WAIT_MS = 5_000;

async function withBrowser(body) {
  const browser = await launchChromium();
  try {
    const context = await browser.newContext();
    // The visitor's session on A: cookies belong to the host, whatever the port.
    await context.addCookies([{ name: "northle_token", value: "northle-vip", url: A }]);
    const errors = [];
    const open = async (url) => {
      const page = await context.newPage();
      page.on("pageerror", (err) => errors.push(err.message));
      await page.goto(url);
      return page;
    };
    await body(open);
    assert.deepStrictEqual(errors, [], "no JavaScript errors on the pages");
  } finally {
    await browser.close();
  }
}

// A's own page: connected, and in the VIP room thanks to the cookie. The first page of a
// freshly started browser gets longer than the other steps (Chromium's start on a loaded
// two-core machine), and a timeout says what the page showed.
const FIRST_PAGE_MS = 15_000;

async function ownPageWorks(open) {
  step("A's own page connects and its cookie makes it a VIP");
  const own = await open(`${A}/chat`);
  for (const [id, text] of [
    ["status", "connected to chats/1"],
    ["private-status", "joined private/vip"],
  ]) {
    try {
      await own.waitForFunction(
        ([id, text]) => document.getElementById(id)?.textContent === text,
        [id, text],
        { timeout: FIRST_PAGE_MS },
      );
    } catch (err) {
      const shown = await own.evaluate((id) => document.getElementById(id)?.textContent, id);
      throw new Error(`#${id} shows ${JSON.stringify(shown)}, not ${JSON.stringify(text)}: ${err.message}`);
    }
  }
}

// In B's page: the official client connects to A with `options`; resolves with what happened
// ({connected, transport, vip, message} or {error}).
function officialClient(page, options, postMessage) {
  return page.evaluate(
    async ([url, options, waitMs]) => {
      const socket = window.io(url, { forceNew: true, reconnection: false, ...options });
      try {
        await new Promise((resolve, reject) => {
          socket.once("connect", resolve);
          socket.once("connect_error", (err) => reject(err));
          setTimeout(() => reject(new Error("no connect within the wait")), waitMs);
        });
      } catch (err) {
        socket.close();
        return { error: String(err.message ?? err) };
      }
      const vip = await socket.timeout(waitMs).emitWithAck("subscribe", "private/vip");
      const joined = await socket.timeout(waitMs).emitWithAck("subscribe", "chats/1");
      const message = new Promise((resolve) => socket.once("chats/1/message", resolve));
      window.__ready = true;
      const received = await Promise.race([message, new Promise((r) => setTimeout(() => r(null), waitMs))]);
      const result = { connected: true, transport: socket.io.engine.transport.name, vip, joined, message: received };
      socket.close();
      return result;
    },
    [A, options, WAIT_MS],
  );
}

// Runs `officialClient` and, once it has joined, posts a chat message to A from Node.
async function connectAndReceive(page, options, text) {
  await page.evaluate(() => {
    window.__ready = false;
  });
  const outcome = officialClient(page, options);
  const posted = (async () => {
    try {
      await page.waitForFunction(() => window.__ready === true, null, { timeout: WAIT_MS });
    } catch {
      return; // never joined: the outcome says why
    }
    const res = await fetch(`${A}/chat`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ message: text }),
    });
    assert.equal(res.status, 204, "POST /chat");
  })();
  const [result] = await Promise.all([outcome, posted]);
  return result;
}

// In B's page: a raw WebSocket to A; resolves "open" or "refused".
function rawWebSocket(page) {
  return page.evaluate(
    (url) =>
      new Promise((resolve) => {
        const ws = new WebSocket(url);
        ws.onopen = () => {
          ws.close();
          resolve("open");
        };
        ws.onerror = () => resolve("refused");
      }),
    `${A.replace(/^http/, "ws")}${ENGINE}&transport=websocket`,
  );
}

// In B's page: a raw polling handshake with the cookie; resolves the status and CORS headers,
// or "blocked" when the browser would not hand the answer to the page.
function rawPolling(page) {
  return page.evaluate(async (url) => {
    try {
      const res = await fetch(url, { credentials: "include" });
      return { status: res.status, body: (await res.text()).slice(0, 1) };
    } catch {
      return "blocked";
    }
  }, `${A}${ENGINE}&transport=polling`);
}

// phoenix.js's browser bundle, from the npm package.
const PHOENIX_JS = fileURLToPath(new URL("../../node_modules/phoenix/priv/static/phoenix.js", import.meta.url));

// In B's page: phoenix.js connects to A over `transport` ("websocket" or "longpoll"), joins
// the VIP room and chats/1, and waits for a message posted to A; resolves what happened.
async function phoenixClient(page, transport, text) {
  await page.addScriptTag({ path: PHOENIX_JS });
  const outcome = page.evaluate(
    async ([url, transport, waitMs]) => {
      const options = { reconnectAfterMs: () => 60_000 };
      if (transport === "longpoll") options.transport = window.Phoenix.LongPoll;
      const socket = new window.Phoenix.Socket(`${url.replace(/^http/, "ws")}/socket`, options);
      const opened = new Promise((resolve, reject) => {
        socket.onOpen(resolve);
        socket.onError(() => reject(new Error("socket error")));
        setTimeout(() => reject(new Error("no open within the wait")), waitMs);
      });
      socket.connect();
      try {
        await opened;
      } catch (err) {
        socket.disconnect();
        return { error: String(err.message ?? err) };
      }
      const join = (topic) =>
        new Promise((resolve) =>
          socket
            .channel(topic, {})
            .join()
            .receive("ok", () => resolve("ok"))
            .receive("error", ({ reason }) => resolve(reason))
            .receive("timeout", () => resolve("timeout")),
        );
      const vip = await join("private/vip");
      const room = socket.channel("chats/1", {});
      const message = new Promise((resolve) => room.on("message", resolve));
      const joined = await new Promise((resolve) =>
        room.join().receive("ok", () => resolve("ok")).receive("error", ({ reason }) => resolve(reason)),
      );
      window.__phoenixReady = true;
      const received = await Promise.race([message, new Promise((r) => setTimeout(() => r(null), waitMs))]);
      const kind = socket.transport.name;
      socket.disconnect();
      return { connected: true, transport: kind, vip, joined, message: received };
    },
    [A, transport, WAIT_MS],
  );
  const posted = (async () => {
    try {
      await page.waitForFunction(() => window.__phoenixReady === true, null, { timeout: WAIT_MS });
    } catch {
      return;
    }
    await page.evaluate(() => {
      window.__phoenixReady = false;
    });
    const res = await fetch(`${A}/chat`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ message: text }),
    });
    assert.equal(res.status, 204, "POST /chat");
  })();
  const [result] = await Promise.all([outcome, posted]);
  return result;
}

// From Node (not a browser): a polling handshake and a WebSocket with the given Origin.
async function nodeHandshake(origin) {
  const headers = origin ? { origin } : {};
  const res = await fetch(`${A}${ENGINE}&transport=polling`, { headers });
  const polling = { status: res.status, body: await res.text() };
  const websocket = await new Promise((resolve) => {
    const ws = new WebSocket(`${A.replace(/^http/, "ws")}${ENGINE}&transport=websocket`, origin ? { origin } : {});
    ws.once("open", () => {
      ws.terminate();
      resolve("open");
    });
    ws.once("unexpected-response", (_, response) => {
      ws.terminate();
      resolve(response.statusCode);
    });
    ws.once("error", () => resolve("error"));
  });
  return { polling, websocket };
}

const scenarios = {
  async refused() {
    await withBrowser(async (open) => {
      await ownPageWorks(open);

      step("B's page: the official client, default transports");
      const foreign = await open(`${B}/chat`);
      const text = `not for B #${Math.floor(Math.random() * 1e9)}`;
      const byDefault = await connectAndReceive(foreign, { withCredentials: true }, text);
      assert.ok(byDefault.error, `B's page connected to A: ${JSON.stringify(byDefault)}`);

      step("B's page: the official client over WebSocket only");
      const overWs = await connectAndReceive(foreign, { transports: ["websocket"] }, text);
      assert.ok(overWs.error, `B's page connected to A over WebSocket: ${JSON.stringify(overWs)}`);

      step("B's page: the official client over polling only, with the cookie");
      const overPolling = await connectAndReceive(foreign, { transports: ["polling"], withCredentials: true }, text);
      assert.ok(overPolling.error, `B's page connected to A over polling: ${JSON.stringify(overPolling)}`);

      step("B's page: a raw WebSocket and a raw polling handshake");
      assert.equal(await rawWebSocket(foreign), "refused", "raw WebSocket from B");
      assert.equal(await rawPolling(foreign), "blocked", "raw polling handshake from B");

      step("B's page: phoenix.js over WebSocket and over LongPoll");
      const phoenixWs = await phoenixClient(foreign, "websocket", text);
      assert.ok(phoenixWs.error, `phoenix.js in B's page connected to A: ${JSON.stringify(phoenixWs)}`);
      const phoenixLp = await phoenixClient(foreign, "longpoll", text);
      assert.ok(phoenixLp.error, `phoenix.js LongPoll in B's page connected to A: ${JSON.stringify(phoenixLp)}`);
    });

    step("Node without an Origin: unaffected");
    const plain = await nodeHandshake(undefined);
    assert.equal(plain.polling.status, 200, "polling handshake without Origin");
    assert.ok(plain.polling.body.startsWith("0{"), "open packet");
    assert.equal(plain.websocket, "open", "WebSocket without Origin");

    step("Node with a forged foreign Origin: refused with 403 and a clear body");
    const forged = await nodeHandshake(B);
    assert.equal(forged.polling.status, 403, "polling with Origin B");
    assert.deepStrictEqual(JSON.parse(forged.polling.body), { code: 4, message: "Origin not allowed" });
    assert.equal(forged.websocket, 403, "WebSocket with Origin B");

    step("Node with A's own Origin: accepted");
    const own = await nodeHandshake(A);
    assert.equal(own.polling.status, 200, "polling with Origin A");
    assert.equal(own.websocket, "open", "WebSocket with Origin A");
  },

  async allowed() {
    await withBrowser(async (open) => {
      await ownPageWorks(open);
      const foreign = await open(`${B}/chat`);

      step("B's page: the official client, default transports (polling, then the upgrade)");
      const text = `for B too #${Math.floor(Math.random() * 1e9)}`;
      const byDefault = await connectAndReceive(foreign, { withCredentials: true }, text);
      assert.equal(byDefault.connected, true, `not connected: ${JSON.stringify(byDefault)}`);
      assert.deepStrictEqual(byDefault.vip, { status: "ok" }, "the cookie reached A: VIP room joined");
      assert.deepStrictEqual(byDefault.joined, { status: "ok" }, "chats/1 joined");
      assert.deepStrictEqual(byDefault.message, { message: text }, "A's message reached B's page");
      assert.equal(byDefault.transport, "websocket", "upgraded to WebSocket");

      step("B's page: the official client over polling only (CORS with credentials)");
      const text2 = `over polling #${Math.floor(Math.random() * 1e9)}`;
      const overPolling = await connectAndReceive(foreign, { transports: ["polling"], withCredentials: true }, text2);
      assert.equal(overPolling.connected, true, `not connected: ${JSON.stringify(overPolling)}`);
      assert.equal(overPolling.transport, "polling");
      assert.deepStrictEqual(overPolling.vip, { status: "ok" }, "the cookie reached A over polling");
      assert.deepStrictEqual(overPolling.message, { message: text2 }, "A's message over polling");

      step("B's page: polling without credentials gets no cookie, so no VIP room");
      const anonymous = await connectAndReceive(foreign, { transports: ["polling"] }, "anonymous");
      assert.equal(anonymous.connected, true, `not connected: ${JSON.stringify(anonymous)}`);
      assert.deepStrictEqual(anonymous.vip, { status: "error", reason: "unauthorized" }, "no cookie, no VIP");

      step("B's page: a raw WebSocket and a raw polling handshake");
      assert.equal(await rawWebSocket(foreign), "open", "raw WebSocket from B");
      const raw = await rawPolling(foreign);
      assert.deepStrictEqual(raw, { status: 200, body: "0" }, "raw polling handshake from B");

      step("B's page: phoenix.js over WebSocket (with the cookie: VIP)");
      const text3 = `phoenix #${Math.floor(Math.random() * 1e9)}`;
      const phoenixWs = await phoenixClient(foreign, "websocket", text3);
      assert.equal(phoenixWs.connected, true, `not connected: ${JSON.stringify(phoenixWs)}`);
      assert.equal(phoenixWs.transport, "WebSocket");
      assert.equal(phoenixWs.vip, "ok", "the cookie reached A with the WebSocket");
      assert.deepStrictEqual(phoenixWs.message, { message: text3 }, "A's message over phoenix.js");

      step("B's page: phoenix.js over LongPoll (CORS; phoenix.js sends no cookie: no VIP room)");
      const text4 = `phoenix longpoll #${Math.floor(Math.random() * 1e9)}`;
      const phoenixLp = await phoenixClient(foreign, "longpoll", text4);
      assert.equal(phoenixLp.connected, true, `not connected: ${JSON.stringify(phoenixLp)}`);
      assert.equal(phoenixLp.transport, "LongPoll");
      assert.equal(phoenixLp.vip, "unauthorized", "no cookie over LongPoll's fetch");
      assert.equal(phoenixLp.joined, "ok");
      assert.deepStrictEqual(phoenixLp.message, { message: text4 }, "A's message over LongPoll");
    });

    step("Node: a forged Origin of B is accepted (the check protects browsers, not servers)");
    const forged = await nodeHandshake(B);
    assert.equal(forged.polling.status, 200, "polling with Origin B");
    assert.equal(forged.websocket, "open", "WebSocket with Origin B");

    step("Node: CORS headers and the preflight for B");
    const res = await fetch(`${A}${ENGINE}&transport=polling`, { headers: { origin: B } });
    assert.equal(res.headers.get("access-control-allow-origin"), B, "Access-Control-Allow-Origin echoes B");
    assert.equal(res.headers.get("access-control-allow-credentials"), "true");
    assert.match(res.headers.get("vary") ?? "", /Origin/i, "Vary: Origin");
    const preflight = await fetch(`${A}${ENGINE}&transport=polling`, {
      method: "OPTIONS",
      headers: { origin: B, "access-control-request-method": "POST", "access-control-request-headers": "x-custom" },
    });
    assert.equal(preflight.status, 204, "preflight status");
    assert.equal(preflight.headers.get("access-control-allow-origin"), B);
    assert.match(preflight.headers.get("access-control-allow-methods") ?? "", /POST/);
    assert.equal(preflight.headers.get("access-control-allow-headers"), "x-custom");

    step("Node: another foreign Origin is still refused");
    const other = await nodeHandshake("http://127.0.0.1:9");
    assert.equal(other.polling.status, 403, "polling with another Origin");
    assert.equal(other.websocket, 403, "WebSocket with another Origin");
  },
};

run("origin_browser", scenarios, { where: `${A} (foreign page ${B})`, timeoutMs: 60_000 });
