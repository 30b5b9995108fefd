-- The MCP servers and tools a key may use through /mcp: a JSON array of
-- server names and '{server}_{tool}' names ('[]': all).
ALTER TABLE api_keys ADD COLUMN allowed_tools TEXT NOT NULL DEFAULT '[]';
