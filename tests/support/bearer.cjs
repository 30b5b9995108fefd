// Preloaded (`node --require`) into the MCP conformance runner, which has no
// setting for a header: every request its fetch makes to MG_BEARER_URL
// carries `Authorization: Bearer $MG_BEARER`, since the gateway asks every
// client for its key. Nothing else about the request changes.
const key = process.env.MG_BEARER;
const base = process.env.MG_BEARER_URL;
const original = globalThis.fetch;
globalThis.fetch = (input, init = {}) => {
  const url = typeof input === "string" || input instanceof URL ? String(input) : input.url;
  if (!key || !base || !url.startsWith(base)) {
    return original(input, init);
  }
  const headers = new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined));
  if (!headers.has("authorization")) {
    headers.set("authorization", `Bearer ${key}`);
  }
  return original(input, { ...init, headers });
};
