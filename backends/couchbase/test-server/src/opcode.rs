//! The commands the server knows.

pub const GET: u8 = 0x00;
pub const SET: u8 = 0x01;
pub const ADD: u8 = 0x02;
pub const REPLACE: u8 = 0x03;
pub const DELETE: u8 = 0x04;
pub const NOOP: u8 = 0x0a;
pub const TOUCH: u8 = 0x1c;
pub const GAT: u8 = 0x1d;
pub const HELLO: u8 = 0x1f;
pub const SASL_LIST_MECHS: u8 = 0x20;
pub const SASL_AUTH: u8 = 0x21;
pub const SASL_STEP: u8 = 0x22;
pub const SELECT_BUCKET: u8 = 0x89;
pub const GET_CLUSTER_CONFIG: u8 = 0xb5;
pub const GET_COLLECTION_ID: u8 = 0xbb;
pub const GET_ERROR_MAP: u8 = 0xfe;
