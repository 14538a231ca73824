//! The simulated network: messages in flight, per-link faults, partitions.
//!
//! Fault model: each directed link drops, duplicates and delays messages
//! with its own rates, drawn from the seed at the start of a run; different
//! delays reorder messages. A link may also deliver a late copy of a
//! message long after the original, as a retransmission stuck in a queue
//! does. Partitions cut directed links (both directions for a symmetric
//! partition, one for a one-way cut) until healed; a message due while its
//! link is cut is lost, one due after the cut heals arrives.

use std::collections::{BTreeMap, BTreeSet};

use raft_proto::eraftpb::Message;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The faults of one directed link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LinkFaults {
    /// Chance, in percent, that a message is dropped.
    pub drop_pct: u32,
    /// Chance, in percent, that a message is delivered twice.
    pub duplicate_pct: u32,
    /// Each message is delayed by 0 to this many ticks.
    pub delay_ticks_max: u64,
    /// Chance, in percent, that a message also arrives again late.
    pub late_copy_pct: u32,
    /// A late copy arrives more than `delay_ticks_max` and at most this
    /// many ticks after it was sent.
    pub late_copy_ticks_max: u64,
}

/// What happened to a message handed to the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// In flight, to arrive at the given tick (twice if duplicated).
    InFlight { at: u64, duplicate: bool },
    /// Lost on the link.
    Dropped,
    /// The link is cut.
    Cut,
}

/// Messages in flight between the nodes.
pub struct Network {
    /// Keyed by (delivery tick, send order): delivery is deterministic.
    in_flight: BTreeMap<(u64, u64), Message>,
    sent: u64,
    links: BTreeMap<(u64, u64), LinkFaults>,
    cut: BTreeSet<(u64, u64)>,
    rng: ChaCha8Rng,
}

impl Network {
    /// A network whose links have the given faults.
    pub fn new(links: BTreeMap<(u64, u64), LinkFaults>, rng: ChaCha8Rng) -> Network {
        Network {
            in_flight: BTreeMap::new(),
            sent: 0,
            links,
            cut: BTreeSet::new(),
            rng,
        }
    }

    /// Hands `msg` to the network at tick `now`.
    pub fn send(&mut self, now: u64, msg: Message) -> Sent {
        let link = (msg.from, msg.to);
        if self.cut.contains(&link) {
            return Sent::Cut;
        }
        let faults = self.links.get(&link).copied().unwrap_or_default();
        if faults.drop_pct > 0 && self.rng.gen_range(0..100) < faults.drop_pct {
            return Sent::Dropped;
        }
        let at = now + self.delay(&faults);
        let duplicate =
            faults.duplicate_pct > 0 && self.rng.gen_range(0..100) < faults.duplicate_pct;
        if duplicate {
            let again = now + self.delay(&faults);
            self.enqueue(again, msg.clone());
        }
        if faults.late_copy_pct > 0 && self.rng.gen_range(0..100) < faults.late_copy_pct {
            let late = self.rng.gen_range(
                faults.delay_ticks_max + 1
                    ..=faults.late_copy_ticks_max.max(faults.delay_ticks_max + 1),
            );
            self.enqueue(now + late, msg.clone());
        }
        self.enqueue(at, msg);
        Sent::InFlight { at, duplicate }
    }

    fn delay(&mut self, faults: &LinkFaults) -> u64 {
        if faults.delay_ticks_max == 0 {
            0
        } else {
            self.rng.gen_range(0..=faults.delay_ticks_max)
        }
    }

    fn enqueue(&mut self, at: u64, msg: Message) {
        self.in_flight.insert((at, self.sent), msg);
        self.sent += 1;
    }

    /// Takes the messages due at or before `now`, in delivery order, as
    /// (arrived, lost): a message whose link was cut while it was in flight
    /// is lost.
    pub fn deliver(&mut self, now: u64) -> (Vec<Message>, Vec<Message>) {
        let later = self.in_flight.split_off(&(now + 1, 0));
        let due = std::mem::replace(&mut self.in_flight, later);
        due.into_values()
            .partition(|m| !self.cut.contains(&(m.from, m.to)))
    }

    /// Cuts exactly these directed links, restoring any others.
    pub fn set_cut(&mut self, links: BTreeSet<(u64, u64)>) {
        self.cut = links;
    }

    /// Makes every link perfect: no cut, loss, duplication or delay.
    pub fn heal_all(&mut self) {
        self.cut.clear();
        self.links.clear();
    }
}

/// The directed links between `side` and the rest of `all`, both ways.
pub fn links_across(side: &[u64], all: &[u64]) -> BTreeSet<(u64, u64)> {
    let mut links = BTreeSet::new();
    for &a in side {
        for &b in all.iter().filter(|b| !side.contains(b)) {
            links.insert((a, b));
            links.insert((b, a));
        }
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn msg(from: u64, to: u64, index: u64) -> Message {
        Message {
            from,
            to,
            index,
            ..Default::default()
        }
    }

    #[test]
    fn messages_arrive_in_delivery_then_send_order() {
        let mut links = BTreeMap::new();
        links.insert(
            (1, 2),
            LinkFaults {
                delay_ticks_max: 3,
                ..Default::default()
            },
        );
        let mut net = Network::new(links, ChaCha8Rng::seed_from_u64(7));
        let mut due: Vec<(u64, u64)> = Vec::new();
        for i in 0..20 {
            if let Sent::InFlight { at, .. } = net.send(0, msg(1, 2, i)) {
                due.push((at, i));
            }
        }
        due.sort();
        let got: Vec<u64> = net.deliver(3).0.iter().map(|m| m.index).collect();
        assert_eq!(got, due.iter().map(|&(_, i)| i).collect::<Vec<_>>());
        assert!(
            got.windows(2).any(|w| w[0] > w[1]),
            "delays reorder messages"
        );
    }

    #[test]
    fn late_copies_arrive_after_every_ordinary_delay() {
        let mut links = BTreeMap::new();
        links.insert(
            (1, 2),
            LinkFaults {
                delay_ticks_max: 2,
                late_copy_pct: 50,
                late_copy_ticks_max: 30,
                ..Default::default()
            },
        );
        let mut net = Network::new(links, ChaCha8Rng::seed_from_u64(5));
        for i in 0..100 {
            net.send(0, msg(1, 2, i));
        }
        let on_time = net.deliver(2).0.len();
        let late = net.deliver(30).0.len();
        assert_eq!(on_time, 100);
        assert!((20..80).contains(&late), "{late} late copies");
    }

    #[test]
    fn partitions_cut_both_ways_and_one_way_cuts_one() {
        let mut net = Network::new(BTreeMap::new(), ChaCha8Rng::seed_from_u64(1));
        net.set_cut(links_across(&[1], &[1, 2, 3]));
        assert_eq!(net.send(0, msg(1, 2, 0)), Sent::Cut);
        assert_eq!(net.send(0, msg(3, 1, 0)), Sent::Cut);
        assert!(matches!(net.send(0, msg(2, 3, 0)), Sent::InFlight { .. }));
        net.set_cut([(2, 3)].into());
        assert_eq!(net.send(0, msg(2, 3, 0)), Sent::Cut);
        assert!(matches!(net.send(0, msg(3, 2, 0)), Sent::InFlight { .. }));
        // 2->3 was in flight when the link was cut: it is lost.
        let (arrived, lost) = net.deliver(0);
        let links = |msgs: Vec<Message>| msgs.iter().map(|m| (m.from, m.to)).collect::<Vec<_>>();
        assert_eq!((links(arrived), links(lost)), (vec![(3, 2)], vec![(2, 3)]));
    }

    #[test]
    fn lossy_links_drop_and_duplicate() {
        let mut links = BTreeMap::new();
        links.insert(
            (1, 2),
            LinkFaults {
                drop_pct: 30,
                duplicate_pct: 30,
                ..Default::default()
            },
        );
        let mut net = Network::new(links, ChaCha8Rng::seed_from_u64(3));
        let outcomes: Vec<Sent> = (0..200).map(|i| net.send(0, msg(1, 2, i))).collect();
        assert!(outcomes.contains(&Sent::Dropped));
        assert!(outcomes.contains(&Sent::InFlight {
            at: 0,
            duplicate: true
        }));
        let delivered = net.deliver(0).0.len();
        let expected = outcomes
            .iter()
            .map(|s| match s {
                Sent::InFlight {
                    duplicate: true, ..
                } => 2,
                Sent::InFlight { .. } => 1,
                _ => 0,
            })
            .sum::<usize>();
        assert_eq!(delivered, expected);
    }
}
