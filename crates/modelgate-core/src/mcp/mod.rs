//! The MCP (Model Context Protocol) gateway's pure parts: what an upstream
//! MCP server is, and what an operator may declare.
//!
//! # Layout
//! - [`access`]: a key's allowlist of servers and tools.
//! - [`jsonrpc`]: one JSON-RPC message a body, and the error codes.
//! - [`links`]: resources named with their server, links in results too.
//! - [`modern`]: the stateless era's envelope, routing headers and checks.
//! - [`params`]: a call's `Mcp-Param-*` headers, derived from its tool's schema.
//! - [`pins`]: tool definitions pinned, and held back when they change.
//! - [`relay`]: a server's requests of its client, relayed and answered.
//! - [`server`]: the upstream server as an admin object, its checks and its
//!   admin view (header names, never their values).
//! - [`shape`]: a tool call's arguments as names and types, for its record.
//! - [`session`]: a client session sealed into its `Mcp-Session-Id`.
//! - [`state`]: a server's `requestState`, sealed for the key it was for.
//! - [`subscription`]: a stateless client's `subscriptions/listen`.
//! - [`versions`]: the protocol versions spoken, both eras.
//!
//! No IO here: the gateway's admin API stores servers through
//! [`crate::ports::McpServerStore`].

pub mod access;
pub mod jsonrpc;
pub mod links;
pub mod modern;
pub mod params;
pub mod pins;
pub mod relay;
pub mod server;
pub mod session;
pub mod shape;
pub mod state;
pub mod subscription;
pub mod versions;

pub use server::{McpServer, McpServerPatch, McpServerSpec};
