//! placeholder
pub use event_backbone_core::*;
