//! Incremental fetch sessions (KIP-227, Fetch v7+): the broker keeps a consumer's partitions and fetch positions, so
//! each fetch names only the partitions whose position changed and each answer carries only the partitions with
//! news (records, an error, a moved high watermark or log start). A consumer of 1,000 partitions no longer sends and
//! receives 1,000 entries per fetch. The Java consumer and kafka-python use sessions whenever the broker grants one.
//!
//! A session lives on the shard whose connection created it, and its id names that shard (`id % shard_count`). A
//! client that reconnects to another shard gets FETCH_SESSION_ID_NOT_FOUND and starts a new session with a full
//! fetch, as after any eviction. The cache holds [`SESSIONS_PER_SHARD_MAX`] sessions and evicts the least recently
//! used one to make room.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use foldhash::HashMapExt;
use kafka_protocol::messages::fetch_request::FetchRequest;
use kafka_protocol::messages::TopicName;

use crate::codes;

type PartitionIndex = foldhash::HashMap<(Arc<str>, i32), usize>;

fn index_of(partitions: &[FetchPosition]) -> PartitionIndex {
    let mut index = PartitionIndex::with_capacity(partitions.len());
    for (i, p) in partitions.iter().enumerate() {
        index.insert((p.topic_key.clone(), p.partition), i);
    }
    index
}

/// Sessions one shard keeps (Kafka's `max.incremental.fetch.session.cache.slots` is 1,000 per broker).
pub const SESSIONS_PER_SHARD_MAX: usize = 1000;

/// One partition of a fetch: where to read and what the client was last told.
#[derive(Debug, Clone)]
pub struct FetchPosition {
    pub topic: TopicName,
    /// The topic's name for the partition ops, shared by the topic's partitions.
    pub topic_key: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    /// The client's `partition_max_bytes`.
    pub partition_max_bytes: usize,
    /// High watermark and log start in the last answer that carried this partition (-1 before the first).
    pub sent_high_watermark: i64,
    pub sent_log_start: i64,
}

/// What a fetch request asks of the session cache, from its `session_id` and `session_epoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionAsk {
    /// A full fetch outside any session (epoch -1); a nonzero id closes that session first.
    Sessionless { close: Option<i32> },
    /// A full fetch that opens a session (epoch 0); a nonzero id closes that session first.
    Open { close: Option<i32> },
    /// An incremental fetch in session `id` at `epoch`.
    Incremental { id: i32, epoch: i32 },
}

impl SessionAsk {
    /// Sessions exist from Fetch v7; older versions and epoch -1 are sessionless.
    pub fn of(version: i16, session_id: i32, session_epoch: i32) -> SessionAsk {
        let close = (session_id != 0).then_some(session_id);
        match (version >= 7, session_epoch) {
            (false, _) | (true, -1) => SessionAsk::Sessionless {
                close: close.filter(|_| version >= 7),
            },
            (true, 0) => SessionAsk::Open { close },
            (true, epoch) => SessionAsk::Incremental {
                id: session_id,
                epoch,
            },
        }
    }
}

struct Session {
    /// In the order the client first named them; a fetch reads and answers them in this order.
    partitions: Vec<FetchPosition>,
    /// Where each partition sits in `partitions`, kept in step with it: an incremental fetch names only the
    /// partitions that moved, and is not worth rebuilding a 1,000-entry map for. foldhash, like the shard's
    /// partition table, since the keys are short.
    index: PartitionIndex,
    /// The epoch the next incremental fetch must carry.
    next_epoch: i32,
    last_used: Instant,
}

/// One shard's sessions.
pub struct FetchSessions {
    shard_id: u32,
    shard_count: u32,
    /// Ids handed out so far; the next id is `shard_id + shard_count * (issued + 1)`, wrapping before `i32::MAX`.
    issued: u32,
    sessions: HashMap<i32, Session>,
    pub evictions_total: u64,
}

impl FetchSessions {
    pub fn new(shard_id: u32, shard_count: u32) -> FetchSessions {
        assert!(
            shard_count > 0 && shard_id < shard_count,
            "shard {shard_id} of {shard_count}"
        );
        FetchSessions {
            shard_id,
            shard_count,
            issued: 0,
            sessions: HashMap::new(),
            evictions_total: 0,
        }
    }

    pub fn count(&self) -> usize {
        self.sessions.len()
    }

    pub fn close(&mut self, id: i32) {
        self.sessions.remove(&id);
    }

    /// Opens a session over `partitions` (a full fetch's), evicting the least recently used one if the cache is
    /// full; returns its id. The next incremental fetch carries epoch 1.
    pub fn open(&mut self, partitions: Vec<FetchPosition>, now: Instant) -> i32 {
        if self.sessions.len() >= SESSIONS_PER_SHARD_MAX {
            let oldest = self
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(id, _)| *id);
            if let Some(id) = oldest {
                self.sessions.remove(&id);
                self.evictions_total += 1;
            }
        }
        let id = self.next_id();
        let session = Session {
            index: index_of(&partitions),
            partitions,
            next_epoch: 1,
            last_used: now,
        };
        self.sessions.insert(id, session);
        id
    }

    fn next_id(&mut self) -> i32 {
        let span = (i32::MAX as u32 - self.shard_id) / self.shard_count;
        loop {
            self.issued = self.issued % span + 1;
            let id = (self.shard_id + self.shard_count * self.issued) as i32;
            if !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    /// Applies an incremental fetch to session `id`: the request's partitions are added or moved to their new
    /// positions, the forgotten ones removed, and the epoch advances. Returns every partition of the session to
    /// read, or the Kafka error code of a session that is gone or a wrong epoch.
    pub fn advance(
        &mut self,
        id: i32,
        epoch: i32,
        request: &FetchRequest,
        now: Instant,
    ) -> Result<Vec<FetchPosition>, i16> {
        let session = self
            .sessions
            .get_mut(&id)
            .ok_or(codes::FETCH_SESSION_ID_NOT_FOUND)?;
        if epoch != session.next_epoch {
            return Err(codes::INVALID_FETCH_SESSION_EPOCH);
        }
        session.next_epoch = if epoch == i32::MAX { 1 } else { epoch + 1 };
        session.last_used = now;
        for wanted in positions(request) {
            let key = (wanted.topic_key.clone(), wanted.partition);
            match session.index.get(&key) {
                Some(&i) => {
                    let known = &mut session.partitions[i];
                    known.offset = wanted.offset;
                    known.partition_max_bytes = wanted.partition_max_bytes;
                }
                None => {
                    session.index.insert(key, session.partitions.len());
                    session.partitions.push(wanted);
                }
            }
        }
        // After the updates, as Kafka's FetchSession.update does: a partition both named and forgotten leaves.
        if !request.forgotten_topics_data.is_empty() {
            let forgotten = |p: &FetchPosition| {
                request
                    .forgotten_topics_data
                    .iter()
                    .any(|f| f.topic == p.topic && f.partitions.contains(&p.partition))
            };
            session.partitions.retain(|p| !forgotten(p));
            session.index = index_of(&session.partitions);
        }
        Ok(session.partitions.clone())
    }

    /// Records what an answer told the client about each partition it carried, for the next incremental answer.
    pub fn sent(&mut self, id: i32, carried: &[FetchPosition]) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return; // closed or evicted while the fetch waited: nothing to remember
        };
        for told in carried {
            let key = (told.topic_key.clone(), told.partition);
            // A partition forgotten by a later fetch while this one waited is no longer the session's.
            if let Some(&i) = session.index.get(&key) {
                let known = &mut session.partitions[i];
                known.sent_high_watermark = told.sent_high_watermark;
                known.sent_log_start = told.sent_log_start;
            }
        }
    }
}

/// The partitions a fetch request names, in request order, as positions not yet told anything.
pub fn positions(request: &FetchRequest) -> Vec<FetchPosition> {
    request
        .topics
        .iter()
        .flat_map(|t| {
            let topic_key: Arc<str> = Arc::from(t.topic.0.as_str());
            t.partitions.iter().map(move |p| FetchPosition {
                topic: t.topic.clone(),
                topic_key: topic_key.clone(),
                partition: p.partition,
                offset: p.fetch_offset,
                partition_max_bytes: p.partition_max_bytes.max(0) as usize,
                sent_high_watermark: -1,
                sent_log_start: -1,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
    use kafka_protocol::protocol::StrBytes;

    fn topic(name: &'static str) -> TopicName {
        TopicName(StrBytes::from_static_str(name))
    }

    fn request(parts: &[(i32, i64)], forgotten: &[i32]) -> FetchRequest {
        let partitions = parts
            .iter()
            .map(|&(p, offset)| {
                FetchPartition::default()
                    .with_partition(p)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)
            })
            .collect();
        FetchRequest::default()
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic("t"))
                .with_partitions(partitions)])
            .with_forgotten_topics_data(if forgotten.is_empty() {
                Vec::new()
            } else {
                vec![ForgottenTopic::default()
                    .with_topic(topic("t"))
                    .with_partitions(forgotten.to_vec())]
            })
    }

    fn each<T>(read: &[FetchPosition], field: impl Fn(&FetchPosition) -> T) -> Vec<T> {
        read.iter().map(field).collect()
    }

    #[test]
    fn the_epoch_and_id_say_what_a_fetch_asks() {
        assert_eq!(
            SessionAsk::of(6, 5, 3),
            SessionAsk::Sessionless { close: None }
        );
        assert_eq!(
            SessionAsk::of(11, 0, -1),
            SessionAsk::Sessionless { close: None }
        );
        assert_eq!(
            SessionAsk::of(11, 5, -1),
            SessionAsk::Sessionless { close: Some(5) }
        );
        assert_eq!(SessionAsk::of(11, 0, 0), SessionAsk::Open { close: None });
        assert_eq!(
            SessionAsk::of(11, 5, 0),
            SessionAsk::Open { close: Some(5) }
        );
        assert_eq!(
            SessionAsk::of(11, 5, 3),
            SessionAsk::Incremental { id: 5, epoch: 3 }
        );
    }

    #[test]
    fn an_incremental_fetch_moves_adds_and_forgets_partitions_in_epoch_order() {
        let now = Instant::now();
        let mut sessions = FetchSessions::new(1, 2);
        let id = sessions.open(positions(&request(&[(0, 0), (1, 0), (2, 0)], &[])), now);
        assert_eq!(id % 2, 1, "the id names its shard");

        let read = sessions
            .advance(id, 1, &request(&[(1, 7), (3, 0)], &[2]), now)
            .unwrap();
        let got: Vec<(i32, i64)> = read.iter().map(|p| (p.partition, p.offset)).collect();
        assert_eq!(got, vec![(0, 0), (1, 7), (3, 0)]);

        assert_eq!(
            sessions
                .advance(id, 1, &request(&[], &[]), now)
                .unwrap_err(),
            codes::INVALID_FETCH_SESSION_EPOCH,
            "an epoch is used once"
        );
        let read = sessions
            .advance(id, 2, &request(&[(3, 9)], &[3]), now)
            .unwrap();
        let got: Vec<i32> = read.iter().map(|p| p.partition).collect();
        assert_eq!(
            got,
            vec![0, 1],
            "named and forgotten in one fetch: forgotten wins"
        );
        let read = sessions
            .advance(id, 3, &request(&[(1, 11), (4, 0)], &[]), now)
            .unwrap();
        assert_eq!(
            each(&read, |p| (p.partition, p.offset)),
            vec![(0, 0), (1, 11), (4, 0)],
            "after a forget, a named partition still moves in place"
        );
        sessions.close(id);
        assert_eq!(
            sessions
                .advance(id, 4, &request(&[], &[]), now)
                .unwrap_err(),
            codes::FETCH_SESSION_ID_NOT_FOUND
        );
    }

    #[test]
    fn what_an_answer_told_is_kept_per_partition() {
        let now = Instant::now();
        let mut sessions = FetchSessions::new(0, 1);
        let id = sessions.open(positions(&request(&[(0, 0), (1, 0)], &[])), now);
        let mut told = sessions.advance(id, 1, &request(&[], &[]), now).unwrap();
        told.truncate(1);
        told[0].sent_high_watermark = 42;
        told[0].sent_log_start = 3;
        sessions.sent(id, &told);
        let read = sessions.advance(id, 2, &request(&[], &[]), now).unwrap();
        assert_eq!(
            each(&read, |p| (p.sent_high_watermark, p.sent_log_start)),
            vec![(42, 3), (-1, -1)]
        );

        // An answer for a partition that a later fetch forgot while it waited changes nothing.
        let mut told = read;
        sessions.advance(id, 3, &request(&[], &[0]), now).unwrap();
        told[0].sent_high_watermark = 99;
        told[1].sent_high_watermark = 7;
        sessions.sent(id, &told);
        let read = sessions.advance(id, 4, &request(&[], &[]), now).unwrap();
        assert_eq!(
            each(&read, |p| (p.partition, p.sent_high_watermark)),
            vec![(1, 7)]
        );
    }

    #[test]
    fn a_full_cache_evicts_the_least_recently_used_session() {
        let start = Instant::now();
        let mut sessions = FetchSessions::new(0, 1);
        let ids: Vec<i32> = (0..SESSIONS_PER_SHARD_MAX)
            .map(|i| {
                sessions.open(
                    Vec::new(),
                    start + std::time::Duration::from_millis(i as u64),
                )
            })
            .collect();
        let later = start + std::time::Duration::from_secs(10);
        sessions
            .advance(ids[0], 1, &request(&[], &[]), later)
            .unwrap();
        let newest = sessions.open(Vec::new(), later);
        assert_eq!(sessions.count(), SESSIONS_PER_SHARD_MAX);
        assert_eq!(sessions.evictions_total, 1);
        assert!(
            !ids.contains(&newest),
            "ids are not reused while in the cache"
        );
        assert!(
            sessions
                .advance(ids[0], 2, &request(&[], &[]), later)
                .is_ok(),
            "used recently, kept"
        );
        assert_eq!(
            sessions
                .advance(ids[1], 1, &request(&[], &[]), later)
                .unwrap_err(),
            codes::FETCH_SESSION_ID_NOT_FOUND,
            "the least recently used went"
        );
    }
}
