//! What the relations service keeps between calls, and the change feeds
//! that keep it fresh.
//!
//! It keeps the parts of its answers read from the tariff and dispute
//! services — a brief's measures with their trade, its disputes with their
//! stages, the worth of a commitment — and nothing read from the dialogue
//! service, whose sessions no feed streams: those are read on every call.
//! While it keeps anything it watches the feeds of what it keeps
//! (`WatchMeasures` and `WatchTradeFlows` of the tariff service,
//! `WatchDisputes` of the dispute service), resuming each from its last
//! token. Every change any of them streams, and every stream lost or made
//! again, moves one generation; a kept part is answered only while every
//! stream is up and the generation is the one it was read at, and a part read
//! while a change arrived is not kept. So no answer is older than the feed
//! position the service has seen. Without its streams (a peer down, a
//! stream cut, or one silent past its heartbeat) it keeps nothing and reads
//! every part afresh.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::StreamExt as _;
use tokio::sync::watch;
use tradewatch_common::proto::{
    dispute::{self as dpb, dispute_service_client::DisputeServiceClient},
    tariff::{self as tpb, tariff_service_client::TariffServiceClient},
};

use crate::peers::Peers;

/// The feeds watched.
#[derive(Debug, Clone, Copy)]
enum Stream {
    Measures,
    TradeFlows,
    Disputes,
}

const STREAMS: [Stream; 3] = [Stream::Measures, Stream::TradeFlows, Stream::Disputes];

/// The longest wait before a lost stream is opened again.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A feed sends a heartbeat at least every 30 s without a change
/// (`feed.heartbeat_secs` is at most 30): a stream silent for longer is
/// taken as lost — its peer hung, or the path to it — and opened again, so a
/// replica that stopped answering cannot hold stale parts kept.
const SILENCE: Duration = Duration::from_secs(35);

/// Whether what was kept is still fresh.
pub struct Freshness {
    generation: AtomicU64,
    live: [AtomicBool; 3],
}

impl Freshness {
    /// Starts watching the feeds of `peers` until `stopping` turns true.
    pub fn watch(peers: &Peers, stopping: watch::Receiver<bool>) -> Arc<Self> {
        let fresh = Arc::new(Self { generation: AtomicU64::new(0), live: Default::default() });
        for (i, stream) in STREAMS.into_iter().enumerate() {
            tokio::spawn(follow(stream, i, peers.clone(), fresh.clone(), stopping.clone()));
        }
        fresh
    }

    /// The generation now, when every stream is up; None when one is not
    /// (then nothing read now may be kept).
    pub fn mark(&self) -> Option<u64> {
        let generation = self.generation.load(Ordering::SeqCst);
        self.live.iter().all(|l| l.load(Ordering::SeqCst)).then_some(generation)
    }

    fn moved(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

/// Follows one feed: every change moves the generation; a lost stream is
/// opened again after a backoff, from the last token (or from now, when the
/// token expired).
async fn follow(stream: Stream, i: usize, peers: Peers, fresh: Arc<Freshness>, mut stopping: watch::Receiver<bool>) {
    let mut token = String::new();
    let mut backoff = Duration::from_millis(100);
    loop {
        if *stopping.borrow() {
            return;
        }
        let opened = tokio::select! {
            opened = open(stream, &peers, &token) => opened,
            _ = stopping.changed() => return,
        };
        match opened {
            Ok(mut responses) => {
                fresh.live[i].store(true, Ordering::SeqCst);
                fresh.moved();
                backoff = Duration::from_millis(100);
                loop {
                    let next = tokio::select! {
                        next = tokio::time::timeout(SILENCE, responses.next()) => next,
                        _ = stopping.changed() => return,
                    };
                    let Ok(next) = next else {
                        tracing::warn!(?stream, "a watched feed sent nothing for {SILENCE:?}; opening it again");
                        break;
                    };
                    match next {
                        Some(Ok((resume_token, changed))) => {
                            if changed {
                                fresh.moved();
                            }
                            token = resume_token;
                        }
                        Some(Err(status)) => {
                            tracing::debug!(?stream, code = ?status.code(), "a watched feed ended; opening it again");
                            if status.code() == tonic::Code::OutOfRange {
                                token.clear();
                            }
                            break;
                        }
                        None => break,
                    }
                }
                fresh.live[i].store(false, Ordering::SeqCst);
                fresh.moved();
            }
            Err(status) => {
                tracing::debug!(?stream, code = ?status.code(), error = %status.message(), "cannot watch a feed yet");
                if status.code() == tonic::Code::OutOfRange || status.code() == tonic::Code::InvalidArgument {
                    token.clear();
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stopping.changed() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One watched stream, as (resume token, whether it carried a change).
type Responses = std::pin::Pin<Box<dyn futures::Stream<Item = Result<(String, bool), tonic::Status>> + Send>>;

async fn open(stream: Stream, peers: &Peers, token: &str) -> Result<Responses, tonic::Status> {
    let token = token.to_owned();
    Ok(match stream {
        Stream::Measures => {
            let req =
                peers.tariff.stream_request(tpb::WatchMeasuresRequest { start_after: token, ..Default::default() });
            let s = TariffServiceClient::new(peers.tariff.channel()).watch_measures(req).await?.into_inner();
            Box::pin(s.map(|r| r.map(|r| (r.resume_token, r.change.is_some()))))
        }
        Stream::TradeFlows => {
            let req =
                peers.tariff.stream_request(tpb::WatchTradeFlowsRequest { start_after: token, ..Default::default() });
            let s = TariffServiceClient::new(peers.tariff.channel()).watch_trade_flows(req).await?.into_inner();
            Box::pin(s.map(|r| r.map(|r| (r.resume_token, r.change.is_some()))))
        }
        Stream::Disputes => {
            let req =
                peers.dispute.stream_request(dpb::WatchDisputesRequest { start_after: token, ..Default::default() });
            let s = DisputeServiceClient::new(peers.dispute.channel()).watch_disputes(req).await?.into_inner();
            Box::pin(s.map(|r| r.map(|r| (r.resume_token, r.change.is_some()))))
        }
    })
}

/// Answers kept by key, each with the generation it was read at.
pub struct Kept<K, V> {
    fresh: Arc<Freshness>,
    entries: Mutex<HashMap<K, (u64, Arc<V>)>>,
}

/// Entries kept at most in one [`Kept`]; past it, it starts again empty.
const KEPT: usize = 10_000;

impl<K: Eq + Hash, V> Kept<K, V> {
    pub fn new(fresh: Arc<Freshness>) -> Self {
        Self { fresh, entries: Mutex::new(HashMap::new()) }
    }

    /// The answer kept for `key`, if it is still fresh.
    pub fn get(&self, key: &K) -> Option<Arc<V>> {
        let now = self.fresh.mark()?;
        let entries = self.entries.lock().ok()?;
        entries.get(key).filter(|(at, _)| *at == now).map(|(_, v)| v.clone())
    }

    /// Keeps `value`, read from `mark` on (a [`Freshness::mark`] taken
    /// before the read), unless something changed since.
    pub fn put(&self, key: K, mark: Option<u64>, value: Arc<V>) {
        let Some(mark) = mark else { return };
        if self.fresh.mark() != Some(mark) {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= KEPT {
                entries.clear();
            }
            entries.retain(|_, (at, _)| *at == mark);
            entries.insert(key, (mark, value));
        }
    }

    /// The freshness this keeps by.
    pub fn mark(&self) -> Option<u64> {
        self.fresh.mark()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(live: bool) -> Arc<Freshness> {
        let f = Arc::new(Freshness { generation: AtomicU64::new(0), live: Default::default() });
        for l in &f.live {
            l.store(live, Ordering::SeqCst);
        }
        f
    }

    #[test]
    fn a_kept_answer_lasts_until_the_next_change() {
        let f = fresh(true);
        let kept: Kept<&str, u32> = Kept::new(f.clone());
        let mark = kept.mark();
        kept.put("brief", mark, Arc::new(1));
        assert_eq!(kept.get(&"brief").as_deref(), Some(&1));
        f.moved();
        assert_eq!(kept.get(&"brief"), None, "a change since");
        // Read before a change, kept after it: not kept.
        let before = kept.mark();
        f.moved();
        kept.put("brief", before, Arc::new(2));
        assert_eq!(kept.get(&"brief"), None);
    }

    #[test]
    fn nothing_is_kept_without_every_stream() {
        let f = fresh(true);
        f.live[1].store(false, Ordering::SeqCst);
        let kept: Kept<&str, u32> = Kept::new(f.clone());
        kept.put("brief", kept.mark(), Arc::new(1));
        assert_eq!(kept.get(&"brief"), None);
        assert_eq!(f.mark(), None);
    }
}
