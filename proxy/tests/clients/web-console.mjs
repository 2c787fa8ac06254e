// Drives authtap's web console in Debian's Chromium (headless) for proxy/tests/it/web.rs.
//
//   node web-console.mjs URL SCREENSHOT.png [STEP ...]
//
// Opens URL, waits until the page has loaded its backlog and its event stream is live, prints
// `{"ready":true,"rows":N}`, then runs the steps in order:
//   wait:TEXT    until a visible row contains TEXT
//   click:TEXT   click the first visible row containing TEXT (opens the detail panel)
//   enter:TEXT   focus that row and press Enter
//   filter:TEXT  type TEXT into the filter box
//   width:PX     resize the window
//   scheme:dark  emulate prefers-color-scheme (dark or light)
// After each step it records what the page shows; at the end it saves the screenshot and prints
// one JSON report. Exit status 2 when a step times out (the report says which).
import { chromium } from "playwright-core";

const [url, screenshot, ...steps] = process.argv.slice(2);
const TIMEOUT = 8000;
const browser = await chromium.launch({
  executablePath: process.env.AUTHTAP_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  // Playwright gives each launch a fresh temporary profile (--user-data-dir).
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
const report = { steps: [], errors: [], dialogs: [], requests: [] };
let status = 0;
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
  page.on("pageerror", (e) => report.errors.push(`pageerror: ${e.message}`));
  page.on("console", (m) => m.type() === "error" && report.errors.push(`console: ${m.text()}`));
  page.on("dialog", (d) => {
    report.dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  page.on("request", (r) => report.requests.push(r.url()));
  await page.goto(url);
  await page.waitForSelector('body[data-loaded="1"] #conn[data-state="live"]', { timeout: TIMEOUT });
  const rows = await page.locator("#rows tr").count();
  console.log(JSON.stringify({ ready: true, rows }));

  const row = (text) => page.locator("#rows tr:visible", { hasText: text }).first();
  for (const step of steps) {
    const [verb, ...rest] = step.split(":");
    const arg = rest.join(":");
    try {
      if (verb === "wait") await row(arg).waitFor({ timeout: TIMEOUT });
      else if (verb === "click") await row(arg).click({ timeout: TIMEOUT });
      else if (verb === "enter") {
        await row(arg).focus({ timeout: TIMEOUT });
        await page.keyboard.press("Enter");
      } else if (verb === "filter") await page.fill("#filter", arg);
      else if (verb === "width") await page.setViewportSize({ width: Number(arg), height: 760 });
      else if (verb === "scheme") await page.emulateMedia({ colorScheme: arg });
      else throw new Error(`unknown step ${step}`);
    } catch (e) {
      report.failed = `${step}: ${e.message.split("\n")[0]}`;
      status = 2;
      break;
    }
    report.steps.push({ step, ...(await snapshot(page)) });
  }
  await page.screenshot({ path: screenshot });
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
process.exit(status);

/** What the page shows: the rows, the detail panel's text and fix lines, counts, and how many
 * elements of kinds that record data must never create exist anywhere. */
function snapshot(page) {
  return page.evaluate(() => {
    const text = (e) => (e ? e.textContent : null);
    const detail = document.getElementById("detail");
    return {
      rows: [...document.querySelectorAll("#rows tr")].map((tr) => ({
        id: tr.dataset.id,
        visible: !tr.hidden,
        cls: tr.className,
        status: text(tr.querySelector(".c-status")),
        statusClass: tr.querySelector(".c-status").className,
        badges: [...tr.querySelectorAll(".badge")].map(text),
        text: tr.textContent,
      })),
      detail: detail.hidden ? null : detail.textContent,
      fixLines: [...detail.querySelectorAll(".fix .cmd")].map(text),
      counts: text(document.getElementById("counts")),
      conn: text(document.getElementById("conn")),
      injected: document.querySelectorAll("img, iframe, object, embed, svg").length + document.scripts.length - 1,
    };
  });
}
