//! HTTP to a model server: JSON requests over rustls, retried with bounded exponential
//! back-off and jitter, several in flight at once. The API key is held here and nowhere
//! else: it goes into the `Authorization` header of requests to the configured endpoint,
//! redirects are never followed (so it cannot be carried elsewhere), and it is never
//! formatted — [`Secret`]'s `Debug` hides it and error texts are scrubbed of it.

use crate::error::{Error, Result};
use rand::Rng;
use serde_json::Value;
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// An API key: shown as `***` whatever formats it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(key: String) -> Option<Secret> {
        let key = key.trim().to_string();
        (!key.is_empty()).then_some(Secret(key))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// How failed requests are retried.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Tries in all (the first included).
    pub attempts: u32,
    /// The first wait; each later one doubles, up to `max_wait`, times a random factor in
    /// [0.5, 1.5).
    pub base: Duration,
    pub max_wait: Duration,
    /// The longest `Retry-After` honoured.
    pub max_retry_after: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 8,
            base: Duration::from_millis(500),
            max_wait: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

/// What the client counted (for the run's summary and the fault tests).
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicUsize,
    pub retries: AtomicUsize,
}

/// A client of one server.
pub struct Client {
    agent: ureq::Agent,
    /// `scheme://host[:port]/path` of the API root, credentials removed.
    base: String,
    key: Option<Secret>,
    pub retry: Retry,
    pub counters: Counters,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("key", &self.key)
            .finish()
    }
}

/// Whether `spec` names a server rather than a model file.
pub fn is_url(spec: &str) -> bool {
    spec.starts_with("http://") || spec.starts_with("https://")
}

impl Client {
    /// A client of the API at `url` (`http(s)://host[:port]/v1`). A key over plain HTTP to a
    /// host other than this machine is refused unless `allow_plain_http_key`: it would
    /// cross the network readable.
    pub fn new(
        url: &str,
        key: Option<Secret>,
        allow_plain_http_key: bool,
        timeout: Duration,
    ) -> Result<Client> {
        let bad = |message: String| Error::Usage(format!("--model {}: {message}", redact_url(url)));
        let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad("not an http(s) URL".into()));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad(
                "credentials in the URL are not accepted; give the key in an environment variable (--api-key-env)".into(),
            ));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(bad("a query or fragment in the URL is not accepted".into()));
        }
        let host = parsed.host_str().ok_or_else(|| bad("no host".into()))?;
        let loopback = host == "localhost"
            || host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if key.is_some() && parsed.scheme() == "http" && !loopback && !allow_plain_http_key {
            return Err(bad(
                "an API key would be sent over plain http to another machine; use https, or --allow-plain-http-key if the network is private".into(),
            ));
        }
        let base = parsed.as_str().trim_end_matches('/').to_string();
        let agent = ureq::AgentBuilder::new()
            .redirects(0)
            .timeout_connect(Duration::from_secs(20))
            .timeout(timeout)
            .build();
        Ok(Client {
            agent,
            base,
            key,
            retry: Retry::default(),
            counters: Counters::default(),
        })
    }

    /// The API root as shown in outputs and errors (no credentials).
    pub fn endpoint(&self) -> &str {
        &self.base
    }

    fn error(&self, message: String) -> Error {
        Error::Server {
            endpoint: self.base.clone(),
            message: self.scrub(message),
        }
    }

    /// Removes the key from a text that is about to be shown (a server may echo headers).
    fn scrub(&self, s: String) -> String {
        match &self.key {
            Some(Secret(k)) if s.contains(k.as_str()) => s.replace(k.as_str(), "***"),
            _ => s,
        }
    }

    /// `GET path` (relative to the API root), retried.
    pub fn get(&self, path: &str) -> Result<Value> {
        self.call(path, None, path)
    }

    /// `POST path` with a JSON body, retried; `what` names the request in errors.
    pub fn post(&self, path: &str, body: &Value, what: &str) -> Result<Value> {
        self.call(path, Some(body), what)
    }

    /// Posts every body with up to `concurrency` requests in flight; answers in order.
    pub fn post_many(
        &self,
        path: &str,
        bodies: &[(Value, String)],
        concurrency: usize,
    ) -> Vec<Result<Value>> {
        let next = AtomicUsize::new(0);
        let out: Mutex<Vec<Option<Result<Value>>>> =
            Mutex::new((0..bodies.len()).map(|_| None).collect());
        let workers = concurrency.clamp(1, bodies.len().max(1));
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((body, what)) = bodies.get(i) else {
                        break;
                    };
                    let r = self.post(path, body, what);
                    out.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
                });
            }
        });
        out.into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::Internal("a request was not sent".into()))))
            .collect()
    }

    fn call(&self, path: &str, body: Option<&Value>, what: &str) -> Result<Value> {
        let url = format!("{}/{}", self.base, path.trim_start_matches('/'));
        let mut last = String::new();
        for attempt in 0..self.retry.attempts.max(1) {
            if attempt > 0 {
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
            }
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            let mut req = match body {
                Some(_) => self.agent.post(&url),
                None => self.agent.get(&url),
            };
            req = req.set("Accept", "application/json");
            if let Some(Secret(k)) = &self.key {
                req = req.set("Authorization", &format!("Bearer {k}"));
            }
            let sent = match body {
                Some(b) => req
                    .set("Content-Type", "application/json")
                    .send_string(&b.to_string()),
                None => req.call(),
            };
            let wait = match sent {
                Ok(resp) if (300..400).contains(&resp.status()) => {
                    return Err(self.error(format!(
                        "{what}: answered {} (a redirect); redirects are not followed, so that the API key goes only to the host given — give the final URL",
                        resp.status()
                    )))
                }
                Ok(resp) => return self.read_json(resp, what),
                Err(ureq::Error::Status(code, resp)) => {
                    let retry_after = resp
                        .header("Retry-After")
                        .and_then(|v| v.trim().parse::<f64>().ok())
                        .filter(|s| s.is_finite() && *s >= 0.0)
                        .map(|s| Duration::from_secs_f64(s).min(self.retry.max_retry_after));
                    let detail = short(&resp.into_string().unwrap_or_default());
                    last = format!("HTTP {code}: {detail}");
                    if !matches!(code, 408 | 429 | 500 | 502 | 503 | 504) {
                        return Err(self.error(format!("{what}: {last}")));
                    }
                    retry_after.unwrap_or_else(|| self.backoff(attempt))
                }
                Err(ureq::Error::Transport(t)) => {
                    last = t.to_string();
                    self.backoff(attempt)
                }
            };
            if attempt + 1 < self.retry.attempts {
                std::thread::sleep(wait);
            }
        }
        Err(self.error(format!(
            "{what}: failed {} times; last: {last}",
            self.retry.attempts
        )))
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .retry
            .base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.retry.max_wait);
        exp.mul_f64(rand::rng().random_range(0.5..1.5))
    }

    fn read_json(&self, resp: ureq::Response, what: &str) -> Result<Value> {
        const LIMIT: u64 = 1 << 30;
        let mut buf = Vec::new();
        resp.into_reader()
            .take(LIMIT + 1)
            .read_to_end(&mut buf)
            .map_err(|e| self.error(format!("{what}: reading the answer: {e}")))?;
        if buf.len() as u64 > LIMIT {
            return Err(self.error(format!("{what}: the answer is over 1 GiB")));
        }
        serde_json::from_slice(&buf).map_err(|e| {
            self.error(format!(
                "{what}: the answer is not JSON ({e}): {}",
                short(&String::from_utf8_lossy(&buf))
            ))
        })
    }
}

/// The first 300 characters of a server's text, on one line.
fn short(s: &str) -> String {
    let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match one.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &one[..i]),
        None => one,
    }
}

/// A URL with any credentials in it removed (for error messages).
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.to_string()
        }
        Err(_) => "(an unparsable URL)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_never_formatted_and_plain_http_keys_stay_on_this_machine() {
        let key = Secret::new("sk-very-secret".into());
        assert_eq!(format!("{key:?}"), "Some(***)");
        let t = Duration::from_secs(5);
        let c = Client::new("http://127.0.0.1:9/v1", key.clone(), false, t).unwrap();
        assert!(!format!("{c:?}").contains("very-secret"));
        assert_eq!(c.endpoint(), "http://127.0.0.1:9/v1");
        assert!(c.scrub("echo sk-very-secret".into()) == "echo ***");
        let e = Client::new("http://gpu-node:8000/v1", key.clone(), false, t).unwrap_err();
        assert!(e.to_string().contains("plain http"), "{e}");
        assert!(Client::new("http://gpu-node:8000/v1", key.clone(), true, t).is_ok());
        assert!(Client::new("https://gpu-node/v1", key.clone(), false, t).is_ok());
        assert!(Client::new("http://gpu-node:8000/v1", None, false, t).is_ok());
        let e = Client::new("https://user:pw@host/v1", None, false, t).unwrap_err();
        assert!(!e.to_string().contains("pw"), "{e}");
        assert!(Client::new("https://host/v1?key=x", None, false, t).is_err());
    }

    #[test]
    fn backoff_grows_to_its_bound_with_jitter() {
        let c = Client::new("http://localhost:9/v1", None, false, Duration::from_secs(1)).unwrap();
        for attempt in 0..20 {
            let w = c.backoff(attempt);
            let exp = (c.retry.base * (1u32 << attempt.min(16))).min(c.retry.max_wait);
            assert!(
                w >= exp.mul_f64(0.5) && w < exp.mul_f64(1.5),
                "{attempt}: {w:?}"
            );
        }
    }

    #[test]
    fn an_unreachable_server_is_an_error_naming_it_after_the_retries() {
        let mut c =
            Client::new("http://127.0.0.1:9/v1", None, false, Duration::from_secs(1)).unwrap();
        c.retry = Retry {
            attempts: 3,
            base: Duration::from_millis(1),
            max_wait: Duration::from_millis(2),
            max_retry_after: Duration::from_millis(2),
        };
        let e = c.get("models").unwrap_err();
        assert_eq!(e.exit_code(), 6);
        let s = e.to_string();
        assert!(
            s.contains("http://127.0.0.1:9/v1") && s.contains("failed 3 times"),
            "{s}"
        );
        assert_eq!(c.counters.requests.load(Ordering::Relaxed), 3);
    }
}
