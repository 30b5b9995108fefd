// Usage: totals, a table, two bar charts (tokens and requests per day)
// drawn as SVG (no library, no network), and the newest tool calls.
import { api, attempt, date, dateTime, el, number } from "./api.js";

const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A bar per day; every day of the range appears, empty days as gaps. */
function barChart(days, values, label) {
  const width = 640;
  const height = 200;
  const pad = { left: 56, right: 8, top: 12, bottom: 28 };
  const max = Math.max(1, ...values);
  const slot = (width - pad.left - pad.right) / Math.max(1, days.length);
  const y = (v) => pad.top + (height - pad.top - pad.bottom) * (1 - v / max);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${label} per day` });
  chart.append(svg("line", { x1: pad.left, x2: width - pad.right, y1: y(0), y2: y(0), class: "axis" }));
  const ticks = max < 4 ? [0, max] : [0, Math.round(max / 2), max];
  for (const tick of ticks) {
    chart.append(svg("text", { x: pad.left - 6, y: y(tick) + 4, "text-anchor": "end", class: "tick" }, number(Math.round(tick))));
  }
  days.forEach((day, i) => {
    const v = values[i];
    const x = pad.left + i * slot + slot * 0.15;
    const bar = svg("rect", { x, y: y(v), width: Math.max(1, slot * 0.7), height: y(0) - y(v), class: "bar" });
    bar.append(svg("title", {}, `${day}: ${number(v)} ${label.toLowerCase()}`));
    chart.append(bar);
    const every = Math.ceil(days.length / 8);
    if (i % every === 0) {
      chart.append(svg("text", { x: x + slot * 0.35, y: height - 8, "text-anchor": "middle", class: "tick" }, day.slice(5)));
    }
  });
  return chart;
}

// Dollars: cents and up as such, smaller sums with their significant digits.
function usd(v) {
  if (!v) return "$0";
  return v >= 0.01 ? `$${v.toFixed(2)}` : `$${v.toPrecision(3)}`;
}

function daysBetween(from, to) {
  const out = [];
  for (let t = Date.parse(`${from}T00:00:00Z`); t < Date.parse(`${to}T00:00:00Z`); t += 86_400_000) out.push(date(t));
  return out;
}

// Requests per API (chat, completions, embeddings, responses), busiest first.
function byEndpoint(rows) {
  const counts = new Map();
  for (const r of rows) counts.set(r.endpoint ?? "other", (counts.get(r.endpoint ?? "other") ?? 0) + r.requests);
  return [...counts].sort((a, b) => b[1] - a[1]).map(([e, n]) => `${e}: ${number(n)}`).join(" · ");
}

export async function loadUsage() {
  const form = $("usage-filter");
  const f = form.elements;
  // `to` is inclusive for people: the API's end is the next midnight.
  const toExclusive = date(Date.parse(`${f.to.value}T00:00:00Z`) + 86_400_000);
  const query = new URLSearchParams({ from: f.from.value, to: toExclusive });
  if (f.key_id.value) query.set("key_id", f.key_id.value);
  if (f.model.value.trim()) query.set("model", f.model.value.trim());
  const report = await api("GET", `/usage?${query}`);
  // Keys by name where known (the key filter lists them).
  const keyNames = new Map([...f.key_id.options].filter((o) => o.value).map((o) => [o.value, o.textContent]));
  const t = report.totals;
  $("usage-totals").replaceChildren(
    el("span", {}, el("strong", {}, number(t.requests)), " requests"),
    el("span", {}, el("strong", {}, number(t.total_tokens)), " tokens"),
    el("span", {}, number(t.prompt_tokens), " prompt (", number(t.cached_tokens), " cached) / ",
      number(t.completion_tokens), " completion"),
    el("span", { id: "usage-cost" }, el("strong", {}, usd(t.cost_usd)), " cost"),
    el("span", {}, el("strong", {}, number(t.errors)), " errors"),
    el("span", { id: "usage-by-endpoint" }, byEndpoint(report.data)),
  );
  $("usage-table").tBodies[0].replaceChildren(
    ...report.data.map((r) =>
      el("tr", {},
        el("td", {}, r.day), el("td", {}, keyNames.get(r.key_id) ?? r.key_id), el("td", {}, r.model),
        el("td", {}, r.endpoint ?? "—"), el("td", {}, r.deployment ?? "—"), el("td", {}, number(r.requests)),
        el("td", {}, number(r.prompt_tokens)), el("td", {}, number(r.cached_tokens)),
        el("td", {}, number(r.completion_tokens)), el("td", {}, usd(r.cost_usd)), el("td", {}, number(r.errors)),
      ),
    ),
  );
  query.set("endpoint", "mcp");
  query.set("limit", "50");
  const calls = await api("GET", `/usage/records?${query}`);
  $("tool-calls-table").tBodies[0].replaceChildren(
    ...calls.data.map((r) =>
      el("tr", {},
        el("td", {}, dateTime(r.created_at)), el("td", {}, keyNames.get(r.key_id) ?? r.key_id),
        el("td", {}, r.model), el("td", {}, r.deployment ?? "—"), el("td", {}, r.error ?? "ok"),
        el("td", {}, `${number(r.latency_ms)} ms`),
        el("td", {}, el("code", {}, r.arguments === null ? "—" : JSON.stringify(r.arguments))),
      ),
    ),
  );
  const days = daysBetween(f.from.value, toExclusive);
  const sum = (field) => days.map((d) => report.data.filter((r) => r.day === d).reduce((a, r) => a + field(r), 0));
  $("chart-tokens").replaceChildren(barChart(days, sum((r) => r.prompt_tokens + r.completion_tokens), "Tokens"));
  $("chart-requests").replaceChildren(barChart(days, sum((r) => r.requests), "Requests"));
}

export function setupUsage() {
  const f = $("usage-filter").elements;
  const today = Date.now();
  f.to.value = date(today);
  f.from.value = date(today - 13 * 86_400_000);
  $("usage-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(loadUsage);
  });
}
