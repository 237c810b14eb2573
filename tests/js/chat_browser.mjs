// The chat example in a real browser: headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core) opens /chat in two pages, posts from one, and both show the message; the VIP
// page gets into the private room, the other is refused. Screenshots go to
// $TIDINGS_SCREENSHOT_DIR.
//
// Usage: TIDINGS_URL=http://127.0.0.1:PORT TIDINGS_SCREENSHOT_DIR=dir node tests/js/chat_browser.mjs two-pages
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { launchChromium, step, run } from "./harness.mjs";

const URL = (process.env.TIDINGS_URL ?? "http://127.0.0.1:8080").replace(/\/+$/, "");
const SHOTS = process.env.TIDINGS_SCREENSHOT_DIR ?? "target";
const TIMEOUT_MS = 90_000;
// Generous: a machine busy with other tests once took over 10 s to connect the second page.
const WAIT_MS = 20_000;

// Waits until the element's text is `expected` (or matches it, for a RegExp).
async function expectText(page, selector, expected, what) {
  try {
    await page.waitForFunction(
      ([sel, source, flags]) => {
        const text = document.querySelector(sel)?.textContent ?? "";
        return flags === null ? text === source : new RegExp(source, flags).test(text);
      },
      expected instanceof RegExp ? [selector, expected.source, expected.flags] : [selector, expected, null],
      { timeout: WAIT_MS },
    );
  } catch {
    const actual = await page.locator(selector).textContent();
    assert.fail(`${what}: expected ${selector} to show ${expected}, it shows ${JSON.stringify(actual)}`);
  }
}

async function messages(page, list) {
  return page.locator(`#${list} li`).allTextContents();
}

const scenarios = {
  async "two-pages"() {
    step("launch chromium");
    const browser = await launchChromium();
    try {
      const context = await browser.newContext();
      const alice = await context.newPage();
      const vip = await context.newPage();
      const errors = [];
      for (const page of [alice, vip]) page.on("pageerror", (err) => errors.push(err.message));

      step("open /chat twice");
      await alice.goto(`${URL}/chat`);
      await vip.goto(`${URL}/chat?token=northle-vip`);
      await expectText(alice, "#status", "connected to chats/1", "page 1 status");
      await expectText(vip, "#status", "connected to chats/1", "page 2 status");

      step("private room: refused without the token, joined with it");
      await expectText(alice, "#private-status", "refused: unauthorized", "page 1 private room");
      await expectText(vip, "#private-status", "joined private/vip", "page 2 private room");

      step("post from page 1: both pages show it");
      const text = `hello from page 1 #${Math.floor(Math.random() * 1e9)}`;
      await alice.fill("#message", text);
      await alice.click("#chat-form button[type=submit]");
      await expectText(alice, "#messages li:last-child", text, "page 1 messages");
      await expectText(vip, "#messages li:last-child", text, "page 2 messages");
      await expectText(alice, "#message", "", "page 1 input cleared");

      step("a POST from outside the browser reaches both pages");
      const outside = `posted with curl-like fetch #${Math.floor(Math.random() * 1e9)}`;
      const res = await fetch(`${URL}/chat`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ message: outside }),
      });
      assert.equal(res.status, 204, "POST /chat status");
      await expectText(alice, "#messages li:last-child", outside, "page 1 messages");
      await expectText(vip, "#messages li:last-child", outside, "page 2 messages");
      assert.deepStrictEqual(await messages(alice, "messages"), [text, outside], "page 1 shows each message once");
      assert.deepStrictEqual(await messages(vip, "messages"), [text, outside], "page 2 shows each message once");

      step("whisper in the private room: only the member sees it");
      await vip.fill("#private-message", "for VIPs only");
      await vip.click("#private-form button[type=submit]");
      await expectText(vip, "#private-messages li:last-child", "for VIPs only", "page 2 private messages");
      await alice.waitForTimeout(300);
      assert.deepStrictEqual(await messages(alice, "private-messages"), [], "page 1 must not see the private room");

      step("screenshots");
      mkdirSync(SHOTS, { recursive: true });
      await alice.screenshot({ path: join(SHOTS, "chat-page-1.png"), fullPage: true });
      await vip.screenshot({ path: join(SHOTS, "chat-page-2-vip.png"), fullPage: true });
      assert.deepStrictEqual(errors, [], "no JavaScript errors on the pages");
    } finally {
      await browser.close();
    }
  },
};

run("chat_browser", scenarios, { where: URL, timeoutMs: TIMEOUT_MS });
