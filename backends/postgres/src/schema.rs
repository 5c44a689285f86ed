//! The tables the backend keeps in its schema, the statements that make
//! them, and the SQL every operation runs, written once per connection
//! with the schema's name in it.
//!
//! | table | key | holds |
//! |---|---|---|
//! | `entries` | `(stream, xid, seq)` | one row per stream entry: the appending transaction's id (`xid`), a sequence number (`seq`), the append time (`appended_ms`) and the encoded metadata (`metadata`) |
//! | `groups` | `(stream, grp)` | a consumer group's position: the last `(xid, seq)` delivered |
//! | `pending` | `(stream, grp, xid, seq)` | an entry delivered and not acknowledged: its `consumer`, `delivered_ms` and `deliveries` |
//! | `members` | `(stream, grp, consumer)` | each member of a group and when it last read (`seen_ms`) |
//! | `payloads` | `(key, field)` | one row per payload field: `value`, and `expires_ms` (the key's expiry, the same on all its rows) |

/// The table of stream entries.
pub const ENTRIES: &str = "entries";
/// The table of consumer groups and their positions.
pub const GROUPS: &str = "groups";
/// The table of entries delivered and not acknowledged.
pub const PENDING: &str = "pending";
/// The table of group members.
pub const MEMBERS: &str = "members";
/// The default table of payloads.
pub const PAYLOADS: &str = "payloads";

/// The server's clock in milliseconds since the Unix epoch, once per
/// statement: every row a statement writes or reads sees the same time (a
/// key's rows get one expiry, and read as live or expired together).
pub(crate) const NOW_MS: &str = "(extract(epoch from statement_timestamp()) * 1000)::bigint";

/// The oldest transaction still running: every entry of a lower `xid` is
/// committed (or rolled back) for good, so a reader that reads no further
/// than it never skips an entry that a slower transaction commits later.
pub(crate) const HORIZON: &str = "(pg_snapshot_xmin(pg_current_snapshot())::text::bigint)";

/// A schema-qualified, quoted table name.
pub(crate) fn qualified(schema: &str, table: &str) -> String {
    format!("\"{schema}\".\"{table}\"")
}

/// The entries table of a schema, qualified and quoted.
pub(crate) fn qualified_entries(schema: &str) -> String {
    qualified(schema, ENTRIES)
}

/// The statements that make the schema and the channel's tables (each
/// `IF NOT EXISTS`), run under an advisory lock at connect.
pub(crate) fn create_channel_tables(schema: &str) -> Vec<String> {
    let entries = qualified(schema, ENTRIES);
    let groups = qualified(schema, GROUPS);
    let pending = qualified(schema, PENDING);
    let members = qualified(schema, MEMBERS);
    vec![
        format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""),
        format!(
            "CREATE TABLE IF NOT EXISTS {entries} (
                stream text NOT NULL,
                xid bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
                seq bigint GENERATED ALWAYS AS IDENTITY,
                appended_ms bigint NOT NULL DEFAULT {NOW_MS},
                metadata bytea NOT NULL,
                PRIMARY KEY (stream, xid, seq))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {groups} (
                stream text NOT NULL,
                grp text NOT NULL,
                last_xid bigint NOT NULL,
                last_seq bigint NOT NULL,
                PRIMARY KEY (stream, grp))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {pending} (
                stream text NOT NULL,
                grp text NOT NULL,
                xid bigint NOT NULL,
                seq bigint NOT NULL,
                consumer text NOT NULL,
                delivered_ms bigint NOT NULL,
                deliveries integer NOT NULL,
                PRIMARY KEY (stream, grp, xid, seq))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {members} (
                stream text NOT NULL,
                grp text NOT NULL,
                consumer text NOT NULL,
                seen_ms bigint NOT NULL,
                PRIMARY KEY (stream, grp, consumer))"
        ),
    ]
}

/// The statements that make a payload table.
pub(crate) fn create_payload_table(schema: &str, table: &str) -> Vec<String> {
    let payloads = qualified(schema, table);
    vec![
        format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""),
        format!(
            "CREATE TABLE IF NOT EXISTS {payloads} (
                key text NOT NULL,
                field text NOT NULL,
                value bytea NOT NULL,
                expires_ms bigint,
                PRIMARY KEY (key, field))"
        ),
        format!(
            "CREATE INDEX IF NOT EXISTS \"{table}_expires\" ON {payloads} (expires_ms)
                WHERE expires_ms IS NOT NULL"
        ),
    ]
}

/// A statement with only checked names written into it (the schema's
/// and tables', [`crate::PostgresConfig::schema`]) and a bind parameter
/// for every value: safe to send as it is. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Statement(std::sync::Arc<str>);

impl Statement {
    /// The statement for `sqlx::query`.
    pub(crate) fn sql(&self) -> sqlx::AssertSqlSafe<std::sync::Arc<str>> {
        sqlx::AssertSqlSafe(self.0.clone())
    }
}

impl From<String> for Statement {
    fn from(sql: String) -> Self {
        Self(sql.into())
    }
}

/// The channel's statements, with the schema's name in them.
#[derive(Debug)]
pub(crate) struct ChannelSql {
    pub append: Statement,
    pub read_group: Statement,
    pub read_pending: Statement,
    pub redeliver: Statement,
    pub ack: Statement,
    pub claim_stale: Statement,
    pub touch: Statement,
    pub group_exists: Statement,
    pub ensure_group: Statement,
    pub newest: Statement,
    pub newest_settled: Statement,
    pub read_range: Statement,
    pub first_at: Statement,
    pub get: Statement,
    pub length: Statement,
    pub groups: Statement,
    pub members: Statement,
    pub streams: Statement,
    pub delete_acknowledged: Statement,
}

/// The entries of `$1` inserted from the bytes in `$2`, in order,
/// returning their ids in order; the CTE name is `appended`.
pub(crate) fn append_cte(entries: &str, stream: &str, metadata: &str) -> String {
    format!(
        "appended AS (
            INSERT INTO {entries} (stream, metadata)
            SELECT {stream}, m FROM unnest({metadata}::bytea[]) WITH ORDINALITY AS t(m, i) ORDER BY i
            RETURNING xid, seq)"
    )
}

impl ChannelSql {
    pub(crate) fn new(schema: &str) -> Self {
        let entries = qualified(schema, ENTRIES);
        let groups = qualified(schema, GROUPS);
        let pending = qualified(schema, PENDING);
        let members = qualified(schema, MEMBERS);
        let seen = format!(
            "INSERT INTO {members} (stream, grp, consumer, seen_ms) VALUES ($1, $2, $3, {NOW_MS})
             ON CONFLICT (stream, grp, consumer) DO UPDATE SET seen_ms = excluded.seen_ms"
        );
        Self {
            // $1 stream, $2 metadata[], $3 notification channel.
            append: format!(
                "WITH {}, woken AS (SELECT pg_notify($3, $1))
                 SELECT xid, seq FROM appended, woken ORDER BY seq",
                append_cte(&entries, "$1", "$2")
            )
            .into(),
            // $1 stream, $2 group, $3 consumer, $4 count. No row: no group;
            // one row of NULLs: nothing to read (`held`: entries wait behind
            // an older transaction).
            read_group: format!(
                "WITH g AS (
                    SELECT last_xid, last_seq FROM {groups} WHERE stream = $1 AND grp = $2 FOR UPDATE
                 ), fresh AS (
                    -- The position as parameters of the index scan: the
                    -- scan starts there, however long the stream.
                    SELECT e.xid, e.seq, e.metadata FROM {entries} e
                    WHERE e.stream = $1
                      AND (e.xid, e.seq) > ((SELECT last_xid FROM g), (SELECT last_seq FROM g))
                      AND e.xid < {HORIZON}
                    ORDER BY e.xid, e.seq LIMIT $4
                 ), newest AS (
                    SELECT xid, seq FROM fresh ORDER BY xid DESC, seq DESC LIMIT 1
                 ), moved AS (
                    UPDATE {groups} SET last_xid = newest.xid, last_seq = newest.seq
                    FROM newest WHERE stream = $1 AND grp = $2
                 ), held AS (
                    INSERT INTO {pending} (stream, grp, xid, seq, consumer, delivered_ms, deliveries)
                    SELECT $1, $2, xid, seq, $3, {NOW_MS}, 1 FROM fresh
                 ), seen AS (
                    INSERT INTO {members} (stream, grp, consumer, seen_ms)
                    SELECT $1, $2, $3, {NOW_MS} FROM g
                    ON CONFLICT (stream, grp, consumer) DO UPDATE SET seen_ms = excluded.seen_ms
                 )
                 SELECT fresh.xid, fresh.seq, fresh.metadata,
                    -- Nothing read, but committed entries wait behind an
                    -- older transaction still running: look again soon.
                    NOT EXISTS (SELECT 1 FROM fresh) AND EXISTS (
                        SELECT 1 FROM {entries} e WHERE e.stream = $1
                        AND (e.xid, e.seq) > (g.last_xid, g.last_seq)) AS held
                 FROM g LEFT JOIN fresh ON true
                 ORDER BY fresh.xid, fresh.seq"
            )
            .into(),
            // $1 stream, $2 group, $3 consumer, $4 count.
            read_pending: format!(
                "WITH mine AS (
                    SELECT xid, seq FROM {pending}
                    WHERE stream = $1 AND grp = $2 AND consumer = $3
                    ORDER BY xid, seq LIMIT $4 FOR UPDATE
                 ), bumped AS (
                    UPDATE {pending} p SET deliveries = p.deliveries + 1, delivered_ms = {NOW_MS}
                    FROM mine WHERE p.stream = $1 AND p.grp = $2 AND p.xid = mine.xid AND p.seq = mine.seq
                    RETURNING p.xid, p.seq, p.deliveries
                 )
                 SELECT b.xid, b.seq, b.deliveries, e.metadata FROM bumped b
                 LEFT JOIN {entries} e ON e.stream = $1 AND e.xid = b.xid AND e.seq = b.seq
                 ORDER BY b.xid, b.seq"
            )
            .into(),
            // $1 stream, $2 group, $3 consumer, $4 xid, $5 seq.
            redeliver: format!(
                "UPDATE {pending} SET deliveries = deliveries + 1, delivered_ms = {NOW_MS}
                 WHERE stream = $1 AND grp = $2 AND consumer = $3 AND xid = $4 AND seq = $5
                 RETURNING deliveries"
            )
            .into(),
            // $1 stream, $2 group, $3 xid[], $4 seq[].
            ack: format!(
                "DELETE FROM {pending} WHERE stream = $1 AND grp = $2
                 AND (xid, seq) IN (SELECT * FROM unnest($3::bigint[], $4::bigint[]))"
            )
            .into(),
            // $1 stream, $2 group, $3 consumer, $4 min idle ms, $5 count.
            claim_stale: format!(
                "WITH stale AS (
                    SELECT xid, seq FROM {pending}
                    WHERE stream = $1 AND grp = $2 AND delivered_ms <= {NOW_MS} - $4
                    ORDER BY xid, seq LIMIT $5 FOR UPDATE SKIP LOCKED
                 ), taken AS (
                    UPDATE {pending} p SET consumer = $3, delivered_ms = {NOW_MS},
                        deliveries = p.deliveries + 1
                    FROM stale WHERE p.stream = $1 AND p.grp = $2 AND p.xid = stale.xid AND p.seq = stale.seq
                    RETURNING p.xid, p.seq, p.deliveries
                 ), seen AS ({seen})
                 SELECT t.xid, t.seq, t.deliveries, e.metadata FROM taken t
                 LEFT JOIN {entries} e ON e.stream = $1 AND e.xid = t.xid AND e.seq = t.seq
                 ORDER BY t.xid, t.seq"
            )
            .into(),
            // $1 stream, $2 group, $3 consumer, $4 xid[], $5 seq[].
            touch: format!(
                "UPDATE {pending} SET delivered_ms = {NOW_MS}
                 WHERE stream = $1 AND grp = $2 AND consumer = $3
                 AND (xid, seq) IN (SELECT * FROM unnest($4::bigint[], $5::bigint[]))
                 RETURNING xid, seq"
            )
            .into(),
            group_exists: format!("SELECT 1 FROM {groups} WHERE stream = $1 AND grp = $2").into(),
            // $1 stream, $2 group, $3 xid, $4 seq.
            ensure_group: format!(
                "INSERT INTO {groups} (stream, grp, last_xid, last_seq) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (stream, grp) DO NOTHING"
            )
            .into(),
            newest: format!(
                "SELECT xid, seq, xid < {HORIZON} FROM {entries} WHERE stream = $1
                 ORDER BY xid DESC, seq DESC LIMIT 1"
            )
            .into(),
            newest_settled: format!(
                "SELECT xid, seq FROM {entries} WHERE stream = $1 AND xid < {HORIZON}
                 ORDER BY xid DESC, seq DESC LIMIT 1"
            )
            .into(),
            // $1 stream, $2/$3 from (xid, seq) inclusive, $4/$5 to inclusive, $6 count.
            read_range: format!(
                "SELECT xid, seq, metadata FROM {entries}
                 WHERE stream = $1 AND (xid, seq) >= ($2, $3) AND (xid, seq) <= ($4, $5)
                   AND xid < {HORIZON}
                 ORDER BY xid, seq LIMIT $6"
            )
            .into(),
            // $1 stream, $2 ms.
            first_at: format!(
                "SELECT xid, seq FROM {entries} WHERE stream = $1 AND appended_ms >= $2
                   AND xid < {HORIZON}
                 ORDER BY xid, seq LIMIT 1"
            )
            .into(),
            get: format!("SELECT metadata FROM {entries} WHERE stream = $1 AND xid = $2 AND seq = $3").into(),
            length: format!(
                "SELECT count(*), (SELECT count(*) FROM {groups} WHERE stream = $1) FROM {entries}
                 WHERE stream = $1"
            )
            .into(),
            groups: format!(
                "SELECT g.grp,
                    (SELECT count(*) FROM {pending} p WHERE p.stream = g.stream AND p.grp = g.grp),
                    (SELECT count(*) FROM {entries} e WHERE e.stream = g.stream
                        AND (e.xid, e.seq) > (g.last_xid, g.last_seq)),
                    (SELECT count(*) FROM {members} m WHERE m.stream = g.stream AND m.grp = g.grp)
                 FROM {groups} g WHERE g.stream = $1 ORDER BY g.grp"
            )
            .into(),
            // $1 stream, $2 group.
            members: format!(
                "SELECT m.consumer,
                    (SELECT count(*) FROM {pending} p
                     WHERE p.stream = m.stream AND p.grp = m.grp AND p.consumer = m.consumer),
                    {NOW_MS} - m.seen_ms
                 FROM {members} m WHERE m.stream = $1 AND m.grp = $2 ORDER BY m.consumer"
            )
            .into(),
            // $1 stream: entries every group read past and none holds.
            delete_acknowledged: format!(
                "DELETE FROM {entries} e WHERE e.stream = $1
                   AND EXISTS (SELECT 1 FROM {groups} g WHERE g.stream = $1)
                   AND NOT EXISTS (SELECT 1 FROM {groups} g WHERE g.stream = $1
                       AND (e.xid, e.seq) > (g.last_xid, g.last_seq))
                   AND NOT EXISTS (SELECT 1 FROM {pending} p WHERE p.stream = $1
                       AND p.xid = e.xid AND p.seq = e.seq)"
            )
            .into(),
            // Each stream once: a skip scan of the entries, and the groups'.
            streams: format!(
                "WITH RECURSIVE s AS (
                    (SELECT stream FROM {entries} ORDER BY stream LIMIT 1)
                    UNION ALL
                    SELECT (SELECT e.stream FROM {entries} e WHERE e.stream > s.stream
                            ORDER BY e.stream LIMIT 1)
                    FROM s WHERE s.stream IS NOT NULL
                 )
                 SELECT stream FROM s WHERE stream IS NOT NULL
                 UNION SELECT stream FROM {groups} ORDER BY 1"
            )
            .into(),
        }
    }
}

/// A payload table's statements, with its name in them.
#[derive(Debug)]
pub(crate) struct StoreSql {
    pub(crate) insert: Statement,
    pub(crate) delete_expired: Statement,
    pub(crate) set_expiry: Statement,
    pub(crate) upsert_keeping_expiry: Statement,
    pub(crate) get_many: Statement,
    pub(crate) get_fields: Statement,
    pub(crate) delete_many: Statement,
    pub(crate) sweep: Statement,
    /// Payload rows (`$4`–`$7`) and entries (`$1` stream, `$2` metadata,
    /// `$3` notification channel) in one statement.
    pub(crate) store_and_append: Statement,
}

/// The insert of new payload rows from four arrays (`$first` keys,
/// then fields, values and TTLs in ms), as a statement or a CTE.
pub(crate) fn insert_rows(table: &str, first: usize) -> String {
    let (k, f, v, t) = (first, first + 1, first + 2, first + 3);
    format!(
        "INSERT INTO {table} (key, field, value, expires_ms)
         SELECT k, f, v, CASE WHEN ttl IS NULL THEN NULL ELSE {NOW_MS} + ttl END
         FROM unnest(${k}::text[], ${f}::text[], ${v}::bytea[], ${t}::bigint[]) AS t(k, f, v, ttl)
         ON CONFLICT (key, field) DO UPDATE SET value = excluded.value, expires_ms = excluded.expires_ms"
    )
}

impl StoreSql {
    pub(crate) fn new(table: &str, entries: &str) -> Self {
        Self {
            store_and_append: format!(
                "WITH stored AS ({}), {}, woken AS (SELECT pg_notify($3, $1))
                 SELECT xid, seq FROM appended, woken ORDER BY seq",
                insert_rows(table, 4),
                append_cte(entries, "$1", "$2")
            )
            .into(),
            insert: insert_rows(table, 1).into(),
            // $1 keys.
            delete_expired: format!(
                "DELETE FROM {table} WHERE key = ANY($1) AND expires_ms <= {NOW_MS}"
            )
            .into(),
            // $1 keys, $2 ttl ms.
            set_expiry: format!(
                "UPDATE {table} SET expires_ms = {NOW_MS} + t.ttl
                 FROM unnest($1::text[], $2::bigint[]) AS t(k, ttl) WHERE key = t.k"
            )
            .into(),
            // $1 keys, $2 fields, $3 values, $4 TTLs: new rows of a put
            // without a TTL take their key's expiry.
            upsert_keeping_expiry: format!(
                "INSERT INTO {table} (key, field, value, expires_ms)
                 SELECT k, f, v, CASE WHEN ttl IS NULL
                     THEN (SELECT max(p.expires_ms) FROM {table} p WHERE p.key = t.k)
                     ELSE {NOW_MS} + ttl END
                 FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bigint[]) AS t(k, f, v, ttl)
                 ON CONFLICT (key, field) DO UPDATE
                 SET value = excluded.value, expires_ms = excluded.expires_ms"
            )
            .into(),
            get_many: format!(
                "SELECT key, field, value FROM {table}
                 WHERE key = ANY($1) AND (expires_ms IS NULL OR expires_ms > {NOW_MS})"
            )
            .into(),
            // $1 key, $2 fields: every live row, with the value of the named.
            get_fields: format!(
                "SELECT field, CASE WHEN field = ANY($2) THEN value END FROM {table}
                 WHERE key = $1 AND (expires_ms IS NULL OR expires_ms > {NOW_MS})"
            )
            .into(),
            delete_many: format!(
                "WITH gone AS (DELETE FROM {table} WHERE key = ANY($1) RETURNING key, expires_ms)
                 SELECT count(DISTINCT key) FROM gone
                 WHERE expires_ms IS NULL OR expires_ms > {NOW_MS}"
            )
            .into(),
            sweep: format!(
                "DELETE FROM {table} WHERE ctid IN (
                    SELECT ctid FROM {table} WHERE expires_ms <= {NOW_MS} LIMIT 10000)"
            )
            .into(),
        }
    }
}
