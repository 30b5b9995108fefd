//! The MCP (Model Context Protocol) gateway's pure parts: what an upstream
//! MCP server is, and what an operator may declare.
//!
//! # Layout
//! - [`jsonrpc`]: one JSON-RPC message a body, and the error codes.
//! - [`server`]: the upstream server as an admin object, its checks and its
//!   admin view (header names, never their values).
//! - [`session`]: a client session sealed into its `Mcp-Session-Id`.
//!
//! No IO here: the gateway's admin API stores servers through
//! [`crate::ports::McpServerStore`].

pub mod jsonrpc;
pub mod server;
pub mod session;

pub use server::{McpServer, McpServerPatch, McpServerSpec};
