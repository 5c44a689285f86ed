//! The layout of a partitioned stream
//! ([`RedisStreamChannel::partitions`](crate::RedisStreamChannel::partitions)):
//! which stream key holds each partition, which partition a message goes
//! to, and how an entry id names its partition.
//!
//! Partition `i` of `n` of stream `S` is the stream key `S:p{i}-{n}{{k}}`:
//! `{k}` is a hash tag, the smallest number whose hash slot is `i + ½`
//! `n`-ths of the way round the 16,384 slots, starting from the slot of `S`
//! itself. The partitions of one stream are thus evenly spaced over
//! the slots (on a cluster whose masters hold equal ranges of slots, `n`
//! partitions over `m` masters put `n / m` on each when `m` divides `n`),
//! and the partitions of different streams start at different places. The
//! keys depend on the stream and `n` only: every process computes the same.
//!
//! A message with a partition key goes to partition `crc16(key) mod n` (the
//! same key, the same partition: its order holds); one without, to a
//! partition picked by its message id (spread evenly). An entry id is
//! `{i}:{redis id}`.

use event_backbone_core::{EntryId, Error, Metadata, Result};

use crate::BACKEND;

/// The most partitions a stream can have.
pub const MAX_PARTITIONS: u16 = 1024;

const SLOTS: u32 = 16_384;

/// Redis Cluster's hash of bytes (CRC16-XMODEM).
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The cluster hash slot of a key (its hash tag's, when it has one).
pub(crate) fn slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tagged = bytes.iter().position(|&b| b == b'{').and_then(|open| {
        let close = bytes[open + 1..].iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &bytes[open + 1..open + 1 + close])
    });
    (u32::from(crc16(tagged.unwrap_or(bytes))) % SLOTS) as u16
}

/// The stream keys of the `n` partitions of `stream`.
pub(crate) fn partition_keys(stream: &str, n: u16) -> Vec<String> {
    let start = u32::from(slot(stream));
    let n32 = u32::from(n);
    (0..n32)
        .map(|i| {
            let target = (start + (2 * i + 1) * SLOTS / (2 * n32)) % SLOTS;
            let tag = tags()[target as usize];
            format!("{stream}:p{i}-{n}{{{tag}}}")
        })
        .collect()
}

/// The stream a partition key of a stream in `n` partitions belongs to
/// (`{stream}:p{i}-{n}{tag}`), or `None` for a key that is not one.
pub(crate) fn stream_of_partition_key(key: &str, n: u16) -> Option<&str> {
    let (head, tag) = key.strip_suffix('}')?.rsplit_once('{')?;
    let (stream, partition) = head.rsplit_once(":p")?;
    let (i, of) = partition.split_once('-')?;
    let numeric = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    (numeric(i) && numeric(tag) && of.parse() == Ok(n)).then_some(stream)
}

/// For every slot, the smallest number whose decimal text hashes to it
/// (about 170,000 hashes, once per process).
fn tags() -> &'static [u32] {
    static TAGS: std::sync::OnceLock<Vec<u32>> = std::sync::OnceLock::new();
    TAGS.get_or_init(|| {
        let mut tags = vec![u32::MAX; SLOTS as usize];
        let mut missing = SLOTS;
        let mut k = 0u32;
        while missing > 0 {
            let s = (u32::from(crc16(k.to_string().as_bytes())) % SLOTS) as usize;
            if tags[s] == u32::MAX {
                tags[s] = k;
                missing -= 1;
            }
            k += 1;
        }
        tags
    })
}

/// Refuses a stream name that would make the partitions' hash tags
/// meaningless (a key's first `{...}` is its hash tag).
pub(crate) fn check_stream_name(stream: &str) -> Result<()> {
    if stream.contains('{') {
        return Err(Error::permanent(
            BACKEND,
            format!("partitioning stream {stream:?}"),
            "the stream name holds a '{', which would be its keys' hash tag and put every \
             partition in one slot: rename the stream (without braces) or use one partition",
        ));
    }
    Ok(())
}

/// The partition a message goes to.
pub(crate) fn partition_of(metadata: &Metadata, n: u16) -> usize {
    let hash = match metadata.partition_key() {
        Some(key) => crc16(key.as_bytes()),
        None => crc16(metadata.message_id.as_uuid().as_bytes()),
    };
    usize::from(hash % n)
}

/// The entry id of a Redis entry of partition `p`.
pub(crate) fn entry_id(p: usize, redis_id: &str) -> EntryId {
    EntryId::new(format!("{p}:{redis_id}"))
}

/// The partition and the Redis id an entry id names.
pub(crate) fn split_id(id: &EntryId, n: u16) -> Result<(usize, EntryId)> {
    let invalid = || Error::InvalidEntryId {
        id: id.as_str().to_owned(),
        backend: BACKEND,
        expected: "a partitioned stream's id, the partition and a Redis stream id: \
                   2:1700000000000-0",
    };
    let (text, rest) = id.as_str().split_once(':').ok_or_else(invalid)?;
    let p: usize = text.parse().map_err(|_| invalid())?;
    // One spelling per partition: `03` or `+3` is not `3`.
    if p >= usize::from(n) || p.to_string() != text {
        return Err(invalid());
    }
    // A Redis id is two 64-bit numbers.
    let fits = rest
        .split_once('-')
        .is_some_and(|(ms, seq)| ms.parse::<u64>().is_ok() && seq.parse::<u64>().is_ok());
    let redis_id = EntryId::new(rest);
    if !fits {
        return Err(invalid());
    }
    crate::entry::check_id(&redis_id).map_err(|_| invalid())?;
    Ok((p, redis_id))
}

/// `count` shared among `n` partitions as evenly as it goes, the extra ones
/// from partition `from` on (a reader turns `from` round, so that a count
/// below `n` reaches every partition in turn).
pub(crate) fn shares(count: usize, n: usize, from: usize) -> Vec<usize> {
    let mut shares = vec![count / n; n];
    for j in 0..count % n {
        shares[(from + j) % n] += 1;
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_redis_clusters() {
        // Values from the Redis Cluster specification and CLUSTER KEYSLOT.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
        // An empty tag is no tag.
        assert_eq!(
            u32::from(slot("foo{}{bar}")),
            u32::from(crc16(b"foo{}{bar}")) % SLOTS
        );
        assert_eq!(slot("foo{{bar}}zap"), slot("{bar"));
        // The same as the driver's, which routes the commands.
        for key in ["orders", "orders:p1-4{9126}", "a{b}c", "{", "}{x}", "x{}"] {
            assert_eq!(
                format!("Slot({})", slot(key)),
                format!("{:?}", redis::cluster_routing::Slot::for_key(key)),
                "{key}"
            );
        }
    }

    #[test]
    fn partitions_are_spread_evenly_over_the_slots() {
        for n in [2u16, 3, 4, 6, 16] {
            let keys = partition_keys("orders", n);
            assert_eq!(keys.len(), usize::from(n));
            let mut slots: Vec<u32> = keys.iter().map(|k| u32::from(slot(k))).collect();
            slots.sort_unstable();
            let spacing = SLOTS / u32::from(n);
            for pair in slots.windows(2) {
                let gap = pair[1] - pair[0];
                assert!(
                    gap.abs_diff(spacing) <= 1,
                    "{n} partitions: slots {slots:?}"
                );
            }
            assert!(
                keys.iter()
                    .all(|k| k.starts_with("orders:p") && k.ends_with('}')),
                "{keys:?}"
            );
        }
        // Three partitions over three masters with equal ranges: one on
        // each, wherever the stream's own slot puts the first.
        for stream in ["orders", "payments", "a", "test.cluster-7"] {
            let mut thirds: Vec<u32> = partition_keys(stream, 3)
                .iter()
                .map(|k| u32::from(slot(k)) * 3 / SLOTS)
                .collect();
            thirds.sort_unstable();
            assert_eq!(thirds, [0, 1, 2], "{stream}");
        }
        // The layout is data: these keys hold streams; a change to the
        // formula or the tags would leave them behind.
        assert_eq!(
            partition_keys("orders", 4),
            [
                "orders:p0-4{24569}",
                "orders:p1-4{9126}",
                "orders:p2-4{5206}",
                "orders:p3-4{28649}"
            ]
        );
        let slots: Vec<u16> = partition_keys("orders", 4)
            .iter()
            .map(|k| slot(k))
            .collect();
        assert_eq!(slots, [2153, 6249, 10345, 14441]);
        assert_ne!(partition_keys("orders", 4), partition_keys("payments", 4));
    }

    #[test]
    fn ids_name_their_partition() {
        let id = entry_id(3, "1700000000000-7");
        assert_eq!(id.as_str(), "3:1700000000000-7");
        let (p, redis_id) = split_id(&id, 4).unwrap();
        assert_eq!((p, redis_id.as_str()), (3, "1700000000000-7"));
        for bad in [
            "1700000000000-7",
            "4:1700000000000-7",
            "x:1-0",
            "1:nope",
            "03:1-0",
            "+3:1-0",
            "1:99999999999999999999-0",
        ] {
            let err = split_id(&EntryId::new(bad), 4).unwrap_err().to_string();
            assert!(
                err.contains(bad) && err.contains("2:1700000000000-0"),
                "{err}"
            );
        }
    }

    #[test]
    fn counts_are_shared_and_turn_round() {
        assert_eq!(shares(10, 4, 0), [3, 3, 2, 2]);
        assert_eq!(shares(10, 4, 3), [3, 2, 2, 3]);
        assert_eq!(shares(2, 4, 3), [1, 0, 0, 1]);
        assert_eq!(shares(0, 2, 0), [0, 0]);
    }

    #[test]
    fn a_stream_name_with_a_hash_tag_is_refused() {
        let err = check_stream_name("{orders}").unwrap_err().to_string();
        assert!(
            err.contains("{orders}") && err.contains("one partition"),
            "{err}"
        );
        assert!(check_stream_name("orders").is_ok());
    }

    #[test]
    fn partition_keys_name_their_stream() {
        for key in partition_keys("prod:orders", 4) {
            assert_eq!(
                stream_of_partition_key(&key, 4),
                Some("prod:orders"),
                "{key}"
            );
            assert_eq!(stream_of_partition_key(&key, 8), None, "{key}");
        }
        for key in ["prod:orders", "a:p1-2", "a:p1-2{x}", "a:px-2{1}", "{1}"] {
            assert_eq!(stream_of_partition_key(key, 2), None, "{key}");
        }
    }
}
