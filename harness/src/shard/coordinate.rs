//! Starting shards together and bringing their results back. The process
//! that launched the shards listens; each shard connects, says which it is,
//! measures its clock against the coordinator's (the probe with the
//! shortest round trip), and waits. Once every shard has checked in with a
//! clock within the tolerance, the coordinator announces `start_at` (the next
//! whole second after a lead time, on its clock); each shard starts its load
//! at that instant on its own clock corrected by its offset. After the run a
//! shard sends its whole result back on the same connection: no shared disk.
//!
//! One JSON object per line, both ways.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::results::RunResult;

/// Probes per shard; the one with the shortest round trip sets the offset.
const PROBES: usize = 8;

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ToCoordinator {
    Hello {
        index: usize,
        count: usize,
        sequence: String,
        scenario_sha256: String,
    },
    Ping {
        sent_us: i64,
    },
    Clock {
        offset_ms: f64,
        rtt_ms: f64,
    },
    Result {
        result: Box<RunResult>,
    },
    Failed {
        message: String,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ToShard {
    Pong { coordinator_us: i64 },
    StartAt { unix_ms: i64 },
    Refused { reason: String },
    Received,
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

async fn send<T: Serialize>(w: &mut (impl AsyncWriteExt + Unpin), msg: &T) -> Result<()> {
    let mut line = serde_json::to_vec(msg)?;
    line.push(b'\n');
    w.write_all(&line).await?;
    w.flush().await?;
    Ok(())
}

async fn recv<T: for<'de> Deserialize<'de>>(
    r: &mut (impl AsyncBufReadExt + Unpin),
) -> Result<Option<T>> {
    let mut line = String::new();
    if r.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    Ok(Some(
        serde_json::from_str(&line).context("a message that is not the shard protocol")?,
    ))
}

/// What the coordinator expects of its shards.
#[derive(Clone, Debug)]
pub struct Expect {
    pub count: usize,
    pub sequence: String,
    pub scenario_sha256: String,
    /// A clock further off than this is refused before any load.
    pub tolerance: Duration,
    /// Time between the last check-in and the start, for every shard to hear it.
    pub lead: Duration,
    /// How long shards may take to check in.
    pub gather: Duration,
}

/// How each shard ended: its result, or why there is none.
pub type Outcomes = BTreeMap<usize, std::result::Result<RunResult, String>>;

/// A shard's clock as the coordinator measured it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ClockCheck {
    pub index: usize,
    pub offset_ms: f64,
    pub rtt_ms: f64,
}

enum Event {
    Ready(usize, ClockCheck, mpsc::Sender<ToShard>),
    Refuse(String),
    Done(usize, Box<std::result::Result<RunResult, String>>),
}

pub struct Coordinator {
    listener: TcpListener,
}

impl Coordinator {
    pub async fn bind(addr: &str) -> Result<Coordinator> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} for the shards"))?;
        Ok(Coordinator { listener })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Gathers the shards, starts them together, and waits for each one's
    /// result or failure (a shard whose connection drops is failed, never
    /// started again). `finish` bounds the whole run after the start.
    pub async fn run(
        self,
        want: Expect,
        finish: Duration,
        mut on_start: impl FnMut(SystemTime, &[ClockCheck]),
    ) -> Result<Outcomes> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
        let listener = self.listener;
        let w2 = want.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let tx = tx.clone();
                let want = w2.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve(sock, &want, tx.clone()).await {
                        let _ = tx.send(Event::Refuse(format!("{e:#}")));
                    }
                });
            }
        });
        let mut ready: BTreeMap<usize, (ClockCheck, mpsc::Sender<ToShard>)> = BTreeMap::new();
        let gather_end = tokio::time::Instant::now() + want.gather;
        let outcome = async {
            while ready.len() < want.count {
                let ev = tokio::time::timeout_at(gather_end, rx.recv())
                    .await
                    .map_err(|_| {
                        let absent: Vec<String> = (0..want.count)
                            .filter(|i| !ready.contains_key(i))
                            .map(|i| i.to_string())
                            .collect();
                        anyhow!(
                            "shard(s) {} did not check in within {} s: nothing was started",
                            absent.join(", "),
                            want.gather.as_secs()
                        )
                    })?
                    .ok_or_else(|| anyhow!("the shards' listener stopped"))?;
                match ev {
                    Event::Ready(i, c, s) => {
                        ready.insert(i, (c, s));
                    }
                    Event::Refuse(reason) => bail!("{reason}"),
                    Event::Done(i, r) => bail!(
                        "shard {i} ended before the start: {}",
                        r.err().unwrap_or_default()
                    ),
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = outcome {
            for (_, s) in ready.values() {
                let _ = s
                    .send(ToShard::Refused {
                        reason: format!("the run was called off: {e:#}"),
                    })
                    .await;
            }
            accept.abort();
            return Err(e);
        }
        // The next whole second after the lead, on the coordinator's clock.
        let lead_ms = (now_us() / 1000) + want.lead.as_millis() as i64;
        let start_ms = (lead_ms / 1000 + 1) * 1000;
        let clocks: Vec<ClockCheck> = ready.values().map(|(c, _)| c.clone()).collect();
        on_start(UNIX_EPOCH + Duration::from_millis(start_ms as u64), &clocks);
        for (_, s) in ready.values() {
            let _ = s.send(ToShard::StartAt { unix_ms: start_ms }).await;
        }
        let mut outcomes: Outcomes = BTreeMap::new();
        let end = tokio::time::Instant::now() + finish;
        while outcomes.len() < want.count {
            match tokio::time::timeout_at(end, rx.recv()).await {
                Ok(Some(Event::Done(i, r))) => {
                    outcomes.entry(i).or_insert(*r);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        for i in 0..want.count {
            outcomes
                .entry(i)
                .or_insert_with(|| Err("sent no result before the run's time was up".into()));
        }
        accept.abort();
        Ok(outcomes)
    }
}

/// One shard's connection, on the coordinator's side.
async fn serve(sock: TcpStream, want: &Expect, tx: mpsc::UnboundedSender<Event>) -> Result<()> {
    sock.set_nodelay(true)?;
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    let Some(ToCoordinator::Hello {
        index,
        count,
        sequence,
        scenario_sha256,
    }) = recv(&mut r).await?
    else {
        bail!("a connection that did not say which shard it is");
    };
    let refuse = |reason: String| anyhow!("shard {index}: {reason}");
    if count != want.count || sequence != want.sequence || index >= count {
        let why = format!(
            "is shard {index}/{count} of {sequence}, the run has {} shards ({})",
            want.count, want.sequence
        );
        send(
            &mut w,
            &ToShard::Refused {
                reason: why.clone(),
            },
        )
        .await?;
        return Err(refuse(why));
    }
    if scenario_sha256 != want.scenario_sha256 {
        let why = format!(
            "runs another version of the scenario (sha256 {}, the coordinator's {})",
            &scenario_sha256[..scenario_sha256.len().min(12)],
            &want.scenario_sha256[..want.scenario_sha256.len().min(12)]
        );
        send(
            &mut w,
            &ToShard::Refused {
                reason: why.clone(),
            },
        )
        .await?;
        return Err(refuse(why));
    }
    let clock = loop {
        match recv(&mut r).await? {
            Some(ToCoordinator::Ping { .. }) => {
                send(
                    &mut w,
                    &ToShard::Pong {
                        coordinator_us: now_us(),
                    },
                )
                .await?
            }
            Some(ToCoordinator::Clock { offset_ms, rtt_ms }) => {
                break ClockCheck {
                    index,
                    offset_ms,
                    rtt_ms,
                }
            }
            _ => bail!("shard {index} left before its clock was checked"),
        }
    };
    let tol = want.tolerance.as_secs_f64() * 1000.0;
    if clock.offset_ms.abs() > tol {
        let why = format!(
            "its clock is {:+.1} ms off the coordinator's (tolerance {tol:.0} ms): synchronise it (NTP) \
             or raise --clock-tolerance",
            clock.offset_ms
        );
        send(
            &mut w,
            &ToShard::Refused {
                reason: why.clone(),
            },
        )
        .await?;
        return Err(refuse(why));
    }
    let (stx, mut srx) = mpsc::channel::<ToShard>(4);
    let _ = tx.send(Event::Ready(index, clock, stx));
    // Forward the start (or the refusal) to the shard, then wait for its result.
    match srx.recv().await {
        Some(m @ ToShard::StartAt { .. }) => send(&mut w, &m).await?,
        Some(m) => {
            send(&mut w, &m).await?;
            return Ok(());
        }
        None => return Ok(()),
    }
    let done = match recv::<ToCoordinator>(&mut r).await {
        Ok(Some(ToCoordinator::Result { result })) => {
            let _ = send(&mut w, &ToShard::Received).await;
            Ok(*result)
        }
        Ok(Some(ToCoordinator::Failed { message })) => Err(message),
        Ok(_) => Err("its connection closed before it sent a result (killed?)".to_string()),
        Err(e) => Err(format!("{e:#}")),
    };
    let _ = tx.send(Event::Done(index, Box::new(done)));
    Ok(())
}

/// A shard's side: check in, measure the clock, wait for the start.
pub struct Meeting {
    r: BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
    /// The coordinator's clock minus this machine's.
    pub offset_ms: f64,
    /// The agreed start on the coordinator's clock (the same for every shard).
    pub start_at: SystemTime,
}

impl Meeting {
    /// Checks in with the coordinator at `addr` and returns when the load
    /// must start (on this machine's clock).
    pub async fn join(
        addr: &str,
        index: usize,
        count: usize,
        sequence: &str,
        scenario_sha256: &str,
    ) -> Result<(Meeting, SystemTime)> {
        let mut last = None;
        // The coordinator may still be starting: a few tries over ~10 s.
        let sock = 'connect: {
            for _ in 0..40 {
                match TcpStream::connect(addr).await {
                    Ok(s) => break 'connect s,
                    Err(e) => last = Some(e),
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            bail!(
                "cannot reach the coordinator at {addr}: {}",
                last.map(|e| e.to_string()).unwrap_or_default()
            );
        };
        sock.set_nodelay(true)?;
        let (r, mut w) = sock.into_split();
        let mut r = BufReader::new(r);
        send(
            &mut w,
            &ToCoordinator::Hello {
                index,
                count,
                sequence: sequence.into(),
                scenario_sha256: scenario_sha256.into(),
            },
        )
        .await?;
        let mut best: Option<(f64, f64)> = None;
        for _ in 0..PROBES {
            let t0 = now_us();
            send(&mut w, &ToCoordinator::Ping { sent_us: t0 }).await?;
            let reply: Option<ToShard> = recv(&mut r).await?;
            let t2 = now_us();
            match reply {
                Some(ToShard::Pong { coordinator_us }) => {
                    let rtt = (t2 - t0) as f64 / 1000.0;
                    // The coordinator read its clock about halfway through.
                    let offset = (coordinator_us as f64 - (t0 + t2) as f64 / 2.0) / 1000.0;
                    if best.is_none_or(|(r, _)| rtt < r) {
                        best = Some((rtt, offset));
                    }
                }
                Some(ToShard::Refused { reason }) => {
                    bail!("the coordinator refused this shard: {reason}")
                }
                _ => bail!("the coordinator stopped answering"),
            }
        }
        let (rtt_ms, offset_ms) = best.expect("at least one probe");
        send(&mut w, &ToCoordinator::Clock { offset_ms, rtt_ms }).await?;
        match recv::<ToShard>(&mut r).await? {
            Some(ToShard::StartAt { unix_ms }) => {
                // Coordinator time minus the offset is this machine's time.
                let local_ms = unix_ms as f64 - offset_ms;
                let at = UNIX_EPOCH + Duration::from_secs_f64(local_ms.max(0.0) / 1000.0);
                let start_at = UNIX_EPOCH + Duration::from_millis(unix_ms.max(0) as u64);
                Ok((
                    Meeting {
                        r,
                        w,
                        offset_ms,
                        start_at,
                    },
                    at,
                ))
            }
            Some(ToShard::Refused { reason }) => {
                bail!("the coordinator refused this shard: {reason}")
            }
            _ => bail!("the coordinator closed the connection before the start"),
        }
    }

    /// Sends the shard's result (or its failure) back and waits for receipt.
    pub async fn hand_in(mut self, outcome: std::result::Result<&RunResult, String>) -> Result<()> {
        let msg = match outcome {
            Ok(r) => ToCoordinator::Result {
                result: Box::new(r.clone()),
            },
            Err(message) => ToCoordinator::Failed { message },
        };
        send(&mut self.w, &msg).await?;
        match recv::<ToShard>(&mut self.r).await {
            Ok(Some(ToShard::Received)) | Ok(None) => Ok(()),
            Ok(Some(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Sleeps until `at` on this machine's clock (at once when it has passed).
pub async fn sleep_until(at: SystemTime) {
    if let Ok(d) = at.duration_since(SystemTime::now()) {
        tokio::time::sleep(d).await;
    }
}
