// ModelGate admin panel: sign-in, keys, models. Usage lives in usage.js,
// MCP servers in mcp.js.
import { api, attempt, date, dateTime, el, list, number, session, showError } from "./api.js";
import { loadDeployments } from "./deployments.js";
import { loadMcpServers, setupMcp } from "./mcp.js";
import { loadUsage, setupUsage } from "./usage.js";

const $ = (id) => document.getElementById(id);
const views = ["signin", "keys", "models", "mcp", "usage"];

function show(view) {
  for (const v of views) $(v).hidden = v !== view;
  $("nav").hidden = view === "signin";
  for (const b of document.querySelectorAll("#nav [data-view]")) {
    if (b.dataset.view === view) b.setAttribute("aria-current", "page");
    else b.removeAttribute("aria-current");
  }
  if (view === "keys") attempt(loadKeys);
  if (view === "models") attempt(loadModels);
  if (view === "mcp") attempt(loadMcpServers);
  if (view === "usage") attempt(loadUsage);
}

// ---- sign in ---------------------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  session.key = $("admin-key").value.trim();
  try {
    await api("GET", "/verify");
  } catch (e) {
    session.key = null;
    const why = e.status === 401 || e.status === 403 ? "That is not an admin key." : e.message;
    showError(`Sign-in failed: ${why}`);
    return;
  }
  $("admin-key").value = "";
  showError(null);
  show("keys");
}

function signOut() {
  session.key = null;
  showError(null);
  show("signin");
}

// ---- keys --------------------------------------------------------------------

// "until Dec 1" for a counter whose period ends, else nothing.
function resets(at) {
  return at === null ? "" : ` (${date(at)} reset)`;
}

function quotaText(k) {
  return `${number(k.quota_used)} / ${k.quota === null ? "unlimited" : number(k.quota)}${resets(k.quota_resets_at)}`;
}

function budgetText(k) {
  const spent = `$${k.budget_used_usd.toFixed(2)}`;
  return `${spent} / ${k.budget_usd === null ? "unlimited" : `$${k.budget_usd.toFixed(2)}`}${resets(k.budget_resets_at)}`;
}

async function loadKeys() {
  const { data } = await api("GET", "/keys");
  const rows = data.map((k) =>
    el("tr", {},
      el("td", {}, k.name),
      el("td", {}, el("code", {}, k.prefix)),
      el("td", {}, el("span", { class: `status ${k.status}` }, k.status)),
      el("td", {}, quotaText(k)),
      el("td", {}, budgetText(k)),
      el("td", {}, `${k.rpm ?? "default"}${k.tpm ? ` · ${number(k.tpm)} tok` : ""}`,
        ...Object.entries(k.model_limits).map(([m, l]) =>
          el("div", { class: "sub" }, `${m}: ${[l.rpm && `${l.rpm}/min`, l.tpm && `${number(l.tpm)} tok`].filter(Boolean).join(" · ")}`))),
      el("td", {}, k.allowed_models.join(", ") || "all"),
      el("td", {}, k.allowed_ips.join(", ") || "any"),
      el("td", {}, date(k.expires_at) || "never"),
      el("td", {}, dateTime(k.last_used_at)),
      el("td", { class: "actions" }, ...keyActions(k)),
    ),
  );
  $("keys-table").tBodies[0].replaceChildren(...rows);
  // The usage filter lists the keys by name.
  const select = document.querySelector("#usage-filter [name=key_id]");
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "" }, "All keys"), ...data.map((k) => el("option", { value: k.id }, `${k.name} (${k.prefix})`)));
  select.value = chosen;
}

function keyActions(k) {
  const patch = (body) => attempt(async () => {
    await api("PATCH", `/keys/${encodeURIComponent(k.id)}`, body);
    await loadKeys();
  });
  if (k.status === "revoked") return [];
  return [
    el("button", { type: "button", onclick: () => editKey(k), "aria-label": `Edit ${k.name}` }, "Edit"),
    k.status === "active"
      ? el("button", { type: "button", onclick: () => patch({ status: "disabled" }), "aria-label": `Disable ${k.name}` }, "Disable")
      : el("button", { type: "button", onclick: () => patch({ status: "active" }), "aria-label": `Enable ${k.name}` }, "Enable"),
    el("button", {
      type: "button",
      class: "danger",
      "aria-label": `Revoke ${k.name}`,
      onclick: () => {
        if (!confirm(`Revoke the key "${k.name}"? Clients using it are refused at once. This cannot be undone.`)) return;
        attempt(async () => {
          await api("DELETE", `/keys/${encodeURIComponent(k.id)}`);
          await loadKeys();
        });
      },
    }, "Revoke"),
  ];
}

// The per-model limits typed as JSON (empty: none); a typo is the API's
// error to show, not a silent loss.
function modelLimits(text) {
  if (!text.trim()) return {};
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function optionalNumber(value) {
  return value === "" ? undefined : Number(value);
}

async function createKey(event) {
  event.preventDefault();
  const f = event.target.elements;
  const body = {
    name: f.name.value.trim(),
    rpm: optionalNumber(f.rpm.value),
    tpm: optionalNumber(f.tpm.value),
    allowed_models: list(f.allowed_models.value),
    allowed_ips: list(f.allowed_ips.value),
    expires_at: f.expires.value ? Date.parse(`${f.expires.value}T23:59:59Z`) : undefined,
    quota_period: f.quota_period.value,
    budget_usd: optionalNumber(f.budget_usd.value),
    budget_period: f.budget_period.value,
  };
  if (f.unlimited.checked) body.quota = null;
  else if (f.quota.value !== "") body.quota = Number(f.quota.value);
  const created = await attempt(() => api("POST", "/keys", body));
  if (!created) return;
  event.target.reset();
  $("new-key").textContent = created.key;
  $("copy-status").textContent = "";
  $("key-created").showModal();
  await attempt(loadKeys);
}

function field(label, name, value, attrs = {}) {
  return el("label", {}, label, el("input", { name, value: value ?? "", ...attrs }));
}

function openEditor(title, fields, submit) {
  $("edit-title").textContent = title;
  const form = $("edit-form");
  form.replaceChildren(
    ...fields,
    el("div", { class: "buttons" },
      el("button", { type: "submit" }, "Save"),
      el("button", { type: "button", class: "secondary", onclick: () => $("edit-dialog").close() }, "Cancel")),
  );
  form.onsubmit = async (event) => {
    event.preventDefault();
    const ok = await attempt(() => submit(form.elements));
    if (ok !== undefined) $("edit-dialog").close();
  };
  $("edit-dialog").showModal();
}

function editKey(k) {
  openEditor(`Edit key ${k.name}`, [
    field("Name", "name", k.name, { required: true }),
    field("Requests per minute (empty: default)", "rpm", k.rpm, { type: "number", min: 1 }),
    field("Tokens per minute (empty: unlimited)", "tpm", k.tpm, { type: "number", min: 1 }),
    field('Limits per model (JSON, e.g. {"gpt-4.1": {"rpm": 10, "tpm": 50000}})', "model_limits",
      JSON.stringify(k.model_limits)),
    field("Token quota (empty: unlimited)", "quota", k.quota, { type: "number", min: 0 }),
    field("Budget, USD (empty: unlimited)", "budget_usd", k.budget_usd, { type: "number", min: 0, step: "any" }),
    field("Allowed models", "allowed_models", k.allowed_models.join(", ")),
    field("Allowed IPs", "allowed_ips", k.allowed_ips.join(", ")),
    field("Expires", "expires", date(k.expires_at), { type: "date" }),
  ], async (f) => {
    await api("PATCH", `/keys/${encodeURIComponent(k.id)}`, {
      name: f.name.value.trim(),
      rpm: f.rpm.value === "" ? null : Number(f.rpm.value),
      tpm: f.tpm.value === "" ? null : Number(f.tpm.value),
      model_limits: modelLimits(f.model_limits.value),
      quota: f.quota.value === "" ? null : Number(f.quota.value),
      budget_usd: f.budget_usd.value === "" ? null : Number(f.budget_usd.value),
      allowed_models: list(f.allowed_models.value),
      allowed_ips: list(f.allowed_ips.value),
      expires_at: f.expires.value ? Date.parse(`${f.expires.value}T23:59:59Z`) : null,
    });
    await loadKeys();
    return true;
  });
}

// ---- models ------------------------------------------------------------------

async function loadModels() {
  const { data } = await api("GET", "/models");
  const rows = data.map((m) =>
    el("tr", {},
      el("td", {}, m.name),
      el("td", {}, m.backend),
      el("td", {}, m.deployments.length ? `${m.deployments.length} deployments` : m.base_url),
      el("td", {}, m.upstream_model),
      el("td", {}, m.has_api_key ? "set" : "none"),
      priceCell(m),
      el("td", {}, m.enabled ? "yes" : "no"),
      el("td", { class: "actions" },
        el("button", { type: "button", onclick: () => editModel(m), "aria-label": `Edit ${m.name}` }, "Edit"),
        el("button", {
          type: "button",
          "aria-label": `${m.enabled ? "Disable" : "Enable"} ${m.name}`,
          onclick: () => attempt(async () => {
            await api("PATCH", `/models/${encodeURIComponent(m.id)}`, { enabled: !m.enabled });
            await loadModels();
          }),
        }, m.enabled ? "Disable" : "Enable"),
        el("button", {
          type: "button",
          class: "danger",
          "aria-label": `Delete ${m.name}`,
          onclick: () => {
            if (!confirm(`Delete the model "${m.name}"? Clients asking for it get 404.`)) return;
            attempt(async () => {
              await api("DELETE", `/models/${encodeURIComponent(m.id)}`);
              await loadModels();
            });
          },
        }, "Delete"),
      ),
    ),
  );
  $("models-table").tBodies[0].replaceChildren(...rows);
  await loadDeployments();
}

// The prices of a form, or null when no input price is given.
function prices(f) {
  if (f.price_input.value === "") return null;
  const p = { input: Number(f.price_input.value), output: Number(f.price_output.value || 0) };
  if (f.price_cached_input.value !== "") p.cached_input = Number(f.price_cached_input.value);
  return p;
}

// A model is priced when it, or every one of its deployments, has prices
// (0 marks it free); keys with a budget cannot use an unpriced one.
function priceCell(m) {
  const priced = m.prices || (m.deployments.length && m.deployments.every((d) => d.prices));
  if (priced) return el("td", {}, priceText(m.prices) === "—" ? "per deployment" : priceText(m.prices));
  return el("td", { class: "unpriced", title: "Keys with a budget cannot use it: set prices (0 marks it free)." }, "unpriced");
}

function priceText(p) {
  if (!p) return "—";
  return `${p.input} · ${p.cached_input ?? p.input} · ${p.output}`;
}

async function createModel(event) {
  event.preventDefault();
  const f = event.target.elements;
  const body = {
    name: f.name.value.trim(),
    backend: f.backend.value,
    base_url: f.base_url.value.trim(),
    upstream_model: f.upstream_model.value.trim() || undefined,
    api_key: f.api_key.value || undefined,
    fallback_urls: list(f.fallback_urls.value),
    responses_api: f.responses_api.value || null,
    messages_api: f.messages_api.value || null,
    prices: prices(f),
  };
  const created = await attempt(() => api("POST", "/models", body));
  if (!created) return;
  event.target.reset();
  await attempt(loadModels);
}

function editModel(m) {
  openEditor(`Edit model ${m.name}`, [
    field("Public name", "name", m.name, { required: true }),
    field("Base URL", "base_url", m.base_url, { type: "url", required: true }),
    field("Upstream model", "upstream_model", m.upstream_model, { required: true }),
    field("Fallback URLs", "fallback_urls", m.fallback_urls.join(", ")),
    field(`Upstream key (${m.has_api_key ? "set; empty keeps it while the URLs stay" : "none"})`, "api_key", "", { type: "password", autocomplete: "off" }),
    field("Input price (USD / 1M tokens; empty: no prices)", "price_input", m.prices?.input ?? "", { type: "number", min: "0", step: "any" }),
    field("Cached input price", "price_cached_input", m.prices?.cached_input ?? "", { type: "number", min: "0", step: "any" }),
    field("Output price", "price_output", m.prices?.output ?? "", { type: "number", min: "0", step: "any" }),
  ], async (f) => {
    const body = {
      name: f.name.value.trim(),
      base_url: f.base_url.value.trim(),
      upstream_model: f.upstream_model.value.trim(),
      fallback_urls: list(f.fallback_urls.value),
      prices: prices(f),
    };
    if (f.api_key.value) body.api_key = f.api_key.value;
    await api("PATCH", `/models/${encodeURIComponent(m.id)}`, body);
    await loadModels();
    return true;
  });
}

async function syncModels() {
  $("sync-result").textContent = "Syncing...";
  const result = await attempt(() => api("POST", "/models/sync"));
  if (!result) {
    $("sync-result").textContent = "";
    return;
  }
  const failed = result.errors.map((e) => `${e.backend} ${e.base_url}: ${e.error}`);
  $("sync-result").textContent = `Imported ${result.created.length}: ${result.created.join(", ") || "nothing new"}.`;
  if (failed.length) showError(`Some backends could not be listed: ${failed.join("; ")}`);
  await attempt(loadModels);
}

// ---- wiring --------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("signin-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  for (const b of document.querySelectorAll("#nav [data-view]")) b.addEventListener("click", () => show(b.dataset.view));
  $("key-create").addEventListener("submit", createKey);
  $("model-create").addEventListener("submit", createModel);
  $("sync-models").addEventListener("click", syncModels);
  $("copy-key").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText($("new-key").textContent);
      $("copy-status").textContent = "Copied.";
    } catch {
      // No clipboard permission (e.g. plain http): select it for a manual copy.
      getSelection().selectAllChildren($("new-key"));
      $("copy-status").textContent = "Selected: press Ctrl+C to copy.";
    }
  });
  $("key-created").addEventListener("close", () => {
    $("new-key").textContent = "";
  });
  setupUsage();
  setupMcp();
  show(session.key ? "keys" : "signin");
  if (!session.key) $("admin-key").focus();
});

window.addEventListener("unhandledrejection", (e) => showError(String(e.reason?.message ?? e.reason)));
