//! `backend-api healthcheck`: the container's HEALTHCHECK command.
//!
//! The runtime image has no curl or wget, so the binary probes itself: one HTTP/1.1
//! `GET /health/details` to 127.0.0.1:$PORT over a plain `TcpStream`: the readiness
//! checks of `/health/ready`, with the reason when failing, which Docker then keeps in
//! `docker inspect` (the public endpoints say only the status). Exit status 0 means
//! healthy and 1 unhealthy; Docker reserves 2, so it is never used here.

use std::env::VarError;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::config;

/// The whole probe, connect to last byte, stays within this (HEALTHCHECK --timeout is 4s).
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

const PROBE_PATH: &str = crate::health::DETAILS_PATH;

/// Responses are tiny; anything longer is cut, as it is only printed.
const MAX_RESPONSE_BYTES: usize = 8 * 1024;

pub fn run() -> ExitCode {
    let port = match std::env::var("PORT") {
        Err(VarError::NotPresent) => Ok(config::DEFAULT_PORT),
        Err(VarError::NotUnicode(_)) => Err("the value is not valid UTF-8".to_owned()),
        Ok(value) => config::parse_port(&value),
    };
    let port = match port {
        Ok(port) => port,
        Err(problem) => {
            println!("healthcheck: invalid PORT: {problem}");
            return ExitCode::FAILURE;
        }
    };
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    match probe(address, PROBE_TIMEOUT) {
        Ok(outcome) => {
            // Docker keeps this output in `docker inspect`: status line, then the body
            // with the reason when not ready.
            println!("{}", outcome.status_line);
            if !outcome.body.is_empty() {
                println!("{}", outcome.body);
            }
            if outcome.status == Some(200) { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(error) => {
            println!("healthcheck: GET http://{address}{PROBE_PATH} failed: {error}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug)]
struct ProbeOutcome {
    status_line: String,
    status: Option<u16>,
    body: String,
}

fn probe(address: SocketAddr, timeout: Duration) -> io::Result<ProbeOutcome> {
    let deadline = Instant::now() + timeout;
    let remaining = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero())
            .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "timed out"))
    };

    let mut stream = TcpStream::connect_timeout(&address, remaining()?)?;
    stream.set_write_timeout(Some(remaining()?))?;
    // `Connection: close` makes the server end the stream after one response, so
    // reading to EOF needs no HTTP framing logic.
    write!(
        stream,
        "GET {PROBE_PATH} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: backend-api-healthcheck\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )?;

    let mut response = Vec::new();
    let mut chunk = [0u8; 1024];
    while response.len() < MAX_RESPONSE_BYTES {
        stream.set_read_timeout(Some(remaining()?))?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => response.extend_from_slice(&chunk[..read]),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            // A status line already in hand is enough to decide.
            Err(_) if response.windows(2).any(|w| w == b"\r\n") => break,
            Err(error) => return Err(error),
        }
    }
    parse_response(&response)
}

fn parse_response(response: &[u8]) -> io::Result<ProbeOutcome> {
    let text = String::from_utf8_lossy(response);
    let Some((status_line, rest)) = text.split_once("\r\n") else {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "no HTTP status line in the response"));
    };
    // "HTTP/1.1 200 OK": the code is the second space-separated field.
    let status =
        status_line.strip_prefix("HTTP/1.").and_then(|line| line.split(' ').nth(1)).and_then(|code| code.parse().ok());
    let body = rest.split_once("\r\n\r\n").map(|(_headers, body)| body.trim().to_owned()).unwrap_or_default();
    Ok(ProbeOutcome { status_line: status_line.to_owned(), status, body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    /// A one-shot server that reads the request and answers with `response`.
    fn serve_once(response: &'static str) -> (SocketAddr, thread::JoinHandle<String>) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let address = listener.local_addr().unwrap();
        let handle = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut chunk = [0u8; 512];
            while !request.ends_with(b"\r\n\r\n") {
                let read = stream.read(&mut chunk).unwrap();
                if read == 0 {
                    break;
                }
                request.extend_from_slice(&chunk[..read]);
            }
            stream.write_all(response.as_bytes()).unwrap();
            String::from_utf8(request).unwrap()
        });
        (address, handle)
    }

    #[test]
    fn ready_server_is_healthy() {
        let (address, server) = serve_once(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 18\r\n\r\n{\"status\":\"ready\"}",
        );
        let outcome = probe(address, PROBE_TIMEOUT).unwrap();
        assert_eq!(outcome.status, Some(200));
        assert_eq!(outcome.status_line, "HTTP/1.1 200 OK");
        assert_eq!(outcome.body, "{\"status\":\"ready\"}");
        let request = server.join().unwrap();
        assert!(request.starts_with("GET /health/details HTTP/1.1\r\n"), "{request}");
        assert!(request.contains("\r\nConnection: close\r\n"), "{request}");
    }

    #[test]
    fn unready_server_is_unhealthy() {
        let (address, server) = serve_once("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
        let outcome = probe(address, PROBE_TIMEOUT).unwrap();
        assert_eq!(outcome.status, Some(503));
        server.join().unwrap();
    }

    #[test]
    fn silent_server_times_out() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let address = listener.local_addr().unwrap();
        let started = Instant::now();
        // Accepted by the kernel's backlog, never answered.
        let error = probe(address, Duration::from_millis(300)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2), "{error}");
        drop(listener);
    }

    #[test]
    fn garbage_is_not_a_status() {
        assert!(parse_response(b"hello").is_err());
        let outcome = parse_response(b"SSH-2.0-OpenSSH\r\n\r\n").unwrap();
        assert_eq!(outcome.status, None);
    }
}
