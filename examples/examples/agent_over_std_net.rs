//! Serving OCO agents over `std::net`, with no async runtime: the agent protocol's service
//! (`oco_agent_protocol::service::AgentService`) behind a small HTTP/1.1 transport written here,
//! one thread per connection.
//!
//! The service is the whole protocol: signatures, keys, the replay guard, reply timestamps, jobs.
//! The transport only moves bytes. It bounds what a client can make it hold (connections, time,
//! the request head, the body), checks the headers before it reads the body, streams a package's
//! payload from a directory, and closes each connection after one answer: the OCO agent opens
//! a connection for every call. It serves any path (the agent calls one URL and the body says
//! the method) and takes POST and GET (a download is a GET with a body).
//!
//! Without arguments it serves on `127.0.0.1:0`, runs one scripted agent against itself over real
//! TCP (hello, a report, the download, the final report), prints and checks what it gets, and
//! exits:
//!
//! ```text
//! cargo run -p oco-examples --example agent_over_std_net
//! ```
//!
//! With `--listen` and `--global-key` it serves real agents from an in-memory store holding one
//! computer (`--hostname`, `pc1` by default) and one package deployed to it. With
//! `--payloads DIR` the package has a payload, `DIR/<package id>.zip`:
//!
//! ```text
//! cargo run -p oco-examples --example agent_over_std_net -- \
//!     --listen 0.0.0.0:8080 --global-key K --hostname "$(hostname)" --payloads DIR
//! ```
//!
//! The agent's `oco-agent.ini` then has `agent-key = K` and an empty `server-key =` under
//! `[agent]` and `[server]`, and `api-url = http://HOST:8080/api-agent.php`.

use std::error::Error;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use std::{fs, thread};

use oco_agent_protocol::agent::{download_body, hello_body, job_state_body, HelloData, JobState};
use oco_agent_protocol::cache::CachedStore;
use oco_agent_protocol::keys::OsKeys;
use oco_agent_protocol::service::{
    AgentService, Body, PayloadRef, Refusal, Request, Response, ServiceConfig,
};
use oco_agent_protocol::signature::{self, sign, verify};
use oco_agent_protocol::timestamp::epoch_seconds;
use oco_core::chrono::{DateTime, Utc};
use oco_core::deploy::{ContainerSettings, DeployRequest};
use oco_core::engine::{run, Engine};
use oco_core::model::{DeliveryPolicy, Name, Package, Payload, Procedure};
use oco_core::store::{MemoryStore, NewComputer, NewPackage, Store};
use serde_json::Value;

/// Connections served at once; one more is answered 503 and closed.
const MAX_CONNECTIONS: usize = 64;
/// How long one read or write waits for the client (a client that trickles its request holds
/// a connection longer, one of [`MAX_CONNECTIONS`]).
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest request line and headers, in bytes.
const HEAD_LIMIT: usize = 64 * 1024;
/// The largest request body, in bytes: a job report carries the job's whole output so far.
const BODY_LIMIT: usize = 8 * 1024 * 1024;
/// How much of a request left unread (a body refused before it was read) is read and dropped
/// before closing, so that the client gets the answer rather than a reset, and for how long.
const DRAIN_LIMIT: u64 = 1024 * 1024;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the last-seen times the service notes are written.
const FLUSH_INTERVAL: Duration = Duration::from_secs(5);
/// The memory of the hello cache, in bytes.
const HELLO_CACHE: u64 = 16 * 1024 * 1024;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        demo()
    } else {
        serve_real_agents(Options::parse(&args)?)
    }
}

// ---------------------------------------------------------------------------------------------
// The transport.

/// The transport's state, shared by its connection threads.
struct Transport {
    service: AgentService,
    /// Where the `<package id>.zip` payloads are, if anywhere.
    payloads: Option<PathBuf>,
    /// Connections being served.
    connections: AtomicUsize,
}

/// A connection's place under [`MAX_CONNECTIONS`], given back when dropped.
struct Slot(Arc<Transport>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Transport {
    fn new(service: AgentService, payloads: Option<PathBuf>) -> Arc<Transport> {
        Arc::new(Transport {
            service,
            payloads,
            connections: AtomicUsize::new(0),
        })
    }

    /// Accepts connections on `listener` for ever, each served on a thread of its own.
    fn serve(self: Arc<Self>, listener: TcpListener) {
        for stream in listener.incoming() {
            let stream = match stream {
                Ok(stream) => stream,
                Err(error) => {
                    // Out of descriptors, most likely: wait for connections to close.
                    eprintln!("server: accept failed: {error}");
                    thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            if self.connections.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                self.connections.fetch_sub(1, Ordering::AcqRel);
                refuse_busy(stream);
                continue;
            }
            let slot = Slot(Arc::clone(&self));
            let spawned = thread::Builder::new()
                .name("agent-connection".into())
                .spawn(move || {
                    if let Err(error) = slot.0.connection(stream) {
                        eprintln!("server: connection failed: {error}");
                    }
                });
            // If the thread could not start, its closure (and the slot) is dropped: the
            // connection is closed and its place given back.
            if let Err(error) = spawned {
                eprintln!("server: no thread for a connection: {error}");
            }
        }
    }

    /// Answers the one request on `stream`, then closes it.
    fn connection(&self, mut stream: TcpStream) -> io::Result<()> {
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        let peer = stream.peer_addr()?;
        // The clock, read once for the request: the service reads none.
        let now = now();
        let mut response = self.answer(&stream, peer.ip(), now);
        let follow_up = response.follow_up.take();
        eprintln!(
            "server: {peer} {} {} -> {}",
            response.method.unwrap_or("-"),
            response.hostname.as_deref().unwrap_or("-"),
            response.status.code(),
        );
        self.send(&mut stream, response)?;
        close(stream);
        // After the answer: the rules a report calls for, re-evaluated.
        if let Some(follow_up) = follow_up {
            if let Err(error) = self.service.engine().follow_up(follow_up, now) {
                eprintln!("server: re-evaluating rules after a report failed: {error}");
            }
        }
        Ok(())
    }

    /// The service's response to the request on `stream`: the head read and its headers checked
    /// before a byte of the body is read, then the body, within its limit.
    fn answer(&self, stream: &TcpStream, peer: IpAddr, now: DateTime<Utc>) -> Response {
        let mut reader = BufReader::new(stream);
        let head = match read_head(&mut reader) {
            Ok(head) => head,
            Err(refusal) => return refusal.into(),
        };
        let signature = match AgentService::check_headers(
            head.header("content-type"),
            head.header(signature::AGENT_SIGNATURE),
        ) {
            Ok(signature) => signature.to_owned(),
            Err(refusal) => return refusal.into(),
        };
        let body = match read_body(&mut reader, &head) {
            Ok(body) => body,
            Err(refusal) => return refusal.into(),
        };
        self.service.handle(Request {
            body,
            signature,
            // No proxy in front: the peer is the agent.
            address: Ok(peer.to_canonical()),
            now,
        })
    }

    /// Writes `response`: its bytes, or the payload it names streamed from its file.
    fn send(&self, stream: &mut TcpStream, response: Response) -> io::Result<()> {
        let status = response.status.code();
        let content_type = response.content_type();
        match response.body {
            Body::Json(bytes) => write_reply(
                stream,
                status,
                content_type,
                response.signature.as_deref(),
                &bytes,
            ),
            Body::Text(text) => write_reply(stream, status, content_type, None, text.as_bytes()),
            Body::Payload(payload) => self.send_payload(stream, &payload),
            // What a later version of the service may add.
            _ => internal_error(stream),
        }
    }

    /// Streams `DIR/<package id>.zip`; [`PayloadRef::missing`] when there is no such file.
    fn send_payload(&self, stream: &mut TcpStream, payload: &PayloadRef) -> io::Result<()> {
        let Some(directory) = &self.payloads else {
            eprintln!("server: no payload directory");
            return self.send(stream, payload.missing());
        };
        let path = directory.join(payload.file_name());
        let file = match fs::File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                eprintln!("server: no payload {}", path.display());
                return self.send(stream, payload.missing());
            }
            Err(error) => {
                eprintln!("server: {}: {error}", path.display());
                return internal_error(stream);
            }
        };
        let length = file.metadata()?.len();
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n\
             content-disposition: attachment; filename=\"{}\"\r\ncontent-length: {length}\r\n\
             connection: close\r\n\r\n",
            payload.file_name()
        );
        stream.write_all(head.as_bytes())?;
        // No more than the length announced, should the file grow meanwhile.
        let sent = io::copy(&mut file.take(length), stream)?;
        if sent < length {
            return Err(io::Error::other(format!(
                "{} shrank while it was sent",
                path.display()
            )));
        }
        stream.flush()
    }
}

/// A request's headers (names in lower case), once its request line was checked.
struct Head {
    headers: Vec<(String, Vec<u8>)>,
}

impl Head {
    /// The first value of header `name` (lower case).
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.all(name).first().copied()
    }

    /// Every value of header `name` (lower case).
    fn all(&self, name: &str) -> Vec<&[u8]> {
        self.headers
            .iter()
            .filter(|(header, _)| header == name)
            .map(|(_, value)| value.as_slice())
            .collect()
    }
}

/// Reads the request line and the headers, at most [`HEAD_LIMIT`] bytes.
fn read_head(reader: &mut impl BufRead) -> Result<Head, Refusal> {
    let mut lines = Vec::new();
    let mut read = 0;
    loop {
        let mut line = Vec::new();
        let left = u64::try_from(HEAD_LIMIT - read).unwrap_or(u64::MAX);
        read += reader
            .take(left)
            .read_until(b'\n', &mut line)
            .map_err(|error| {
                Refusal::bad_request(format!("Could not read the request: {error}"))
            })?;
        let Some(line) = line.strip_suffix(b"\n") else {
            return Err(Refusal::bad_request(if read >= HEAD_LIMIT {
                format!("Request head too large: the limit is {HEAD_LIMIT} bytes")
            } else {
                "The connection closed in the request head".to_owned()
            }));
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        lines.push(line.to_vec());
    }
    let (request_line, header_lines) = lines
        .split_first()
        .ok_or_else(|| Refusal::bad_request("No request line"))?;
    let request_line = String::from_utf8_lossy(request_line);
    match request_line.split(' ').collect::<Vec<_>>()[..] {
        ["POST" | "GET", _target, version] if version.starts_with("HTTP/1.") => {}
        [method, _, _] => {
            return Err(Refusal::bad_request(format!(
                "Method {method} is not served: the agent API takes POST and GET"
            )))
        }
        _ => {
            return Err(Refusal::bad_request(format!(
                "Invalid request line `{request_line}`"
            )))
        }
    }
    let mut headers = Vec::with_capacity(header_lines.len());
    for line in header_lines {
        let colon = line.iter().position(|&c| c == b':');
        let Some((name, value)) = colon.map(|at| (&line[..at], &line[at + 1..])) else {
            let line = String::from_utf8_lossy(line);
            return Err(Refusal::bad_request(format!(
                "Invalid header line `{line}`"
            )));
        };
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        headers.push((name, value.trim_ascii().to_vec()));
    }
    Ok(Head { headers })
}

/// Reads the body: exactly `Content-Length` bytes, refused (413) before reading when that is over
/// [`BODY_LIMIT`].
fn read_body(reader: &mut impl Read, head: &Head) -> Result<Vec<u8>, Refusal> {
    if head.header("transfer-encoding").is_some() {
        return Err(Refusal::bad_request(
            "Transfer-Encoding is not supported: send Content-Length",
        ));
    }
    let length = match head.all("content-length")[..] {
        [length] => std::str::from_utf8(length)
            .ok()
            .and_then(|length| length.parse::<u64>().ok())
            .ok_or_else(|| Refusal::bad_request("Invalid Content-Length"))?,
        [] => return Err(Refusal::bad_request("Content-Length required")),
        _ => return Err(Refusal::bad_request("More than one Content-Length")),
    };
    let length = usize::try_from(length)
        .ok()
        .filter(|&length| length <= BODY_LIMIT)
        .ok_or_else(|| Refusal::too_large(BODY_LIMIT))?;
    let mut body = vec![0; length];
    reader.read_exact(&mut body).map_err(|error| {
        Refusal::bad_request(format!("Could not read the request body: {error}"))
    })?;
    Ok(body)
}

/// Writes a whole reply: the status line, the headers and `body`.
fn write_reply(
    stream: &mut impl Write,
    status: u16,
    content_type: &str,
    signature: Option<&str>,
    body: &[u8],
) -> io::Result<()> {
    let mut reply = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\n",
        reason_phrase(status)
    );
    if let Some(signature) = signature {
        reply.push_str(&format!("{}: {signature}\r\n", signature::SERVER_SIGNATURE));
    }
    reply.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    let mut reply = reply.into_bytes();
    reply.extend_from_slice(body);
    stream.write_all(&reply)?;
    stream.flush()
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        413 => "Content Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

fn internal_error(stream: &mut impl Write) -> io::Result<()> {
    let text = b"Internal server error";
    write_reply(stream, 500, "text/plain; charset=utf-8", None, text)
}

/// A connection over [`MAX_CONNECTIONS`]: told so and closed, on the accepting thread, so
/// without waiting for the client (a fresh connection's send buffer takes the few bytes at once).
fn refuse_busy(mut stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    let text = b"Too many connections";
    let _ = write_reply(&mut stream, 503, "text/plain; charset=utf-8", None, text);
    let _ = stream.shutdown(Shutdown::Both);
}

/// Closes `stream` after its answer: what the client sent and the server did not read (a body
/// refused unread) is read first, a bounded amount for a bounded time; closing with unread
/// bytes would reset the connection and could lose the answer.
fn close(mut stream: TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(DRAIN_TIMEOUT));
    let _ = io::copy(&mut (&mut stream).take(DRAIN_LIMIT), &mut io::sink());
}

/// The wall clock.
#[allow(clippy::disallowed_methods)] // The transport reads the clock; the service never does.
fn now() -> DateTime<Utc> {
    DateTime::from(std::time::SystemTime::now())
}

/// Writes the last-seen times the service noted; those it could not write are kept for the
/// next call.
fn flush_seen(service: &AgentService) {
    let Some(op) = service.flush() else {
        return;
    };
    match run(service.engine().store().as_ref(), op) {
        Ok(recorded) => eprintln!("server: {} last-seen times written", recorded.written),
        Err(not_recorded) => {
            eprintln!(
                "server: last-seen times not written: {}",
                not_recorded.error
            );
            service.requeue(&not_recorded.unwritten);
        }
    }
}

/// A service over an in-memory store holding the computer `hostname` and a package deployed to
/// it, with a payload or not; returns the package too.
fn seeded_service(
    global_key: &str,
    hostname: &str,
    with_payload: bool,
) -> Result<(AgentService, Package), Box<dyn Error>> {
    let store = Arc::new(CachedStore::new(Arc::new(MemoryStore::new()), HELLO_CACHE));
    let service = AgentService::new(
        Engine::new(store.clone()),
        ServiceConfig::new(global_key),
        Arc::new(OsKeys),
    );
    let computer =
        store.create_computer(NewComputer::new(Name::hostname("hostname", hostname)?))?;
    let family = store.create_family(Name::new("name", "hello")?)?;
    let package = store.create_package(NewPackage {
        payload: with_payload.then_some(Payload::Unknown),
        ..NewPackage::new(
            family.id,
            Name::new("version", "1.0")?,
            Procedure::new("echo hello from oco"),
        )
    })?;
    let now = now();
    let container = ContainerSettings::new(
        Name::new("name", "hello 1.0")?,
        now,
        DeliveryPolicy::default(),
    );
    let request = DeployRequest::new(container)
        .with_computers([computer.id])
        .with_packages([package.id]);
    service.engine().deploy(&request, now)?;
    Ok((service, package))
}

// ---------------------------------------------------------------------------------------------
// Serving real agents.

/// The command line of [`serve_real_agents`].
struct Options {
    listen: SocketAddr,
    global_key: String,
    hostname: String,
    payloads: Option<PathBuf>,
}

const USAGE: &str = "usage: agent_over_std_net [--listen ADDR --global-key KEY \
                     [--hostname NAME] [--payloads DIR]]";

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let (mut listen, mut global_key, mut hostname, mut payloads) = (None, None, None, None);
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let mut value = || {
                args.next()
                    .cloned()
                    .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
            };
            match flag.as_str() {
                "--listen" => {
                    let text = value()?;
                    let address = text
                        .parse()
                        .map_err(|error| format!("--listen `{text}`: {error}"))?;
                    listen = Some(address);
                }
                "--global-key" => global_key = Some(value()?),
                "--hostname" => hostname = Some(value()?),
                "--payloads" => payloads = Some(PathBuf::from(value()?)),
                other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
            }
        }
        Ok(Options {
            listen: listen.ok_or_else(|| format!("--listen is missing\n{USAGE}"))?,
            global_key: global_key.ok_or_else(|| format!("--global-key is missing\n{USAGE}"))?,
            hostname: hostname.unwrap_or_else(|| "pc1".into()),
            payloads,
        })
    }
}

fn serve_real_agents(options: Options) -> Result<(), Box<dyn Error>> {
    let (service, package) = seeded_service(
        &options.global_key,
        &options.hostname,
        options.payloads.is_some(),
    )?;
    let listener = TcpListener::bind(options.listen)?;
    println!(
        "serving OCO agents on http://{}/api-agent.php",
        listener.local_addr()?
    );
    println!(
        "computer `{}`, with package {} to install{}",
        options.hostname,
        package.id,
        match &options.payloads {
            Some(directory) => format!(
                " (payload {})",
                directory.join(format!("{}.zip", package.id.0)).display()
            ),
            None => String::new(),
        }
    );
    let flushed = service.clone();
    thread::spawn(move || loop {
        thread::sleep(FLUSH_INTERVAL);
        flush_seen(&flushed);
    });
    Transport::new(service, options.payloads).serve(listener);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The scripted agent.

const GLOBAL_KEY: &str = "demo-global-agent-key";
const HOSTNAME: &str = "pc1";

/// Serves on `127.0.0.1:0` and runs one agent cycle against it over TCP.
fn demo() -> Result<(), Box<dyn Error>> {
    let payloads =
        std::env::temp_dir().join(format!("oco-agent-over-std-net-{}", std::process::id()));
    fs::create_dir_all(&payloads)?;
    let result = demo_with_payloads(&payloads);
    let _ = fs::remove_dir_all(&payloads);
    result
}

fn demo_with_payloads(payloads: &Path) -> Result<(), Box<dyn Error>> {
    let (service, package) = seeded_service(GLOBAL_KEY, HOSTNAME, true)?;
    // An empty zip archive: its end-of-central-directory record alone.
    let mut archive = b"PK\x05\x06".to_vec();
    archive.resize(22, 0);
    fs::write(payloads.join(format!("{}.zip", package.id.0)), &archive)?;

    let listener = TcpListener::bind("127.0.0.1:0")?;
    let server = listener.local_addr()?;
    let transport = Transport::new(service.clone(), Some(payloads.to_path_buf()));
    // The server runs until the process ends.
    thread::spawn(move || transport.serve(listener));
    let mut agent = ScriptedAgent {
        server,
        key: GLOBAL_KEY.into(),
        server_key: None,
        last_reply: 0.0,
    };

    // The first hello, signed with the global key: the agent's keys and its job.
    let reply = agent.call(
        "POST",
        &hello_body("uid", HOSTNAME, agent.clock(), &HelloData::minimal()),
    )?;
    let params = agent.accept(&reply)?;
    let server_key = params["server-key"].as_str().ok_or("no server key")?;
    // The agent trusts the first key blindly; the reply was signed with it all the same.
    assert!(verify(
        server_key,
        &reply.body,
        reply
            .header(signature::SERVER_SIGNATURE)
            .unwrap_or_default()
    ));
    agent.server_key = Some(server_key.to_owned());
    agent.key = params["agent-key"]
        .as_str()
        .ok_or("no agent key")?
        .to_owned();
    let jobs = params["software-jobs"].as_array().ok_or("no jobs")?;
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(job["package-id"], package.id.0);
    assert_eq!(job["download"], true);

    // Downloading, reported.
    let progress = JobState {
        job_id: &job["id"],
        state: 1,
        return_code: None,
        download_progress: Some(0),
        message: "",
    };
    let reply = agent.call(
        "POST",
        &job_state_body("uid", HOSTNAME, agent.clock(), &progress),
    )?;
    assert_eq!(agent.accept(&reply)?["job-succeeded"], false);

    // The payload: a GET with a signed body.
    let reply = agent.call(
        "GET",
        &download_body("uid", HOSTNAME, agent.clock(), package.id.0),
    )?;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(reply.body, archive);

    // A report signed with the wrong key is refused, in plain text.
    let done = JobState {
        state: 3,
        return_code: Some(0),
        download_progress: None,
        message: "hello from oco\n",
        ..progress
    };
    let body = job_state_body("uid", HOSTNAME, agent.clock(), &done);
    let reply = agent.call_signed("POST", &body, GLOBAL_KEY)?;
    assert_eq!(
        (reply.status, reply.body.as_slice()),
        (401, &b"Invalid signature"[..])
    );

    // The job ran: it succeeded.
    let reply = agent.call("POST", &body)?;
    assert_eq!(agent.accept(&reply)?["job-succeeded"], true);

    // The transport's own refusals, decided on the head before the body is read.
    let oversized = format!(
        "POST /api-agent.php HTTP/1.1\r\ncontent-type: application/json\r\n\
         {}: {}\r\ncontent-length: {}\r\n\r\n",
        signature::AGENT_SIGNATURE,
        sign(&agent.key, b"{}"),
        BODY_LIMIT + 1
    );
    let reply = exchange(server, oversized.as_bytes())?;
    println!(
        "agent: a body over the limit -> {} {}",
        reply.status,
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.status, 413);
    let form =
        b"POST /api-agent.php HTTP/1.1\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\n{}";
    let reply = exchange(server, form)?;
    assert_eq!(
        (reply.status, reply.body.as_slice()),
        (400, &b"Content type mismatch"[..])
    );

    // The reports noted when the agent was last seen; a server writes that every few seconds.
    flush_seen(&service);
    println!("the scripted agent's cycle went as it should");
    Ok(())
}

/// An agent that speaks as the OCO agent 1.2.0 on the wire: one connection per call, bodies as
/// it writes them, signed with its key; a reply accepted only with a 200, a timestamp above the
/// last one, and, once it has a server key, that key's signature.
struct ScriptedAgent {
    server: SocketAddr,
    key: String,
    server_key: Option<String>,
    last_reply: f64,
}

/// A reply as the agent reads it.
struct HttpReply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpReply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header == name)
            .map(|(_, value)| value.as_str())
    }
}

impl ScriptedAgent {
    /// The agent's clock, as it sends it: seconds with four decimals.
    fn clock(&self) -> f64 {
        (epoch_seconds(now()) * 1e4).round() / 1e4
    }

    /// Sends `body` with its signature as `method`, and reads the whole reply.
    fn call(&self, method: &str, body: &[u8]) -> io::Result<HttpReply> {
        self.call_signed(method, body, &self.key)
    }

    fn call_signed(&self, method: &str, body: &[u8], key: &str) -> io::Result<HttpReply> {
        let head = format!(
            "{method} /api-agent.php HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
             {}: {}\r\ncontent-length: {}\r\n\r\n",
            self.server,
            signature::AGENT_SIGNATURE,
            sign(key, body),
            body.len()
        );
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        let reply = exchange(self.server, &request)?;
        let method = serde_json::from_slice::<Value>(body).ok();
        let method = method
            .as_ref()
            .and_then(|body| body["method"].as_str())
            .unwrap_or("?");
        match reply.header("content-type") {
            Some("application/octet-stream") => {
                println!(
                    "agent: {method} -> {}, {} bytes",
                    reply.status,
                    reply.body.len()
                )
            }
            _ => println!(
                "agent: {method} -> {} {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            ),
        }
        Ok(reply)
    }

    /// `result.params` of a JSON reply the agent accepts.
    fn accept(&mut self, reply: &HttpReply) -> Result<Value, Box<dyn Error>> {
        if reply.status != 200 {
            return Err(format!("status {}", reply.status).into());
        }
        if let Some(key) = &self.server_key {
            let signature = reply
                .header(signature::SERVER_SIGNATURE)
                .ok_or("Missing server signature")?;
            if !verify(key, &reply.body, signature) {
                return Err("Invalid server signature".into());
            }
        }
        let json: Value = serde_json::from_slice(&reply.body)?;
        let timestamp = json["result"]["timestamp"]
            .as_f64()
            .ok_or("No timestamp in server response")?;
        if timestamp <= self.last_reply {
            return Err("Server timestamp is the same or lower than last server timestamp".into());
        }
        self.last_reply = timestamp;
        Ok(json["result"]["params"].clone())
    }
}

/// Sends `request` on a connection of its own and reads the reply to the end (the server closes
/// the connection after it).
fn exchange(server: SocketAddr, request: &[u8]) -> io::Result<HttpReply> {
    let mut stream = TcpStream::connect(server)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(request)?;
    let mut received = Vec::new();
    stream.read_to_end(&mut received)?;
    parse_reply(&received)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "a malformed reply"))
}

/// A whole HTTP/1.1 reply: its status, headers (names in lower case) and body (as long as its
/// `content-length` says).
fn parse_reply(received: &[u8]) -> Option<HttpReply> {
    let end = received
        .windows(4)
        .position(|window| window == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&received[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let body = received[end + 4..].to_vec();
    let reply = HttpReply {
        status,
        headers,
        body,
    };
    let length: usize = reply.header("content-length")?.parse().ok()?;
    (length == reply.body.len()).then_some(reply)
}
