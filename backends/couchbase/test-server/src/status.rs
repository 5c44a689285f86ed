//! Response statuses.

pub const SUCCESS: u16 = 0x00;
pub const KEY_NOT_FOUND: u16 = 0x01;
pub const KEY_EXISTS: u16 = 0x02;
pub const TOO_BIG: u16 = 0x03;
pub const INVALID_ARGUMENTS: u16 = 0x04;
pub const NO_BUCKET: u16 = 0x08;
pub const AUTH_ERROR: u16 = 0x20;
pub const AUTH_CONTINUE: u16 = 0x21;
pub const NO_ACCESS: u16 = 0x24;
pub const UNKNOWN_COMMAND: u16 = 0x81;
pub const UNKNOWN_COLLECTION: u16 = 0x88;
pub const UNKNOWN_SCOPE: u16 = 0x8c;
