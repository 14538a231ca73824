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

use slog::Logger;

use crate::eraftpb::Message;
use crate::{HashMap, HashSet};

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
    ///
    /// Fork: the leader answers at once only within its lease, which ends
    /// `election_timeout - 1` of its ticks after it sent the newest
    /// heartbeat round a quorum of voters acknowledged; other reads go
    /// through a ReadIndex round, as with `Safe`. The bound assumes every
    /// node ticks at the same rate: a leader whose ticks come late (a
    /// stalled loop, a ticker that pauses) holds its lease longer in real
    /// time.
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

// Fork: after etcd-io/raft#397, the leader confirms a read by its position
// in the order of reads, not by its context. Each read gets the next
// position; the heartbeat context is the position of the newest pending
// read (followers echo it unchanged), and a response acknowledges every
// read up to that position. With the read's own context as the heartbeat
// context, a late response from an earlier, answered round confirmed a new
// request that reused the context, on a deposed leader: a stale read.
// 0.7.0's fields and methods stay, with their meaning: `acks` holds the
// voters that acknowledged the read, and the queue keeps arrival order.

#[derive(Default, Debug, Clone)]
pub struct ReadIndexStatus {
    pub req: Message,
    pub index: u64,
    pub acks: HashSet<u64>,
    /// The read's position: positions only grow within a leader's term.
    position: u64,
}

#[derive(Default, Debug, Clone)]
pub struct ReadOnly {
    pub option: ReadOnlyOption,
    pub pending_read_index: HashMap<Vec<u8>, ReadIndexStatus>,
    pub read_index_queue: VecDeque<Vec<u8>>,
    /// The position given to the newest read.
    last_position: u64,
}

impl ReadOnly {
    pub fn new(option: ReadOnlyOption) -> ReadOnly {
        ReadOnly {
            option,
            pending_read_index: HashMap::default(),
            read_index_queue: VecDeque::new(),
            last_position: 0,
        }
    }

    /// Adds a read only request into readonly struct.
    ///
    /// `index` is the commit index of the raft state machine when it received
    /// the read only request.
    ///
    /// `m` is the original read only request message from the local or remote node.
    pub fn add_request(&mut self, index: u64, req: Message, self_id: u64) {
        let ctx = {
            let key: &[u8] = req.entries[0].data.as_ref();
            if self.pending_read_index.contains_key(key) {
                return;
            }
            key.to_vec()
        };
        let mut acks = HashSet::<u64>::default();
        acks.insert(self_id);
        self.last_position += 1;
        let status = ReadIndexStatus {
            req,
            index,
            acks,
            position: self.last_position,
        };
        self.pending_read_index.insert(ctx.clone(), status);
        self.read_index_queue.push_back(ctx);
    }

    /// Notifies the ReadOnly struct that the raft state machine received
    /// an acknowledgment of the heartbeat that attached with the read only request
    /// context.
    // Fork: raft itself acknowledges reads by position; an ack added here
    // for one read alone can delay confirming the reads before it.
    pub fn recv_ack(&mut self, id: u64, ctx: &[u8]) -> Option<&HashSet<u64>> {
        self.pending_read_index.get_mut(ctx).map(|rs| {
            rs.acks.insert(id);
            &rs.acks
        })
    }

    /// Advances the read only request queue kept by the ReadOnly struct.
    /// It dequeues the requests until it finds the read only request that has
    /// the same context as the given `ctx`.
    pub fn advance(&mut self, ctx: &[u8], logger: &Logger) -> Vec<ReadIndexStatus> {
        let mut rss = vec![];
        if let Some(i) = self.read_index_queue.iter().position(|x| {
            if !self.pending_read_index.contains_key(x) {
                fatal!(logger, "cannot find correspond read state from pending map");
            }
            *x == ctx
        }) {
            for _ in 0..=i {
                let rs = self.read_index_queue.pop_front().unwrap();
                let status = self.pending_read_index.remove(&rs).unwrap();
                rss.push(status);
            }
        }
        rss
    }

    /// Returns the context of the last pending read only request in ReadOnly struct.
    pub fn last_pending_request_ctx(&self) -> Option<Vec<u8>> {
        self.read_index_queue.back().cloned()
    }

    #[inline]
    pub fn pending_read_count(&self) -> usize {
        self.read_index_queue.len()
    }

    /// The position given to the newest read: a heartbeat carrying it
    /// confirms every read pending now, and none added later.
    pub(crate) fn last_position(&self) -> u64 {
        self.last_position
    }

    /// The heartbeat context that asks for acknowledgement of every pending
    /// read: the newest one's position, as 8 little-endian bytes.
    pub(crate) fn heartbeat_ctx(&self) -> Option<Vec<u8>> {
        if self.read_index_queue.is_empty() {
            return None;
        }
        Some(self.last_position.to_le_bytes().to_vec())
    }

    /// Notes that `id` acknowledged a heartbeat whose context is `ctx`: if
    /// that is a read position, every pending read up to it has `id` in its
    /// `acks`. Any other context acknowledges nothing. Raft alone puts a node
    /// in the acks of a read only with every earlier one, so the reads `id`
    /// acknowledged before are a prefix of the queue, found by binary search,
    /// and only the reads after it are visited.
    pub(crate) fn recv_position_ack(&mut self, id: u64, ctx: &[u8]) {
        let Ok(position) = <[u8; 8]>::try_from(ctx) else {
            return;
        };
        let position = u64::from_le_bytes(position);
        let acked_by_id = |ctx: &Vec<u8>| {
            self.pending_read_index
                .get(ctx)
                .map_or(true, |status| status.acks.contains(&id))
        };
        let first = self.read_index_queue.partition_point(acked_by_id);
        for ctx in self.read_index_queue.range(first..) {
            match self.pending_read_index.get_mut(ctx) {
                Some(status) if status.position <= position => status.acks.insert(id),
                _ => break,
            };
        }
    }

    /// Dequeues and returns, oldest first, the longest prefix of pending
    /// reads whose `acks` each `has_quorum`. Raft alone puts a node in the
    /// acks of a read only with every earlier one, so those are all the
    /// reads a quorum acknowledged.
    pub(crate) fn take_confirmed(
        &mut self,
        has_quorum: impl Fn(&HashSet<u64>) -> bool,
    ) -> Vec<ReadIndexStatus> {
        let confirmed = self
            .read_index_queue
            .iter()
            .take_while(|ctx| {
                self.pending_read_index
                    .get(*ctx)
                    .is_some_and(|status| has_quorum(&status.acks))
            })
            .count();
        self.read_index_queue
            .drain(..confirmed)
            .filter_map(|ctx| self.pending_read_index.remove(&ctx))
            .collect()
    }
}
