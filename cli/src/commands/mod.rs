//! One file per command.

pub mod dead_letters;
pub mod get;
pub mod info;
pub mod streams;
pub mod tail;
