//! Committed offsets: OffsetCommit, OffsetFetch and OffsetDelete on the coordinator shard.
//!
//! A commit is checked against the group's membership (a simple consumer commits with generation -1 and no
//! member id), appended as one batch and applied to memory in the same step, and answered once durable.

use bytes::Bytes;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartitions, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::codes::*;
use super::coordinator::Coordinator;
use super::records::{GroupRecord, OffsetValue};
use super::state::{Group, Phase};
use super::store;
use crate::codes::NONE;
use crate::partition_ops::now_ms;

/// Largest metadata string a commit may carry (Kafka `offset.metadata.max.bytes`).
pub const OFFSET_METADATA_BYTES_MAX: usize = 4096;

/// The OffsetCommit answer that gives every partition of the request `error_code`.
pub fn commit_error(request: &OffsetCommitRequest, error_code: i16) -> OffsetCommitResponse {
    commit_response(request, |_, _| error_code)
}

fn commit_response(
    request: &OffsetCommitRequest,
    code: impl Fn(usize, usize) -> i16,
) -> OffsetCommitResponse {
    let topics = request
        .topics
        .iter()
        .enumerate()
        .map(|(t, topic)| {
            OffsetCommitResponseTopic::default()
                .with_name(topic.name.clone())
                .with_topic_id(topic.topic_id)
                .with_partitions(
                    topic
                        .partitions
                        .iter()
                        .enumerate()
                        .map(|(p, part)| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(part.partition_index)
                                .with_error_code(code(t, p))
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

impl Coordinator {
    pub(super) async fn commit(&self, request: OffsetCommitRequest) -> OffsetCommitResponse {
        let group_id = request.group_id.0.to_string();
        let Some((log, epoch)) = self.log_of(&group_id) else {
            return commit_error(&request, NOT_COORDINATOR);
        };
        let generation = request.generation_id_or_member_epoch;
        let written = {
            let mut groups = self.groups.borrow_mut();
            if !groups.contains_key(&group_id) {
                if generation >= 0 {
                    return commit_error(&request, ILLEGAL_GENERATION);
                }
                groups.insert(group_id.clone(), Group::new(&group_id));
            }
            let group = groups.get_mut(&group_id).expect("inserted above");
            let check = group.check_commit(
                self.now(),
                &request.member_id,
                request.group_instance_id.as_deref(),
                generation,
            );
            if check != NONE {
                return commit_error(&request, check);
            }
            let now = now_ms();
            let mut records = Vec::new();
            for topic in &request.topics {
                for p in &topic.partitions {
                    let metadata = p.committed_metadata.as_deref().unwrap_or("");
                    if metadata.len() > OFFSET_METADATA_BYTES_MAX {
                        continue;
                    }
                    records.push(GroupRecord::Offset {
                        group: group_id.clone(),
                        topic: topic.name.0.to_string(),
                        partition: p.partition_index,
                        value: Some(OffsetValue {
                            offset: p.committed_offset,
                            leader_epoch: p.committed_leader_epoch,
                            metadata: metadata.to_owned(),
                            commit_timestamp: now,
                        }),
                    });
                }
            }
            if records.is_empty() {
                None
            } else {
                match store::append(&log, epoch, &records) {
                    Ok(offset) => {
                        for r in records {
                            if let GroupRecord::Offset {
                                topic,
                                partition,
                                value: Some(v),
                                ..
                            } = r
                            {
                                group.offsets.insert((topic, partition), v);
                            }
                        }
                        Some(Ok(offset))
                    }
                    Err(err) => Some(Err(store::refused(&group_id, "offsets", &err))),
                }
            }
        };
        let code = match written {
            None => NONE,
            Some(Err(code)) => code,
            Some(Ok(offset)) => store::wait_durable(&log, offset, self.request_timeout).await,
        };
        commit_response(&request, |t, p| {
            let meta = request.topics[t].partitions[p]
                .committed_metadata
                .as_deref();
            if meta.unwrap_or("").len() > OFFSET_METADATA_BYTES_MAX {
                OFFSET_METADATA_TOO_LARGE
            } else {
                code
            }
        })
    }

    /// Committed offsets of one group; -1 for partitions without one (and for unknown groups), every committed
    /// partition when `topics` is null.
    pub(super) fn fetch(&self, request: OffsetFetchRequestGroup) -> OffsetFetchResponseGroup {
        let groups = self.groups.borrow();
        let group = groups.get(request.group_id.0.as_str());
        let entry = |partition: i32, committed: Option<&OffsetValue>| {
            let out = OffsetFetchResponsePartitions::default().with_partition_index(partition);
            match committed {
                Some(v) => out
                    .with_committed_offset(v.offset)
                    .with_committed_leader_epoch(v.leader_epoch)
                    .with_metadata(Some(StrBytes::from_string(v.metadata.clone()))),
                None => out
                    .with_committed_offset(-1)
                    .with_committed_leader_epoch(-1)
                    .with_metadata(Some(StrBytes::default())),
            }
        };
        let topics = match request.topics {
            Some(topics) => topics
                .into_iter()
                .map(|t| {
                    let name = t.name.0.to_string();
                    let partitions = t
                        .partition_indexes
                        .iter()
                        .map(|p| {
                            let committed = group.and_then(|g| g.offsets.get(&(name.clone(), *p)));
                            entry(*p, committed)
                        })
                        .collect();
                    OffsetFetchResponseTopics::default()
                        .with_name(t.name)
                        .with_partitions(partitions)
                })
                .collect(),
            None => {
                let mut by_topic: Vec<OffsetFetchResponseTopics> = Vec::new();
                for ((topic, partition), v) in group.iter().flat_map(|g| g.offsets.iter()) {
                    if by_topic.last().map(|t| t.name.0.as_str()) != Some(topic.as_str()) {
                        by_topic.push(
                            OffsetFetchResponseTopics::default()
                                .with_name(StrBytes::from_string(topic.clone()).into()),
                        );
                    }
                    let last = by_topic.last_mut().expect("pushed above");
                    last.partitions.push(entry(*partition, Some(v)));
                }
                by_topic
            }
        };
        OffsetFetchResponseGroup::default()
            .with_group_id(request.group_id)
            .with_topics(topics)
    }

    /// OffsetDelete: refused per partition while a live member is subscribed to the topic.
    pub(super) async fn delete_offsets(
        &self,
        request: OffsetDeleteRequest,
    ) -> OffsetDeleteResponse {
        let group_id = request.group_id.0.to_string();
        let Some((log, epoch)) = self.log_of(&group_id) else {
            return OffsetDeleteResponse::default().with_error_code(NOT_COORDINATOR);
        };
        let (topics, written) = {
            let mut groups = self.groups.borrow_mut();
            let Some(group) = groups.get_mut(&group_id) else {
                return OffsetDeleteResponse::default().with_error_code(GROUP_ID_NOT_FOUND);
            };
            let mut records = Vec::new();
            let topics: Vec<OffsetDeleteResponseTopic> = request
                .topics
                .iter()
                .map(|t| {
                    let name = t.name.0.to_string();
                    let subscribed = group.phase != Phase::Empty && subscribed(group, &name);
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            let code = if subscribed {
                                GROUP_SUBSCRIBED_TO_TOPIC
                            } else {
                                if group
                                    .offsets
                                    .remove(&(name.clone(), p.partition_index))
                                    .is_some()
                                {
                                    records.push(GroupRecord::Offset {
                                        group: group_id.clone(),
                                        topic: name.clone(),
                                        partition: p.partition_index,
                                        value: None,
                                    });
                                }
                                NONE
                            };
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                        })
                        .collect();
                    OffsetDeleteResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(partitions)
                })
                .collect();
            let written = if records.is_empty() {
                Ok(None)
            } else {
                store::append(&log, epoch, &records)
                    .map(Some)
                    .map_err(|err| store::refused(&group_id, "offset deletions", &err))
            };
            (topics, written)
        };
        let error = match written {
            Ok(None) => NONE,
            Ok(Some(offset)) => store::wait_durable(&log, offset, self.request_timeout).await,
            Err(code) => code,
        };
        OffsetDeleteResponse::default()
            .with_error_code(error)
            .with_topics(if error == NONE { topics } else { Vec::new() })
    }
}

/// Whether a member of a "consumer" group lists `topic` in its subscription (ConsumerProtocolSubscription:
/// version i16, then an array of topic names).
fn subscribed(group: &Group, topic: &str) -> bool {
    if group.protocol_type.as_deref() != Some("consumer") {
        return false;
    }
    group.members.iter().any(|m| {
        m.protocols
            .iter()
            .any(|(_, metadata)| subscription_topics(metadata).iter().any(|t| t == topic))
    })
}

fn subscription_topics(metadata: &Bytes) -> Vec<String> {
    let mut topics = Vec::new();
    let b = &metadata[..];
    if b.len() < 6 {
        return topics;
    }
    let count = i32::from_be_bytes([b[2], b[3], b[4], b[5]]).max(0);
    let mut pos = 6;
    for _ in 0..count {
        let Some(len) = b.get(pos..pos + 2) else {
            break;
        };
        let len = i16::from_be_bytes([len[0], len[1]]).max(0) as usize;
        let Some(name) = b.get(pos + 2..pos + 2 + len) else {
            break;
        };
        topics.push(String::from_utf8_lossy(name).into_owned());
        pos += 2 + len;
    }
    topics
}
