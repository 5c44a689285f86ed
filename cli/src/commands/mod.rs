//! One file per command.

pub mod get;
pub mod info;
pub mod streams;
pub mod tail;
