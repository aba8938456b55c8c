//! What can go wrong in the engine, typed. The texts are what the result
//! file's `errors` groups by, so they stay short and stable.

use std::net::SocketAddr;
use std::time::Duration;

use crate::scenario::template::TemplateError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A step's request cannot be made (before anything is sent).
    #[error("step `{step}`: {problem}")]
    Step { step: String, problem: StepProblem },
    /// The TCP connection could not be opened.
    #[error("{}", connect_text(.addr, .source))]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("connect timeout after {}", crate::duration::format(*.0))]
    ConnectTimeout(Duration),
    /// The TLS handshake failed: a certificate not trusted, no common
    /// protocol, or no TLS at all on that port.
    #[error("{}", tls_text(.addr, .source))]
    Tls {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("handshake failed ({addr}): {}", chain(.source))]
    Handshake {
        addr: SocketAddr,
        source: hyper::Error,
    },
    /// The exchange failed after the connection was open.
    #[error("{}", chain(.0))]
    Http(hyper::Error),
    #[error("request timeout after {}", crate::duration::format(*.0))]
    RequestTimeout(Duration),
    /// A redirect to another scheme, host or port: VUs hold connections to
    /// the target only. Holds the origin, not the whole location (bounded groups).
    #[error("redirect to another origin ({0}) not followed: a VU connects to the target only; use that origin as --target")]
    RedirectAway(String),
    #[error("stopped after {0} redirects (max_redirects); the last response was a redirect")]
    TooManyRedirects(u32),
    /// `decompress = true` and a body that cannot be decoded.
    #[error("response {0}")]
    Decode(String),
    /// A setup or teardown step did not give what the next steps need.
    #[error("{section} step `{step}`{problem}")]
    Once {
        section: String,
        step: String,
        problem: OnceProblem,
    },
    /// The run's timeline could not be kept in its temporary file.
    #[error("cannot keep the timeline in a temporary file ({0}); is the temporary directory full or read-only? (TMPDIR)")]
    Spool(std::io::Error),
    #[error("cannot start a worker thread: {0}")]
    Thread(std::io::Error),
    /// A worker thread panicked: its share of the run is lost.
    #[error("a worker thread failed ({0}); the run's figures would be incomplete")]
    Worker(String),
}

fn tls_text(addr: &SocketAddr, e: &std::io::Error) -> String {
    use rustls::CertificateError as C;
    let cert = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .and_then(|r| match r {
            rustls::Error::InvalidCertificate(c) => Some(c),
            _ => None,
        });
    let hint = match cert {
        Some(C::UnknownIssuer | C::BadSignature) => {
            "; trust its CA with --ca-cert FILE, or pass --insecure-skip-tls-verify for a test environment"
        }
        Some(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            "; use the host name the certificate was issued for (or --insecure-skip-tls-verify for a test environment)"
        }
        Some(_) => "; --insecure-skip-tls-verify accepts it for a test environment",
        None => "",
    };
    format!("TLS handshake failed ({addr}): {e}{hint}")
}

impl Error {
    /// The text errors are grouped by in results: like the message, minus
    /// the values a template rendered (each could make a group of its own,
    /// and a header value may be a secret).
    pub fn group_key(&self) -> String {
        match self {
            Error::Step {
                step,
                problem: StepProblem::Render(r),
            } => format!("step `{step}`: template error: {}", r.kind()),
            other => other.to_string(),
        }
    }
}

impl RenderProblem {
    fn kind(&self) -> String {
        match self {
            RenderProblem::Template(t) => t.to_string(),
            RenderProblem::Path(_) => "the rendered path is not a valid request path".into(),
            RenderProblem::Header { name, .. } => {
                format!("header {name} renders to an invalid value")
            }
            RenderProblem::Json(_) => "the rendered JSON body cannot be written".into(),
        }
    }
}

/// Why a step's request cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum StepProblem {
    #[error("{0}")]
    Path(#[from] InvalidPath),
    #[error("bad header value for {0}")]
    HeaderValue(String),
    #[error("template error: {0}")]
    Render(#[from] RenderProblem),
}

/// What rendering a step's templates produced that cannot be sent.
#[derive(Debug, thiserror::Error)]
pub enum RenderProblem {
    #[error("{0}")]
    Template(#[from] TemplateError),
    #[error("{0}")]
    Path(#[from] InvalidPath),
    #[error("header {name} renders to an invalid value {value:?}")]
    Header { name: String, value: String },
    #[error("{0}")]
    Json(#[from] serde_json::Error),
}

/// A path that does not make a request URI with the target's prefix.
#[derive(Debug, thiserror::Error)]
#[error("`{path}` is not a valid request path: {reason}")]
pub struct InvalidPath {
    pub path: String,
    pub reason: String,
}

/// Why a setup or teardown step failed (the text follows the step's name).
#[derive(Debug, thiserror::Error)]
pub enum OnceProblem {
    #[error(": {0}")]
    Build(Box<Error>),
    #[error(" failed: {0}")]
    Send(Box<Error>),
    #[error(": check `{check}` failed (status {status}, body: {body})")]
    Check {
        check: String,
        status: u16,
        body: String,
    },
    #[error(": could not extract `{var}` from the response (status {status}, body: {body})")]
    Extract {
        var: String,
        status: u16,
        body: String,
    },
}

fn connect_text(addr: &SocketAddr, e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => format!("connection refused ({addr})"),
        K::ConnectionReset => format!("connection reset ({addr})"),
        K::TimedOut => format!("connect timeout ({addr})"),
        K::AddrNotAvailable => format!("no local port available to reach {addr}"),
        _ => format!("connect error ({addr}): {e}"),
    }
}

/// hyper's message with its causes, which say what actually happened.
fn chain(e: &hyper::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_the_grouping_keys() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let refused = Error::Connect {
            addr,
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        assert_eq!(refused.to_string(), "connection refused (127.0.0.1:9)");
        assert_eq!(
            Error::RequestTimeout(Duration::from_millis(1500)).to_string(),
            "request timeout after 1.5s"
        );
        let step = Error::Step {
            step: "pay".into(),
            problem: StepProblem::HeaderValue("x-key".into()),
        };
        assert_eq!(step.to_string(), "step `pay`: bad header value for x-key");
        let rendered = Error::Step {
            step: "pay".into(),
            problem: RenderProblem::Header {
                name: "x-key".into(),
                value: "a\nb".into(),
            }
            .into(),
        };
        assert_eq!(
            rendered.to_string(),
            "step `pay`: template error: header x-key renders to an invalid value \"a\\nb\""
        );
        let send = Error::Once {
            section: "teardown".into(),
            step: "cleanup".into(),
            problem: OnceProblem::Send(Box::new(Error::RequestTimeout(Duration::from_secs(2)))),
        };
        assert_eq!(
            send.to_string(),
            "teardown step `cleanup` failed: request timeout after 2s"
        );
        let once = Error::Once {
            section: "setup".into(),
            step: "login".into(),
            problem: OnceProblem::Check {
                check: "status is 200".into(),
                status: 500,
                body: "oops".into(),
            },
        };
        assert_eq!(
            once.to_string(),
            "setup step `login`: check `status is 200` failed (status 500, body: oops)"
        );
    }
}
