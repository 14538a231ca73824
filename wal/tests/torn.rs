//! Torn and corrupt segments: recovery yields a prefix of what was
//! acknowledged, or an error naming the file and offset; never wrong data.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::entries;
use raft::{GetEntriesContext, Storage};
use raft_proto::eraftpb::Entry;
use raft_wal_storage::{WalError, WalOptions, WalStorage};

/// Writes three synced batches (1..=10, 11..=20, 21..=30); returns the
/// directory, the segment and the byte range of the last batch's records
/// (its Entries and Sync).
fn three_batches() -> (tempfile::TempDir, PathBuf, u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let store = WalStorage::open(dir.path(), WalOptions::default()).unwrap();
    let segment = only_segment(dir.path());
    store.append(&entries(1, 10, 1)).unwrap();
    store.sync().unwrap();
    store.append(&entries(11, 20, 1)).unwrap();
    store.sync().unwrap();
    let before_last = fs::metadata(&segment).unwrap().len();
    store.append(&entries(21, 30, 1)).unwrap();
    store.sync().unwrap();
    let end = fs::metadata(&segment).unwrap().len();
    (dir, segment, before_last, end)
}

fn only_segment(dir: &Path) -> PathBuf {
    let mut segments: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    segments.sort();
    segments.pop().unwrap()
}

fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    // Segments only: these WALs hold no snapshot files.
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            continue;
        }
        fs::copy(entry.path(), to.path().join(entry.file_name())).unwrap();
    }
    to
}

fn log(store: &WalStorage) -> Vec<Entry> {
    let (first, last) = (store.first_index().unwrap(), store.last_index().unwrap());
    store
        .entries(first, last + 1, None, GetEntriesContext::empty(false))
        .unwrap()
}

#[test]
fn a_cut_anywhere_in_the_last_batch_recovers_the_batches_before_it() {
    let (dir, segment, before_last, end) = three_batches();
    let name = segment.file_name().unwrap().to_owned();
    for cut in before_last..end {
        let copy = copy_dir(dir.path());
        let file = copy.path().join(&name);
        fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let store = WalStorage::open(copy.path(), WalOptions::default())
            .unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        let got = log(&store);
        // The Entries record is whole once the cut is past it; only its Sync
        // record can be missing then.
        assert!(
            got == entries(1, 20, 1) || got == entries(1, 30, 1),
            "cut at {cut}: last {}",
            got.len()
        );
        assert!(
            fs::metadata(&file).unwrap().len() <= cut,
            "the torn tail is cut off"
        );
        // Appending after recovery continues the log cleanly.
        let next = got.len() as u64 + 1;
        store.append(&entries(next, next, 2)).unwrap();
        store.sync().unwrap();
        drop(store);
        let again = WalStorage::open(copy.path(), WalOptions::default()).unwrap();
        assert_eq!(again.last_index().unwrap(), next);
    }
}

#[test]
fn zeroed_space_after_the_last_record_is_a_torn_tail() {
    let (dir, segment, _, end) = three_batches();
    let file = fs::OpenOptions::new().write(true).open(&segment).unwrap();
    file.set_len(end + 4096).unwrap();
    let store = WalStorage::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(log(&store), entries(1, 30, 1));
    assert_eq!(fs::metadata(&segment).unwrap().len(), end);
}

#[test]
fn every_flipped_bit_gives_an_error_or_a_correct_prefix() {
    let (dir, segment, before_last, end) = three_batches();
    let name = segment.file_name().unwrap().to_owned();
    let original = fs::read(&segment).unwrap();
    // Flip every bit of the second batch's records (followed by the third)
    // and of the last batch's records (the end of the file).
    // The second batch's records are as long as the third's (ten entries
    // of the same size, then a Sync) and end where the third's start.
    let second_start = before_last - (end - before_last);
    let (mut errors, mut prefixes) = (0, 0);
    for range in [second_start..before_last, before_last..end] {
        for byte in range {
            for bit in 0..8 {
                let copy = copy_dir(dir.path());
                let mut bytes = original.clone();
                bytes[byte as usize] ^= 1 << bit;
                fs::write(copy.path().join(&name), &bytes).unwrap();
                match WalStorage::open(copy.path(), WalOptions::default()) {
                    Ok(store) => {
                        let got = log(&store);
                        assert_eq!(
                            got[..],
                            entries(1, 30, 1)[..got.len()],
                            "bit {bit} of byte {byte}"
                        );
                        assert!(
                            got.len() >= 20,
                            "bit {bit} of byte {byte}: synced batches lost"
                        );
                        prefixes += 1;
                    }
                    Err(WalError::Corrupt { path, offset, .. }) => {
                        assert!(
                            path.ends_with(&name) && offset <= byte,
                            "bit {bit} of byte {byte}"
                        );
                        errors += 1;
                    }
                    Err(e) => panic!("bit {bit} of byte {byte}: {e}"),
                }
            }
        }
    }
    assert!(
        errors > 0 && prefixes > 0,
        "{errors} errors, {prefixes} prefixes"
    );
}
