//! A leader of a configuration that a higher-term node does not know, under
//! raft's default `Config`: crates.io raft 0.7.0 keeps it leading at its
//! old term forever, with no working leader; the fork deposes it and elects
//! a leader whose proposals commit everywhere.

use regression::stale_term_leader::{fork, upstream, NodeView};

#[test]
fn upstream_keeps_a_leader_nobody_follows() {
    let outcome = upstream::leader_of_a_configuration_the_higher_term_does_not_know();
    let [n1, n2, n3] = &outcome.nodes[..] else {
        panic!("{outcome:?}");
    };
    assert!(n2.leading && n2.term == 3, "{outcome:?}");
    for n in [n1, n3] {
        assert!(n.term > 3 && n.leader_id == 0, "{outcome:?}");
    }
    assert_eq!(outcome.proposal, None, "no leader at the highest term");
}

#[test]
fn fork_elects_a_leader_everyone_follows() {
    let outcome = fork::leader_of_a_configuration_the_higher_term_does_not_know();
    let leaders: Vec<&NodeView> = outcome.nodes.iter().filter(|n| n.leading).collect();
    let [leader] = leaders[..] else {
        panic!("{outcome:?}");
    };
    assert!(leader.term > 3, "{outcome:?}");
    for n in &outcome.nodes {
        assert_eq!(
            (n.term, n.leader_id),
            (leader.term, leader.id),
            "{outcome:?}"
        );
    }
    assert!(outcome.proposal.is_some(), "{outcome:?}");
    assert_eq!(outcome.committed_on, vec![1, 2, 3], "{outcome:?}");
}
