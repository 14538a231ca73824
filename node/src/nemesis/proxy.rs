//! A userspace TCP proxy on one directed peer link (loopback only, no
//! root): the nemesis partitions the cluster by cutting proxies, without
//! touching the nodes.

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// One link: connections accepted at `addr` are forwarded to the target
/// until the link is cut.
pub struct LinkProxy {
    addr: SocketAddr,
    cut: watch::Sender<bool>,
}

impl LinkProxy {
    /// Listens on a free loopback port and forwards to `target` until
    /// `stop`.
    ///
    /// # Errors
    ///
    /// The listener cannot be bound.
    pub async fn start(target: SocketAddr, stop: CancellationToken) -> io::Result<LinkProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (cut, cut_rx) = watch::channel(false);
        tokio::spawn(async move {
            loop {
                let inbound = tokio::select! {
                    _ = stop.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((s, _)) => s,
                        Err(_) => continue,
                    },
                };
                // A cut link accepts and closes at once, as a dropped
                // connection looks to the sender.
                if *cut_rx.borrow() {
                    continue;
                }
                tokio::spawn(forward(inbound, target, cut_rx.clone(), stop.clone()));
            }
        });
        Ok(LinkProxy { addr, cut })
    }

    /// Where the sending node dials.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Cuts the link (closing its open connections) or heals it.
    pub fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}

async fn forward(
    mut inbound: TcpStream,
    target: SocketAddr,
    mut cut: watch::Receiver<bool>,
    stop: CancellationToken,
) {
    let Ok(mut outbound) = TcpStream::connect(target).await else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = cut.wait_for(|&c| c) => {}
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_cut_link_closes_its_connections_and_refuses_new_ones() {
        let stop = CancellationToken::new();
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = echo.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = echo.accept().await.unwrap();
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        let proxy = LinkProxy::start(target, stop.clone()).await.unwrap();
        let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
        c.write_all(b"ping").await.unwrap();
        let mut buf = [0; 4];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");

        proxy.set_cut(true);
        assert_eq!(
            c.read(&mut buf).await.unwrap(),
            0,
            "the open connection is closed"
        );
        let mut late = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(
            late.read(&mut buf).await.unwrap_or(0),
            0,
            "a new one is closed at once"
        );

        proxy.set_cut(false);
        let mut healed = TcpStream::connect(proxy.addr()).await.unwrap();
        healed.write_all(b"pong").await.unwrap();
        healed.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
        stop.cancel();
    }
}
