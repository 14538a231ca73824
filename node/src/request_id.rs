//! The keys of the requests a node hands to raft: append and membership
//! proposals (which carry the proposer's id beside the key) and read
//! contexts.
//!
//! A key must never repeat for the node, across restarts too: an entry
//! proposed by an earlier process of the same node can be applied while
//! the new one catches up, and with keys counted from 0 on every boot it
//! answered a new request that drew the same key. Read contexts must also
//! differ between nodes, since the leader drops a read whose context is
//! already pending. So each boot counts from a random point of the 64-bit
//! space (two boots' ranges overlap with probability about
//! `requests / 2^64`), and read contexts carry the node's id.

/// A boot's request keys.
#[derive(Debug)]
pub struct RequestIds {
    node: u64,
    last: u64,
}

impl RequestIds {
    /// The keys of a new boot of node `node`.
    pub fn new(node: u64) -> RequestIds {
        RequestIds {
            node,
            last: rand::random(),
        }
    }

    /// A key not taken before.
    pub fn next_key(&mut self) -> u64 {
        self.last = self.last.wrapping_add(1);
        self.last
    }

    /// A read context no node has used: the node's id, then a new key.
    pub fn next_read_ctx(&mut self) -> Vec<u8> {
        let key = self.next_key();
        [self.node.to_be_bytes(), key.to_be_bytes()].concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restarted_node_does_not_take_its_earlier_keys_again() {
        let mut before = RequestIds::new(1);
        let taken: Vec<u64> = (0..1000).map(|_| before.next_key()).collect();
        let mut after = RequestIds::new(1);
        assert!((0..1000).all(|_| !taken.contains(&after.next_key())));
    }

    #[test]
    fn read_contexts_of_different_nodes_differ() {
        let (mut one, mut two) = (RequestIds::new(1), RequestIds::new(2));
        two.last = one.last;
        assert_ne!(one.next_read_ctx(), two.next_read_ctx());
    }
}
