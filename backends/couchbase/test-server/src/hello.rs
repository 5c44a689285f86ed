//! HELLO: the features a client asks for, and the ones this server turns
//! on. Only those that change nothing the server cannot do: no compression
//! (Snappy), no sequence numbers in mutation replies (SeqNo), no framed
//! replies (Durations), no out-of-order replies (UnorderedExec, Duplex).

pub const DATATYPE: u16 = 0x01;
pub const XERROR: u16 = 0x07;
pub const SELECT_BUCKET: u16 = 0x08;
pub const JSON: u16 = 0x0b;
pub const COLLECTIONS: u16 = 0x12;

const SUPPORTED: [u16; 5] = [DATATYPE, XERROR, SELECT_BUCKET, JSON, COLLECTIONS];

/// The features of `requested` (big-endian u16s) the server turns on, in
/// the client's order.
pub fn negotiate(requested: &[u8]) -> Vec<u16> {
    let mut on = Vec::new();
    for pair in requested.chunks_exact(2) {
        let f = u16::from_be_bytes([pair[0], pair[1]]);
        if SUPPORTED.contains(&f) && !on.contains(&f) {
            on.push(f);
        }
    }
    on
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_supported_features_are_turned_on_in_the_clients_order() {
        // Collections, Snappy, Json, SeqNo, Datatype, Collections again.
        let asked: Vec<u8> = [0x12u16, 0x0a, 0x0b, 0x04, 0x01, 0x12]
            .iter()
            .flat_map(|f| f.to_be_bytes())
            .collect();
        assert_eq!(negotiate(&asked), vec![COLLECTIONS, JSON, DATATYPE]);
        assert_eq!(
            negotiate(&[0x00]),
            Vec::<u16>::new(),
            "an odd byte is ignored"
        );
    }
}
