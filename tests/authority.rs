//! The `:authority` values gRPC clients send over a Unix socket reach ifad.
//!
//! A client of our own writes the HTTP/2 frames by hand, because every
//! HTTP/2 library (ours included) refuses to send the values that grpc-java
//! (the raw socket path) and gRPC C-core (the percent-encoded path) do. These
//! tests fail if the h2 patch in `third_party/h2` is lost: stock h2 resets
//! those streams with PROTOCOL_ERROR.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use ifa_e2e::Daemon;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;
const PROTOCOL_ERROR: u32 = 1;
/// How long one exchange may take before the test gives up.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// How the server answered one gRPC call.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// The gRPC messages of the response body.
    Served(Vec<Vec<u8>>),
    /// The stream was reset with this HTTP/2 error code.
    Reset(u32),
}

struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

/// An HPACK integer with an `prefix_bits`-bit prefix (RFC 7541, 5.1).
fn hpack_int(out: &mut Vec<u8>, value: usize, prefix_bits: u32) {
    let max = (1usize << prefix_bits) - 1;
    if value < max {
        out.push(value as u8);
        return;
    }
    out.push(max as u8);
    let mut rest = value - max;
    while rest >= 0x80 {
        out.push((rest & 0x7f) as u8 | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// A header block of literal fields without indexing, no Huffman coding.
fn header_block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0x00);
        for s in [name, value] {
            hpack_int(&mut out, s.len(), 7);
            out.extend_from_slice(s.as_bytes());
        }
    }
    out
}

fn write_frame(conn: &mut UnixStream, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = (payload.len() as u32).to_be_bytes();
    let mut frame = vec![len[1], len[2], len[3], kind, flags];
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    conn.write_all(&frame).expect("write frame");
}

fn read_frame(conn: &mut UnixStream) -> Frame {
    let mut head = [0u8; 9];
    conn.read_exact(&mut head).expect("read frame header");
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0u8; len];
    conn.read_exact(&mut payload).expect("read frame payload");
    Frame {
        kind: head[3],
        flags: head[4],
        stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
        payload,
    }
}

/// The length-prefixed gRPC messages in a response body.
fn grpc_messages(mut body: &[u8]) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    while body.len() >= 5 {
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        messages.push(body[5..5 + len].to_vec());
        body = &body[5 + len..];
    }
    messages
}

/// One unary gRPC call of `method` with an empty request message, sending
/// `authority` as `:authority` (none if `None`).
fn call(socket: &Path, method: &str, authority: Option<&str>) -> Answer {
    let mut conn = UnixStream::connect(socket).expect("connect");
    conn.set_read_timeout(Some(EXCHANGE_TIMEOUT)).unwrap();
    conn.write_all(PREFACE).unwrap();
    write_frame(&mut conn, SETTINGS, 0, 0, &[]);
    let mut fields = vec![(":method", "POST"), (":scheme", "http"), (":path", method)];
    if let Some(a) = authority {
        fields.push((":authority", a));
    }
    fields.extend([("content-type", "application/grpc"), ("te", "trailers")]);
    write_frame(&mut conn, HEADERS, END_HEADERS, 1, &header_block(&fields));
    write_frame(&mut conn, DATA, END_STREAM, 1, &[0, 0, 0, 0, 0]);
    answer(&mut conn)
}

/// Reads until stream 1 ends, acknowledging the server's settings.
fn answer(conn: &mut UnixStream) -> Answer {
    let deadline = Instant::now() + EXCHANGE_TIMEOUT;
    let mut body = Vec::new();
    while Instant::now() < deadline {
        let f = read_frame(conn);
        match (f.kind, f.stream) {
            (SETTINGS, 0) if f.flags & ACK == 0 => write_frame(conn, SETTINGS, ACK, 0, &[]),
            (RST_STREAM, 1) => {
                let code = u32::from_be_bytes(f.payload[..4].try_into().unwrap());
                return Answer::Reset(code);
            }
            (GOAWAY, 0) => panic!("connection closed by the server: {:?}", f.payload),
            (DATA, 1) => body.extend_from_slice(&f.payload),
            _ => {}
        }
        if f.stream == 1 && f.flags & END_STREAM != 0 {
            return Answer::Served(grpc_messages(&body));
        }
    }
    panic!("no answer within {EXCHANGE_TIMEOUT:?}");
}

/// `HealthCheckResponse { status: SERVING }`.
const SERVING: &[u8] = &[0x08, 0x01];
const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";

fn percent_encoded(path: &str) -> String {
    path.replace('%', "%25").replace('/', "%2F")
}

#[test]
fn every_authority_grpc_clients_send_on_a_unix_socket_is_served() {
    let d = Daemon::simulate("harts=2,files=2");
    let raw = d.socket.to_str().expect("utf-8 socket path").to_string();
    let encoded = percent_encoded(&raw);
    assert!(encoded.starts_with("%2F"), "{encoded}");
    // grpcio sends "unix:/tmp/x.sock" as "tmp%2Fx.sock" (seen in h2's log).
    let grpcio = encoded.trim_start_matches("%2F").to_string();
    let forms = [
        ("grpc-go", Some("localhost")),
        ("grpc C-core (grpcio), unix:/path", Some(grpcio.as_str())),
        ("grpc C-core, other spellings", Some(encoded.as_str())),
        ("grpc-java", Some(raw.as_str())),
        ("no authority", None),
    ];
    for (client, authority) in forms {
        assert_eq!(
            call(&d.socket, HEALTH_CHECK, authority),
            Answer::Served(vec![SERVING.to_vec()]),
            "{client} ({authority:?})"
        );
        let status = call(&d.socket, "/ifa.v1.Allocator/GetStatus", authority);
        assert!(
            matches!(&status, Answer::Served(m) if m.len() == 1 && !m[0].is_empty()),
            "{client}: {status:?}"
        );
    }
}

#[test]
fn other_malformed_authorities_are_still_reset() {
    let d = Daemon::simulate("harts=2,files=2");
    for bad in [
        "bad host",
        "relative/path.sock",
        "%2Fa%20b",
        "/with space",
        "a%41b",
    ] {
        assert_eq!(
            call(&d.socket, HEALTH_CHECK, Some(bad)),
            Answer::Reset(PROTOCOL_ERROR),
            "{bad:?}"
        );
    }
}
