//! A deterministic multi-node cluster simulator that runs the same seeded
//! schedules on crates.io raft 0.7.0 and on this fork, side by side.
//!
//! Layers, bottom up: [`engine`] (the only code naming the two crates),
//! [`world`] (nodes, simulated disk, network and clock), [`faults`] and
//! [`workload`] (what happens to the world), [`checkers`] (safety after
//! every step, liveness after healing), [`scenario`] and [`run`] (named
//! runs from one seed), then [`compare`], [`shrink`] and [`bench`] for the
//! command line.

pub mod bench;
pub mod checkers;
pub mod compare;
pub mod divergence;
pub mod engine;
pub mod faults;
pub mod html;
pub mod lease_cost;
pub mod run;
pub mod scenario;
pub mod shrink;
pub mod workload;
pub mod world;
