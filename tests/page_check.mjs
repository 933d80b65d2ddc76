// Drives the plug's page (GET /) in headless Chromium (Debian's /usr/bin/chromium through
// playwright-core) the way its owner would, and reports what it saw as one JSON line on
// stdout; tests/test_page.py checks it against the plug's own /status and /ledger.
//
//   node tests/page_check.mjs URL TOKEN CHANNEL OUT_DIR [CASES.json]
//
// Every /status the page polls is passed through a route that keeps its exact text, and
// the page marks how many it has rendered (body data-status), so each snapshot of the
// page's figures ([data-f] cells) comes with the very /status text it was drawn from.
// Steps: load; a snapshot; wait until at least 3 more polls drew; a second snapshot;
// a wrong token, then the right one, on CHANNEL's switch; the copy button; a reload (the
// token stays in localStorage); the screenshot OUT_DIR/page.png; a phone's width (360 and
// 390 px: what is wider than the screen, OUT_DIR/page-phone.png). CASES.json: a list of
// {"name", "status": text, "ledger": text or null (503)} the page is then shown instead
// of the plug's own (safe mode, amounts beyond 2**53), one snapshot and screenshot
// (OUT_DIR/page-case<n>.png) each.
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const [url, token, channel, outDir, casesFile] = process.argv.slice(2);
const LONG = 60000; // generous: a busy 2-core box
const profile = fs.mkdtempSync(path.join(os.tmpdir(), "plug-page-"));
const report = { errors: [], snapshots: [], steps: {} };

const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium", headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  viewport: { width: 1100, height: 900 },
});
try {
  await ctx.grantPermissions(["clipboard-read", "clipboard-write"], { origin: url });
  const page = ctx.pages()[0] || await ctx.newPage();
  page.setDefaultTimeout(LONG);
  page.on("pageerror", e => report.errors.push("pageerror: " + e.message));
  page.on("console", m => { if (m.type() == "error") report.errors.push("console: " + m.text()); });
  const statuses = []; // the text of every /status the page got, in order
  await page.route(/\/status$/, async route => {
    const resp = await route.fetch();
    const body = await resp.text();
    statuses.push(body);
    await route.fulfill({ response: resp, body });
  });
  const drawn = () => page.evaluate(() => +(document.body.dataset.status || 0));
  const waitDrawn = n => page.waitForFunction(k => +(document.body.dataset.status || 0) >= k, n,
    { timeout: LONG });
  async function snapshot(what) {
    const s = await page.evaluate(() => {
      const f = {};
      for (const e of document.querySelectorAll("[data-f]")) f[e.dataset.f] = e.textContent;
      const rows = id => [...document.querySelectorAll("#" + id + " tr")].map(r =>
        [...r.cells].map(c => c.textContent));
      return { n: +(document.body.dataset.status || 0), fields: f, invoices: rows("invoices"),
        payments: rows("payments"), alerts: document.getElementById("alerts").textContent };
    });
    s.what = what;
    s.status = statuses[s.n - 1];
    report.snapshots.push(s);
    return s;
  }

  const resp = await page.goto(url + "/", { waitUntil: "load" });
  report.steps.load = { status: resp.status(), headers: resp.headers() };
  await waitDrawn(1);
  // the ledger tables fill from /ledger after the first /status
  await page.waitForFunction(() => document.querySelectorAll("#payments tr td.h").length > 0);
  const first = await snapshot("first");
  await waitDrawn(first.n + 3);
  await page.waitForTimeout(500);
  await snapshot("later");

  // the switches are locked until a token is saved
  const btn = page.locator(`[data-sw="${channel}"]`);
  report.steps.locked = await btn.isDisabled();
  async function trySwitch(tok, expect) {
    await page.fill("#tok", tok);
    await page.click("#save");
    await page.waitForFunction(() => !document.querySelector("[data-sw]").disabled);
    const label = await btn.textContent();
    await btn.click();
    await page.waitForFunction(e => document.getElementById("msg").textContent.includes(e),
      expect, { timeout: LONG });
    const msg = await page.textContent("#msg");
    const st = JSON.parse(await (await fetch(url + "/status")).text());
    return { label, msg, msgClass: await page.getAttribute("#msg", "class"),
      on: st.outputs[channel].on, reason: st.outputs[channel].reason };
  }
  report.steps.wrong = await trySwitch("not the token", "401");
  report.steps.right = await trySwitch(token, "switched off");
  // the next /status the page draws shows the output off
  const n = await drawn();
  await waitDrawn(n + 1);
  report.steps.after = await snapshot("after switch");
  report.steps.afterLabel = await btn.textContent();

  await page.click(`[data-copy]`);
  report.steps.clipboard = await page.evaluate(() => navigator.clipboard.readText());

  await page.screenshot({ path: path.join(outDir, "page.png"), fullPage: true });

  // on a phone: the document no wider than the screen, the channel and energy tables
  // whole (no scrolling inside them), every button on screen
  const phone = () => page.evaluate(() => ({ vw: innerWidth,
    doc: document.documentElement.scrollWidth,
    tables: [...document.querySelectorAll(".scroll")].slice(0, 2).map(e => e.scrollWidth - e.clientWidth),
    right: Math.max(...[...document.querySelectorAll("#live button, #save, #forget")].map(b =>
      b.getBoundingClientRect().right)) }));
  report.steps.phone = [];
  for (const width of [360, 390]) {
    await page.setViewportSize({ width, height: 800 });
    await page.waitForTimeout(300);
    report.steps.phone.push(await phone());
  }
  await page.screenshot({ path: path.join(outDir, "page-phone.png"), fullPage: true });
  await page.setViewportSize({ width: 1100, height: 900 });

  // a reload keeps the token (localStorage) and is answered 304 from the ETag
  const again = await page.reload({ waitUntil: "load" });
  await waitDrawn(1);
  report.steps.reload = { status: again.status(), unlocked: !(await btn.isDisabled()),
    label: await btn.textContent() };

  // made-up answers: what the page draws from them
  const cases = casesFile ? JSON.parse(fs.readFileSync(casesFile, "utf8")) : [];
  for (const [i, c] of cases.entries()) {
    await page.unroute(/\/status$/);
    await page.route(/\/status$/, route => route.fulfill({ status: 200,
      contentType: "application/json", body: c.status }));
    await page.route(/\/ledger/, route => route.fulfill(c.ledger == null ?
      { status: 503, contentType: "application/json", body: '{"error": "safe mode"}' } :
      { status: 200, contentType: "application/json", body: c.ledger }));
    await page.reload({ waitUntil: "load" });
    await waitDrawn(1);
    if (c.ledger != null)
      await page.waitForFunction(() => document.querySelectorAll("#payments tr td.h").length > 0);
    else
      await page.waitForTimeout(500);
    const s = await snapshot(c.name);
    s.status = c.status;
    s.wallets = await page.textContent("#wallets");
    await page.setViewportSize({ width: 360, height: 800 });
    await page.waitForTimeout(300);
    s.phone = await phone();
    await page.setViewportSize({ width: 1100, height: 900 });
    await page.screenshot({ path: path.join(outDir, "page-case" + (i + 1) + ".png"), fullPage: true });
    await page.unroute(/\/ledger/);
  }
} catch (e) {
  report.errors.push("driver: " + (e.stack || e));
} finally {
  await ctx.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(report));
