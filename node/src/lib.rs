//! A reference raft node: the fork's `RawNode` on `raft-wal-storage`, one
//! OS process per node, peers over TCP, and a replicated record log (one
//! broker partition) behind a JSON/HTTP API.
//!
//! The layout is the architecture: [`ready_loop`] drives raft and is the
//! file to read first; [`transport`] moves raft messages between
//! processes; [`state_machine`] is the record log; [`api`] is what clients
//! call; [`serve`] wires one node together. [`cluster`] starts several
//! nodes as child processes, which `raft-node cluster`, [`bench`] and
//! [`nemesis`] build on.

pub mod api;
pub mod bench;
pub mod client;
pub mod cluster;
pub mod cluster_id;
pub mod config;
pub mod entry;
pub mod error;
pub mod handle;
pub mod kafka;
pub mod membership;
pub mod metrics;
pub mod nemesis;
pub mod persister;
pub mod producers;
pub mod ready_loop;
pub mod request_id;
pub mod serve;
pub mod state_machine;
pub mod tls;
pub mod transport;
