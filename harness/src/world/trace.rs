//! The run's trace: one line per event, hashed as it goes.
//!
//! Two runs with the same seed and engine give the same lines, so the same
//! hash; runs of the two engines give the same hash exactly when they
//! behaved the same. Lines are only kept when asked for (`replay --trace`);
//! each event's own hash is kept with the hash level, so `compare` can find
//! the first event where two runs part.
//!
//! Fork-patch records (see [`patch_log`](super::patch_log)) enter the trace
//! as events of their own, at the point the fork logged them.

use std::fmt::{self, Write as _};

use raft_proto::eraftpb::{Message, MessageType};
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

use super::patch_log::PatchSink;
use super::read_id;

/// How much of the trace a run records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceLevel {
    /// Nothing (benchmarks).
    Off,
    /// The hash, and each event's own hash.
    Hash,
    /// The hashes and every line.
    Lines,
}

/// A fork-patch record in the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchEvent {
    /// Its position among the trace's events.
    pub event: usize,
    /// The patch's number, e.g. `0005`.
    pub patch: String,
}

/// Events of a run, hashed and optionally kept.
pub struct Trace {
    level: TraceLevel,
    hasher: Xxh3,
    line: String,
    lines: Vec<String>,
    event_hashes: Vec<u64>,
    patch_events: Vec<PatchEvent>,
    records: PatchSink,
}

impl Trace {
    /// An empty trace.
    pub fn new(level: TraceLevel) -> Trace {
        Trace {
            level,
            hasher: Xxh3::new(),
            line: String::new(),
            lines: Vec::new(),
            event_hashes: Vec::new(),
            patch_events: Vec::new(),
            records: PatchSink::default(),
        }
    }

    /// Whether events are recorded at all; callers skip formatting if not.
    pub fn on(&self) -> bool {
        self.level != TraceLevel::Off
    }

    /// Where nodes' loggers put fork-patch records for this trace.
    pub fn patch_sink(&self) -> &PatchSink {
        &self.records
    }

    /// Records one event at tick `now`, after the fork-patch records
    /// logged since the last event.
    pub fn event(&mut self, now: u64, args: fmt::Arguments<'_>) {
        if !self.on() {
            return;
        }
        self.flush_records(now);
        self.record(now, args);
    }

    /// Moves the fork-patch records logged since the last event into the
    /// trace, as events at tick `now`.
    pub fn flush_records(&mut self, now: u64) {
        let records = self.records.take();
        if !self.on() {
            return;
        }
        for (node, message) in records {
            let patch = patch_number(&message).to_string();
            self.patch_events.push(PatchEvent {
                event: self.event_hashes.len(),
                patch,
            });
            self.record(now, format_args!("n{node} {message}"));
        }
    }

    fn record(&mut self, now: u64, args: fmt::Arguments<'_>) {
        self.line.clear();
        let _ = write!(self.line, "{now:>5} {args}");
        self.hasher.update(self.line.as_bytes());
        self.hasher.update(b"\n");
        self.event_hashes.push(xxh3_64(self.line.as_bytes()));
        if self.level == TraceLevel::Lines {
            self.lines.push(self.line.clone());
        }
    }

    /// The hash of every event so far.
    pub fn hash(&self) -> u64 {
        self.hasher.digest()
    }

    /// How many events it holds.
    pub fn event_count(&self) -> usize {
        self.event_hashes.len()
    }

    /// Each event's hash, in order.
    pub fn event_hashes(&self) -> &[u64] {
        &self.event_hashes
    }

    /// The fork-patch records among the events, in order.
    pub fn patch_events(&self) -> &[PatchEvent] {
        &self.patch_events
    }

    /// The recorded lines (empty unless the level is `Lines`).
    pub fn into_lines(self) -> Vec<String> {
        self.lines
    }
}

/// `0005` of `fork patch 0005: ...`.
fn patch_number(message: &str) -> &str {
    let rest = message.strip_prefix("fork patch ").unwrap_or(message);
    rest.split(':').next().unwrap_or(rest)
}

/// A message in one line: `1->2 MsgAppend t4 621/1 [622] c619`.
pub struct Compact<'a>(pub &'a Message);

impl fmt::Display for Compact<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{}->{} {:?} t{}", m.from, m.to, m.get_msg_type(), m.term)?;
        match m.get_msg_type() {
            MessageType::MsgAppend
            | MessageType::MsgRequestVote
            | MessageType::MsgRequestPreVote => {
                write!(f, " {}/{}", m.index, m.log_term)?;
                if let (Some(first), Some(last)) = (m.entries.first(), m.entries.last()) {
                    write!(f, " [{}..{}]", first.index, last.index)?;
                }
                write!(f, " c{}", m.commit)?;
            }
            MessageType::MsgAppendResponse => {
                write!(f, " {}", m.index)?;
                if m.reject {
                    write!(f, " reject hint {}/{}", m.reject_hint, m.log_term)?;
                }
            }
            MessageType::MsgRequestVoteResponse | MessageType::MsgRequestPreVoteResponse
                if m.reject =>
            {
                write!(f, " reject")?;
            }
            MessageType::MsgHeartbeat => write!(f, " c{}", m.commit)?,
            MessageType::MsgReadIndex | MessageType::MsgReadIndexResp => {
                if let Some(e) = m.entries.first() {
                    write!(f, " read {}", read_id(&e.data))?;
                }
                if m.get_msg_type() == MessageType::MsgReadIndexResp {
                    write!(f, " at {}", m.index)?;
                }
            }
            MessageType::MsgSnapshot => write!(
                f,
                " snap {}/{}",
                m.get_snapshot().get_metadata().index,
                m.get_snapshot().get_metadata().term
            )?,
            _ => {}
        }
        // The heartbeat context as a number: a read's id on upstream, a read
        // position on the fork (patch 0018); with lease reads on the fork,
        // the read position and the round's send tick (patch 0021).
        if matches!(
            m.get_msg_type(),
            MessageType::MsgHeartbeat | MessageType::MsgHeartbeatResponse
        ) && !m.context.is_empty()
        {
            match m.context.len() {
                16 => {
                    let (position, sent) = m.context.split_at(8);
                    write!(f, " ctx {} sent {}", read_id(position), read_id(sent))?;
                }
                _ => write!(f, " ctx {}", read_id(&m.context))?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_events_same_hash_and_any_change_shows() {
        let record = |last: u64| {
            let mut t = Trace::new(TraceLevel::Hash);
            t.event(1, format_args!("crash n{}", 2));
            t.event(2, format_args!("restart n{last}"));
            t.hash()
        };
        assert_eq!(record(2), record(2));
        assert_ne!(record(2), record(3));
    }

    #[test]
    fn messages_render_on_one_line() {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgAppend);
        m.from = 2;
        m.to = 3;
        m.term = 4;
        m.index = 621;
        m.log_term = 1;
        m.commit = 619;
        m.entries = vec![raft_proto::eraftpb::Entry {
            index: 622,
            term: 4,
            ..Default::default()
        }]
        .into();
        assert_eq!(
            Compact(&m).to_string(),
            "2->3 MsgAppend t4 621/1 [622..622] c619"
        );
    }
}
