//! `pinlog group ...`: ListGroups, DescribeGroups + OffsetFetch + ListOffsets (lag), OffsetCommit (reset) and
//! DeleteGroups. Group requests go to the group's coordinator, found with FindCoordinator.

use bytes::Bytes;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolAssignment, DeleteGroupsRequest, DescribeGroupsRequest,
    FindCoordinatorRequest, GroupId, ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use pinlog_net::client::Conn;
use pinlog_tuning::GroupCommand;
use serde_json::{json, Value};

use super::topic::{offsets, partitions_of, per_item, EARLIEST, LATEST};
use super::{connect, AdminError, Outcome, Section, Session};

/// States in which a group has no members, so its offsets may be moved from outside.
const INACTIVE_STATES: &[&str] = &["Empty", "Dead"];
const NON_EMPTY_GROUP: i16 = 68;

pub fn run(session: &mut Session, command: GroupCommand) -> Result<Outcome, AdminError> {
    match command {
        GroupCommand::List => {
            let response = session
                .conn
                .call(ApiKey::ListGroups, &ListGroupsRequest::default())?;
            if response.error_code != 0 {
                return Err(AdminError::kafka(response.error_code, "listing groups"));
            }
            let mut section = Section::new(&["group", "state", "protocol_type"]);
            let mut groups = response.groups;
            groups.sort_by(|a, b| a.group_id.0.cmp(&b.group_id.0));
            for g in groups {
                let state = (!g.group_state.is_empty()).then(|| g.group_state.to_string());
                section.row(vec![
                    json!(g.group_id.0.to_string()),
                    json!(state),
                    json!(g.protocol_type.to_string()),
                ]);
            }
            Ok(Outcome::ok(vec![section]))
        }
        GroupCommand::Describe { name } => {
            let mut coordinator = coordinator(session, &name)?;
            describe(&mut coordinator, &mut session.conn, &name)
        }
        GroupCommand::ResetOffsets {
            name,
            topic,
            to_earliest,
            to_latest,
            to_offset,
            execute,
        } => {
            let target = match (to_earliest, to_latest, to_offset) {
                (true, _, _) => Target::Earliest,
                (_, true, _) => Target::Latest,
                (_, _, Some(offset)) if offset >= 0 => Target::Offset(offset),
                _ => {
                    return Err(AdminError::Usage(
                        "give one of --to-earliest, --to-latest or --to-offset N (N >= 0)".into(),
                    ))
                }
            };
            let mut coordinator = coordinator(session, &name)?;
            reset(
                &mut coordinator,
                &mut session.conn,
                &name,
                &topic,
                target,
                execute,
            )
        }
        GroupCommand::Delete { names } => {
            let request = DeleteGroupsRequest::default()
                .with_groups_names(names.iter().map(|n| group_id(n)).collect());
            let response = session.conn.call(ApiKey::DeleteGroups, &request)?;
            let results = response
                .results
                .into_iter()
                .map(|r| (r.group_id.0.to_string(), r.error_code, None, vec![]));
            Ok(per_item(&["group", "error"], results))
        }
    }
}

fn group_id(name: &str) -> GroupId {
    GroupId(StrBytes::from_string(name.to_owned()))
}

/// A connection to the group's coordinator: the session's own when it is the same address.
fn coordinator(session: &mut Session, group: &str) -> Result<Option<Conn>, AdminError> {
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(group.to_owned()))
        .with_key_type(0);
    let response = session.conn.call(ApiKey::FindCoordinator, &request)?;
    if response.error_code != 0 {
        return Err(AdminError::kafka(
            response.error_code,
            format!("{group}: finding the coordinator"),
        ));
    }
    let addr = format!("{}:{}", response.host, response.port);
    if addr == session.target.brokers {
        return Ok(None);
    }
    Ok(Some(connect(&addr, &session.target)?))
}

fn describe(
    coordinator: &mut Option<Conn>,
    bootstrap: &mut Conn,
    name: &str,
) -> Result<Outcome, AdminError> {
    let conn = coordinator.as_mut().unwrap_or(bootstrap);
    let request = DescribeGroupsRequest::default().with_groups(vec![group_id(name)]);
    let response = conn.call(ApiKey::DescribeGroups, &request)?;
    let group = response
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| AdminError::kafka(69, format!("{name}: no answer")))?;
    if group.error_code != 0 {
        return Err(AdminError::kafka(group.error_code, name.to_owned()));
    }
    let mut summary = Section::titled("group", &["group", "state", "protocol", "members"]);
    summary.row(vec![
        json!(name),
        json!(group.group_state.to_string()),
        json!(group.protocol_data.to_string()),
        json!(group.members.len()),
    ]);
    let mut members = Section::titled("members", &["member", "client", "host", "assignment"]);
    for m in &group.members {
        members.row(vec![
            json!(m.member_id.to_string()),
            json!(m.client_id.to_string()),
            json!(m.client_host.to_string()),
            json!(assignment(&m.member_assignment)),
        ]);
    }
    let committed = committed_offsets(conn, name)?;
    let mut lag = Section::titled(
        "offsets",
        &["topic", "partition", "committed", "log_end", "lag"],
    );
    let mut topics: Vec<&str> = committed.iter().map(|(t, ..)| t.as_str()).collect();
    topics.dedup();
    let conn = bootstrap;
    for topic in topics {
        let parts: Vec<i32> = committed
            .iter()
            .filter(|(t, ..)| t == topic)
            .map(|(_, p, _)| *p)
            .collect();
        let ends = offsets(conn, topic, &parts, LATEST)?;
        for (partition, end) in ends {
            let offset = committed
                .iter()
                .find(|(t, p, _)| t == topic && *p == partition)
                .map_or(-1, |(_, _, o)| *o);
            lag.row(vec![
                json!(topic),
                json!(partition),
                json!(offset),
                json!(end),
                json!((end - offset).max(0)),
            ]);
        }
    }
    Ok(Outcome::ok(vec![summary, members, lag]))
}

/// A member's assignment as `topic-partition` names, decoded from the consumer protocol bytes.
fn assignment(bytes: &Bytes) -> Vec<String> {
    let mut buf = bytes.clone();
    if buf.len() < 2 {
        return Vec::new();
    }
    let version = i16::from_be_bytes([buf[0], buf[1]]);
    let _ = bytes::Buf::get_i16(&mut buf);
    match ConsumerProtocolAssignment::decode(&mut buf, version.clamp(0, 3)) {
        Ok(a) => a
            .assigned_partitions
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| format!("{}-{p}", t.topic.0))
            })
            .collect(),
        Err(_) => vec!["(not a consumer assignment)".to_owned()],
    }
}

/// Every committed offset of the group: (topic, partition, offset), sorted.
fn committed_offsets(conn: &mut Conn, name: &str) -> Result<Vec<(String, i32, i64)>, AdminError> {
    let request = OffsetFetchRequest::default()
        .with_group_id(group_id(name))
        .with_topics(None);
    let response = conn.call(ApiKey::OffsetFetch, &request)?;
    if response.error_code != 0 {
        return Err(AdminError::kafka(
            response.error_code,
            format!("{name}: fetching offsets"),
        ));
    }
    let mut out: Vec<(String, i32, i64)> = response
        .topics
        .into_iter()
        .flat_map(|t| {
            let topic = t.name.0.to_string();
            t.partitions
                .into_iter()
                .filter(|p| p.committed_offset >= 0)
                .map(move |p| (topic.clone(), p.partition_index, p.committed_offset))
        })
        .collect();
    out.sort();
    Ok(out)
}

enum Target {
    Earliest,
    Latest,
    Offset(i64),
}

fn reset(
    coordinator: &mut Option<Conn>,
    bootstrap: &mut Conn,
    name: &str,
    topic: &str,
    target: Target,
    execute: bool,
) -> Result<Outcome, AdminError> {
    let meta = partitions_of(bootstrap, topic)?;
    let parts: Vec<i32> = meta.partitions.iter().map(|p| p.partition_index).collect();
    let starts = offsets(bootstrap, topic, &parts, EARLIEST)?;
    let ends = offsets(bootstrap, topic, &parts, LATEST)?;
    let conn = coordinator.as_mut().unwrap_or(bootstrap);
    let state = {
        let request = DescribeGroupsRequest::default().with_groups(vec![group_id(name)]);
        let response = conn.call(ApiKey::DescribeGroups, &request)?;
        response
            .groups
            .first()
            .map(|g| g.group_state.to_string())
            .unwrap_or_default()
    };
    let committed = committed_offsets(conn, name)?;
    let mut plan = Section::new(&["topic", "partition", "current", "new"]);
    let mut commits = Vec::new();
    for ((partition, start), (_, end)) in starts.iter().zip(&ends) {
        let new = match target {
            Target::Earliest => *start,
            Target::Latest => *end,
            // Like kafka-consumer-groups: an offset outside the log is clamped to it.
            Target::Offset(o) => o.clamp(*start, *end),
        };
        let current = committed
            .iter()
            .find(|(t, p, _)| t == topic && p == partition)
            .map(|(.., o)| json!(o))
            .unwrap_or(Value::Null);
        plan.row(vec![json!(topic), json!(partition), current, json!(new)]);
        commits.push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(*partition)
                .with_committed_offset(new),
        );
    }
    if !execute {
        eprintln!("dry run: nothing committed (add --execute to commit these offsets)");
        return Ok(Outcome::ok(vec![plan]));
    }
    if !state.is_empty() && !INACTIVE_STATES.contains(&state.as_str()) {
        return Err(AdminError::kafka(
            NON_EMPTY_GROUP,
            format!("{name} is {state}: offsets can only be reset while the group has no members"),
        ));
    }
    let request = OffsetCommitRequest::default()
        .with_group_id(group_id(name))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_partitions(commits)]);
    let response = conn.call(ApiKey::OffsetCommit, &request)?;
    let failed = response
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.error_code != 0);
    if let Some(p) = failed {
        return Err(AdminError::kafka(
            p.error_code,
            format!("{name}: committing {topic}-{}", p.partition_index),
        ));
    }
    Ok(Outcome::ok(vec![plan]))
}
