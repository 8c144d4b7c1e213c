//! The admin API over HTTP: requests with the bearer token, answers as JSON, errors as
//! [`Error`]s that keep the server's code, message and field.
//!
//! Every answer read into memory is capped at [`MAX_ANSWER`]; connecting and each read from
//! the socket have timeouts ([`Timeouts`]), but a request as a whole has none, so an upload of
//! any size is not cut off while it makes progress. Redirects are not followed: the token is
//! sent to the address given and nowhere else.

use std::io::Read;
use std::time::Duration;

use serde_json::Value;

/// The most of one answer read into memory: the server's own body limit.
pub const MAX_ANSWER: u64 = 64 * 1024 * 1024;

/// The longest page the API serves.
pub const MAX_PAGE: usize = 1000;

/// How long to wait for a connection, and for each read from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Resolving the name and opening the connection (TLS handshake included).
    pub connect: Duration,
    /// Each read of the answer, and each write of a body: a server silent, or not reading, for
    /// longer than this fails the request.
    pub read: Duration,
}

impl Default for Timeouts {
    /// 10 s to connect, 60 s for each read (a deploy or a statistics request may wait up to
    /// 30 s for the server's permit of heavy work before it starts).
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            read: Duration::from_secs(60),
        }
    }
}

/// A request that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server refused the request with an error of the admin API's shape.
    #[error("HTTP {status} {code}: {message}{}", field_note(.field))]
    Api {
        /// The HTTP status.
        status: u16,
        /// The error's `code` (`not-found`, `invalid`, …).
        code: String,
        /// The error's `message`.
        message: String,
        /// The field it concerns, if the server named one.
        field: Option<String>,
        /// The whole `error` object (its `rendered` caret text, `conflicts`, …).
        detail: Value,
    },
    /// The server answered an error status without the admin API's error shape (a proxy, or
    /// not an oco server).
    #[error("HTTP {status} from {url}: {snippet}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The request's address.
        url: String,
        /// The start of the answer.
        snippet: String,
    },
    /// A redirect, which is not followed.
    #[error(
        "HTTP {status} from {url}: the server redirects to {location}; give that address with \
         --server (redirects are not followed, so the token goes nowhere else)"
    )]
    Redirect {
        /// The HTTP status.
        status: u16,
        /// The request's address.
        url: String,
        /// Where it points.
        location: String,
    },
    /// A successful answer that is not JSON.
    #[error("HTTP {status} from {url} is not JSON ({reason}): {snippet}")]
    NotJson {
        /// The HTTP status.
        status: u16,
        /// The request's address.
        url: String,
        /// What the parser said.
        reason: String,
        /// The start of the answer.
        snippet: String,
    },
    /// A listing's page that is not the API's `{"items", "next"}`, or whose `next` does not
    /// advance.
    #[error("the listing at {url} is not the API's: {reason}")]
    BadListing {
        /// The page's address.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An answer over [`MAX_ANSWER`].
    #[error("the answer from {url} is over {} MiB; ask for less (a smaller --limit)", MAX_ANSWER / (1024 * 1024))]
    TooLarge {
        /// The request's address.
        url: String,
    },
    /// The server could not be reached, or the exchange broke off.
    #[error("cannot talk to the server at {url}: {reason}")]
    Transport {
        /// The request's address.
        url: String,
        /// What went wrong, in words.
        reason: String,
    },
    /// The server's address is not a usable URL.
    #[error("the server address `{0}` is not an http:// or https:// URL with a host")]
    BadUrl(String),
    /// A local file could not be read.
    #[error("cannot read {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

impl Error {
    /// The HTTP status of a refusal, if the server answered one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. }
            | Error::Status { status, .. }
            | Error::Redirect { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A client of one server's admin API.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    /// `…/api/v1`, without a trailing slash.
    base: String,
    authorization: String,
}

impl std::fmt::Debug for Client {
    /// The address, not the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base).finish()
    }
}

/// How long an upload waits for the server's `100 Continue` (or its refusal) before sending the
/// body anyway, for a server or proxy that does not answer `Expect: 100-continue`.
const AWAIT_CONTINUE: Duration = Duration::from_secs(3);

/// The end of a listing: the `after` of the page that was not read, if there is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a listing cut short by its limit should say so"]
pub struct ListEnd {
    /// Items read.
    pub count: usize,
    /// `Some(id)` when more items follow (pass it as `--after`).
    pub more_after: Option<i64>,
}

impl Client {
    /// A client of the admin API of the server at `server` (`http://host:port`, with or without
    /// the `/api/v1` path), authenticating with `token`.
    ///
    /// # Errors
    ///
    /// [`Error::BadUrl`] for an address that is not `http://` or `https://` with a host.
    pub fn new(server: &str, token: &str, timeouts: Timeouts) -> Result<Client, Error> {
        let base = api_base(server)?;
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .timeout_connect(Some(timeouts.connect))
            .timeout_per_read(Some(timeouts.read))
            .timeout_per_write(Some(timeouts.read))
            .timeout_await_100(Some(AWAIT_CONTINUE))
            .user_agent(concat!("oco-cli/", env!("CARGO_PKG_VERSION")));
        if base.starts_with("https://") {
            config = config.tls_config(tls_config());
        }
        Ok(Client {
            agent: config.build().new_agent(),
            base,
            authorization: format!("Bearer {token}"),
        })
    }

    /// The address of the admin API, e.g. `http://127.0.0.1:8080/api/v1`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET path?query`, the answer as JSON.
    ///
    /// # Errors
    ///
    /// See [`Error`].
    pub fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, Error> {
        let url = self.url(path, query);
        let answer = self
            .agent
            .get(&url)
            .header("Authorization", &self.authorization)
            .call();
        self.json(&url, answer)
    }

    /// `POST path` with `body` as JSON, the answer as JSON.
    ///
    /// # Errors
    ///
    /// See [`Error`].
    pub fn post(&self, path: &str, body: &Value) -> Result<Value, Error> {
        let url = self.url(path, &[]);
        let answer = self
            .agent
            .post(&url)
            .header("Authorization", &self.authorization)
            .header("Content-Type", "application/json")
            .send(body.to_string());
        self.json(&url, answer)
    }

    /// `DELETE path`; the answer as JSON, `Value::Null` when it is empty (204).
    ///
    /// # Errors
    ///
    /// See [`Error`].
    pub fn delete(&self, path: &str) -> Result<Value, Error> {
        let url = self.url(path, &[]);
        let answer = self
            .agent
            .delete(&url)
            .header("Authorization", &self.authorization)
            .call();
        self.json(&url, answer)
    }

    /// `PUT path` with `length` bytes read from `body` as they are sent (never held whole in
    /// memory), announced with `Content-Length` and `Expect: 100-continue`, so that a refusal
    /// the server can make before the body (an unknown id, a size over its limit) arrives
    /// before the body is sent. The answer as JSON.
    ///
    /// # Errors
    ///
    /// See [`Error`]; a read error of `body` is an [`Error::Transport`].
    pub fn put_stream(
        &self,
        path: &str,
        body: &mut dyn Read,
        length: u64,
        content_type: &str,
    ) -> Result<Value, Error> {
        let url = self.url(path, &[]);
        let answer = self
            .agent
            .put(&url)
            .header("Authorization", &self.authorization)
            .header("Content-Type", content_type)
            .header("Content-Length", length.to_string())
            .header("Expect", "100-continue")
            .send(ureq::SendBody::from_reader(body));
        self.json(&url, answer)
    }

    /// Reads the listing at `path` page by page, following `next`, until `cap` items were read
    /// or the last page; `each` gets every page's items as they arrive. Pages are at most
    /// [`MAX_PAGE`] items, and the last one asks for no more than `cap` needs.
    ///
    /// # Errors
    ///
    /// See [`Error`]; a page without `items` and `next`, or whose `next` does not advance, is
    /// an [`Error::BadListing`]. `each`'s error stops the listing.
    pub fn list(
        &self,
        path: &str,
        query: &[(&str, String)],
        after: Option<i64>,
        cap: usize,
        each: &mut dyn FnMut(Vec<Value>) -> Result<(), crate::Failure>,
    ) -> Result<ListEnd, crate::Failure> {
        let mut after = after;
        let mut count = 0;
        while count < cap {
            let limit = (cap - count).min(MAX_PAGE);
            let mut page_query = query.to_vec();
            page_query.push(("limit", limit.to_string()));
            if let Some(after) = after {
                page_query.push(("after", after.to_string()));
            }
            let mut page = self.get(path, &page_query)?;
            let (Some(Value::Array(items)), Some(next)) = (
                page.get_mut("items").map(Value::take),
                page.get("next").cloned(),
            ) else {
                return Err(Error::BadListing {
                    url: self.url(path, &page_query),
                    reason: format!(
                        "a page has `items` and `next`: {}",
                        snippet(page.to_string().as_bytes())
                    ),
                }
                .into());
            };
            count += items.len();
            each(items)?;
            match next.as_i64() {
                // Ids ascend: a `next` that does not would page forever.
                Some(next) if after.is_some_and(|after| next <= after) => {
                    return Err(Error::BadListing {
                        url: self.url(path, &page_query),
                        reason: format!(
                            "`next` ({next}) does not advance past {}",
                            after.unwrap_or_default()
                        ),
                    }
                    .into())
                }
                Some(next) => after = Some(next),
                None => {
                    return Ok(ListEnd {
                        count,
                        more_after: None,
                    })
                }
            }
        }
        Ok(ListEnd {
            count,
            more_after: after,
        })
    }

    fn url(&self, path: &str, query: &[(&str, String)]) -> String {
        let mut url = format!("{}{}", self.base, path);
        for (i, (name, value)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(name);
            url.push('=');
            url.push_str(&encode(value));
        }
        url
    }

    /// The answer to a request to `url` as JSON, or the error it is.
    fn json(
        &self,
        url: &str,
        answer: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, Error> {
        let mut response = answer.map_err(|error| transport(url, &error))?;
        let status = response.status().as_u16();
        if (300..400).contains(&status) {
            return Err(Error::Redirect {
                status,
                url: url.to_owned(),
                location: response
                    .headers()
                    .get("location")
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or("an unnamed place")
                    .to_owned(),
            });
        }
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_vec()
            .map_err(|error| match error {
                ureq::Error::BodyExceedsLimit(_) => Error::TooLarge {
                    url: url.to_owned(),
                },
                other => transport(url, &other),
            })?;
        if bytes.is_empty() && (200..300).contains(&status) {
            return Ok(Value::Null);
        }
        let parsed = serde_json::from_slice::<Value>(&bytes);
        if (200..300).contains(&status) {
            return parsed.map_err(|error| Error::NotJson {
                status,
                url: url.to_owned(),
                reason: error.to_string(),
                snippet: snippet(&bytes),
            });
        }
        match parsed {
            Ok(Value::Object(mut body)) if body.get("error").is_some_and(Value::is_object) => {
                let detail = body.remove("error").unwrap_or_default();
                let text = |key: &str| detail.get(key).and_then(Value::as_str).map(str::to_owned);
                Err(Error::Api {
                    status,
                    code: text("code").unwrap_or_else(|| "error".into()),
                    message: text("message").unwrap_or_else(|| "(no message)".into()),
                    field: text("field"),
                    detail,
                })
            }
            _ => Err(Error::Status {
                status,
                url: url.to_owned(),
                snippet: snippet(&bytes),
            }),
        }
    }
}

/// ` (field `name`)` for an error naming a field, nothing otherwise.
fn field_note(field: &Option<String>) -> String {
    field
        .as_ref()
        .map(|field| format!(" (field `{field}`)"))
        .unwrap_or_default()
}

/// The admin API's address for a server address: `/api/v1` appended unless it is there.
fn api_base(server: &str) -> Result<String, Error> {
    let bad = || Error::BadUrl(server.to_owned());
    let trimmed = server.trim().trim_end_matches('/');
    let uri: ureq::http::Uri = trimmed.parse().map_err(|_| bad())?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http") | Some("https"));
    if !scheme_ok || uri.host().is_none_or(str::is_empty) || uri.query().is_some() {
        return Err(bad());
    }
    Ok(if trimmed.ends_with("/api/v1") {
        trimmed.to_owned()
    } else {
        format!("{trimmed}/api/v1")
    })
}

/// TLS with the system's trusted certificates (as the PostgreSQL client takes them), or
/// Mozilla's roots when the system has none.
fn tls_config() -> ureq::tls::TlsConfig {
    let native = rustls_native_certs::load_native_certs();
    let certs: Vec<ureq::tls::Certificate<'static>> = native
        .certs
        .iter()
        .map(|cert| ureq::tls::Certificate::from_der(cert.as_ref()).to_owned())
        .collect();
    let roots = if certs.is_empty() {
        ureq::tls::RootCerts::WebPki
    } else {
        ureq::tls::RootCerts::new_with_certs(&certs)
    };
    ureq::tls::TlsConfig::builder().root_certs(roots).build()
}

/// A transport error in words.
fn transport(url: &str, error: &ureq::Error) -> Error {
    let reason = match error {
        ureq::Error::Timeout(what) => format!("timed out ({what})"),
        ureq::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => {
                "connection refused (is the server running, and on this port?)".to_owned()
            }
            _ => io.to_string(),
        },
        ureq::Error::HostNotFound => "the host name does not resolve".to_owned(),
        other => other.to_string(),
    };
    Error::Transport {
        url: url.to_owned(),
        reason,
    }
}

/// The first 200 characters of an answer, on one line.
fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(800)]);
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    if line.trim().is_empty() {
        "(empty)".to_owned()
    } else {
        line.trim().to_owned()
    }
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved characters).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_path_is_added_once() {
        assert_eq!(
            api_base("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080/api/v1"
        );
        assert_eq!(
            api_base("https://oco.example/").unwrap(),
            "https://oco.example/api/v1"
        );
        assert_eq!(api_base("http://h:1/api/v1/").unwrap(), "http://h:1/api/v1");
        assert_eq!(
            api_base("http://h/prefix").unwrap(),
            "http://h/prefix/api/v1"
        );
    }

    #[test]
    fn addresses_that_are_not_http_urls_are_refused() {
        for bad in [
            "127.0.0.1:8080",
            "ftp://h",
            "http://",
            "not a url",
            "",
            "http://h/?x=1",
        ] {
            assert!(
                matches!(api_base(bad), Err(Error::BadUrl(_))),
                "{bad} was taken"
            );
        }
    }

    #[test]
    fn an_https_client_is_made_with_the_systems_roots_or_mozillas() {
        let client =
            Client::new("https://oco.example/", "secret-token", Timeouts::default()).unwrap();
        assert_eq!(client.base(), "https://oco.example/api/v1");
        // The token stays out of debug output.
        let shown = format!("{client:?}");
        assert!(!shown.contains("secret-token"), "{shown}");
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("container:1"), "container%3A1");
        assert_eq!(encode("a b&c=d"), "a%20b%26c%3Dd");
        assert_eq!(encode("é"), "%C3%A9");
    }

    #[test]
    fn a_snippet_is_one_short_line() {
        assert_eq!(snippet(b"<html>\n<b>x</b>"), "<html> <b>x</b>");
        assert_eq!(snippet(&[b'a'; 1000]).len(), 200);
        assert_eq!(snippet(b"  "), "(empty)");
    }
}
