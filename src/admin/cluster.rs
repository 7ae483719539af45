//! `pinlog cluster info`: DescribeCluster where the broker speaks it, else Metadata.

use kafka_protocol::messages::{ApiKey, DescribeClusterRequest, MetadataRequest};
use pinlog_tuning::ClusterCommand;
use serde_json::json;

use super::{AdminError, Outcome, Section, Session};

pub fn run(session: &mut Session, command: ClusterCommand) -> Result<Outcome, AdminError> {
    let ClusterCommand::Info = command;
    let conn = &mut session.conn;
    let (cluster_id, controller, brokers) = if conn.version(ApiKey::DescribeCluster).is_ok() {
        let response = conn.call(ApiKey::DescribeCluster, &DescribeClusterRequest::default())?;
        if response.error_code != 0 {
            return Err(AdminError::kafka(
                response.error_code,
                "describing the cluster",
            ));
        }
        let brokers: Vec<(i32, String, i32)> = response
            .brokers
            .iter()
            .map(|b| (b.broker_id.0, b.host.to_string(), b.port))
            .collect();
        (
            response.cluster_id.to_string(),
            response.controller_id.0,
            brokers,
        )
    } else {
        let response = conn.call(
            ApiKey::Metadata,
            &MetadataRequest::default().with_topics(Some(vec![])),
        )?;
        let brokers = response
            .brokers
            .iter()
            .map(|b| (b.node_id.0, b.host.to_string(), b.port))
            .collect();
        let id = response
            .cluster_id
            .map(|c| c.to_string())
            .unwrap_or_default();
        (id, response.controller_id.0, brokers)
    };
    let mut cluster = Section::titled("cluster", &["cluster_id", "controller", "brokers"]);
    cluster.row(vec![
        json!(cluster_id),
        json!(controller),
        json!(brokers.len()),
    ]);
    let mut listed = Section::titled("brokers", &["node_id", "host", "port", "controller"]);
    for (id, host, port) in brokers {
        listed.row(vec![
            json!(id),
            json!(host),
            json!(port),
            json!(id == controller),
        ]);
    }
    Ok(Outcome::ok(vec![cluster, listed]))
}
