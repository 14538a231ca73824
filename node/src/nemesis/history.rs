//! The nemesis's history of client operations and its checker.
//!
//! The object is an append-only log, so linearizability reduces to checks
//! on offsets. Appends are ordered by their offset in the final log (the
//! one order every node must agree on); a read that saw `end` records is
//! linearizable only at a point where exactly the first `end` appends had
//! taken effect. The checker demands:
//!
//! 1. every node's final log is the same;
//! 2. every value appears at most once, and only if some client appended it;
//! 3. an acknowledged append sits at its acknowledged offset; an append
//!    refused outright (no leader) is absent;
//! 4. an append acknowledged before another was invoked has the lower
//!    offset, whether the later one was acknowledged or its outcome is
//!    unknown but it is in the log;
//! 5. a read has the shape asked for: it starts at `from` (the log keeps
//!    every offset in a run) and holds `min(max, end - from)` records, so
//!    it ends within what it saw;
//! 6. a read returned exactly the final log's records from its offset;
//!    it saw every append acknowledged before it was invoked, nothing
//!    invoked after it completed, and no less than a read that completed
//!    before it was invoked.

use std::collections::{BTreeMap, HashMap};

use crate::api::ReadResponse;

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    /// Acknowledged with this answer.
    Ok(T),
    /// Refused before it could take effect.
    Failed,
    /// No answer (timeout, broken connection): it may or may not have
    /// taken effect.
    Unknown,
}

impl<T> Outcome<T> {
    /// The answer mapped, the rest kept.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Outcome<U> {
        match self {
            Outcome::Ok(t) => Outcome::Ok(f(t)),
            Outcome::Failed => Outcome::Failed,
            Outcome::Unknown => Outcome::Unknown,
        }
    }
}

/// One client operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// Microseconds since the run started, when the client sent it.
    pub invoke_us: u64,
    /// When its answer (or the client's timeout) came; `u64::MAX` if the
    /// run ended first.
    pub complete_us: u64,
    /// What it was.
    pub kind: OpKind,
}

/// The operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    /// Append one record; answered with its offset.
    Append {
        /// The record, unique in the run.
        value: String,
        /// The offset.
        result: Outcome<u64>,
    },
    /// A linearizable read from `from`.
    Read {
        /// The first offset asked for.
        from: u64,
        /// The most records asked for.
        max: usize,
        /// What came back.
        result: Outcome<ReadResponse>,
    },
}

/// A broken promise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// Two nodes' final logs differ.
    Diverged {
        /// The node compared with the first node.
        node: u64,
        /// The first differing offset.
        offset: u64,
    },
    /// A value is in the log more than once.
    Duplicate {
        /// The value.
        value: String,
        /// Where.
        offsets: Vec<u64>,
    },
    /// A value no client appended.
    Phantom {
        /// The value.
        value: String,
        /// Where.
        offset: u64,
    },
    /// An acknowledged append is not at its offset.
    Lost {
        /// The value.
        value: String,
        /// The acknowledged offset.
        offset: u64,
        /// What the final log holds there, if anything.
        found: Option<String>,
    },
    /// An append refused outright is in the log anyway.
    RefusedButApplied {
        /// The value.
        value: String,
    },
    /// Appends acknowledged in one real-time order sit in the other.
    AppendOrder {
        /// The earlier acknowledged append.
        first: String,
        /// The append invoked after it but at a lower offset.
        second: String,
    },
    /// A read does not start where asked, or holds more or fewer records
    /// than asked for and available.
    ReadShape {
        /// When the read was invoked.
        invoke_us: u64,
        /// The offset it asked to read from.
        from: u64,
        /// The offset of its first record.
        first: u64,
        /// How many records it returned.
        count: u64,
        /// The records it said the log held.
        end: u64,
    },
    /// A read's records are not the final log's.
    ReadContent {
        /// When the read was invoked.
        invoke_us: u64,
        /// The offset it asked to read from.
        from: u64,
    },
    /// A read missed an append acknowledged before it was invoked.
    StaleRead {
        /// When the read was invoked.
        invoke_us: u64,
        /// The records it saw.
        end: u64,
        /// The acknowledged offset it missed.
        acked_offset: u64,
    },
    /// A read saw an append invoked after the read completed.
    FutureRead {
        /// When the read completed.
        complete_us: u64,
        /// The records it saw.
        end: u64,
    },
    /// A read saw fewer records than one that completed before it began.
    NonMonotonicRead {
        /// The earlier read's count.
        earlier_end: u64,
        /// This read's count.
        end: u64,
    },
    /// An append invoked while a majority was powered off was
    /// acknowledged before it came back: nothing new can commit then.
    AcknowledgedWithoutMajority {
        /// The value.
        value: String,
        /// When it was invoked.
        invoke_us: u64,
    },
}

/// Checks a history against every node's final log.
pub fn check(history: &[Op], final_logs: &BTreeMap<u64, Vec<String>>) -> Vec<Violation> {
    let mut violations = Vec::new();
    let Some((_, log)) = final_logs.iter().next() else {
        return violations;
    };
    for (&node, other) in final_logs {
        if let Some(offset) = (0..log.len().max(other.len())).find(|&i| log.get(i) != other.get(i))
        {
            violations.push(Violation::Diverged {
                node,
                offset: offset as u64,
            });
        }
    }
    let mut where_is: HashMap<&str, Vec<u64>> = HashMap::new();
    for (offset, value) in log.iter().enumerate() {
        where_is
            .entry(value.as_str())
            .or_default()
            .push(offset as u64);
    }
    let mut appends: HashMap<&str, &Op> = HashMap::new();
    for op in history {
        if let OpKind::Append { value, .. } = &op.kind {
            appends.insert(value.as_str(), op);
        }
    }
    for (offset, value) in log.iter().enumerate() {
        let offsets = &where_is[value.as_str()];
        if offsets.len() > 1 && offsets[0] == offset as u64 {
            violations.push(Violation::Duplicate {
                value: value.clone(),
                offsets: offsets.clone(),
            });
        }
        if !appends.contains_key(value.as_str()) {
            violations.push(Violation::Phantom {
                value: value.clone(),
                offset: offset as u64,
            });
        }
    }
    check_appends(history, log, &where_is, &mut violations);
    check_reads(history, log, &appends, &mut violations);
    violations
}

/// Appends invoked inside one of `windows` (microsecond spans in which a
/// majority was down) and acknowledged before the window closed. Writes
/// must fail while a majority is down: an acknowledgement there is one
/// that no quorum can have made durable.
pub fn acknowledged_while_majority_down(history: &[Op], windows: &[(u64, u64)]) -> Vec<Violation> {
    history
        .iter()
        .filter_map(|op| match &op.kind {
            OpKind::Append {
                value,
                result: Outcome::Ok(_),
            } if windows
                .iter()
                .any(|&(from, to)| op.invoke_us >= from && op.complete_us < to) =>
            {
                Some(Violation::AcknowledgedWithoutMajority {
                    value: value.clone(),
                    invoke_us: op.invoke_us,
                })
            }
            _ => None,
        })
        .collect()
}

fn check_appends(
    history: &[Op],
    log: &[String],
    where_is: &HashMap<&str, Vec<u64>>,
    out: &mut Vec<Violation>,
) {
    let mut acked: Vec<(&Op, &String, u64)> = Vec::new();
    // Appends whose outcome the client never learned but which are in the
    // log: their offset must still follow every append acknowledged
    // before they were invoked.
    let mut found_unknown: Vec<(&Op, &String, u64)> = Vec::new();
    for op in history {
        let OpKind::Append { value, result } = &op.kind else {
            continue;
        };
        match result {
            Outcome::Ok(offset) => {
                if log.get(*offset as usize) != Some(value) {
                    out.push(Violation::Lost {
                        value: value.clone(),
                        offset: *offset,
                        found: log.get(*offset as usize).cloned(),
                    });
                }
                acked.push((op, value, *offset));
            }
            Outcome::Failed if where_is.contains_key(value.as_str()) => {
                out.push(Violation::RefusedButApplied {
                    value: value.clone(),
                })
            }
            Outcome::Unknown => {
                if let Some(offsets) = where_is.get(value.as_str()) {
                    found_unknown.push((op, value, offsets[0]));
                }
            }
            Outcome::Failed => {}
        }
    }
    // Sweep by invocation; `done` holds the acknowledgements that came
    // before the current invocation, with the highest offset among them.
    let mut by_complete = acked.clone();
    by_complete.sort_by_key(|(op, _, _)| op.complete_us);
    let mut later = acked;
    later.extend(found_unknown);
    later.sort_by_key(|(op, _, _)| op.invoke_us);
    let mut done = by_complete.iter().peekable();
    let mut highest: Option<(u64, &String)> = None;
    for (op, value, offset) in later {
        while let Some((_, v, o)) = done.next_if(|(e, _, _)| e.complete_us < op.invoke_us) {
            if highest.is_none_or(|(h, _)| *o > h) {
                highest = Some((*o, v));
            }
        }
        if let Some((_, first)) = highest.filter(|(h, _)| *h >= offset) {
            out.push(Violation::AppendOrder {
                first: first.clone(),
                second: value.clone(),
            });
        }
    }
}

fn check_reads(
    history: &[Op],
    log: &[String],
    appends: &HashMap<&str, &Op>,
    out: &mut Vec<Violation>,
) {
    // The latest invocation among the appends at offsets below each end.
    let mut invoked_by = Vec::with_capacity(log.len() + 1);
    invoked_by.push(0u64);
    for value in log {
        let invoked = appends.get(value.as_str()).map_or(0, |op| op.invoke_us);
        invoked_by.push(invoked.max(*invoked_by.last().expect("starts non-empty")));
    }
    let acked: Vec<(u64, u64)> = history
        .iter()
        .filter_map(|op| match &op.kind {
            OpKind::Append {
                result: Outcome::Ok(offset),
                ..
            } => Some((op.complete_us, *offset)),
            _ => None,
        })
        .collect();
    let reads: Vec<(&Op, u64, &ReadResponse)> = history
        .iter()
        .filter_map(|op| match &op.kind {
            OpKind::Read {
                from,
                max,
                result: Outcome::Ok(r),
            } => {
                let count = r.records.len() as u64;
                let expected = (*max as u64).min(r.end.saturating_sub(*from));
                if r.first != *from || count != expected {
                    out.push(Violation::ReadShape {
                        invoke_us: op.invoke_us,
                        from: *from,
                        first: r.first,
                        count,
                        end: r.end,
                    });
                    return None;
                }
                Some((op, *from, r))
            }
            _ => None,
        })
        .collect();
    for &(op, from, r) in &reads {
        let start = (r.first as usize).min(log.len());
        let expected = &log[start..(start + r.records.len()).min(log.len())];
        if r.records != expected || r.end as usize > log.len() {
            out.push(Violation::ReadContent {
                invoke_us: op.invoke_us,
                from,
            });
            continue;
        }
        if let Some(&(_, offset)) = acked
            .iter()
            .filter(|(complete, offset)| *complete < op.invoke_us && *offset >= r.end)
            .max_by_key(|(_, offset)| *offset)
        {
            out.push(Violation::StaleRead {
                invoke_us: op.invoke_us,
                end: r.end,
                acked_offset: offset,
            });
        }
        if invoked_by[r.end as usize] > op.complete_us {
            out.push(Violation::FutureRead {
                complete_us: op.complete_us,
                end: r.end,
            });
        }
        if let Some(&(_, _, earlier)) = reads
            .iter()
            .filter(|(e, _, er)| e.complete_us < op.invoke_us && er.end > r.end)
            .max_by_key(|(_, _, er)| er.end)
        {
            out.push(Violation::NonMonotonicRead {
                earlier_end: earlier.end,
                end: r.end,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(value: &str, invoke_us: u64, complete_us: u64, result: Outcome<u64>) -> Op {
        Op {
            invoke_us,
            complete_us,
            kind: OpKind::Append {
                value: value.into(),
                result,
            },
        }
    }

    fn read(from: u64, invoke_us: u64, complete_us: u64, records: &[&str], end: u64) -> Op {
        Op {
            invoke_us,
            complete_us,
            kind: OpKind::Read {
                from,
                max: 50,
                result: Outcome::Ok(ReadResponse {
                    first: from,
                    records: records.iter().map(|s| s.to_string()).collect(),
                    end,
                }),
            },
        }
    }

    fn logs(nodes: &[&[&str]]) -> BTreeMap<u64, Vec<String>> {
        nodes
            .iter()
            .enumerate()
            .map(|(i, l)| (i as u64 + 1, l.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    fn correct() -> Vec<Op> {
        vec![
            append("a", 0, 10, Outcome::Ok(0)),
            append("b", 5, 30, Outcome::Ok(1)),
            read(0, 12, 20, &["a"], 1),
            append("c", 31, 40, Outcome::Unknown),
            append("d", 41, 50, Outcome::Failed),
            read(1, 45, 60, &["b", "c"], 3),
        ]
    }

    #[test]
    fn a_correct_history_passes() {
        let final_logs = logs(&[&["a", "b", "c"], &["a", "b", "c"], &["a", "b", "c"]]);
        assert_eq!(check(&correct(), &final_logs), vec![]);
    }

    #[test]
    fn a_stale_read_is_caught() {
        let mut h = correct();
        h.push(read(0, 35, 36, &["a"], 1));
        let v = check(&h, &logs(&[&["a", "b", "c"]]));
        assert_eq!(
            v,
            vec![Violation::StaleRead {
                invoke_us: 35,
                end: 1,
                acked_offset: 1
            }]
        );
    }

    #[test]
    fn a_read_seeing_less_than_an_earlier_read_is_caught() {
        let mut h = correct();
        h.push(read(2, 61, 62, &["c"], 3));
        h.push(read(0, 63, 64, &["a", "b"], 2));
        let v = check(&h, &logs(&[&["a", "b", "c"]]));
        assert!(
            v.contains(&Violation::NonMonotonicRead {
                earlier_end: 3,
                end: 2
            }),
            "{v:?}"
        );
    }

    #[test]
    fn a_lost_write_is_caught() {
        let v = check(&correct(), &logs(&[&["a", "c"]]));
        assert!(
            v.contains(&Violation::Lost {
                value: "b".into(),
                offset: 1,
                found: Some("c".into())
            }),
            "{v:?}"
        );
    }

    #[test]
    fn a_duplicate_and_a_phantom_are_caught() {
        let v = check(&correct(), &logs(&[&["a", "b", "c", "b", "zz"]]));
        assert!(
            v.contains(&Violation::Duplicate {
                value: "b".into(),
                offsets: vec![1, 3]
            }),
            "{v:?}"
        );
        assert!(
            v.contains(&Violation::Phantom {
                value: "zz".into(),
                offset: 4
            }),
            "{v:?}"
        );
    }

    #[test]
    fn divergence_a_refused_append_and_a_read_of_the_future_are_caught() {
        let final_logs = logs(&[&["a", "b", "c", "d"], &["a", "b", "x"]]);
        let mut h = correct();
        h.push(read(0, 1, 2, &["a", "b"], 2));
        let v = check(&h, &final_logs);
        assert!(
            v.contains(&Violation::Diverged { node: 2, offset: 2 }),
            "{v:?}"
        );
        assert!(
            v.contains(&Violation::RefusedButApplied { value: "d".into() }),
            "{v:?}"
        );
        assert!(
            v.contains(&Violation::FutureRead {
                complete_us: 2,
                end: 2
            }),
            "{v:?}"
        );
    }

    #[test]
    fn appends_out_of_real_time_order_are_caught_acknowledged_or_unknown() {
        for later in [Outcome::Ok(0), Outcome::Unknown] {
            let h = vec![
                append("a", 0, 10, Outcome::Ok(1)),
                append("b", 20, 30, later),
            ];
            let v = check(&h, &logs(&[&["b", "a"]]));
            assert_eq!(
                v,
                vec![Violation::AppendOrder {
                    first: "a".into(),
                    second: "b".into()
                }]
            );
        }
    }

    #[test]
    fn a_read_with_other_records_is_caught() {
        let mut h = correct();
        h.push(read(1, 61, 62, &["c", "b"], 3));
        let v = check(&h, &logs(&[&["a", "b", "c"]]));
        assert_eq!(
            v,
            vec![Violation::ReadContent {
                invoke_us: 61,
                from: 1
            }]
        );
    }

    #[test]
    fn a_read_of_the_wrong_shape_is_caught() {
        let mut h = correct();
        let mut short = read(0, 61, 62, &["a", "b"], 3);
        let mut elsewhere = read(0, 63, 64, &["b", "c"], 3);
        if let OpKind::Read {
            result: Outcome::Ok(r),
            ..
        } = &mut elsewhere.kind
        {
            r.first = 1;
        }
        if let OpKind::Read { max, .. } = &mut short.kind {
            *max = 5;
        }
        h.push(short);
        h.push(elsewhere);
        let v = check(&h, &logs(&[&["a", "b", "c"]]));
        assert_eq!(
            v,
            vec![
                Violation::ReadShape {
                    invoke_us: 61,
                    from: 0,
                    first: 0,
                    count: 2,
                    end: 3
                },
                Violation::ReadShape {
                    invoke_us: 63,
                    from: 0,
                    first: 1,
                    count: 2,
                    end: 3
                }
            ]
        );
    }

    #[test]
    fn an_append_acknowledged_while_a_majority_is_down_is_caught() {
        let h = vec![
            append("before", 0, 20, Outcome::Ok(0)),
            append("during", 12, 18, Outcome::Ok(1)),
            append("refused", 12, 18, Outcome::Failed),
            append("after", 12, 40, Outcome::Ok(2)),
        ];
        assert_eq!(
            acknowledged_while_majority_down(&h, &[(10, 30)]),
            vec![Violation::AcknowledgedWithoutMajority {
                value: "during".into(),
                invoke_us: 12
            }]
        );
    }
}
