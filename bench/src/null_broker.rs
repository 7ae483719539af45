//! `pinlog-bench null-broker`: a Kafka endpoint that stores nothing, the protocol's floor beside the disk's.
//!
//! It speaks just enough for a producer-only workload: ApiVersions, Metadata (it leads every partition itself),
//! CreateTopics (a topic is a name and a partition count), and Produce, answered the moment the request has been
//! read, with offsets counted per partition and nothing kept. A run against it measures what a publish costs outside
//! any broker's work: the client, the loopback and a minimal server's read and answer on the same cores. Whatever a
//! real broker adds to that is its own. Fetch and every other API are not spoken (ApiVersions does not list them),
//! so a workload with consumers fails at its first Fetch with the client's "does not speak Fetch".
//!
//! With `--sync-dir` it is durable in the leanest way there is: a connection reads every request already on its
//! socket, writes the batches' bytes over a file written beforehand and fdatasyncs once (the disk floor's writer,
//! [`OverwrittenLog`]), then answers them all. That is the floor of any broker that acknowledges only what is on the
//! disk: the client, the loopback and the disk together.
//!
//! One thread per connection, blocking I/O: the leanest server for a handful of connections. Answers go out once the
//! requests already readable have been read, in one write.

use std::collections::HashMap;
use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, BrokerId, CreateTopicsRequest, CreateTopicsResponse,
    MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse, RequestHeader,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use pinlog_net::api::api_versions;
use pinlog_net::{client, codes};

use crate::disk_floor::OverwrittenLog;

/// The node id it gives itself.
const NODE_ID: i32 = 0;

/// What it speaks: the native driver's producer and admin calls.
const APIS: [(ApiKey, i16, i16); 4] = [
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::Produce, 3, 9),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::CreateTopics, 2, 7),
];

/// Largest request accepted (pinlog's default `max_request_bytes`).
const REQUEST_BYTES_MAX: usize = 100 << 20;

/// Size prefixes and small requests are read through a buffer this large; a large body is read past it.
const READ_BUFFER_BYTES: usize = 64 * 1024;
/// Answers held back while more requests are readable go out once they reach this many bytes.
const ANSWERS_HELD_BYTES_MAX: usize = 1 << 20;

/// Bytes before a record batch's `lastOffsetDelta` (baseOffset 8, batchLength 4, leaderEpoch 4, magic 1, crc 4,
/// attributes 2), and the bytes a batch's length does not count (baseOffset, batchLength).
const LAST_OFFSET_DELTA_AT: usize = 23;
const BATCH_LENGTH_EXCLUDES: usize = 12;

/// Topics by name: the next offset of each partition.
#[derive(Default)]
struct Topics(Mutex<HashMap<TopicName, Vec<i64>>>);

impl Topics {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TopicName, Vec<i64>>> {
        // A connection thread that panicked left the map whole: offsets are counters.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Where a durable null broker's connections write: one log, one commit at a time.
type SharedLog = Option<Arc<Mutex<OverwrittenLog>>>;

/// Accepts connections on `listener` until it fails, each served on a thread of its own; `advertised` is the
/// address Metadata gives clients; with a `log`, produce is acknowledged once it is durable there. Runs until the
/// process ends (`pinlog-bench null-broker`).
pub fn serve(
    listener: TcpListener,
    advertised: SocketAddr,
    log: Option<OverwrittenLog>,
) -> io::Result<()> {
    let log = log.map(|log| Arc::new(Mutex::new(log)));
    accept_until(listener, advertised, &AtomicBool::new(false), log)
}

/// A null broker on a loopback port of this process, for a measurement's length: dropping it stops the accepting
/// thread (connections end when their clients close them).
pub struct InProcess {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accepting: Option<JoinHandle<io::Result<()>>>,
}

impl InProcess {
    /// Starts one that stores nothing, or with a `log`, one that acknowledges produce once it is durable there.
    pub fn start(log: Option<OverwrittenLog>) -> io::Result<InProcess> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let accepting = {
            let stop = Arc::clone(&stop);
            thread::Builder::new()
                .name("null-broker".into())
                .spawn(move || {
                    let log = log.map(|log| Arc::new(Mutex::new(log)));
                    accept_until(listener, addr, &stop, log)
                })?
        };
        Ok(InProcess {
            addr,
            stop,
            accepting: Some(accepting),
        })
    }

    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // A connection of its own wakes the blocked accept, which then sees the stop.
        if TcpStream::connect(self.addr).is_ok() {
            if let Some(accepting) = self.accepting.take() {
                let _ = accepting.join();
            }
        }
    }
}

fn accept_until(
    listener: TcpListener,
    advertised: SocketAddr,
    stop: &AtomicBool,
    log: SharedLog,
) -> io::Result<()> {
    let topics = Arc::new(Topics::default());
    loop {
        let (stream, peer) = listener.accept()?;
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let (topics, log) = (Arc::clone(&topics), log.clone());
        thread::Builder::new()
            .name("null-broker-conn".into())
            .spawn(move || {
                if let Err(err) = serve_connection(stream, advertised, &topics, log.as_deref()) {
                    eprintln!("null-broker: connection from {peer} ended: {err}");
                }
            })?;
    }
}

/// Answers one connection's requests in order until the client closes it.
fn serve_connection(
    stream: TcpStream,
    advertised: SocketAddr,
    topics: &Topics,
    log: Option<&Mutex<OverwrittenLog>>,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let fd = stream.as_raw_fd();
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, stream.try_clone()?);
    let mut writer = stream;
    let mut out = BytesMut::new();
    let mut held = Held::default();
    loop {
        if held.answers.len() >= ANSWERS_HELD_BYTES_MAX
            || (reader.buffer().is_empty() && !readable(fd))
        {
            held.release(&mut writer, log)?;
        }
        let Some(mut frame) = read_frame(&mut reader)? else {
            return held.release(&mut writer, log);
        };
        let header_version = request_header_version(&frame)?;
        let header = RequestHeader::decode(&mut frame, header_version).map_err(invalid)?;
        let (api, version) = (header.request_api_key, header.request_api_version);
        out.clear();
        out.put_i32(0);
        match ApiKey::try_from(api) {
            Ok(ApiKey::ApiVersions) if version > APIS[0].2 => {
                // KIP-511: answered in the v0 format, so the client retries at a version spoken here.
                out.put_i32(header.correlation_id);
                api_versions::put_unsupported_version_body(&mut out, &APIS)
            }
            Ok(ApiKey::ApiVersions) => {
                ApiVersionsRequest::decode(&mut frame, version).map_err(invalid)?;
                respond(&mut out, &header, &api_versions::answer_for(&APIS))?
            }
            Ok(ApiKey::Metadata) => {
                let request = MetadataRequest::decode(&mut frame, version).map_err(invalid)?;
                respond(&mut out, &header, &metadata(&request, advertised, topics))?
            }
            Ok(ApiKey::CreateTopics) => {
                let request = CreateTopicsRequest::decode(&mut frame, version).map_err(invalid)?;
                respond(&mut out, &header, &create_topics(&request, topics))?
            }
            Ok(ApiKey::Produce) => {
                let request = ProduceRequest::decode(&mut frame, version).map_err(invalid)?;
                held.batch_bytes += request
                    .topic_data
                    .iter()
                    .flat_map(|t| &t.partition_data)
                    .filter_map(|p| p.records.as_ref())
                    .map(|records| records.len() as u64)
                    .sum::<u64>();
                if request.acks == 0 {
                    continue;
                }
                respond(&mut out, &header, &produce(&request, topics))?
            }
            _ => {
                return Err(invalid(format!(
                    "API key {api} version {version} is not spoken here"
                )))
            }
        }
        let size = (out.len() - 4) as i32;
        out[..4].copy_from_slice(&size.to_be_bytes());
        held.answers.extend_from_slice(&out);
    }
}

/// What a connection holds until the requests readable now have been read: their answers, and the batch bytes the
/// answers wait on.
#[derive(Default)]
struct Held {
    answers: BytesMut,
    batch_bytes: u64,
}

impl Held {
    /// Makes the batches durable (with a log), then sends the answers.
    fn release(
        &mut self,
        writer: &mut TcpStream,
        log: Option<&Mutex<OverwrittenLog>>,
    ) -> io::Result<()> {
        if let Some(log) = log.filter(|_| self.batch_bytes > 0) {
            // Another connection's thread that panicked mid-commit left nothing half-acknowledged.
            let mut log = log.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            log.commit(self.batch_bytes).map_err(io::Error::other)?;
        }
        self.batch_bytes = 0;
        if !self.answers.is_empty() {
            writer.write_all(&self.answers)?;
            self.answers.clear();
        }
        Ok(())
    }
}

/// Whether the socket holds bytes now (a peek that neither waits nor consumes).
fn readable(fd: RawFd) -> bool {
    let mut byte = 0u8;
    // SAFETY: `byte` is valid for a write of 1 byte; MSG_PEEK leaves the data in the socket.
    let got = unsafe {
        libc::recv(
            fd,
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    got > 0
}

/// The next request frame, or `None` at a clean end of stream.
fn read_frame(reader: &mut impl Read) -> io::Result<Option<Bytes>> {
    let mut size = [0u8; 4];
    match reader.read_exact(&mut size) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err),
    }
    let size = i32::from_be_bytes(size);
    let Some(size) = usize::try_from(size)
        .ok()
        .filter(|size| (8..=REQUEST_BYTES_MAX).contains(size))
    else {
        return Err(invalid(format!("request frame size {size}")));
    };
    Ok(Some(Bytes::from(client::read_frame_body(reader, size)?)))
}

/// The request header's version, from the API key and version that open every header.
fn request_header_version(frame: &Bytes) -> io::Result<i16> {
    if frame.len() < 4 {
        return Err(invalid("request shorter than its header"));
    }
    let (api, version) = (frame.slice(..2).get_i16(), frame.slice(2..4).get_i16());
    let api = ApiKey::try_from(api).map_err(|_| invalid(format!("unknown API key {api}")))?;
    Ok(api.request_header_version(version))
}

/// Appends the response header and `body` to `out`, at the request's version.
fn respond<R: Encodable + HeaderVersion>(
    out: &mut BytesMut,
    request: &RequestHeader,
    body: &R,
) -> io::Result<()> {
    let version = request.request_api_version;
    ResponseHeader::default()
        .with_correlation_id(request.correlation_id)
        .encode(out, R::header_version(version))
        .map_err(invalid)?;
    body.encode(out, version).map_err(invalid)
}

/// Itself as the only broker and the controller; every partition of a named topic led by it.
fn metadata(
    request: &MetadataRequest,
    advertised: SocketAddr,
    topics: &Topics,
) -> MetadataResponse {
    let topics = topics.lock();
    let names: Vec<TopicName> = match &request.topics {
        None => topics.keys().cloned().collect(),
        Some(asked) => asked.iter().filter_map(|t| t.name.clone()).collect(),
    };
    let answers = names
        .into_iter()
        .map(|name| match topics.get(&name) {
            None => MetadataResponseTopic::default()
                .with_name(Some(name))
                .with_error_code(codes::UNKNOWN_TOPIC_OR_PARTITION),
            Some(offsets) => MetadataResponseTopic::default()
                .with_name(Some(name))
                .with_partitions(
                    (0..offsets.len() as i32)
                        .map(|index| {
                            MetadataResponsePartition::default()
                                .with_partition_index(index)
                                .with_leader_id(BrokerId(NODE_ID))
                                .with_replica_nodes(vec![BrokerId(NODE_ID)])
                                .with_isr_nodes(vec![BrokerId(NODE_ID)])
                        })
                        .collect(),
                ),
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(NODE_ID))
            .with_host(StrBytes::from_string(advertised.ip().to_string()))
            .with_port(i32::from(advertised.port()))])
        .with_controller_id(BrokerId(NODE_ID))
        .with_topics(answers)
}

/// A topic is its name and partition count (1 when the request leaves it to the broker); one that exists is
/// answered TOPIC_ALREADY_EXISTS, as Kafka does.
fn create_topics(request: &CreateTopicsRequest, topics: &Topics) -> CreateTopicsResponse {
    let mut topics = topics.lock();
    let results = request
        .topics
        .iter()
        .map(|t| {
            let partitions = t.num_partitions.max(1);
            let result = CreatableTopicResult::default()
                .with_name(t.name.clone())
                .with_num_partitions(partitions)
                .with_replication_factor(1);
            if topics.contains_key(&t.name) {
                return result.with_error_code(crate::native::admin::TOPIC_ALREADY_EXISTS);
            }
            topics.insert(t.name.clone(), vec![0; partitions as usize]);
            result
        })
        .collect();
    CreateTopicsResponse::default().with_topics(results)
}

/// Every partition's batches are counted, given the partition's next offsets and dropped.
fn produce(request: &ProduceRequest, topics: &Topics) -> ProduceResponse {
    let mut topics = topics.lock();
    let responses = request
        .topic_data
        .iter()
        .map(|t| {
            let mut offsets = topics.get_mut(&t.name);
            let partitions = t
                .partition_data
                .iter()
                .map(|p| {
                    let answer = PartitionProduceResponse::default().with_index(p.index);
                    let next = offsets
                        .as_deref_mut()
                        .and_then(|o| o.get_mut(usize::try_from(p.index).ok()?));
                    let Some(next) = next else {
                        return answer
                            .with_error_code(codes::UNKNOWN_TOPIC_OR_PARTITION)
                            .with_base_offset(-1);
                    };
                    match p.records.as_deref().map(count_records) {
                        Some(Some(records)) => {
                            let base = *next;
                            *next += records;
                            answer.with_base_offset(base)
                        }
                        _ => answer
                            .with_error_code(codes::CORRUPT_MESSAGE)
                            .with_base_offset(-1),
                    }
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(t.name.clone())
                .with_partition_responses(partitions)
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}

/// Records in a run of v2 record batches, from each batch's `lastOffsetDelta`; `None` if a batch is cut short or
/// the run is empty.
fn count_records(mut batches: &[u8]) -> Option<i64> {
    let mut records = 0;
    while !batches.is_empty() {
        let header = batches.get(..LAST_OFFSET_DELTA_AT + 4)?;
        let length = usize::try_from(i32::from_be_bytes(header[8..12].try_into().ok()?)).ok()?;
        let delta = i32::from_be_bytes(header[LAST_OFFSET_DELTA_AT..].try_into().ok()?);
        records += i64::from(delta) + 1;
        batches = batches.get(BATCH_LENGTH_EXCLUDES + length..)?;
    }
    (records > 0).then_some(records)
}

fn invalid(reason: impl ToString) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::batch::BatchBuilder;
    use crate::native::{admin, conn};
    use crate::workload::TopicSpec;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};

    fn batch(records: usize) -> Vec<u8> {
        let mut batch = BatchBuilder::with_capacity(64 * 1024);
        for _ in 0..records {
            batch.push(0, None, &[7u8; 100]);
        }
        batch.finish().to_vec()
    }

    /// The native driver's admin creates a topic and finds itself the leader of every partition; each produce is
    /// answered with the partition's next offset, counted from the batch; a durable one answers the same way.
    #[test]
    fn a_topic_is_created_and_produce_is_answered_with_counted_offsets() {
        answers_produce_with_counted_offsets(InProcess::start(None).expect("start"));
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).expect("tempdir on disk");
        let log = OverwrittenLog::create(dir.path(), 2 * crate::disk_floor::COMMIT_BYTES_MAX)
            .expect("log");
        answers_produce_with_counted_offsets(InProcess::start(Some(log)).expect("start"));
    }

    fn answers_produce_with_counted_offsets(broker: InProcess) {
        let bootstrap = broker.bootstrap();
        let spec = TopicSpec {
            prefix: "t".into(),
            partitions: 3,
            replication_factor: 1,
            configs: Default::default(),
        };
        let layout = admin::create_topic(&bootstrap, "t", &spec).expect("create");
        assert_eq!(layout.partitions(), 3);
        assert_eq!(layout.brokers.values().next(), Some(&bootstrap));
        let again = admin::create_topic(&bootstrap, "t", &spec).expect("exists is accepted");
        assert_eq!(again.partitions(), 3);

        let (mut sender, mut reader) = conn::connect(&bootstrap).expect("connect").split();
        let version = sender.version(ApiKey::Produce).expect("negotiated");
        let mut offsets = Vec::new();
        for (partition, records) in [(1, 5), (1, 2), (0, 1), (7, 1)] {
            let request = ProduceRequest::default()
                .with_acks(-1)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_static_str("t")))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(Bytes::new()))])]);
            let id = sender
                .send_produce(&request, &batch(records))
                .expect("send");
            let answer: ProduceResponse =
                reader.recv(ApiKey::Produce, version, id).expect("answer");
            let p = &answer.responses[0].partition_responses[0];
            offsets.push((p.error_code, p.base_offset));
        }
        assert_eq!(
            offsets,
            vec![
                (0, 0),
                (0, 5),
                (0, 0),
                (codes::UNKNOWN_TOPIC_OR_PARTITION, -1)
            ]
        );
    }

    #[test]
    fn records_are_counted_batch_by_batch_and_a_cut_batch_is_refused() {
        let two = [batch(3), batch(4)].concat();
        assert_eq!(count_records(&two), Some(7));
        assert_eq!(count_records(&two[..two.len() - 1]), None);
        assert_eq!(count_records(&[]), None);
    }
}
