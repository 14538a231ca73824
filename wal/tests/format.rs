//! The record codec: golden bytes pin `FORMAT.md`, and arbitrary bytes
//! never make the decoder panic.

use proptest::prelude::*;
use raft_wal_storage::internals::{decode, encode, DecodeError, Kind};

#[test]
fn a_truncate_record_has_the_documented_bytes() {
    let mut out = Vec::new();
    encode(Kind::Truncate, &620u64.to_le_bytes(), &mut out);
    let header_crc = crc32c::crc32c(&[8, 0, 0, 0, 4, 0, 0, 0]);
    let payload_crc = crc32c::crc32c(&620u64.to_le_bytes());
    let mut golden = vec![8, 0, 0, 0, 4, 0, 0, 0];
    golden.extend_from_slice(&header_crc.to_le_bytes());
    golden.extend_from_slice(&payload_crc.to_le_bytes());
    golden.extend_from_slice(&[0x6c, 0x02, 0, 0, 0, 0, 0, 0]);
    assert_eq!(out, golden);
    assert_eq!(
        crc32c::crc32c(b"123456789"),
        0xe306_9283,
        "CRC32C (Castagnoli)"
    );
    let record = decode(&out).unwrap();
    assert_eq!(
        (record.kind, record.index().unwrap(), record.size()),
        (Kind::Truncate, 620, 24)
    );
}

#[test]
fn damage_is_classified() {
    let mut out = Vec::new();
    encode(Kind::Compact, &7u64.to_le_bytes(), &mut out);
    assert!(matches!(
        decode(&out[..10]),
        Err(DecodeError::Incomplete { .. })
    ));
    assert!(matches!(
        decode(&out[..20]),
        Err(DecodeError::Incomplete { .. })
    ));
    let mut bad = out.clone();
    bad[0] ^= 1;
    assert_eq!(decode(&bad), Err(DecodeError::HeaderChecksum));
    let mut bad = out.clone();
    bad[20] ^= 1;
    assert_eq!(decode(&bad), Err(DecodeError::PayloadChecksum));
    assert_eq!(decode(&[0u8; 32]), Err(DecodeError::HeaderChecksum));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, rng_seed: proptest::test_runner::RngSeed::Fixed(620), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_decoder_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(record) = decode(&bytes) {
            let _ = record.entries();
            let _ = record.index();
            let _ = record.snapshot_ref();
        }
    }

    #[test]
    fn the_decoder_never_panics_on_damaged_records(
        payload in proptest::collection::vec(any::<u8>(), 0..128),
        kind in 1u8..11,
        flip in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let kinds = [Kind::Entries, Kind::HardState, Kind::ConfState, Kind::Truncate, Kind::Snapshot, Kind::Compact, Kind::Sync, Kind::KeptSnapshot, Kind::SnapshotFile, Kind::KeptSnapshotFile];
        let mut out = Vec::new();
        encode(kinds[(kind - 1) as usize], &payload, &mut out);
        let i = flip.index(out.len());
        out[i] ^= 0x5a;
        let end = cut.index(out.len() + 1);
        if let Ok(record) = decode(&out[..end]) {
            let _ = record.entries();
            let _ = record.index();
            let _ = record.snapshot_ref();
        }
    }
}
