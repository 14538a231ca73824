//! The faults and their injection: one schedule drawn from the seed, each
//! fault reverted before the next. Some faults are concurrent in
//! themselves (two nodes, or all of them, lose power together), and a
//! membership change is a sequence of steps taken while clients write.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use tokio_util::sync::CancellationToken;

use super::power::PowerMount;
use super::proxy::LinkProxy;
use crate::client::{Client, ClientError};
use crate::cluster::LocalCluster;
use crate::handle::MembershipChange;
use crate::tls::certs::ClusterCa;

/// How long a membership step is retried (the leader moving, a change
/// still pending, a learner catching up) before the change is given up.
const STEP_PATIENCE: Duration = Duration::from_secs(15);

/// The faults the nemesis injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Fault {
    /// SIGKILL a random node, restart it later.
    Kill,
    /// SIGKILL the leader, restart it later.
    KillLeader,
    /// SIGSTOP a random node, SIGCONT it later.
    Pause,
    /// Cut every link to and from one node.
    Isolate,
    /// Cut each directed link with probability 0.3.
    CutLinks,
    /// SIGKILL a random node and drop its unsynced writes (LazyFS).
    PowerLoss,
    /// Power loss on two nodes at once: a majority is down.
    PowerLossTwo,
    /// Power loss on every node at once.
    PowerLossAll,
    /// The leader hands leadership to a random other voter.
    TransferLeader,
    /// Remove a voter (the leader half the time), wipe its disk, and bring
    /// it back under a new id: added as a learner, then promoted.
    Replace,
}

impl Fault {
    /// Whether the fault needs LazyFS.
    fn needs_power(self) -> bool {
        matches!(
            self,
            Fault::PowerLoss | Fault::PowerLossTwo | Fault::PowerLossAll
        )
    }
}

const FAULTS: [Fault; 10] = [
    Fault::Kill,
    Fault::KillLeader,
    Fault::Pause,
    Fault::Isolate,
    Fault::CutLinks,
    Fault::PowerLoss,
    Fault::PowerLossTwo,
    Fault::PowerLossAll,
    Fault::TransferLeader,
    Fault::Replace,
];

/// What the injector works on.
pub struct Target<'a> {
    /// The nodes.
    pub nodes: &'a mut LocalCluster,
    /// One proxy per directed link, by (from, to).
    pub proxies: &'a mut BTreeMap<(u64, u64), LinkProxy>,
    /// Each node's LazyFS mount, when power loss is on.
    pub mounts: &'a mut BTreeMap<u64, PowerMount>,
    /// The id the next replacement node gets.
    pub next_id: u64,
    /// Stops the proxies.
    pub stop: CancellationToken,
}

/// One fault as injected.
#[derive(Debug, Clone, Copy)]
pub struct Injected {
    /// What.
    pub fault: Fault,
    /// When it struck, in microseconds since the clients started.
    pub at_us: u64,
    /// Whether it took the leader away while the rest of the cluster could
    /// elect another (the leader killed, powered off, transferred or
    /// removed), so clients wait for an election.
    pub deposed_leader: bool,
    /// For a power loss of a majority: from the moment every victim is
    /// dead to the restart, when nothing new can be committed.
    pub majority_down_us: Option<(u64, u64)>,
    /// Whether it ran to the end (a membership change can be given up).
    pub completed: bool,
}

/// Injects faults until `stop_at`.
///
/// # Errors
///
/// LazyFS failed to drop a cache: the run cannot claim a power loss.
pub async fn inject(
    target: &mut Target<'_>,
    only: &[Fault],
    rng: &mut StdRng,
    t0: Instant,
    stop_at: Instant,
) -> std::io::Result<Vec<Injected>> {
    let mut injected = Vec::new();
    let power = !target.mounts.is_empty();
    let drawn: Vec<Fault> = FAULTS
        .into_iter()
        .filter(|f| only.is_empty() || only.contains(f))
        .filter(|f| power || !f.needs_power())
        .collect();
    let now_us = || t0.elapsed().as_micros() as u64;
    // Drawn from a shuffled deck of every kind, reshuffled once used up,
    // so even a short run meets most kinds.
    let mut deck: Vec<Fault> = Vec::new();
    while Instant::now() < stop_at && !drawn.is_empty() {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(200..1_000))).await;
        if deck.is_empty() {
            deck = drawn.clone();
            deck.shuffle(rng);
        }
        let fault = deck.pop().expect("refilled when empty");
        let ids = target.nodes.ids();
        let victim = ids[rng.gen_range(0..ids.len())];
        let hold = Duration::from_millis(rng.gen_range(300..2_500));
        let leader_before = leader(target.nodes).await;
        let mut at_us = now_us();
        let mut deposed_leader = false;
        let mut majority_down_us = None;
        let mut completed = true;
        match fault {
            Fault::Kill | Fault::KillLeader => {
                let Some(target_id) = leader_or(fault == Fault::KillLeader, leader_before, victim)
                else {
                    continue;
                };
                deposed_leader = leader_before == Some(target_id);
                at_us = now_us();
                target.nodes.kill(target_id);
                tokio::time::sleep(hold).await;
                // A node that cannot be started again shows as not
                // running when the run fails to converge.
                let _ = target.nodes.restart(target_id);
            }
            Fault::PowerLoss | Fault::PowerLossTwo | Fault::PowerLossAll => {
                let count = match fault {
                    Fault::PowerLoss => 1,
                    Fault::PowerLossTwo => 2,
                    _ => ids.len(),
                };
                let mut down = ids.clone();
                while down.len() > count {
                    down.remove(rng.gen_range(0..down.len()));
                }
                let majority_down = 2 * down.len() > ids.len();
                deposed_leader = !majority_down && leader_before.is_some_and(|l| down.contains(&l));
                at_us = now_us();
                lose_power(target, &down)?;
                // From the moment every victim is dead: an append invoked
                // while they were still being killed may commit.
                let cut_us = now_us();
                tokio::time::sleep(hold).await;
                if majority_down {
                    majority_down_us = Some((cut_us, now_us()));
                }
                for id in down {
                    let _ = target.nodes.restart(id);
                }
            }
            Fault::Pause => {
                target.nodes.pause(victim);
                tokio::time::sleep(hold).await;
                target.nodes.resume(victim);
            }
            Fault::Isolate | Fault::CutLinks => {
                let cut: Vec<&LinkProxy> = target
                    .proxies
                    .iter()
                    .filter(|((from, to), _)| match fault {
                        Fault::Isolate => *from == victim || *to == victim,
                        _ => rng.gen_bool(0.3),
                    })
                    .map(|(_, p)| p)
                    .collect();
                cut.iter().for_each(|p| p.set_cut(true));
                tokio::time::sleep(hold).await;
                cut.iter().for_each(|p| p.set_cut(false));
            }
            Fault::TransferLeader => {
                let Some(leader) = leader_before else {
                    continue;
                };
                let others: Vec<u64> = ids.iter().copied().filter(|&id| id != leader).collect();
                let to = others[rng.gen_range(0..others.len())];
                at_us = now_us();
                completed = match Client::connect(target.nodes.api(leader)).await {
                    Ok(mut client) => client.transfer_leader(to).await.is_ok(),
                    Err(_) => false,
                };
                deposed_leader = completed;
                tokio::time::sleep(hold).await;
            }
            Fault::Replace => {
                let Some(old) = leader_or(rng.gen_bool(0.5), leader_before, victim) else {
                    continue;
                };
                deposed_leader = leader_before == Some(old);
                at_us = now_us();
                completed = replace(target, old).await?;
            }
        }
        injected.push(Injected {
            fault,
            at_us,
            deposed_leader,
            majority_down_us,
            completed,
        });
    }
    Ok(injected)
}

/// The leader if `leader_wanted` (none if none is known), else `victim`.
fn leader_or(leader_wanted: bool, leader: Option<u64>, victim: u64) -> Option<u64> {
    if leader_wanted {
        leader
    } else {
        Some(victim)
    }
}

/// SIGKILL, then each node's unsynced writes dropped: a power cut.
fn lose_power(target: &mut Target<'_>, ids: &[u64]) -> std::io::Result<()> {
    for &id in ids {
        target.nodes.kill(id);
    }
    for id in ids {
        target
            .mounts
            .get_mut(id)
            .expect("every node has a mount when power loss is on")
            .lose_power()?;
    }
    Ok(())
}

/// Removes `old`, wipes its disk and brings it back as a new member;
/// returns whether every step went through.
async fn replace(target: &mut Target<'_>, old: u64) -> std::io::Result<bool> {
    if !admin(target.nodes, MembershipChange::Remove { id: old }).await {
        return Ok(false);
    }
    let new = target.next_id;
    target.next_id += 1;
    let mut config = target_config(target, old, new).map_err(std::io::Error::other)?;
    target.nodes.remove(old);
    match target.mounts.remove(&old) {
        Some(mount) => {
            mount.wipe()?;
            target.mounts.insert(new, mount);
        }
        None => {
            std::fs::remove_dir_all(&config.dir)?;
        }
    }
    // New links to and from the new member; the old member's stay, so
    // every address a configuration names is distinct, and the operator
    // names the new member in the others' configurations.
    let listen = config.listen();
    for id in target.nodes.ids() {
        let inbound = LinkProxy::start(listen, target.stop.clone()).await?;
        let outbound =
            LinkProxy::start(target.nodes.config(id).listen(), target.stop.clone()).await?;
        target
            .nodes
            .config_mut(id)
            .peers
            .insert(new, inbound.addr());
        config.peers.insert(id, outbound.addr());
        target.proxies.insert((id, new), inbound);
        target.proxies.insert((new, id), outbound);
    }
    target.nodes.add(config)?;
    let Some(leader) = leader(target.nodes).await else {
        return Ok(false);
    };
    let addr = target.proxies[&(leader, new)].addr();
    if !admin(target.nodes, MembershipChange::AddLearner { id: new, addr }).await {
        return Ok(false);
    }
    Ok(admin(target.nodes, MembershipChange::Promote { id: new }).await)
}

/// The configuration of `new`, a node joining on `old`'s addresses and
/// directory, with a peer certificate of its own from the cluster's CA.
fn target_config(
    target: &Target<'_>,
    old: u64,
    new: u64,
) -> Result<crate::config::NodeConfig, crate::tls::TlsError> {
    let mut config = target.nodes.config(old).clone();
    let listen = config.listen();
    config.peers.clear();
    config.peers.insert(new, listen);
    config.id = new;
    config.join = true;
    if let Some(tls) = &config.peer_tls {
        let ca_dir = tls.ca.parent().unwrap_or(std::path::Path::new("."));
        let cluster = crate::cluster_id::ClusterId::of_name(&config.cluster_name);
        config.peer_tls = Some(ClusterCa::open_or_create(ca_dir)?.issue_node(cluster, new)?);
    }
    Ok(config)
}

/// Asks the leader for `change` until it is applied or [`STEP_PATIENCE`]
/// runs out; retries while the leader moves, a change is pending, or a
/// learner catches up.
async fn admin(nodes: &mut LocalCluster, change: MembershipChange) -> bool {
    let deadline = Instant::now() + STEP_PATIENCE;
    while Instant::now() < deadline {
        if let Some(leader) = leader(nodes).await {
            let asked = tokio::time::timeout(Duration::from_secs(6), async {
                Client::connect(nodes.api(leader))
                    .await?
                    .change_membership(&change)
                    .await
            })
            .await;
            match asked {
                Ok(Ok(_)) => return true,
                Ok(Err(ClientError::Status { body, .. })) if body.contains("does not fit") => {
                    // Already applied by an earlier try whose answer was
                    // lost.
                    return true;
                }
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    false
}

/// The leader the first answering node names.
pub async fn leader(nodes: &mut LocalCluster) -> Option<u64> {
    for id in nodes.ids() {
        let status = tokio::time::timeout(Duration::from_millis(500), async {
            Client::connect(nodes.api(id)).await?.status().await
        })
        .await;
        if let Ok(Ok(s)) = status {
            if s.leader != 0 && nodes.ids().contains(&s.leader) {
                return Some(s.leader);
            }
        }
    }
    None
}
