// The state of every model's deployments, as the answering instance sees
// it (GET /admin/api/deployments): never a URL or a key.
import { api, dateTime, el, number } from "./api.js";

const $ = (id) => document.getElementById(id);

function stateText(d) {
  if (d.state === "available") return "available";
  const why = { failures: "failures", rate_limited: "rate limited (429)", health_check: "readiness check" }[d.reason] ?? d.reason;
  if (d.state === "trial") return `trial due (${why})`;
  return d.ejected_until === null ? `ejected: ${why}, until a check passes` : `ejected: ${why}, until ${dateTime(d.ejected_until)}`;
}

export async function loadDeployments() {
  const { data } = await api("GET", "/deployments");
  const rows = data.flatMap((m) =>
    m.deployments.map((d) =>
      el("tr", {},
        el("td", {}, m.model),
        el("td", {}, d.name),
        el("td", {}, d.backend),
        el("td", {}, String(d.priority)),
        el("td", {}, String(d.weight)),
        el("td", {}, el("span", { class: `status ${d.state === "available" ? "active" : "disabled"}` }, stateText(d))),
        el("td", {}, String(d.in_flight)),
        el("td", {}, d.latency_ms === null ? "—" : `${d.latency_ms} ms`),
        el("td", {}, `${number(d.requests)} / ${number(d.failures)}`),
      ),
    ),
  );
  $("deployments-table").tBodies[0].replaceChildren(...rows);
}
