//! The trace lines `replay --trace` prints, read back into the events the
//! diagram draws. The page is drawn from these lines and nothing else, so
//! it can never show a run the text trace does not.

use serde::Serialize;

/// What one trace line says, as far as the diagram cares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Kind {
    /// A message delivered to `to` at this event.
    Deliver {
        /// Sender.
        from: u64,
        /// Receiver.
        to: u64,
        /// `MsgAppend`, ...
        msg: String,
    },
    /// A message sent now, to arrive later (`at`), possibly twice.
    Delayed {
        /// Sender.
        from: u64,
        /// Receiver.
        to: u64,
        /// `MsgAppend`, ...
        msg: String,
        /// The tick it arrives.
        at: u64,
        /// Whether it arrives twice.
        duplicate: bool,
    },
    /// A message that never arrives: dropped or cut at send, lost in
    /// flight.
    Lost {
        /// Sender.
        from: u64,
        /// Receiver.
        to: u64,
        /// `MsgAppend`, ...
        msg: String,
        /// `dropped`, `cut` or `lost in flight`.
        how: String,
    },
    /// A node's role and term from here on.
    Role {
        /// The node.
        node: u64,
        /// Follower, PreCandidate, Candidate, Leader.
        role: String,
        /// Its term.
        term: u64,
    },
    /// A node crashes (down until its restart).
    Crash {
        /// The node.
        node: u64,
    },
    /// A node restarts.
    Restart {
        /// The node.
        node: u64,
    },
    /// Links cut until `until`; `links` lists (from, to) pairs.
    Partition {
        /// The cut directed links.
        links: Vec<(u64, u64)>,
    },
    /// Every partition healed.
    Heal,
    /// Something else a node did or had done to it: a proposal, a read, a
    /// fork patch record, a write behind raft's back, ...
    Note {
        /// The node.
        node: u64,
        /// `propose`, `read`, `serve`, `patch`, `storage` or `other`.
        class: String,
    },
    /// A line about no node in particular.
    World,
}

/// One trace event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Its position in the trace.
    pub seq: usize,
    /// The tick.
    pub tick: u64,
    /// The line as the text trace prints it, without the tick.
    pub text: String,
    /// What it says.
    #[serde(flatten)]
    pub kind: Kind,
}

/// Parses the lines of a trace; lines that are not events (none, in a
/// trace from `replay`) are skipped.
pub fn parse(lines: &[String]) -> Vec<Event> {
    lines
        .iter()
        .filter_map(|line| {
            let line = line.trim_start();
            let (tick, text) = line.split_once(' ')?;
            Some((tick.parse().ok()?, text))
        })
        .enumerate()
        .map(|(seq, (tick, text))| Event {
            seq,
            tick,
            text: text.to_string(),
            kind: kind(text),
        })
        .collect()
}

fn node(word: &str) -> Option<u64> {
    word.strip_prefix('n')?.parse().ok()
}

fn kind(text: &str) -> Kind {
    let words: Vec<&str> = text.split(' ').collect();
    if let Some(k) = message(text, &words) {
        return k;
    }
    if text.starts_with("partition healed") || text == "all faults healed" {
        return Kind::Heal;
    }
    if let Some(rest) = text.strip_prefix("partition {") {
        let inner = rest.split('}').next().unwrap_or("");
        let numbers: Vec<u64> = inner
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect();
        return Kind::Partition {
            links: numbers
                .chunks(2)
                .filter(|p| p.len() == 2)
                .map(|p| (p[0], p[1]))
                .collect(),
        };
    }
    let Some(n) = words.first().and_then(|w| node(w)) else {
        return Kind::World;
    };
    let role = words.get(1).copied().unwrap_or("");
    if matches!(role, "Follower" | "PreCandidate" | "Candidate" | "Leader") {
        if let Some(term) = words.get(2).and_then(|t| t.strip_prefix('t')?.parse().ok()) {
            return Kind::Role {
                node: n,
                role: role.to_string(),
                term,
            };
        }
    }
    match role {
        "crash," | "crash" => Kind::Crash { node: n },
        "restart," | "restart" => Kind::Restart { node: n },
        _ => Kind::Note {
            node: n,
            class: match role {
                "propose" => "propose",
                "read" => "read",
                "serves" => "serve",
                "fork" => "patch",
                "out-of-band" | "compact" | "restore" => "storage",
                _ => "other",
            }
            .to_string(),
        },
    }
}

/// `2->1 MsgAppend t4 ...` with an optional send outcome at the end.
fn message(text: &str, words: &[&str]) -> Option<Kind> {
    let (from, to) = words.first()?.split_once("->")?;
    let (from, to): (u64, u64) = (from.parse().ok()?, to.parse().ok()?);
    let msg = words.get(1).filter(|m| m.starts_with("Msg"))?.to_string();
    if let Some(rest) = text.split(" InFlight { at: ").nth(1) {
        let at = rest.split(',').next()?.parse().ok()?;
        return Some(Kind::Delayed {
            from,
            to,
            msg,
            at,
            duplicate: rest.contains("duplicate: true"),
        });
    }
    for (suffix, how) in [
        (" Dropped", "dropped"),
        (" Cut", "cut"),
        (" lost in flight", "lost in flight"),
    ] {
        if text.ends_with(suffix) {
            return Some(Kind::Lost {
                from,
                to,
                msg,
                how: how.to_string(),
            });
        }
    }
    Some(Kind::Deliver { from, to, msg })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Kind {
        parse(&[line.to_string()]).remove(0).kind
    }

    #[test]
    fn every_line_shape_of_a_trace_is_read() {
        assert_eq!(
            one("    1 2->1 MsgAppend t4 621/1 [622..622] c619"),
            Kind::Deliver {
                from: 2,
                to: 1,
                msg: "MsgAppend".into()
            }
        );
        assert_eq!(
            one("   11 3->1 MsgHeartbeatResponse t1 ctx 9 InFlight { at: 14, duplicate: true }"),
            Kind::Delayed {
                from: 3,
                to: 1,
                msg: "MsgHeartbeatResponse".into(),
                at: 14,
                duplicate: true
            }
        );
        assert!(
            matches!(one("5 1->2 MsgHeartbeat t1 c3 Cut"), Kind::Lost { how, .. } if how == "cut")
        );
        assert!(
            matches!(one("5 1->2 MsgAppend t1 3/1 c3 lost in flight"), Kind::Lost { how, .. } if how == "lost in flight")
        );
        assert_eq!(
            one("0 n1 Follower t1 timeout 13"),
            Kind::Role {
                node: 1,
                role: "Follower".into(),
                term: 1
            }
        );
        assert_eq!(one("9 n3 crash, torn 2"), Kind::Crash { node: 3 });
        assert_eq!(
            one("12 n3 restart, disk last 40"),
            Kind::Restart { node: 3 }
        );
        assert_eq!(
            one("40 partition {(1, 2), (2, 1)} until 50"),
            Kind::Partition {
                links: vec![(1, 2), (2, 1)]
            }
        );
        assert_eq!(one("50 partition healed"), Kind::Heal);
        assert!(
            matches!(one("1 n3 out-of-band 620..=622 at term 1"), Kind::Note { class, .. } if class == "storage")
        );
        assert!(
            matches!(one("7 n2 fork patch 0005: x"), Kind::Note { class, .. } if class == "patch")
        );
        assert!(
            matches!(one("7 n2 propose 3..5 (3 taken)"), Kind::Note { class, .. } if class == "propose")
        );
    }
}
