//! One file per command.

pub mod copy;
pub mod dead_letters;
pub mod get;
pub mod info;
pub mod new;
pub mod outbox;
pub mod streams;
pub mod subject;
pub mod tail;
