//! A node's configuration: `raft-node serve` flags or the same keys in a
//! TOML file, checked before anything starts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::state_machine::Retention;
use crate::tls::api::ApiTlsFiles;
use crate::tls::TlsFiles;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The TOML file does not parse.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: toml::de::Error,
    },
    /// The values contradict each other or the stored state.
    #[error("{0}")]
    Invalid(String),
}

/// Everything one node needs to start.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's raft id (not 0).
    pub id: u64,
    /// The WAL directory.
    pub dir: PathBuf,
    /// The client API (HTTP) address.
    pub api: SocketAddr,
    /// The raft address of every member, this node included: it listens on
    /// its own entry and dials the others there. In TOML a table keyed by
    /// id: `[peers]` then `1 = "127.0.0.1:7001"`.
    #[serde(with = "peer_table")]
    pub peers: BTreeMap<u64, SocketAddr>,
    /// Start outside the configuration and wait to be added by
    /// `raft-node admin add-learner`, instead of founding a cluster of
    /// `peers`.
    #[serde(default)]
    pub join: bool,
    /// The cluster's name; its hash is the cluster id every peer
    /// connection and every WAL carries. Give each cluster its own.
    #[serde(default = "defaults::cluster_name")]
    pub cluster_name: String,
    /// Milliseconds per raft tick.
    #[serde(default = "defaults::tick_ms")]
    pub tick_ms: u64,
    /// Ticks before a follower that hears no leader campaigns.
    #[serde(default = "defaults::election_ticks")]
    pub election_ticks: usize,
    /// Ticks between a leader's heartbeats.
    #[serde(default = "defaults::heartbeat_ticks")]
    pub heartbeat_ticks: usize,
    /// Applied entries between two snapshots of the record log.
    #[serde(default = "defaults::snapshot_entries")]
    pub snapshot_entries: u64,
    /// Entries kept in the WAL behind a snapshot, so a follower a little
    /// behind catches up by log rather than by snapshot.
    #[serde(default = "defaults::log_tail_entries")]
    pub log_tail_entries: u64,
    /// Records the log keeps, the most recent; older offsets are dropped,
    /// as a broker's retention does. Bounds memory and snapshot size; give
    /// every node the same value.
    #[serde(default = "defaults::retention_records")]
    pub retention_records: usize,
    /// Bytes of record data the log keeps, the most recent (the newest
    /// record always stays). With `retention_records` it bounds the
    /// snapshot, which a peer sends in chunks and puts back together up to
    /// 1 GiB; give every node the same value.
    #[serde(default = "defaults::retention_bytes")]
    pub retention_bytes: usize,
    /// How a Ready's writes become durable.
    #[serde(default)]
    pub persist: Persistence,
    /// Never fdatasync: acknowledged records are lost on power loss. Only
    /// for the nemesis's proof that its power-loss fault can lose data.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unsafe_no_fsync: bool,
    /// Mutual TLS with the other members: the cluster's CA and this node's
    /// certificate and key. Required unless `insecure_peers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_tls: Option<TlsFiles>,
    /// Plain TCP between members: anyone who can reach the raft port can
    /// speak raft to this node as any member. Only for networks nobody
    /// else is on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_peers: bool,
    /// TLS on the client API, optionally requiring client certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_tls: Option<ApiTlsFiles>,
    /// A file holding the bearer token every API request must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_token_file: Option<PathBuf>,
    /// Committed entries the record log cannot decode, applied as empty
    /// instead of stopping the node: the way out an operator takes once
    /// the node has stopped naming one (see the README's Security section).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skip_undecodable_entries: Vec<u64>,
    /// A Kafka wire-protocol listener beside the API, serving the record
    /// log as one topic with one partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaConfig>,
}

/// The Kafka listener. In TOML a table: `[kafka]` then `listen = "..."`,
/// `topic = "..."` and `[kafka.brokers]` keyed by id like `[peers]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Where this node takes Kafka clients.
    pub listen: SocketAddr,
    /// The topic's name: the record log is its only partition, 0.
    #[serde(default = "defaults::kafka_topic")]
    pub topic: String,
    /// The Kafka address of the other members, which Metadata lists as
    /// brokers so that clients find the leader. A member without one is
    /// left out.
    #[serde(default, with = "peer_table")]
    pub brokers: BTreeMap<u64, SocketAddr>,
}

impl KafkaConfig {
    /// The topic's name unless one is given.
    pub const DEFAULT_TOPIC: &'static str = "records";
}

/// How a Ready's writes become durable. `async` is the default: in
/// `raft-node bench` it carried 2-14% more records per second than `sync`
/// in 3 paired runs (README), and it is the mode TiKV runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Persistence {
    /// The loop waits for each Ready's fdatasync (`RawNode::advance`).
    Sync,
    /// The loop goes on while the fdatasync runs
    /// (`advance_append_async`, then `on_persist_ready`).
    #[default]
    Async,
}

impl std::fmt::Display for Persistence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Persistence::Sync => "sync",
            Persistence::Async => "async",
        })
    }
}

/// TOML keys are strings: the peer table is keyed by the id's digits.
mod peer_table {
    use std::collections::BTreeMap;
    use std::net::SocketAddr;

    use serde::{de::Error, Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(
        peers: &BTreeMap<u64, SocketAddr>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let table: BTreeMap<String, &SocketAddr> =
            peers.iter().map(|(id, a)| (id.to_string(), a)).collect();
        table.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<u64, SocketAddr>, D::Error> {
        BTreeMap::<String, SocketAddr>::deserialize(d)?
            .into_iter()
            .map(|(id, addr)| {
                let id = id
                    .parse()
                    .map_err(|e| D::Error::custom(format!("peer id `{id}`: {e}")))?;
                Ok((id, addr))
            })
            .collect()
    }
}

mod defaults {
    pub fn kafka_topic() -> String {
        super::KafkaConfig::DEFAULT_TOPIC.into()
    }
    pub fn cluster_name() -> String {
        "raft-node".into()
    }
    pub fn tick_ms() -> u64 {
        50
    }
    pub fn election_ticks() -> usize {
        10
    }
    pub fn heartbeat_ticks() -> usize {
        2
    }
    pub fn snapshot_entries() -> u64 {
        50_000
    }
    pub fn log_tail_entries() -> u64 {
        5_000
    }
    pub fn retention_records() -> usize {
        100_000
    }
    pub fn retention_bytes() -> usize {
        32 << 20
    }
}

impl NodeConfig {
    /// A configuration with the defaults for everything but the addresses.
    pub fn new(id: u64, dir: PathBuf, api: SocketAddr, peers: BTreeMap<u64, SocketAddr>) -> Self {
        NodeConfig {
            id,
            dir,
            api,
            peers,
            join: false,
            cluster_name: defaults::cluster_name(),
            tick_ms: defaults::tick_ms(),
            election_ticks: defaults::election_ticks(),
            heartbeat_ticks: defaults::heartbeat_ticks(),
            snapshot_entries: defaults::snapshot_entries(),
            log_tail_entries: defaults::log_tail_entries(),
            retention_records: defaults::retention_records(),
            retention_bytes: defaults::retention_bytes(),
            persist: Persistence::default(),
            unsafe_no_fsync: false,
            peer_tls: None,
            insecure_peers: false,
            api_tls: None,
            api_token_file: None,
            skip_undecodable_entries: Vec::new(),
            kafka: None,
        }
    }

    /// Reads a TOML file with the keys of this struct.
    ///
    /// # Errors
    ///
    /// The file cannot be read or parsed, or [`NodeConfig::check`] refuses it.
    pub fn from_toml_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config: NodeConfig = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })?;
        config.check()?;
        Ok(config)
    }

    /// This node's own raft address.
    pub fn listen(&self) -> SocketAddr {
        self.peers[&self.id]
    }

    /// Checks what can be checked without the WAL.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] saying which value is wrong.
    pub fn check(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.id == 0 {
            return invalid("node id 0 is reserved by raft; ids start at 1".into());
        }
        if !self.peers.contains_key(&self.id) {
            return invalid(format!(
                "node id {} has no --peer entry; peers are {:?} (the list names every member, this node included)",
                self.id,
                self.peers.keys().collect::<Vec<_>>()
            ));
        }
        let mut seen = BTreeMap::new();
        for (id, addr) in &self.peers {
            if let Some(other) = seen.insert(addr, id) {
                return invalid(format!("nodes {other} and {id} share the address {addr}"));
            }
        }
        if self.heartbeat_ticks == 0 || self.election_ticks <= self.heartbeat_ticks {
            return invalid(format!(
                "election_ticks ({}) must exceed heartbeat_ticks ({}), which must be at least 1",
                self.election_ticks, self.heartbeat_ticks
            ));
        }
        match (&self.peer_tls, self.insecure_peers) {
            (None, false) => {
                return invalid(
                    "peer connections need TLS: give --peer-ca, --peer-cert and --peer-key \
                     (`raft-node certs` makes them), or --insecure-peers for plain TCP"
                        .into(),
                )
            }
            (Some(_), true) => {
                return invalid("--insecure-peers contradicts the peer TLS files given".into())
            }
            _ => {}
        }
        if let Some(kafka) = &self.kafka {
            if kafka.topic.is_empty() || kafka.topic.len() > 249 {
                return invalid(format!(
                    "the Kafka topic name `{}` must have 1 to 249 characters",
                    kafka.topic
                ));
            }
            if let Some(addr) = std::iter::once(&kafka.listen)
                .chain(kafka.brokers.values())
                .find(|addr| addr.ip().is_unspecified())
            {
                return invalid(format!(
                    "the Kafka address {addr} must be one clients reach: Metadata \
                     advertises it to them"
                ));
            }
            if kafka
                .brokers
                .get(&self.id)
                .is_some_and(|&a| a != kafka.listen)
            {
                return invalid(format!(
                    "the Kafka broker address given for node {} is not its --kafka address {}",
                    self.id, kafka.listen
                ));
            }
            if self.api_token_file.is_some()
                && self
                    .api_tls
                    .as_ref()
                    .is_none_or(|tls| tls.client_ca.is_none())
            {
                return invalid(
                    "the API requires a token, which Kafka clients cannot send: the Kafka listener \
                     authenticates clients by certificate, so give --api-client-ca too"
                        .into(),
                );
            }
        }
        if self.tick_ms == 0 || self.snapshot_entries == 0 {
            return invalid("tick_ms and snapshot_entries must be at least 1".into());
        }
        let snapshot = self
            .retention()
            .max_snapshot_bytes(crate::api::MAX_BODY_BYTES);
        if snapshot > crate::transport::MAX_SNAPSHOT_BYTES {
            return invalid(format!(
                "retention_bytes ({}) and retention_records ({}) allow a snapshot of {snapshot} bytes, \
                 past the {} bytes a peer puts back together: lower them",
                self.retention_bytes,
                self.retention_records,
                crate::transport::MAX_SNAPSHOT_BYTES
            ));
        }
        Ok(())
    }

    /// The record log's retention.
    pub fn retention(&self) -> Retention {
        Retention {
            records: self.retention_records,
            bytes: self.retention_bytes,
        }
    }

    /// Checks the configuration against the membership the WAL holds, so a
    /// node restarted with a wrong id or peer list refuses to run instead of
    /// talking to the wrong nodes.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming the stored members.
    pub fn check_against_stored(
        &self,
        voters: &[u64],
        learners: &[u64],
    ) -> Result<(), ConfigError> {
        let stored: Vec<u64> = voters.iter().chain(learners).copied().collect();
        if stored.is_empty() {
            return Ok(());
        }
        let dir = self.dir.display();
        if !stored.contains(&self.id) {
            return Err(ConfigError::Invalid(format!(
                "node id {} is not a member of the cluster stored in {dir} (voters {voters:?}, learners {learners:?}): wrong --id or --dir?",
                self.id
            )));
        }
        let unnamed: Vec<u64> = stored
            .iter()
            .filter(|id| !self.peers.contains_key(id))
            .copied()
            .collect();
        if !unnamed.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "members {unnamed:?} of the cluster stored in {dir} have no --peer address (voters {voters:?}, learners {learners:?})"
            )));
        }
        Ok(())
    }
}

/// Parses `ID=HOST:PORT`, the form of `--peer`.
///
/// # Errors
///
/// A message saying what is wrong, for clap to print.
pub fn parse_peer(s: &str) -> Result<(u64, SocketAddr), String> {
    let (id, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not ID=HOST:PORT"))?;
    let id = id.parse().map_err(|e| format!("peer id `{id}`: {e}"))?;
    let addr = addr
        .parse()
        .map_err(|e| format!("peer address `{addr}`: {e}"))?;
    Ok((id, addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> NodeConfig {
        let peers = (1..=3)
            .map(|i| (i, format!("127.0.0.1:{}", 7000 + i).parse().unwrap()))
            .collect();
        let mut c = NodeConfig::new(2, "d".into(), "127.0.0.1:8002".parse().unwrap(), peers);
        c.insecure_peers = true;
        c
    }

    #[test]
    fn peers_need_tls_or_an_explicit_insecure_flag() {
        let mut c = three();
        c.insecure_peers = false;
        let e = c.check().unwrap_err().to_string();
        assert!(e.contains("need TLS"), "{e}");
        c.peer_tls = Some(TlsFiles {
            ca: "ca.pem".into(),
            cert: "node-2.pem".into(),
            key: "node-2.key".into(),
        });
        c.check().unwrap();
        c.insecure_peers = true;
        let e = c.check().unwrap_err().to_string();
        assert!(e.contains("contradicts"), "{e}");
    }

    #[test]
    fn a_retention_whose_snapshot_outgrows_what_a_peer_assembles_is_refused() {
        let mut c = three();
        assert!(c.check().is_ok(), "the defaults fit");
        c.retention_bytes = 2 * crate::transport::MAX_FRAME_BYTES;
        assert!(c.check().is_ok(), "a snapshot over a frame goes in chunks");
        c.retention_bytes = crate::transport::MAX_SNAPSHOT_BYTES;
        let e = c.check().unwrap_err().to_string();
        assert!(e.contains("a peer puts back together"), "{e}");
    }

    #[test]
    fn an_id_without_a_peer_entry_is_refused() {
        let mut c = three();
        c.id = 4;
        let e = c.check().unwrap_err().to_string();
        assert!(e.contains("node id 4 has no --peer entry"), "{e}");
    }

    #[test]
    fn two_peers_on_one_address_are_refused() {
        let mut c = three();
        c.peers.insert(3, c.peers[&1]);
        assert!(c
            .check()
            .unwrap_err()
            .to_string()
            .contains("share the address"));
    }

    #[test]
    fn a_restart_under_another_id_or_peer_list_is_refused() {
        let c = three();
        c.check_against_stored(&[1, 2, 3], &[]).unwrap();
        let e = c
            .check_against_stored(&[1, 3, 4], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("node id 2 is not a member"), "{e}");
        let e = c
            .check_against_stored(&[1, 2], &[5])
            .unwrap_err()
            .to_string();
        assert!(e.contains("members [5]"), "{e}");
    }

    #[test]
    fn toml_uses_the_field_names_and_defaults() {
        let text = "id = 2\ndir = \"d\"\napi = \"127.0.0.1:8002\"\n[peers]\n1 = \"127.0.0.1:7001\"\n2 = \"127.0.0.1:7002\"\n3 = \"127.0.0.1:7003\"\n";
        let text = format!("insecure_peers = true\n{text}");
        let text = text.as_str();
        let parsed: NodeConfig = toml::from_str(text).unwrap();
        assert_eq!(parsed, three());
        assert_eq!(
            toml::from_str::<NodeConfig>(&toml::to_string(&parsed).unwrap()).unwrap(),
            parsed
        );
        let bad = text.replace("3 = ", "three = ");
        assert!(toml::from_str::<NodeConfig>(&bad)
            .unwrap_err()
            .to_string()
            .contains("peer id `three`"));
    }

    #[test]
    fn the_kafka_table_parses_and_a_token_without_client_certificates_is_refused() {
        let mut c = three();
        let text =
            "[kafka]\nlisten = \"127.0.0.1:9092\"\n[kafka.brokers]\n3 = \"127.0.0.1:9093\"\n";
        let with_kafka = format!("{}{text}", toml::to_string(&c).unwrap());
        let parsed: NodeConfig = toml::from_str(&with_kafka).unwrap();
        let kafka = parsed.kafka.clone().unwrap();
        assert_eq!(kafka.topic, KafkaConfig::DEFAULT_TOPIC);
        assert_eq!(kafka.brokers.len(), 1);
        assert!(parsed.check().is_ok());
        c.kafka = Some(kafka);
        c.api_token_file = Some("token".into());
        let refused = c.check().unwrap_err().to_string();
        assert!(refused.contains("--api-client-ca"), "{refused}");
        c.kafka
            .as_mut()
            .unwrap()
            .brokers
            .insert(2, "127.0.0.1:1".parse().unwrap());
        c.api_token_file = None;
        let refused = c.check().unwrap_err().to_string();
        assert!(refused.contains("not its --kafka address"), "{refused}");
        c.kafka.as_mut().unwrap().brokers.clear();
        c.kafka.as_mut().unwrap().listen = "0.0.0.0:9092".parse().unwrap();
        let refused = c.check().unwrap_err().to_string();
        assert!(refused.contains("clients reach"), "{refused}");
    }

    #[test]
    fn peer_flags_parse_or_say_why_not() {
        assert_eq!(parse_peer("3=127.0.0.1:9").unwrap().0, 3);
        assert!(parse_peer("3:127.0.0.1:9")
            .unwrap_err()
            .contains("ID=HOST:PORT"));
        assert!(parse_peer("x=127.0.0.1:9").unwrap_err().contains("peer id"));
    }
}
