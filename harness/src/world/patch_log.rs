//! Fork-patch records: the debug records a fork patch logs, tagged
//! `fork-patch`, at the moment it takes a branch upstream would not.
//!
//! Each node's raft logger ends in a [`PatchDrain`] that keeps those records
//! (and drops every other one) in the world's [`PatchSink`]; the trace moves
//! them in as events of their own before its next event, so they stand in
//! order with what the world did. Upstream logs no such records.

use std::sync::{Arc, Mutex};

use slog::{Drain, Never, OwnedKVList, Record};

/// The tag fork patches put on their records.
pub const FORK_PATCH_TAG: &str = "fork-patch";

/// Records logged and not yet in the trace, as `(node, message)`.
#[derive(Clone, Default)]
pub struct PatchSink(Arc<Mutex<Vec<(u64, String)>>>);

impl PatchSink {
    /// A logger for node `id` whose fork-patch records land here.
    pub fn logger(&self, id: u64) -> slog::Logger {
        let drain = PatchDrain {
            node: id,
            sink: self.clone(),
        };
        slog::Logger::root(drain, slog::o!())
    }

    /// Takes the records logged so far.
    pub fn take(&self) -> Vec<(u64, String)> {
        let mut records = self.0.lock().expect("no thread panics holding the sink");
        if records.is_empty() {
            return Vec::new();
        }
        std::mem::take(&mut *records)
    }
}

/// Keeps a node's fork-patch records; drops every other record.
struct PatchDrain {
    node: u64,
    sink: PatchSink,
}

impl Drain for PatchDrain {
    type Ok = ();
    type Err = Never;

    fn log(&self, record: &Record<'_>, _: &OwnedKVList) -> Result<(), Never> {
        if record.tag() == FORK_PATCH_TAG {
            let message = record.msg().to_string();
            self.sink
                .0
                .lock()
                .expect("no thread panics holding the sink")
                .push((self.node, message));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tagged_records_are_kept_with_their_node() {
        let sink = PatchSink::default();
        let (n1, n2) = (sink.logger(1), sink.logger(2));
        slog::debug!(n1, "an ordinary record");
        slog::debug!(n2, #"fork-patch", "fork patch 0005: taken at {}", 7);
        slog::info!(n1, #"other", "another tag");
        assert_eq!(
            sink.take(),
            vec![(2, "fork patch 0005: taken at 7".to_string())]
        );
        assert!(sink.take().is_empty());
    }
}
