//! The nemesis's clients: appends (70%) and linearizable reads (30%) to
//! random nodes, each recorded in the history with its invocation and
//! completion.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::Rng;

use super::history::{Op, OpKind, Outcome};
use crate::client::{Client, ClientError};

/// Client operations wait this long for an answer before counting as
/// unknown.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(3);
/// Records asked for by one read.
const READ_MAX: usize = 50;

/// One client: appends (70%) and linearizable reads (30%) to random nodes,
/// one at a time, each recorded with its invocation and completion.
pub async fn client_loop(
    client: usize,
    apis: Vec<SocketAddr>,
    mut rng: StdRng,
    history: Arc<Mutex<Vec<Op>>>,
    t0: Instant,
    stop_at: Instant,
) {
    let mut connections: BTreeMap<SocketAddr, Client> = BTreeMap::new();
    let mut seen_end = 0;
    let mut n = 0;
    while Instant::now() < stop_at {
        let api = apis[rng.gen_range(0..apis.len())];
        let invoke_us = t0.elapsed().as_micros() as u64;
        let kind = if rng.gen_bool(0.7) {
            let value = format!("c{client}-{n}");
            n += 1;
            let records = vec![value.clone()];
            let answer = tokio::time::timeout(CLIENT_TIMEOUT, async {
                connection(&mut connections, api)
                    .await?
                    .append(records)
                    .await
            })
            .await;
            let result = classify(answer, &mut connections, api).map(|a| a.offset);
            OpKind::Append { value, result }
        } else {
            let from = rng.gen_range(0..=seen_end);
            let answer = tokio::time::timeout(CLIENT_TIMEOUT, async {
                connection(&mut connections, api)
                    .await?
                    .read(from, READ_MAX, true)
                    .await
            })
            .await;
            let result = classify(answer, &mut connections, api);
            if let Outcome::Ok(read) = &result {
                seen_end = seen_end.max(read.end);
            }
            OpKind::Read {
                from,
                max: READ_MAX,
                result,
            }
        };
        let complete_us = t0.elapsed().as_micros() as u64;
        let answered = matches!(
            kind,
            OpKind::Append {
                result: Outcome::Ok(_),
                ..
            } | OpKind::Read {
                result: Outcome::Ok(_),
                ..
            }
        );
        history
            .lock()
            .expect("no client panics holding it")
            .push(Op {
                invoke_us,
                complete_us,
                kind,
            });
        if !answered {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn connection(
    connections: &mut BTreeMap<SocketAddr, Client>,
    api: SocketAddr,
) -> Result<&mut Client, ClientError> {
    Ok(match connections.entry(api) {
        Entry::Occupied(e) => e.into_mut(),
        Entry::Vacant(e) => e.insert(Client::connect(api).await?),
    })
}

/// A refusal for want of a leader is definite (raft never saw the
/// request); anything else without an answer may have taken effect. A
/// broken or timed-out connection is dropped.
fn classify<T>(
    answer: Result<Result<T, ClientError>, tokio::time::error::Elapsed>,
    connections: &mut BTreeMap<SocketAddr, Client>,
    api: SocketAddr,
) -> Outcome<T> {
    match answer {
        Ok(Ok(answer)) => Outcome::Ok(answer),
        Ok(Err(e))
            if e.status().is_some_and(|s| s.as_u16() == 503)
                && e.to_string().contains("no leader") =>
        {
            Outcome::Failed
        }
        Ok(Err(e)) => {
            if e.status().is_none() {
                connections.remove(&api);
            }
            Outcome::Unknown
        }
        Err(_) => {
            connections.remove(&api);
            Outcome::Unknown
        }
    }
}
