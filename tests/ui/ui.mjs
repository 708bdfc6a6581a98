// Drives the web UI of a running `weft serve` in headless Chromium, as a
// person would: sign in with a token, start a run, watch a step turn from
// running to completed on the DAG, cancel a slow run, and check that
// another tenant's run is not shown. Started by tests/all/service.rs, which
// sets up the server, the tenants and the workflows:
//   WEFT_URL, WEFT_TOKEN, WEFT_OTHER_RUN, WEFT_SHOTS, WEFT_CHROMIUM.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const need = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (tests/all/service.rs sets it)`);
  return v;
};
const url = need("WEFT_URL");
const token = need("WEFT_TOKEN");
const otherRun = need("WEFT_OTHER_RUN");
const shots = need("WEFT_SHOTS");
mkdirSync(shots, { recursive: true });

const step = (what) => console.log(`ui: ${what}`);
const browser = await chromium.launch({
  executablePath: need("WEFT_CHROMIUM"),
  headless: true,
  // This machine's network is closed: without these, Chromium's own
  // connections (updates, sync, QUIC probes) are refused many at a time.
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
});
const failures = [];
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(30000);
  page.on("pageerror", (e) => failures.push(`script error on ${page.url()}: ${e.message}`));
  page.on("console", (m) => {
    // The other tenant's run page answers 404 on purpose.
    const expected = page.url().endsWith(otherRun) && m.text().includes("404");
    if (m.type() === "error" && !expected) failures.push(`console error on ${page.url()}: ${m.text()}`);
  });

  // Signed out, a page sends you to the login form.
  await page.goto(url + "/ui/runs");
  if (!page.url().endsWith("/ui/login")) throw new Error(`expected the login page, got ${page.url()}`);
  await page.fill("input[name=token]", "weft_0000_not-a-real-token");
  await page.click("button[type=submit]");
  await page.waitForSelector("p.error");
  step("a bad token is refused");
  await page.fill("input[name=token]", token);
  await page.click("button[type=submit]");
  await page.waitForURL("**/ui/runs");
  await page.waitForSelector("span.tenant >> text=acme");
  await page.waitForSelector("#usage >> text=Fuel this hour");
  step("signed in as acme");

  // Start a run of the registered `steps` workflow; its `middle` step sleeps.
  await page.selectOption("#start-workflow", "steps");
  await page.fill("#start-input", '{"context": {"who": "the UI"}}');
  await page.click("#start-button");
  await page.waitForURL(/\/ui\/runs\/[0-9a-f-]{36}$/);
  const runId = page.url().split("/").pop();
  step(`started run ${runId}`);
  await page.waitForSelector('svg.dag g.node.running[data-steps="middle"]');
  step("the DAG shows `middle` running");
  await page.waitForSelector('svg.dag g.node.completed[data-steps="middle"]');
  await page.waitForSelector('svg.dag g.node.completed[data-steps="last"]');
  await page.waitForSelector("#run-status.completed");
  step("`middle` turned completed, and so did the run");
  await page.waitForSelector("#attempts-body tr >> text=middle");
  const output = await page.textContent("#output");
  if (!output.includes('"execution_status": "completed"')) throw new Error(`the output is not shown: ${output}`);
  await page.screenshot({ path: join(shots, "run-completed.png"), fullPage: true });
  step("saved run-completed.png");

  // The runs list shows it, and not the other tenant's run.
  await page.goto(url + "/ui/runs");
  await page.waitForSelector(`tr[data-run="${runId}"]`);
  if (await page.$(`tr[data-run="${otherRun}"]`)) throw new Error("another tenant's run is listed");
  await page.goto(url + "/ui/runs/" + otherRun);
  await page.waitForSelector("p.error >> text=no run of this tenant");
  step("another tenant's run is not shown");

  // A slow run is cancelled from its page.
  await page.goto(url + "/ui/runs");
  await page.selectOption("#start-workflow", "slow");
  await page.click("#start-button");
  await page.waitForURL(/\/ui\/runs\/[0-9a-f-]{36}$/);
  await page.waitForSelector('svg.dag g.node.running[data-steps="nap"]');
  await page.click("#cancel-run");
  await page.waitForSelector("#action-note >> text=Cancel requested");
  await page.waitForSelector("#run-status.cancelled", { timeout: 60000 });
  step("the slow run was cancelled");
  await page.screenshot({ path: join(shots, "run-cancelled.png"), fullPage: true });

  // The workflows page draws each registered workflow's graph.
  await page.goto(url + "/ui/workflows");
  const graphs = await page.$$("svg.dag");
  if (graphs.length < 2) throw new Error(`expected two graphs, found ${graphs.length}`);
  await page.goto(url + "/ui/dlq");
  await page.waitForSelector("#dlq-body >> text=The queue is empty");
  step("the workflows and dead-letter pages render");
} finally {
  await browser.close();
}
if (failures.length) {
  console.error(failures.join("\n"));
  process.exit(1);
}
console.log("ui: all passed");
