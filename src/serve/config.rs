//! The command line of `ticketlog serve`, checked: the address to bind, the
//! token (read from its file), and every bound the server keeps. Refuses a
//! non-loopback address without a token unless the user says otherwise.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::cli::CliError;
use crate::cli::args::ServeArgs;

/// The largest request body accepted; a larger one is answered 413.
pub(crate) const BODY_BYTES_MAX: usize = 64 << 10;
/// The longest a client may take to send a request's headers, and the
/// longest an idle keep-alive connection is kept.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request head (request line and headers).
pub(crate) const HEADER_BYTES_MAX: usize = 16 << 10;
/// The longest a bearer token file may be.
const TOKEN_BYTES_MAX: usize = 4096;

/// What `ticketlog serve` runs with.
#[derive(Clone, Debug)]
pub(crate) struct ServeConfig {
    pub listen: SocketAddr,
    /// The bearer token every request must carry, if any.
    pub token: Option<String>,
    pub connections_max: usize,
    pub request_timeout: Duration,
    pub sse_clients_max: usize,
    /// How long an event stream may be idle before a heartbeat comment.
    pub sse_heartbeat: Duration,
}

impl ServeConfig {
    pub fn from_args(args: &ServeArgs) -> Result<Self, CliError> {
        let listen = resolve(&args.listen)?;
        let token = match &args.token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    CliError::Failed(format!("reading the token file {}: {e}", path.display()))
                })?;
                let token = text.lines().next().unwrap_or("").trim();
                if token.is_empty() || token.len() > TOKEN_BYTES_MAX {
                    return Err(CliError::Failed(format!(
                        "the token file {} must hold a token of 1 to {TOKEN_BYTES_MAX} bytes on its first line",
                        path.display()
                    )));
                }
                Some(token.to_owned())
            }
            None => None,
        };
        if token.is_none() && !listen.ip().is_loopback() && !args.allow_unauthenticated {
            return Err(CliError::Failed(format!(
                "refusing to serve on {listen} without a token: anyone who can reach it could \
                 change the store; give --token-file FILE, or --allow-unauthenticated"
            )));
        }
        Ok(ServeConfig {
            listen,
            token,
            connections_max: usize::try_from(args.connections_max).unwrap_or(usize::MAX),
            request_timeout: Duration::from_millis(args.request_timeout_ms),
            sse_clients_max: usize::try_from(args.sse_clients_max).unwrap_or(usize::MAX),
            sse_heartbeat: Duration::from_millis(args.sse_heartbeat_ms),
        })
    }

    /// How many blocking client calls may run at once: one per connection
    /// (HTTP/1.1 serves one request at a time on a connection), so a
    /// connection never waits for another's call.
    pub fn blocking_calls_max(&self) -> usize {
        self.connections_max
    }
}

/// `ADDR` as given to `--listen`: an IP address and port, or a host name
/// and port that resolves to exactly one family of addresses (the first is
/// used).
fn resolve(listen: &str) -> Result<SocketAddr, CliError> {
    if let Ok(addr) = listen.parse::<SocketAddr>() {
        return Ok(addr);
    }
    listen
        .to_socket_addrs()
        .map_err(|e| {
            CliError::Failed(format!(
                "--listen {listen:?} is not an address: use HOST:PORT such as 127.0.0.1:7878 ({e})"
            ))
        })?
        .next()
        .ok_or_else(|| CliError::Failed(format!("--listen {listen:?} resolves to no address")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(listen: &str) -> ServeArgs {
        ServeArgs {
            listen: listen.into(),
            token_file: None,
            allow_unauthenticated: false,
            connections_max: 4,
            request_timeout_ms: 1000,
            sse_clients_max: 4,
            sse_heartbeat_ms: 15_000,
        }
    }

    #[test]
    fn loopback_needs_no_token_and_other_addresses_do() {
        assert!(ServeConfig::from_args(&args("127.0.0.1:0")).is_ok());
        assert!(ServeConfig::from_args(&args("[::1]:0")).is_ok());
        let refused = ServeConfig::from_args(&args("0.0.0.0:0")).unwrap_err();
        assert!(refused.to_string().contains("without a token"), "{refused}");
        let mut allowed = args("0.0.0.0:0");
        allowed.allow_unauthenticated = true;
        assert!(ServeConfig::from_args(&allowed).is_ok());
    }

    #[test]
    fn a_token_is_the_first_line_of_its_file_and_must_not_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret\n").unwrap();
        let mut with_token = args("0.0.0.0:0");
        with_token.token_file = Some(path.clone());
        let config = ServeConfig::from_args(&with_token).unwrap();
        assert_eq!(config.token.as_deref(), Some("s3cret"));
        std::fs::write(&path, "\n").unwrap();
        assert!(ServeConfig::from_args(&with_token).is_err());
    }
}
