-- Upstream MCP servers (admin objects). A server is one JSON document
-- (doc: its URL, headers with their values, deadline; the admin API never
-- returns header values). The name is unique: tools reach clients as
-- '{server}_{tool}'. updated_at is the version a change checks.
CREATE TABLE IF NOT EXISTS mcp_servers (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    doc        TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
