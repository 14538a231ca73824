//! Data-driven tests: files of commands, each with its input and the output it
//! is expected to produce.
//!
//! raft-rs 0.7.0's unit tests (`src/quorum/datadriven_test.rs` and
//! `src/confchange/datadriven_test.rs`) depend on a `datadriven` crate that
//! lives only in the upstream repository; the crate of that name on crates.io
//! is unrelated. This crate provides the three names those tests call:
//! [`run_test`], [`walk`] and [`TestData`].
//!
//! # File format
//!
//! ```text
//! # A comment: lines starting with '#' between cases are ignored.
//! command key=value flag list=(1, 2, 3)
//! input line 1
//! input line 2
//! ----
//! expected output, up to the next blank line
//!
//! command-with-blank-lines-in-its-output
//! ----
//! ----
//! first paragraph
//!
//! second paragraph
//! ----
//! ----
//! ```
//!
//! Cases are separated by blank lines. The output of a case ends at the first
//! blank line, unless the separator is doubled (`----` twice), in which case
//! it ends at the next doubled separator and may itself contain blank lines.

mod parse;
mod run;

pub use parse::{parse, CmdArg, TestData};
pub use run::{run_test, walk, Error};
