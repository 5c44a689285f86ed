//! The tables in the file and the SQL every operation runs.
//!
//! | table | key | holds |
//! |---|---|---|
//! | `eb_entries` | `seq` (`AUTOINCREMENT`: never reused) | one row per stream entry: `stream`, `appended_ms`, the encoded metadata (`metadata`) |
//! | `eb_groups` | `(stream, grp)` | a consumer group's position: the last `seq` delivered |
//! | `eb_pending` | `(stream, grp, seq)` | an entry delivered and not acknowledged: its `consumer`, `delivered_ms` and `deliveries` |
//! | `eb_members` | `(stream, grp, consumer)` | each member of a group and when it last read (`seen_ms`) |
//! | `eb_payloads` | `(key, field)` | one row per payload field: `value`, and `expires_ms` (the key's expiry, the same on all its rows) |
//!
//! SQLite lets one writer in at a time and a transaction holds the write
//! lock from its first write to its commit, so sequence numbers become
//! visible in their order: a reader that goes past one never skips an
//! entry committed later.

/// The table of stream entries.
pub const ENTRIES: &str = "eb_entries";
/// The table of consumer groups and their positions.
pub const GROUPS: &str = "eb_groups";
/// The table of entries delivered and not acknowledged.
pub const PENDING: &str = "eb_pending";
/// The table of group members.
pub const MEMBERS: &str = "eb_members";
/// The table of payloads.
pub const PAYLOADS: &str = "eb_payloads";

/// The statements that make the tables (each `IF NOT EXISTS`).
pub(crate) const CREATE: [&str; 7] = [
    "CREATE TABLE IF NOT EXISTS eb_entries (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        stream TEXT NOT NULL,
        appended_ms INTEGER NOT NULL,
        metadata BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS eb_entries_stream ON eb_entries (stream, seq)",
    "CREATE TABLE IF NOT EXISTS eb_groups (
        stream TEXT NOT NULL,
        grp TEXT NOT NULL,
        last_seq INTEGER NOT NULL,
        PRIMARY KEY (stream, grp)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS eb_pending (
        stream TEXT NOT NULL,
        grp TEXT NOT NULL,
        seq INTEGER NOT NULL,
        consumer TEXT NOT NULL,
        delivered_ms INTEGER NOT NULL,
        deliveries INTEGER NOT NULL,
        PRIMARY KEY (stream, grp, seq)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS eb_members (
        stream TEXT NOT NULL,
        grp TEXT NOT NULL,
        consumer TEXT NOT NULL,
        seen_ms INTEGER NOT NULL,
        PRIMARY KEY (stream, grp, consumer)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS eb_payloads (
        key TEXT NOT NULL,
        field TEXT NOT NULL,
        value BLOB NOT NULL,
        expires_ms INTEGER,
        PRIMARY KEY (key, field)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS eb_payloads_expires ON eb_payloads (expires_ms)
        WHERE expires_ms IS NOT NULL",
];

// The channel. `?1` is the stream throughout.
pub(crate) const APPEND: &str =
    "INSERT INTO eb_entries (stream, appended_ms, metadata) VALUES (?1, ?2, ?3) RETURNING seq";
pub(crate) const GROUP_POSITION: &str =
    "SELECT last_seq FROM eb_groups WHERE stream = ?1 AND grp = ?2";
pub(crate) const FRESH: &str = "SELECT seq, metadata FROM eb_entries
    WHERE stream = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3";
pub(crate) const NEWER: &str = "SELECT seq FROM eb_entries WHERE stream = ?1 AND seq > ?2 LIMIT 1";
pub(crate) const MOVE_GROUP: &str =
    "UPDATE eb_groups SET last_seq = ?3 WHERE stream = ?1 AND grp = ?2";
pub(crate) const HOLD: &str = "INSERT INTO eb_pending
    (stream, grp, seq, consumer, delivered_ms, deliveries) VALUES (?1, ?2, ?3, ?4, ?5, 1)";
pub(crate) const SEEN: &str = "INSERT INTO eb_members (stream, grp, consumer, seen_ms)
    VALUES (?1, ?2, ?3, ?4)
    ON CONFLICT (stream, grp, consumer) DO UPDATE SET seen_ms = excluded.seen_ms";
pub(crate) const MINE: &str = "SELECT p.seq, p.deliveries, e.metadata FROM eb_pending p
    LEFT JOIN eb_entries e ON e.seq = p.seq
    WHERE p.stream = ?1 AND p.grp = ?2 AND p.consumer = ?3 ORDER BY p.seq LIMIT ?4";
pub(crate) const STALE: &str = "SELECT p.seq, p.deliveries, e.metadata FROM eb_pending p
    LEFT JOIN eb_entries e ON e.seq = p.seq
    WHERE p.stream = ?1 AND p.grp = ?2 AND p.delivered_ms <= ?3 ORDER BY p.seq LIMIT ?4";
pub(crate) const DELIVER_AGAIN: &str = "UPDATE eb_pending
    SET consumer = ?4, delivered_ms = ?5, deliveries = deliveries + 1
    WHERE stream = ?1 AND grp = ?2 AND seq = ?3";
pub(crate) const REDELIVER: &str = "UPDATE eb_pending
    SET deliveries = deliveries + 1, delivered_ms = ?5
    WHERE stream = ?1 AND grp = ?2 AND consumer = ?3 AND seq = ?4 RETURNING deliveries";
pub(crate) const TOUCH: &str = "UPDATE eb_pending SET delivered_ms = ?5
    WHERE stream = ?1 AND grp = ?2 AND consumer = ?3 AND seq = ?4";
pub(crate) const ACK: &str = "DELETE FROM eb_pending WHERE stream = ?1 AND grp = ?2 AND seq = ?3";
pub(crate) const ENSURE_GROUP: &str = "INSERT INTO eb_groups (stream, grp, last_seq)
    VALUES (?1, ?2, ?3) ON CONFLICT (stream, grp) DO NOTHING";
pub(crate) const NEWEST: &str = "SELECT max(seq) FROM eb_entries WHERE stream = ?1";
pub(crate) const RANGE: &str = "SELECT seq, metadata FROM eb_entries
    WHERE stream = ?1 AND seq >= ?2 AND seq <= ?3 ORDER BY seq LIMIT ?4";
pub(crate) const FIRST_AT: &str = "SELECT min(seq) FROM eb_entries
    WHERE stream = ?1 AND appended_ms >= ?2";
pub(crate) const GET: &str = "SELECT metadata FROM eb_entries WHERE stream = ?1 AND seq = ?2";
pub(crate) const SIZES: &str = "SELECT
    (SELECT count(*) FROM eb_entries WHERE stream = ?1),
    (SELECT count(*) FROM eb_groups WHERE stream = ?1),
    (SELECT max(seq) FROM eb_entries WHERE stream = ?1)";
pub(crate) const GROUPS_INFO: &str = "SELECT g.grp,
    (SELECT count(*) FROM eb_pending p WHERE p.stream = g.stream AND p.grp = g.grp),
    (SELECT count(*) FROM eb_entries e WHERE e.stream = g.stream AND e.seq > g.last_seq),
    (SELECT count(*) FROM eb_members m WHERE m.stream = g.stream AND m.grp = g.grp)
    FROM eb_groups g WHERE g.stream = ?1 ORDER BY g.grp";
pub(crate) const MEMBERS_INFO: &str = "SELECT m.consumer,
    (SELECT count(*) FROM eb_pending p
     WHERE p.stream = m.stream AND p.grp = m.grp AND p.consumer = m.consumer),
    ?3 - m.seen_ms
    FROM eb_members m WHERE m.stream = ?1 AND m.grp = ?2 ORDER BY m.consumer";
pub(crate) const STREAMS: &str =
    "SELECT DISTINCT stream FROM eb_entries UNION SELECT stream FROM eb_groups ORDER BY 1";

// The store. `?1` is the key throughout; times are ms since the epoch.
/// `?2` now.
pub(crate) const DELETE_EXPIRED_KEY: &str =
    "DELETE FROM eb_payloads WHERE key = ?1 AND expires_ms <= ?2";
/// `?2` the expiry.
pub(crate) const SET_EXPIRY: &str = "UPDATE eb_payloads SET expires_ms = ?2 WHERE key = ?1";
pub(crate) const KEY_EXPIRY: &str = "SELECT max(expires_ms) FROM eb_payloads WHERE key = ?1";
/// `?2` field, `?3` value, `?4` expiry.
pub(crate) const UPSERT: &str = "INSERT INTO eb_payloads (key, field, value, expires_ms)
    VALUES (?1, ?2, ?3, ?4)
    ON CONFLICT (key, field) DO UPDATE SET value = excluded.value, expires_ms = excluded.expires_ms";
/// `?2` now.
pub(crate) const GET_KEY: &str = "SELECT field, value FROM eb_payloads
    WHERE key = ?1 AND (expires_ms IS NULL OR expires_ms > ?2)";
/// `?2` now: one row per field, whether the key was live.
pub(crate) const DELETE_KEY: &str = "DELETE FROM eb_payloads WHERE key = ?1
    RETURNING expires_ms IS NULL OR expires_ms > ?2";
/// `?1` now: at most 10,000 rows per statement.
pub(crate) const SWEEP: &str = "DELETE FROM eb_payloads WHERE (key, field) IN (
    SELECT key, field FROM eb_payloads WHERE expires_ms <= ?1 LIMIT 10000)";
