//! DescribeLogDirs: the one log dir (the data dir) with the size of every partition, each measured on the shard
//! that owns it (all in parallel), plus the file system's total and free bytes.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::rc::Rc;

use kafka_protocol::messages::describe_log_dirs_request::DescribeLogDirsRequest;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResponse, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

use crate::codes;
use crate::context::ShardContext;
use crate::partition_ops::{PartitionOp, PartitionReply};
use crate::route;

pub async fn describe(
    ctx: Rc<ShardContext>,
    request: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let snapshot = ctx.snapshot();
    let node = ctx.config.node_id;
    // Null asks for every partition; named partitions this broker does not hold are left out, as in Kafka.
    let wanted: Vec<(String, Vec<i32>)> = match request.topics {
        None => snapshot
            .topics
            .values()
            .map(|t| {
                let mine = t.partitions.iter().filter(|p| p.leader == node);
                (t.name.clone(), mine.map(|p| p.partition).collect())
            })
            .collect(),
        Some(topics) => topics
            .into_iter()
            .filter_map(|t| {
                let meta = snapshot.topic(&t.topic.0)?;
                let held = |p: &i32| {
                    meta.partitions
                        .get(*p as usize)
                        .is_some_and(|m| m.leader == node)
                };
                Some((
                    meta.name.clone(),
                    t.partitions.into_iter().filter(held).collect(),
                ))
            })
            .collect(),
    };
    let ops = wanted
        .iter()
        .map(|(topic, partitions)| {
            let ops = partitions.iter().map(|p| (*p, PartitionOp::Size)).collect();
            (topic.clone(), ops)
        })
        .collect();
    let replies = route::execute_all(&ctx, ops).await;
    let topics = wanted
        .into_iter()
        .zip(replies)
        .map(|((topic, _), partitions)| {
            let partitions = partitions
                .into_iter()
                .filter_map(|(index, reply)| match reply {
                    PartitionReply::Size {
                        error_code: codes::NONE,
                        bytes,
                    } => Some(
                        DescribeLogDirsPartition::default()
                            .with_partition_index(index)
                            .with_partition_size(bytes),
                    ),
                    PartitionReply::Size { .. } => None,
                    other => unreachable!("Size answered with {other:?}"),
                });
            DescribeLogDirsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic)))
                .with_partitions(partitions.collect())
        })
        .collect();
    let (total_bytes, usable_bytes) = file_system_bytes(&ctx.config.data_dir).unwrap_or((-1, -1));
    let result = DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_string(
            ctx.config.data_dir.display().to_string(),
        ))
        .with_topics(topics)
        .with_total_bytes(total_bytes)
        .with_usable_bytes(usable_bytes);
    DescribeLogDirsResponse::default().with_results(vec![result])
}

/// Total and available bytes of the file system holding `dir` (statvfs), `None` if it cannot be read.
fn file_system_bytes(dir: &Path) -> Option<(i64, i64)> {
    let path = CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a NUL-terminated string and `stats` is a valid place for statvfs to write into; it is read
    // only when the call reports success.
    let stats = unsafe {
        if libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) != 0 {
            return None;
        }
        stats.assume_init()
    };
    let block = stats.f_frsize as i64;
    Some((stats.f_blocks as i64 * block, stats.f_bavail as i64 * block))
}

#[cfg(test)]
mod tests {
    #[test]
    fn file_system_bytes_of_a_real_dir() {
        let (total, usable) =
            super::file_system_bytes(std::path::Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
        assert!(total > 0 && usable >= 0 && usable <= total);
        assert!(super::file_system_bytes(std::path::Path::new("/no/such/dir")).is_none());
    }
}
