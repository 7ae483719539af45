//! A blocking Kafka client connection on plain `std::net::TcpStream`: size-prefixed frames, request headers, version
//! negotiation through ApiVersions, and typed request/response calls. Used by the `pinlog topic|group|cluster`
//! command line and by pinlog-bench's native driver, against pinlog or any Kafka-compatible broker.
//!
//! Blocking I/O on std threads is the leanest client per CPU: no runtime, no wakeups beyond the kernel's. Pipelining
//! (many Produce requests in flight) comes from splitting the stream into a writer and a reader half
//! ([`Conn::split`]; the writer sends with [`ConnSender::send_produce`]); Kafka answers a connection's requests in
//! order, so the reader matches responses to requests by queue position and checks the correlation id.

use std::io::{BufReader, IoSlice, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, ListOffsetsRequest, ProduceRequest,
    RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

/// Largest response frame accepted (a fetch of `fetch_max_bytes` plus headers).
pub const FRAME_BYTES_MAX: usize = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("kafka protocol ({what}): {reason}")]
    Protocol { what: String, reason: String },
    #[error("broker answered {what} with error code {code}")]
    Broker { what: String, code: i16 },
    #[error("the broker does not speak {api:?} at a version this client implements ({reason})")]
    Unsupported { api: ApiKey, reason: String },
}

impl ClientError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> ClientError {
        ClientError::Io {
            what: what.into(),
            source,
        }
    }

    pub fn protocol(what: impl Into<String>, reason: impl ToString) -> ClientError {
        ClientError::Protocol {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}

/// Who connects and what it speaks.
#[derive(Debug, Clone, Copy)]
pub struct ClientSpec {
    pub client_id: &'static str,
    /// Per API, the first and last version the caller implements.
    pub versions: &'static [(ApiKey, i16, i16)],
    /// Bound on connecting and on every read and write.
    pub io_timeout: Duration,
}

/// Negotiated version per API; an API the broker lacks is missing, and calling it is an `Unsupported` error.
#[derive(Debug, Clone, Default)]
pub struct Versions(Vec<(i16, Result<i16, String>)>);

impl Versions {
    /// The highest version both sides speak, from the broker's ApiVersions answer.
    fn negotiate(wanted: &[(ApiKey, i16, i16)], broker: &ApiVersionsResponse) -> Versions {
        let chosen = wanted
            .iter()
            .map(|&(api, min, max)| {
                let key = api as i16;
                let version = match broker.api_keys.iter().find(|v| v.api_key == key) {
                    None => Err("not offered".to_owned()),
                    Some(theirs) => {
                        let version = max.min(theirs.max_version);
                        if version < min.max(theirs.min_version) {
                            Err(format!(
                                "broker speaks {}..={}, this client {min}..={max}",
                                theirs.min_version, theirs.max_version
                            ))
                        } else {
                            Ok(version)
                        }
                    }
                };
                (key, version)
            })
            .collect();
        Versions(chosen)
    }

    pub fn of(&self, api: ApiKey) -> Result<i16, ClientError> {
        let key = api as i16;
        match self.0.iter().find(|(k, _)| *k == key) {
            Some((_, Ok(version))) => Ok(*version),
            Some((_, Err(reason))) => Err(ClientError::Unsupported {
                api,
                reason: reason.clone(),
            }),
            None => Err(ClientError::Unsupported {
                api,
                reason: "not in the client's version table".to_owned(),
            }),
        }
    }
}

/// A connection: its sending and receiving halves, used together for request/response calls.
pub struct Conn {
    sender: ConnSender,
    reader: ConnReader,
}

/// The sending half of a connection.
pub struct ConnSender {
    stream: TcpStream,
    next_correlation_id: i32,
    client_id: &'static str,
    versions: Versions,
    out: BytesMut,
    addr: String,
}

/// The receiving half of a connection.
pub struct ConnReader {
    reader: BufReader<TcpStream>,
    addr: String,
}

impl Conn {
    /// Connects and negotiates versions.
    pub fn connect(addr: &str, spec: ClientSpec) -> Result<Conn, ClientError> {
        let sock = addr
            .to_socket_addrs()
            .map_err(|e| ClientError::io(format!("resolving {addr}"), e))?
            .next()
            .ok_or_else(|| {
                ClientError::protocol("connect", format!("{addr} resolves to nothing"))
            })?;
        let stream = TcpStream::connect_timeout(&sock, spec.io_timeout)
            .map_err(|e| ClientError::io(format!("connecting to {addr}"), e))?;
        stream
            .set_nodelay(true)
            .and_then(|_| stream.set_read_timeout(Some(spec.io_timeout)))
            .and_then(|_| stream.set_write_timeout(Some(spec.io_timeout)))
            .map_err(|e| ClientError::io(format!("configuring socket to {addr}"), e))?;
        let read_half = stream
            .try_clone()
            .map_err(|e| ClientError::io("cloning socket", e))?;
        let mut conn = Conn {
            sender: ConnSender {
                stream,
                next_correlation_id: 1,
                client_id: spec.client_id,
                versions: Versions::default(),
                out: BytesMut::with_capacity(64 * 1024),
                addr: addr.to_string(),
            },
            reader: ConnReader {
                reader: BufReader::with_capacity(256 * 1024, read_half),
                addr: addr.to_string(),
            },
        };
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(spec.client_id))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let answer: ApiVersionsResponse = conn.call_at(ApiKey::ApiVersions, 3, &request)?;
        if answer.error_code != 0 {
            return Err(ClientError::Broker {
                what: "ApiVersions".into(),
                code: answer.error_code,
            });
        }
        conn.sender.versions = Versions::negotiate(spec.versions, &answer);
        Ok(conn)
    }

    pub fn addr(&self) -> &str {
        &self.sender.addr
    }

    pub fn version(&self, api: ApiKey) -> Result<i16, ClientError> {
        self.sender.versions.of(api)
    }

    /// Sends a request and waits for its response (no other request may be in flight on this connection).
    pub fn call<R: Request>(
        &mut self,
        api: ApiKey,
        request: &R,
    ) -> Result<R::Response, ClientError> {
        let version = self.sender.versions.of(api)?;
        self.call_at(api, version, request)
    }

    fn call_at<R: Request>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &R,
    ) -> Result<R::Response, ClientError> {
        let id = self.sender.send_at(api, version, request)?;
        self.reader.recv::<R::Response>(api, version, id)
    }

    /// Offsets of `partitions` (in that order) at `timestamp`: -2 earliest, -1 latest, else the first offset with
    /// a timestamp at or after it. A partition the broker refuses is a `Broker` error with its code.
    pub fn list_offsets(
        &mut self,
        topic: &str,
        partitions: &[i32],
        timestamp: i64,
    ) -> Result<Vec<i64>, ClientError> {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|&p| {
                            ListOffsetsPartition::default()
                                .with_partition_index(p)
                                .with_current_leader_epoch(-1)
                                .with_timestamp(timestamp)
                        })
                        .collect(),
                )]);
        let answer = self.call(ApiKey::ListOffsets, &request)?;
        let mut found = vec![None; partitions.len()];
        for t in &answer.topics {
            for p in &t.partitions {
                if p.error_code != 0 {
                    return Err(ClientError::Broker {
                        what: format!("ListOffsets {topic}/{}", p.partition_index),
                        code: p.error_code,
                    });
                }
                if let Some(i) = partitions.iter().position(|&x| x == p.partition_index) {
                    found[i] = Some(p.offset);
                }
            }
        }
        found
            .into_iter()
            .zip(partitions)
            .map(|(o, p)| {
                o.ok_or_else(|| {
                    ClientError::protocol("ListOffsets", format!("no answer for partition {p}"))
                })
            })
            .collect()
    }

    /// Splits the connection so a reader thread can take responses while requests are still being sent.
    pub fn split(self) -> (ConnSender, ConnReader) {
        (self.sender, self.reader)
    }
}

impl ConnSender {
    pub fn version(&self, api: ApiKey) -> Result<i16, ClientError> {
        self.versions.of(api)
    }

    fn send_at<R: Encodable + HeaderVersion>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &R,
    ) -> Result<i32, ClientError> {
        let correlation_id = self.encode(api, version, request)?;
        set_frame_size(&mut self.out, 0)?;
        self.write(api, &mut [IoSlice::new(&self.out)])?;
        Ok(correlation_id)
    }

    /// Sends a Produce request for one partition whose batch goes to the socket straight from `batch`, not through
    /// the request encoder: the encoder would copy it twice (into a `Bytes`, then into the frame), and for a producer
    /// of large batches those copies are most of its own CPU. `request` names one topic with one partition whose
    /// `records` is empty; returns the correlation id.
    pub fn send_produce(
        &mut self,
        request: &ProduceRequest,
        batch: &[u8],
    ) -> Result<i32, ClientError> {
        let version = self.versions.of(ApiKey::Produce)?;
        let correlation_id = self.encode(ApiKey::Produce, version, request)?;
        let trailer = splice_produce_records(&mut self.out, request, version, batch.len())?;
        self.write(
            ApiKey::Produce,
            &mut [
                IoSlice::new(&self.out),
                IoSlice::new(batch),
                IoSlice::new(trailer),
            ],
        )?;
        Ok(correlation_id)
    }

    /// Encodes the size placeholder, the header and `request` into `out`; returns the correlation id.
    fn encode<R: Encodable + HeaderVersion>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &R,
    ) -> Result<i32, ClientError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(self.client_id)));
        self.out.clear();
        self.out.extend_from_slice(&[0u8; 4]);
        header
            .encode(&mut self.out, R::header_version(version))
            .map_err(|e| ClientError::protocol(format!("encoding {api:?} header"), e))?;
        request
            .encode(&mut self.out, version)
            .map_err(|e| ClientError::protocol(format!("encoding {api:?}"), e))?;
        Ok(correlation_id)
    }

    /// Writes every byte of `parts`, in order.
    fn write(&self, api: ApiKey, mut parts: &mut [IoSlice<'_>]) -> Result<(), ClientError> {
        let failed = |e| ClientError::io(format!("sending {api:?} to {}", self.addr), e);
        while !parts.is_empty() {
            match (&self.stream).write_vectored(parts) {
                Ok(0) => return Err(failed(std::io::ErrorKind::WriteZero.into())),
                Ok(n) => IoSlice::advance_slices(&mut parts, n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(failed(e)),
            }
        }
        Ok(())
    }
}

/// Writes the frame's size into its first 4 bytes: what `frame` holds after them plus `beyond` bytes sent from
/// elsewhere.
fn set_frame_size(frame: &mut BytesMut, beyond: usize) -> Result<(), ClientError> {
    let size = i32::try_from(frame.len() - 4 + beyond)
        .map_err(|_| ClientError::protocol("request", "frame over 2 GiB"))?;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

/// Tagged-field counts that follow the records of a one-topic, one-partition Produce request from v9 (the
/// partition's, the topic's, the request's; none of them has tagged fields).
const PRODUCE_TRAILER_FLEXIBLE: [u8; 3] = [0, 0, 0];

/// Turns an encoded one-partition Produce request with empty records into the frame of that request with
/// `batch_len` bytes of records, less the records themselves and what follows them: replaces the empty records'
/// length with `batch_len`'s and sets the frame size. The records are the last field of the request but for the
/// tagged-field counts of flexible versions; returns those, to be sent after the records.
fn splice_produce_records(
    frame: &mut BytesMut,
    request: &ProduceRequest,
    version: i16,
    batch_len: usize,
) -> Result<&'static [u8], ClientError> {
    let [topic] = &request.topic_data[..] else {
        return Err(ClientError::protocol("Produce", "not one topic"));
    };
    let [partition] = &topic.partition_data[..] else {
        return Err(ClientError::protocol("Produce", "not one partition"));
    };
    let untagged = request.unknown_tagged_fields.is_empty()
        && topic.unknown_tagged_fields.is_empty()
        && partition.unknown_tagged_fields.is_empty();
    if !untagged || partition.records.as_ref().is_none_or(|r| !r.is_empty()) {
        return Err(ClientError::protocol(
            "Produce",
            "the partition's records are not empty, or tagged fields follow them",
        ));
    }
    let flexible = version >= 9;
    // Empty records as encoded: compact bytes are a varint of length + 1, classic ones an i32 length.
    let (trailer, empty): (&'static [u8], &[u8]) = if flexible {
        (&PRODUCE_TRAILER_FLEXIBLE, &[1])
    } else {
        (&[], &[0, 0, 0, 0])
    };
    let tail = empty.len() + trailer.len();
    assert!(
        frame.ends_with(&[empty, trailer].concat()),
        "a one-partition Produce v{version} request ends with its records"
    );
    frame.truncate(frame.len() - tail);
    let len = i32::try_from(batch_len)
        .map_err(|_| ClientError::protocol("Produce", "batch over 2 GiB"))?;
    if flexible {
        let mut v = len as u32 + 1;
        while v >= 0x80 {
            frame.extend_from_slice(&[(v as u8) | 0x80]);
            v >>= 7;
        }
        frame.extend_from_slice(&[v as u8]);
    } else {
        frame.extend_from_slice(&len.to_be_bytes());
    }
    set_frame_size(frame, batch_len + trailer.len())?;
    Ok(trailer)
}

impl ConnReader {
    /// Reads the next response, which must answer `correlation_id`.
    pub fn recv<T: Decodable + HeaderVersion>(
        &mut self,
        api: ApiKey,
        version: i16,
        correlation_id: i32,
    ) -> Result<T, ClientError> {
        read_response::<T>(&mut self.reader, &self.addr, api, version, correlation_id)
    }
}

/// Reads the `size` bytes of a frame's body (after its size prefix); a stream that ends first is UnexpectedEof.
/// The bytes go into reserved capacity rather than a zeroed Vec: a Fetch response can be tens of MB, and zeroing it
/// first took about a quarter of a catch-up consumer's CPU (bench/README.md, "The catch-up's client").
pub fn read_frame_body(reader: &mut impl Read, size: usize) -> std::io::Result<Vec<u8>> {
    let mut frame = Vec::with_capacity(size);
    let read = reader.take(size as u64).read_to_end(&mut frame)?;
    if read != size {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("connection closed after {read} of {size} bytes"),
        ));
    }
    Ok(frame)
}

/// Reads one frame and decodes its header and body.
fn read_response<T: Decodable + HeaderVersion>(
    reader: &mut impl Read,
    addr: &str,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
) -> Result<T, ClientError> {
    let mut size = [0u8; 4];
    reader
        .read_exact(&mut size)
        .map_err(|e| ClientError::io(format!("reading {api:?} response from {addr}"), e))?;
    let size = i32::from_be_bytes(size);
    if size < 4 || size as usize > FRAME_BYTES_MAX {
        return Err(ClientError::protocol(
            format!("{api:?} response"),
            format!("frame size {size}"),
        ));
    }
    let frame = read_frame_body(reader, size as usize)
        .map_err(|e| ClientError::io(format!("reading {api:?} response from {addr}"), e))?;
    let mut body = Bytes::from(frame);
    let header = ResponseHeader::decode(&mut body, T::header_version(version))
        .map_err(|e| ClientError::protocol(format!("{api:?} response header"), e))?;
    if header.correlation_id != correlation_id {
        return Err(ClientError::protocol(
            format!("{api:?} response"),
            format!(
                "correlation id {} where {correlation_id} was due",
                header.correlation_id
            ),
        ));
    }
    let decoded = T::decode(&mut body, version)
        .map_err(|e| ClientError::protocol(format!("{api:?} v{version} response"), e))?;
    if body.has_remaining() {
        return Err(ClientError::protocol(
            format!("{api:?} v{version} response"),
            format!("{} bytes left after decoding", body.remaining()),
        ));
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};

    fn produce(records: Bytes) -> ProduceRequest {
        ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(3)
                    .with_records(Some(records))])])
    }

    fn frame_of(request: &ProduceRequest, version: i16) -> BytesMut {
        let mut frame = BytesMut::new();
        frame.extend_from_slice(&[0u8; 4]);
        request.encode(&mut frame, version).unwrap();
        frame
    }

    #[test]
    fn a_spliced_produce_frame_is_the_encoders_frame_at_every_version() {
        // Lengths on both sides of the compact varint's byte boundaries.
        for len in [0usize, 1, 126, 127, 128, 16_383, 16_384, 262_144] {
            let batch: Vec<u8> = (0..len).map(|i| i as u8).collect();
            for version in 3..=9 {
                let mut inline = frame_of(&produce(Bytes::from(batch.clone())), version);
                set_frame_size(&mut inline, 0).unwrap();
                let mut spliced = frame_of(&produce(Bytes::new()), version);
                let trailer =
                    splice_produce_records(&mut spliced, &produce(Bytes::new()), version, len)
                        .unwrap();
                let sent = [&spliced[..], &batch, trailer].concat();
                assert_eq!(sent, inline[..], "v{version}, {len} bytes");
            }
        }
    }

    #[test]
    fn only_one_partition_with_empty_records_is_spliced() {
        let refused = |request: ProduceRequest| {
            let mut frame = frame_of(&request, 9);
            splice_produce_records(&mut frame, &request, 9, 1).is_err()
        };
        assert!(refused(produce(Bytes::from_static(b"x"))));
        assert!(refused(ProduceRequest::default()));
        let mut two = produce(Bytes::new());
        two.topic_data.push(two.topic_data[0].clone());
        assert!(refused(two));
    }
}
