//! The node's Prometheus metrics, served at `/metrics` in the text format.

use prometheus::{Encoder, Histogram, HistogramOpts, IntCounter, IntGauge, Registry, TextEncoder};

/// Every metric of one node. Names end in their unit.
pub struct Metrics {
    registry: Registry,
    /// Seconds from a proposal to its entry being applied, on the node that
    /// took the client's request.
    pub commit_latency_seconds: Histogram,
    /// fdatasyncs of the WAL.
    pub fsyncs: IntCounter,
    /// Raft entries written to the WAL.
    pub entries_persisted: IntCounter,
    /// Raft entries made durable by each fdatasync.
    pub entries_per_fsync: Histogram,
    /// Times this node saw the leader change.
    pub leader_changes: IntCounter,
    /// The last applied raft index.
    pub applied_index: IntGauge,
    /// The last committed raft index.
    pub commit_index: IntGauge,
    /// The current raft term.
    pub term: IntGauge,
    /// Records in the replicated log.
    pub records: IntGauge,
    /// Messages the transport could not deliver to a peer.
    pub peer_send_failures: IntCounter,
    /// fdatasyncs the WAL itself counted (`WalStorage::syncs`), whichever
    /// path issued them.
    pub wal_syncs: IntGauge,
    /// Proposals of this node proposed again after an election lost them.
    pub appends_retried: IntCounter,
    /// Entries whose records were not applied: appended in another term
    /// than the one their proposer stamped them with.
    pub stale_proposals_skipped: IntCounter,
    /// Proposals forwarded by a peer and refused because an entry does
    /// not decode.
    pub undecodable_proposals_refused: IntCounter,
}

impl Metrics {
    /// Registers every metric, labelled with the node id.
    ///
    /// # Panics
    ///
    /// Never for these fixed names and buckets; registration only fails on
    /// a duplicate or invalid name.
    pub fn new(node: u64) -> Metrics {
        let registry = Registry::new_custom(
            Some("raft_node".into()),
            Some([("node".to_string(), node.to_string())].into()),
        )
        .expect("a valid prefix and label");
        let latency_buckets =
            prometheus::exponential_buckets(0.000_25, 2.0, 16).expect("valid buckets");
        let batch_buckets = prometheus::exponential_buckets(1.0, 2.0, 14).expect("valid buckets");
        let metrics = Metrics {
            commit_latency_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "commit_latency_seconds",
                    "Proposal to applied, on the proposing node",
                )
                .buckets(latency_buckets),
            )
            .expect("valid histogram"),
            fsyncs: IntCounter::new("fsyncs_total", "WAL fdatasyncs").expect("valid counter"),
            entries_persisted: IntCounter::new(
                "entries_persisted_total",
                "Raft entries written to the WAL",
            )
            .expect("valid counter"),
            entries_per_fsync: Histogram::with_opts(
                HistogramOpts::new(
                    "entries_per_fsync",
                    "Raft entries made durable by one fdatasync",
                )
                .buckets(batch_buckets),
            )
            .expect("valid histogram"),
            leader_changes: IntCounter::new("leader_changes_total", "Leader changes seen")
                .expect("valid counter"),
            applied_index: IntGauge::new("applied_index", "Last applied raft index")
                .expect("valid gauge"),
            commit_index: IntGauge::new("commit_index", "Last committed raft index")
                .expect("valid gauge"),
            term: IntGauge::new("term", "Current raft term").expect("valid gauge"),
            records: IntGauge::new("records", "Records in the replicated log")
                .expect("valid gauge"),
            peer_send_failures: IntCounter::new(
                "peer_send_failures_total",
                "Raft messages not delivered to a peer",
            )
            .expect("valid counter"),
            wal_syncs: IntGauge::new("wal_syncs", "fdatasyncs counted by the WAL")
                .expect("valid gauge"),
            appends_retried: IntCounter::new(
                "appends_retried_total",
                "Proposals proposed again after an election lost them",
            )
            .expect("valid counter"),
            stale_proposals_skipped: IntCounter::new(
                "stale_proposals_skipped_total",
                "Entries not applied: appended outside their stamped term",
            )
            .expect("valid counter"),
            undecodable_proposals_refused: IntCounter::new(
                "undecodable_proposals_refused_total",
                "Forwarded proposals refused: an entry does not decode",
            )
            .expect("valid counter"),
            registry,
        };
        let collectors: [Box<dyn prometheus::core::Collector>; 14] = [
            Box::new(metrics.commit_latency_seconds.clone()),
            Box::new(metrics.fsyncs.clone()),
            Box::new(metrics.entries_persisted.clone()),
            Box::new(metrics.entries_per_fsync.clone()),
            Box::new(metrics.leader_changes.clone()),
            Box::new(metrics.applied_index.clone()),
            Box::new(metrics.commit_index.clone()),
            Box::new(metrics.term.clone()),
            Box::new(metrics.records.clone()),
            Box::new(metrics.peer_send_failures.clone()),
            Box::new(metrics.wal_syncs.clone()),
            Box::new(metrics.appends_retried.clone()),
            Box::new(metrics.stale_proposals_skipped.clone()),
            Box::new(metrics.undecodable_proposals_refused.clone()),
        ];
        for c in collectors {
            metrics.registry.register(c).expect("unique metric names");
        }
        metrics
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding into a Vec cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

/// Reads one sample of a counter or gauge back from `/metrics` text:
/// `raft_node_fsyncs_total{node="1"} 42` gives 42 for `fsyncs_total`.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    let full = format!("raft_node_{name}");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.split(['{', ' ']).next() == Some(full.as_str()))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_samples_read_back() {
        let m = Metrics::new(3);
        m.fsyncs.inc_by(42);
        m.entries_per_fsync.observe(7.0);
        let text = m.render();
        assert!(
            text.contains("raft_node_fsyncs_total{node=\"3\"} 42"),
            "{text}"
        );
        assert_eq!(sample(&text, "fsyncs_total"), Some(42.0));
        assert_eq!(sample(&text, "entries_per_fsync_sum"), Some(7.0));
        assert_eq!(sample(&text, "no_such_metric"), None);
    }
}
