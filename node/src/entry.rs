//! What a raft entry carries for this node, decoded in one place: the
//! Ready loop refuses a forwarded proposal that does not decode, so it is
//! never committed, and applies a committed entry from the same decoding.
//!
//! A committed entry that does not decode is in the log of every node
//! that committed it, and every restart replays it: stopping on it would
//! stop the node for good. The node stops once, naming the entry and the
//! way out ([`Undecodable`]), with an exit status of its own
//! ([`UNDECODABLE_EXIT_STATUS`]) so a supervisor can stop restarting it.
//! If the cluster committed the entry, every node that stops on it is
//! restarted with `--skip-undecodable-entry <index>` and applies it as
//! empty, all alike; if only this node holds it, its log was forged and
//! it rejoins blank. Applying undecodable entries as empty without being
//! told would hide a forged or corrupt log, and a newer node's entry an
//! older node cannot read, behind a log line.

use protobuf::Message as _;
use raft_proto::eraftpb::{ConfChange, ConfChangeV2, Entry, EntryType};
use raft_proto::ConfChangeI;

use crate::state_machine::Proposal;

/// The exit status of a node that stopped on an undecodable committed
/// entry: restarting it without an operator's decision stops it again
/// (systemd: `RestartPreventExitStatus=3`).
pub const UNDECODABLE_EXIT_STATUS: u8 = 3;

/// A decoded entry.
#[derive(Debug)]
pub enum Decoded {
    /// No data: a new leader's entry, applied as nothing.
    Empty,
    /// A client request's records.
    Records(Proposal),
    /// A membership change, in the V2 form raft applies.
    Change(ConfChangeV2),
}

/// A committed entry this node cannot apply.
#[derive(Debug, thiserror::Error)]
#[error(
    "committed entry {index} (term {term}) cannot be applied: {reason}. Every restart replays it. \
     If the other members have applied past index {index} without stopping, only this node holds \
     it and its log was forged or corrupted: remove the node, wipe its directory and add it back \
     under a new id with --join. If they stop on it too, the cluster committed it: restart each \
     node that stops here with --skip-undecodable-entry {index} to apply it as empty. If a newer \
     raft-node wrote it, run that version"
)]
pub struct Undecodable {
    /// The entry's index.
    pub index: u64,
    /// Its term.
    pub term: u64,
    /// Why it does not decode.
    pub reason: String,
}

/// Decodes `entry`.
///
/// # Errors
///
/// Why the entry's data is not what its type says.
pub fn decode(entry: &Entry) -> Result<Decoded, String> {
    match entry.get_entry_type() {
        EntryType::EntryNormal if entry.data.is_empty() => Ok(Decoded::Empty),
        EntryType::EntryNormal => Proposal::decode(&entry.data)
            .map(Decoded::Records)
            .map_err(|e| e.to_string()),
        EntryType::EntryConfChange => ConfChange::parse_from_bytes(&entry.data)
            .map(|cc| Decoded::Change(cc.into_v2()))
            .map_err(|e| format!("malformed membership change: {e}")),
        EntryType::EntryConfChangeV2 => ConfChangeV2::parse_from_bytes(&entry.data)
            .map(Decoded::Change)
            .map_err(|e| format!("malformed membership change: {e}")),
    }
}

/// The first of `entries` that does not decode, and why.
pub fn first_undecodable(entries: &[Entry]) -> Option<(usize, String)> {
    entries
        .iter()
        .enumerate()
        .find_map(|(i, entry)| decode(entry).err().map(|reason| (i, reason)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal(data: &[u8]) -> Entry {
        Entry {
            data: data.to_vec().into(),
            ..Default::default()
        }
    }

    #[test]
    fn proposals_changes_and_empty_entries_decode_and_garbage_does_not() {
        let proposal = Proposal {
            proposer: 1,
            seq: 2,
            records: vec![bytes::Bytes::from_static(b"r")],
        };
        let mut change = ConfChangeV2::default().write_to_bytes().unwrap();
        assert!(matches!(decode(&normal(b"")), Ok(Decoded::Empty)));
        assert!(matches!(
            decode(&normal(&proposal.encode())),
            Ok(Decoded::Records(p)) if p == proposal
        ));
        let mut entry = normal(&change);
        entry.set_entry_type(EntryType::EntryConfChangeV2);
        assert!(matches!(decode(&entry), Ok(Decoded::Change(_))));

        change.push(0xff);
        entry.data = change.into();
        let garbage = normal(b"garbage");
        let entries = [normal(&proposal.encode()), garbage.clone(), entry.clone()];
        let (at, reason) = first_undecodable(&entries).unwrap();
        assert_eq!(at, 1);
        assert!(reason.contains("header needs 20"), "{reason}");
        assert!(decode(&entry).unwrap_err().contains("membership change"));
        assert!(first_undecodable(&entries[..1]).is_none());
    }
}
