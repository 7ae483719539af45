//! One blocking Kafka connection on plain `std::net::TcpStream`: size-prefixed frames, request headers, version
//! negotiation through ApiVersions, and typed request/response calls.
//!
//! Blocking I/O on std threads is the leanest client per CPU: no runtime, no wakeups beyond the kernel's. Pipelining
//! (many requests in flight) comes from splitting the stream into a writer and a reader half ([`Conn::split`]); Kafka
//! answers a connection's requests in order, so the reader matches responses to requests by queue position and checks
//! the correlation id.

use std::io::{BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

use crate::error::BenchError;

/// Largest response frame accepted (a fetch of `fetch_max_bytes` plus headers).
pub const FRAME_BYTES_MAX: usize = 256 * 1024 * 1024;
/// A broker that does not answer within this long is reported, not waited on forever.
pub const IO_TIMEOUT_S: u64 = 60;
const CLIENT_ID: &str = "pinlog-bench";

/// The versions this client speaks, per API (first and last it implements).
const CLIENT_VERSIONS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 6),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::CreateTopics, 2, 7),
];

/// Negotiated version per API.
#[derive(Debug, Clone, Default)]
pub struct Versions(Vec<(i16, i16)>);

impl Versions {
    /// The highest version both sides speak, from the broker's ApiVersions answer.
    fn negotiate(broker: &ApiVersionsResponse) -> Result<Versions, BenchError> {
        let mut chosen = Vec::new();
        for &(api, min, max) in CLIENT_VERSIONS {
            let key = api as i16;
            let theirs = broker
                .api_keys
                .iter()
                .find(|v| v.api_key == key)
                .ok_or_else(|| {
                    BenchError::protocol("ApiVersions", format!("broker lacks {api:?}"))
                })?;
            let version = max.min(theirs.max_version);
            if version < min.max(theirs.min_version) {
                return Err(BenchError::protocol(
                    "ApiVersions",
                    format!(
                        "{api:?}: broker speaks {}..={}, this client {min}..={max}",
                        theirs.min_version, theirs.max_version
                    ),
                ));
            }
            chosen.push((key, version));
        }
        Ok(Versions(chosen))
    }

    pub fn of(&self, api: ApiKey) -> i16 {
        let key = api as i16;
        self.0
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .expect("every API the client calls is negotiated at connect")
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
    pub fn connect(addr: &str) -> Result<Conn, BenchError> {
        let sock = addr
            .to_socket_addrs()
            .map_err(|e| BenchError::io(format!("resolving {addr}"), e))?
            .next()
            .ok_or_else(|| {
                BenchError::protocol("connect", format!("{addr} resolves to nothing"))
            })?;
        let stream = TcpStream::connect_timeout(&sock, Duration::from_secs(10))
            .map_err(|e| BenchError::io(format!("connecting to {addr}"), e))?;
        stream
            .set_nodelay(true)
            .and_then(|_| stream.set_read_timeout(Some(Duration::from_secs(IO_TIMEOUT_S))))
            .and_then(|_| stream.set_write_timeout(Some(Duration::from_secs(IO_TIMEOUT_S))))
            .map_err(|e| BenchError::io(format!("configuring socket to {addr}"), e))?;
        let read_half = stream
            .try_clone()
            .map_err(|e| BenchError::io("cloning socket", e))?;
        let mut conn = Conn {
            sender: ConnSender {
                stream,
                next_correlation_id: 1,
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
            .with_client_software_name(StrBytes::from_static_str(CLIENT_ID))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let answer: ApiVersionsResponse = conn.call_at(ApiKey::ApiVersions, 3, &request)?;
        if answer.error_code != 0 {
            return Err(BenchError::Broker {
                what: "ApiVersions".into(),
                code: answer.error_code,
            });
        }
        conn.sender.versions = Versions::negotiate(&answer)?;
        Ok(conn)
    }

    pub fn addr(&self) -> &str {
        &self.sender.addr
    }

    pub fn version(&self, api: ApiKey) -> i16 {
        self.sender.versions.of(api)
    }

    /// Sends a request and waits for its response (no other request may be in flight on this connection).
    pub fn call<R: Request>(
        &mut self,
        api: ApiKey,
        request: &R,
    ) -> Result<R::Response, BenchError> {
        let version = self.sender.versions.of(api);
        self.call_at(api, version, request)
    }

    fn call_at<R: Request>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &R,
    ) -> Result<R::Response, BenchError> {
        let id = self.sender.send_at(api, version, request)?;
        self.reader.recv::<R::Response>(api, version, id)
    }

    /// Splits the connection so a reader thread can take responses while requests are still being sent.
    pub fn split(self) -> (ConnSender, ConnReader) {
        (self.sender, self.reader)
    }
}

impl ConnSender {
    pub fn version(&self, api: ApiKey) -> i16 {
        self.versions.of(api)
    }

    /// Sends a request at the negotiated version; returns its correlation id.
    pub fn send<R: Request>(&mut self, api: ApiKey, request: &R) -> Result<i32, BenchError> {
        let version = self.versions.of(api);
        self.send_at(api, version, request)
    }

    fn send_at<R: Encodable + HeaderVersion>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &R,
    ) -> Result<i32, BenchError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
        self.out.clear();
        self.out.extend_from_slice(&[0u8; 4]);
        header
            .encode(&mut self.out, R::header_version(version))
            .map_err(|e| BenchError::protocol(format!("encoding {api:?} header"), e))?;
        request
            .encode(&mut self.out, version)
            .map_err(|e| BenchError::protocol(format!("encoding {api:?}"), e))?;
        let size = (self.out.len() - 4) as i32;
        self.out[..4].copy_from_slice(&size.to_be_bytes());
        self.stream
            .write_all(&self.out)
            .map_err(|e| BenchError::io(format!("sending {api:?} to {}", self.addr), e))?;
        Ok(correlation_id)
    }
}

impl ConnReader {
    /// Reads the next response, which must answer `correlation_id`.
    pub fn recv<T: Decodable + HeaderVersion>(
        &mut self,
        api: ApiKey,
        version: i16,
        correlation_id: i32,
    ) -> Result<T, BenchError> {
        read_response::<T>(&mut self.reader, &self.addr, api, version, correlation_id)
    }
}

/// Reads one frame and decodes its header and body.
fn read_response<T: Decodable + HeaderVersion>(
    reader: &mut impl Read,
    addr: &str,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
) -> Result<T, BenchError> {
    let mut size = [0u8; 4];
    reader
        .read_exact(&mut size)
        .map_err(|e| BenchError::io(format!("reading {api:?} response from {addr}"), e))?;
    let size = i32::from_be_bytes(size);
    if size < 4 || size as usize > FRAME_BYTES_MAX {
        return Err(BenchError::protocol(
            format!("{api:?} response"),
            format!("frame size {size}"),
        ));
    }
    let mut frame = vec![0u8; size as usize];
    reader
        .read_exact(&mut frame)
        .map_err(|e| BenchError::io(format!("reading {api:?} response from {addr}"), e))?;
    let mut body = Bytes::from(frame);
    let header = ResponseHeader::decode(&mut body, T::header_version(version))
        .map_err(|e| BenchError::protocol(format!("{api:?} response header"), e))?;
    if header.correlation_id != correlation_id {
        return Err(BenchError::protocol(
            format!("{api:?} response"),
            format!(
                "correlation id {} where {correlation_id} was due",
                header.correlation_id
            ),
        ));
    }
    let decoded = T::decode(&mut body, version)
        .map_err(|e| BenchError::protocol(format!("{api:?} v{version} response"), e))?;
    if body.has_remaining() {
        return Err(BenchError::protocol(
            format!("{api:?} v{version} response"),
            format!("{} bytes left after decoding", body.remaining()),
        ));
    }
    Ok(decoded)
}
