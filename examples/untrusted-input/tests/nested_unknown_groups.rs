//! RUSTSEC-2024-0437 on raft-proto: deeply nested unknown groups in a
//! `Message`, an `Entry` and a `Snapshot` give a clean error, on a 128 KiB
//! stack, under the codec this crate was built with.

use raft_proto::eraftpb::{Entry, Message, Snapshot};
use untrusted_input::{decode, encode, flat_group_after, nested_groups, on_small_stack};

/// Deep enough that one stack frame per level would need megabytes.
const DEPTH: usize = 200_000;
const STACK_BYTES: usize = 128 * 1024;

macro_rules! rejects_nested_groups {
    ($name:ident, $message:ty) => {
        #[test]
        fn $name() {
            let bytes = nested_groups(DEPTH);
            let error = on_small_stack(STACK_BYTES, move || decode::<$message>(&bytes).err());
            let error = error.expect("nested unknown groups parsed as a message");
            println!("{}: {error}", stringify!($message));
        }
    };
}

rejects_nested_groups!(a_message_with_nested_unknown_groups_is_an_error, Message);
rejects_nested_groups!(an_entry_with_nested_unknown_groups_is_an_error, Entry);
rejects_nested_groups!(a_snapshot_with_nested_unknown_groups_is_an_error, Snapshot);

#[test]
fn one_unknown_group_is_skipped_and_known_fields_kept() {
    let entry = Entry {
        index: 5,
        term: 2,
        ..Default::default()
    };
    let bytes = flat_group_after(&encode(&entry));
    let parsed: Entry = decode(&bytes).expect("an unknown group is skipped");
    assert_eq!((parsed.index, parsed.term), (5, 2));
}
