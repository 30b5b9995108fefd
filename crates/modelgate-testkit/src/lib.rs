//! Test kit for ModelGate.
//!
//! # Layout
//! - `mock`: a mock upstream (OpenAI-compatible and Ollama-native) with
//!   fault injection, on a loopback port. **Its IO is its own TCP server.**
//! - `conformance`: the behaviours every store must have, as generic test
//!   bodies, and [`store_conformance!`] to run them against one store.
//! - `clock`: a clock that moves only when the test says so.
//! - `service`: real services (redis-server, moto) owned by a test.
//! - `fixtures/`: recorded and transcribed upstream answers for the
//!   adapter unit tests in the core.

pub mod clock;
pub mod conformance;
pub mod mcp;
pub mod mock;
pub mod periods;
pub mod records;
pub mod service;
pub mod subject;
pub mod usage;

pub use mock::MockUpstream;
pub use service::Service;
