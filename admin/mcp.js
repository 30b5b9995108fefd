// The MCP servers an admin declares for /mcp, and the review of their
// tools' definitions (pinned, changed or new: the last two are held back
// from clients until accepted). A server is a URL with headers, or a
// command (run over stdio by the native server) with its environment.
// Header and variable values are write-only: the API shows their names,
// never what they hold.
import { api, attempt, dateTime, el } from "./api.js";

const $ = (id) => document.getElementById(id);

export async function loadMcpServers() {
  const { data } = await api("GET", "/mcp/servers");
  const rows = data.map((s) =>
    el("tr", {},
      el("td", {}, s.name),
      el("td", {}, s.url ?? s.command.join(" ")),
      el("td", {}, [...s.headers, ...s.env].join(", ") || "none"),
      el("td", {}, `${s.timeout_ms / 1000} s`),
      el("td", {}, s.rpm === null ? "unlimited" : `${s.rpm}/min`),
      el("td", {}, s.pinned_tools.length ? `${s.pinned_tools.length} pinned` : "none yet"),
      el("td", {}, s.enabled ? "yes" : "no"),
      el("td", { class: "actions" },
        el("button", { type: "button", onclick: () => attempt(() => review(s)), "aria-label": `Review tools of ${s.name}` }, "Review tools"),
        el("button", {
          type: "button",
          "aria-label": `${s.enabled ? "Disable" : "Enable"} ${s.name}`,
          onclick: () => attempt(async () => {
            await api("PATCH", `/mcp/servers/${encodeURIComponent(s.id)}`, { enabled: !s.enabled });
            await loadMcpServers();
          }),
        }, s.enabled ? "Disable" : "Enable"),
        el("button", {
          type: "button",
          class: "danger",
          "aria-label": `Delete ${s.name}`,
          onclick: () => {
            if (!confirm(`Delete the MCP server "${s.name}"? Its tools leave every client at once.`)) return;
            attempt(async () => {
              await api("DELETE", `/mcp/servers/${encodeURIComponent(s.id)}`);
              $("mcp-review").hidden = true;
              await loadMcpServers();
            });
          },
        }, "Delete"),
      ),
    ),
  );
  $("mcp-table").tBodies[0].replaceChildren(...rows);
}

// What the server lists now, each tool where it stands. Before the first
// listing nothing is pinned: the first client to list the tools pins them,
// unless an admin accepts them first.
async function review(server) {
  const s = await api("GET", `/mcp/servers/${encodeURIComponent(server.id)}`);
  const { data } = await api("GET", `/mcp/servers/${encodeURIComponent(s.id)}/tools`);
  const held = data.filter((t) => t.standing !== "pinned").length;
  const unpinned = s.pinned_tools.length === 0;
  $("mcp-review-title").textContent = `Tools of ${s.name}`;
  $("mcp-review-summary").textContent = unpinned
    ? "Not pinned yet: the first listing to a client pins these definitions, unless you accept them now."
    : held ? `${held} held back from clients until accepted.` : "Every tool is as accepted.";
  const rows = data.map((t) =>
    el("tr", {},
      el("td", {}, t.name),
      el("td", {}, t.exposed_as ?? "not listed (not a valid function name)"),
      el("td", {}, el("span", { class: `status ${t.standing}` }, unpinned ? "not pinned" : t.standing)),
      el("td", {}, t.definition.description ?? ""),
    ),
  );
  $("mcp-tools-table").tBodies[0].replaceChildren(...rows);
  const accept = $("mcp-accept");
  accept.hidden = held === 0 && !unpinned;
  accept.onclick = () => attempt(async () => {
    if (!confirm(`Accept what ${s.name} lists now? Changed and new tools reach clients from then on.`)) return;
    await api("POST", `/mcp/servers/${encodeURIComponent(s.id)}/tools/accept`);
    await loadMcpServers();
    await review(s);
  });
  $("mcp-review").hidden = false;
  $("mcp-review-checked").textContent = `Checked ${dateTime(Date.now())}.`;
}

async function createMcpServer(event) {
  event.preventDefault();
  const f = event.target.elements;
  const body = { name: f.name.value.trim() };
  const command = f.command.value.split("\n").map((a) => a.trim()).filter((a) => a);
  if (command.length) body.command = command;
  else body.url = f.url.value.trim();
  if (f.header_name.value.trim()) body.headers = { [f.header_name.value.trim()]: f.header_value.value };
  if (f.env_name.value.trim()) body.env = { [f.env_name.value.trim()]: f.env_value.value };
  if (f.timeout_s.value !== "") body.timeout_ms = Math.round(Number(f.timeout_s.value) * 1000);
  if (f.rpm.value !== "") body.rpm = Number(f.rpm.value);
  const created = await attempt(() => api("POST", "/mcp/servers", body));
  if (!created) return;
  event.target.reset();
  await attempt(loadMcpServers);
}

export function setupMcp() {
  $("mcp-create").addEventListener("submit", createMcpServer);
}
