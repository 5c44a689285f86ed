//! The in-memory backend: a [`MemoryChannel`] with real consumer-group
//! semantics and a [`MemoryStore`] with TTLs, safe for many producers and
//! consumers in one process.
//!
//! It is the embedded default: examples and tests run on it with no server.
//! Nothing survives the process.

mod channel;
mod store;

pub use channel::MemoryChannel;
pub use store::MemoryStore;

/// The backend's name in errors and logs.
pub const BACKEND: &str = "memory";
