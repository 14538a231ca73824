//! The crash report's scenarios on both engines: crates.io raft 0.7.0
//! panics exactly as reported, the fork survives with the right log.

use std::panic::{catch_unwind, UnwindSafe};

use raft::eraftpb::MessageType;
use regression::{fork, upstream, Outcome};

fn panic_message<T>(scenario: impl FnOnce() -> T + UnwindSafe) -> String {
    let payload = match catch_unwind(scenario) {
        Ok(_) => panic!("upstream 0.7.0 did not panic"),
        Err(payload) => payload,
    };
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => payload.downcast_ref::<&str>().unwrap().to_string(),
    }
}

fn log(runs: &[(u64, u64, u64)]) -> Vec<(u64, u64)> {
    runs.iter()
        .flat_map(|&(first, last, term)| (first..=last).map(move |i| (i, term)))
        .collect()
}

fn append_response(outcome: &Outcome) -> &raft::eraftpb::Message {
    let mut responses = outcome
        .sent
        .iter()
        .filter(|m| m.get_msg_type() == MessageType::MsgAppendResponse);
    let response = responses.next().expect("an append response");
    assert!(responses.next().is_none(), "{:?}", outcome.sent);
    response
}

#[test]
fn upstream_panics_on_the_seed_follower() {
    assert_eq!(
        panic_message(upstream::follower_storage_ahead),
        "unstable.slice[620, 622] out of bound[620, 620], raft_id: 3"
    );
}

#[test]
fn fork_survives_the_seed_follower() {
    let outcome = fork::follower_storage_ahead();
    assert_eq!(outcome.log, log(&[(1, 621, 1), (622, 622, 4)]));
    let response = append_response(&outcome);
    assert_eq!(
        (response.to, response.index, response.reject),
        (2, 622, false)
    );
}

#[test]
fn upstream_panics_on_a_leader_with_storage_ahead() {
    assert_eq!(
        panic_message(upstream::leader_storage_ahead),
        "unstable.slice[621, 623] out of bound[621, 621], raft_id: 1"
    );
}

#[test]
fn fork_survives_a_leader_with_storage_ahead() {
    let outcome = fork::leader_storage_ahead();
    assert_eq!(outcome.log, log(&[(1, 619, 1), (620, 623, 2)]));
}

#[test]
fn upstream_panics_when_a_candidate_with_storage_ahead_wins() {
    assert_eq!(
        panic_message(upstream::candidate_storage_ahead),
        "assertion `left == right` failed\n  left: 625\n right: 619"
    );
}

#[test]
fn fork_elects_a_candidate_with_storage_ahead() {
    let outcome = fork::candidate_storage_ahead();
    assert_eq!(outcome.log, log(&[(1, 625, 1), (626, 626, 2)]));
    let appends = outcome
        .sent
        .iter()
        .filter(|m| m.get_msg_type() == MessageType::MsgAppend)
        .count();
    assert_eq!(appends, 2, "the new leader appends to both followers");
}

#[test]
fn upstream_panics_on_an_append_past_the_log() {
    assert_eq!(
        panic_message(upstream::append_past_the_log),
        "unstable.slice[620, 701] out of bound[620, 620], raft_id: 3"
    );
}

#[test]
fn fork_rejects_an_append_past_the_log() {
    let outcome = fork::append_past_the_log();
    assert_eq!(outcome.log, log(&[(1, 619, 1)]));
    let response = append_response(&outcome);
    assert_eq!(
        (response.to, response.index, response.reject),
        (2, 700, true)
    );
    assert!(response.reject_hint <= 619, "{response:?}");
}
