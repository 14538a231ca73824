// Copyright 2019 TiKV Project Authors. Licensed under Apache-2.0.

// Copyright 2016 The etcd Authors
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
//     http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

use std::collections::VecDeque;

use slog::{debug, Logger};

use crate::eraftpb::Message;
use crate::quorum::joint::Configuration as JointConfig;
use crate::quorum::AckIndexer;

/// Determines the relative safety of and consistency of read only requests.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum ReadOnlyOption {
    /// Safe guarantees the linearizability of the read only request by
    /// communicating with the quorum. It is the default and suggested option.
    Safe,
    /// LeaseBased ensures linearizability of the read only request by
    /// relying on the leader lease. It can be affected by clock drift.
    /// If the clock drift is unbounded, leader might keep the lease longer than it
    /// should (clock can move backward/pause without any bound). ReadIndex is not safe
    /// in that case.
    LeaseBased,
}

impl Default for ReadOnlyOption {
    fn default() -> ReadOnlyOption {
        ReadOnlyOption::Safe
    }
}

/// ReadState provides state for read only query.
/// It's caller's responsibility to send MsgReadIndex first before getting
/// this state from ready. It's also caller's duty to differentiate if this
/// state is what it requests through request_ctx, e.g. given a unique id as
/// request_ctx.
#[derive(Default, Debug, PartialEq, Eq, Clone)]
pub struct ReadState {
    /// The index of the read state.
    pub index: u64,
    /// A datagram consisting of context about the request.
    pub request_ctx: Vec<u8>,
}

// Fork: after etcd-io/raft#397, a read is confirmed by its position in the
// order of reads, not by its own context: the leader sends the position of
// its newest unconfirmed read as the heartbeat context (followers echo it
// unchanged) and a response confirms every read up to it. With the read's
// own context, a late response from an earlier, answered round confirmed a
// new request that reused the context, on a deposed leader (a stale read).
#[derive(Default, Debug, Clone)]
pub struct ReadIndexStatus {
    pub req: Message,
    pub index: u64,
}

#[derive(Default, Debug, Clone)]
pub struct ReadOnly {
    pub option: ReadOnlyOption,
    /// For each voter, the highest read position its heartbeat responses
    /// acknowledged.
    pub acks: AckIndexer,
    /// Reads not confirmed yet, oldest first; the first has position
    /// `confirmed_reads + 1`.
    pub unconfirmed_reads: VecDeque<ReadIndexStatus>,
    /// How many reads were confirmed, and removed from the front of
    /// `unconfirmed_reads`.
    pub confirmed_reads: u64,
}

impl ReadOnly {
    pub fn new(option: ReadOnlyOption) -> ReadOnly {
        ReadOnly {
            option,
            ..Default::default()
        }
    }

    /// Adds a read only request into readonly struct.
    ///
    /// `index` is the commit index of the raft state machine when it received
    /// the read only request.
    ///
    /// `m` is the original read only request message from the local or remote node.
    /// A request whose context is already unconfirmed is dropped, as in
    /// 0.7.0: the earlier one's answer carries that context.
    pub fn add_request(&mut self, index: u64, req: Message, logger: &Logger) {
        let ctx = &req.entries[0].data[..];
        if self
            .unconfirmed_reads
            .iter()
            .any(|read| read.req.entries[0].data[..] == *ctx)
        {
            return;
        }
        self.unconfirmed_reads
            .push_back(ReadIndexStatus { req, index });
        debug!(
            logger,
            #"fork-patch",
            "fork patch 0018: read {} waits for acknowledgements of its position",
            self.confirmed_reads + self.unconfirmed_reads.len() as u64
        );
    }

    /// Notifies the ReadOnly struct that `id` acknowledged a heartbeat whose
    /// context is a read position (see `heartbeat_ctx`).
    pub fn recv_ack(&mut self, id: u64, ctx: &[u8]) {
        let Ok(position) = <[u8; 8]>::try_from(ctx) else {
            return;
        };
        let position = u64::from_le_bytes(position);
        let acked = self.acks.entry(id).or_default();
        acked.index = acked.index.max(position);
    }

    /// Confirms and returns the unconfirmed reads, oldest first, whose
    /// positions a quorum of `voters` acknowledged.
    pub fn maybe_advance(&mut self, voters: &JointConfig) -> Vec<ReadIndexStatus> {
        let (acked, _) = voters.committed_index(false, &self.acks);
        // No response can acknowledge a read that was never sent; bound it
        // anyway, so a garbled context cannot make the drain below panic.
        let newest = self.confirmed_reads + self.unconfirmed_reads.len() as u64;
        let confirmed = acked.min(newest);
        if confirmed <= self.confirmed_reads {
            return Vec::new();
        }
        let newly = (confirmed - self.confirmed_reads) as usize;
        self.confirmed_reads = confirmed;
        self.unconfirmed_reads.drain(..newly).collect()
    }

    /// The heartbeat context that confirms every unconfirmed read: the
    /// position of the newest, if any.
    pub fn heartbeat_ctx(&self) -> Option<Vec<u8>> {
        if self.unconfirmed_reads.is_empty() {
            return None;
        }
        let newest = self.confirmed_reads + self.unconfirmed_reads.len() as u64;
        Some(newest.to_le_bytes().to_vec())
    }

    #[inline]
    pub fn pending_read_count(&self) -> usize {
        self.unconfirmed_reads.len()
    }
}
