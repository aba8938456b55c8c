//! A bare hyper HTTP/1.1 client, shaped like loadtest's engine (one thread per
//! core, each a current-thread runtime, one kept-alive connection per virtual
//! user, one request at a time on it) with everything else left out: no
//! latency histograms, no checks, no timeouts, no per-second windows. What it
//! spends per request is the floor the engine's own work sits on.
//!
//! hyper-floor ADDR PATH CONNECTIONS SECONDS  -> prints the requests completed

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: hyper-floor ADDR PATH CONNECTIONS SECONDS");
        std::process::exit(2);
    }
    let addr: SocketAddr = args[1].parse().expect("ADDR is host:port");
    let path = args[2].clone();
    let conns: usize = args[3].parse().expect("CONNECTIONS");
    let secs: u64 = args[4].parse().expect("SECONDS");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(conns);
    let done = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs(secs);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (done, path) = (done.clone(), path.clone());
            let mine = conns / threads + usize::from(t < conns % threads);
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let local = tokio::task::LocalSet::new();
                local.block_on(&rt, async move {
                    let tasks: Vec<_> = (0..mine)
                        .map(|_| {
                            let (done, path) = (done.clone(), path.clone());
                            tokio::task::spawn_local(async move {
                                let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
                                tcp.set_nodelay(true).unwrap();
                                let (mut tx, conn) =
                                    hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
                                tokio::task::spawn_local(conn);
                                let host = addr.to_string();
                                let mut n = 0;
                                while Instant::now() < end {
                                    let req = Request::get(path.as_str())
                                        .header(hyper::header::HOST, host.as_str())
                                        .body(Empty::<Bytes>::new())
                                        .unwrap();
                                    let res = tx.send_request(req).await.unwrap();
                                    let mut body = res.into_body();
                                    while let Some(f) = body.frame().await {
                                        f.unwrap();
                                    }
                                    n += 1;
                                }
                                done.fetch_add(n, Ordering::Relaxed);
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                });
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    println!("{}", done.load(Ordering::Relaxed));
}
