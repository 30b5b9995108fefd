//! The MCP (Model Context Protocol) gateway's pure parts: what an upstream
//! MCP server is, and what an operator may declare.
//!
//! # Layout
//! - [`server`]: the upstream server as an admin object, its checks and its
//!   admin view (header names, never their values).
//!
//! No IO here: the gateway's admin API stores servers through
//! [`crate::ports::McpServerStore`].

pub mod server;

pub use server::{McpServer, McpServerPatch, McpServerSpec};
