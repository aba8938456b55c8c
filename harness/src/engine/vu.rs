//! A virtual user: renders each step's request, sends it on its own
//! connection, records the outcome, runs checks and extractions.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::Full;
use minijinja::Value;

use super::client::{Client, IoCounters, Response, Target, BODY_KEEP_MAX};
use super::error::{Error, RenderProblem, StepProblem};
use crate::metrics::{MetricsSet, Sample};
use crate::scenario::template::{TemplateError, Text};
use crate::scenario::{Body, JsonTpl, Scenario, Step};

/// Lateness of an arrival-rate start that is not counted as latency: tokio's
/// timer fires on whole milliseconds, so up to ~1 ms late is the clock, not the
/// system under test (it would otherwise add a random ~0.5 ms to every first request).
pub const SCHEDULER_SLACK_US: u64 = 2000;

/// What can be computed once per step: the URI, headers and body when they hold no template.
pub struct Prepared {
    uri: Option<Uri>,
    headers: HeaderMap,
    body: Option<Bytes>,
    /// Whether rendering needs the template context.
    templated: bool,
}

/// `decompress`: ask for compressed bodies (unless a step asks for its own encodings).
pub fn prepare(steps: &[Step], target: &Target, decompress: bool) -> Result<Vec<Prepared>, Error> {
    steps
        .iter()
        .map(|s| {
            let uri = match &s.path {
                Text::Static(p) => Some(target.uri(p).map_err(|e| Error::Step {
                    step: s.name.clone(),
                    problem: e.into(),
                })?),
                Text::Template(_) => None,
            };
            let mut headers = HeaderMap::new();
            if let Some(ct) = &s.content_type {
                headers.insert(CONTENT_TYPE, ct.clone());
            }
            for (k, v) in &s.headers {
                if let Text::Static(v) = v {
                    let hv = HeaderValue::from_str(v).map_err(|_| Error::Step {
                        step: s.name.clone(),
                        problem: StepProblem::HeaderValue(k.to_string()),
                    })?;
                    headers.append(k.clone(), hv);
                }
            }
            if decompress && !s.headers.iter().any(|(k, _)| k == ACCEPT_ENCODING) {
                headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip, deflate"));
            }
            let body = match &s.body {
                Body::Static(b) => Some(b.clone()),
                Body::None => Some(Bytes::new()),
                _ => None,
            };
            let templated =
                uri.is_none() || body.is_none() || s.headers.iter().any(|(_, v)| !v.is_static());
            Ok(Prepared {
                uri,
                headers,
                body,
                templated,
            })
        })
        .collect()
}

/// Everything VUs share, read-only, across worker threads.
pub struct Shared {
    pub scenario: Arc<Scenario>,
    pub target: Arc<Target>,
    pub prepared: Vec<Prepared>,
    /// `env`, plus the variables extracted by setup.
    pub base_vars: BTreeMap<String, Value>,
    /// Rows handed to VUs (`[data]`).
    pub feed: Option<Arc<crate::scenario::data::Feed>>,
}

pub struct Vu {
    /// 1-based, as k6's `__VU`.
    pub id: u64,
    /// 0-based iteration counter of this VU, as k6's `__ITER`.
    pub iter: u64,
    client: Client,
    vars: BTreeMap<String, Value>,
    ctx: Option<Value>,
    /// This iteration's data row.
    row: Option<Value>,
    /// Cookies the target set during this iteration (k6's per-VU jar,
    /// emptied at every iteration); `None` until the first one, so that a
    /// service without cookies costs nothing per request.
    cookies: Option<cookie_store::CookieStore>,
}

/// The Location of a redirect response, if it is one.
fn redirect_location(r: &Response) -> Option<&str> {
    match r.parts.status {
        StatusCode::MOVED_PERMANENTLY
        | StatusCode::FOUND
        | StatusCode::SEE_OTHER
        | StatusCode::TEMPORARY_REDIRECT
        | StatusCode::PERMANENT_REDIRECT => r.parts.headers.get(LOCATION)?.to_str().ok(),
        _ => None,
    }
}

/// Replaces a gzip or deflate body with its decoded form (at most `keep` bytes).
fn decode_body(r: &mut Response, keep: usize) -> Result<(), Error> {
    use std::io::Read;
    let encoding = match r.parts.headers.get(CONTENT_ENCODING) {
        Some(v) => v.to_str().unwrap_or("").trim().to_ascii_lowercase(),
        None => return Ok(()),
    };
    let mut out = Vec::new();
    let limit = keep as u64;
    let read = match encoding.as_str() {
        "gzip" | "x-gzip" => flate2::read::MultiGzDecoder::new(&r.body[..])
            .take(limit)
            .read_to_end(&mut out),
        // "deflate" is zlib-wrapped by the standard; some servers send it raw.
        "deflate" => match flate2::read::ZlibDecoder::new(&r.body[..])
            .take(limit)
            .read_to_end(&mut out)
        {
            Ok(n) => Ok(n),
            Err(_) => {
                out.clear();
                flate2::read::DeflateDecoder::new(&r.body[..])
                    .take(limit)
                    .read_to_end(&mut out)
            }
        },
        "" | "identity" => return Ok(()),
        other => {
            return Err(Error::Decode(format!(
                "Content-Encoding `{other}` is not decoded (gzip and deflate are)"
            )))
        }
    };
    // A body cut at the kept size ends early: what was decoded is kept.
    match read {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {}
        Err(e) => {
            return Err(Error::Decode(format!(
                "{encoding} body cannot be decoded: {e}"
            )))
        }
    }
    r.body = Bytes::from(out);
    Ok(())
}

fn render_json(t: &JsonTpl, sh: &Shared, ctx: &Value) -> Result<serde_json::Value, TemplateError> {
    Ok(match t {
        JsonTpl::Value(v) => v.clone(),
        JsonTpl::Text(t) => serde_json::Value::String(sh.scenario.templates.render(t, ctx)?),
        JsonTpl::Array(items) => serde_json::Value::Array(
            items
                .iter()
                .map(|i| render_json(i, sh, ctx))
                .collect::<Result<_, _>>()?,
        ),
        JsonTpl::Object(items) => serde_json::Value::Object(
            items
                .iter()
                .map(|(k, v)| Ok((k.clone(), render_json(v, sh, ctx)?)))
                .collect::<Result<_, TemplateError>>()?,
        ),
    })
}

impl Vu {
    pub fn new(id: u64, target: Arc<Target>, counters: Arc<IoCounters>) -> Vu {
        Vu {
            id,
            iter: 0,
            client: Client::new(target, counters),
            vars: BTreeMap::new(),
            ctx: None,
            row: None,
            cookies: None,
        }
    }

    /// For a VU that runs inside a LocalSet (a worker's).
    pub fn in_local_set(mut self) -> Self {
        self.client = self.client.in_local_set();
        self
    }

    fn context(&mut self, sh: &Shared) -> &Value {
        if self.ctx.is_none() {
            let mut m = sh.base_vars.clone();
            m.extend(self.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
            m.insert("vu".into(), Value::from(self.id));
            m.insert("iter".into(), Value::from(self.iter));
            if let (Some(f), Some(row)) = (&sh.feed, &self.row) {
                m.insert(f.spec.name.clone(), row.clone());
            }
            self.ctx = Some(Value::from(m));
        }
        self.ctx.as_ref().expect("set above")
    }

    /// The templated parts of a step's request: its URI and body, and the
    /// templated headers added to `headers`.
    fn render(
        &self,
        sh: &Shared,
        step: &Step,
        prep: &Prepared,
        ctx: &Value,
        headers: &mut HeaderMap,
    ) -> Result<(Uri, Bytes), RenderProblem> {
        let tpl = &sh.scenario.templates;
        let uri = match &prep.uri {
            Some(u) => u.clone(),
            None => sh.target.uri(&tpl.render(&step.path, ctx)?)?,
        };
        for (k, v) in &step.headers {
            if let Text::Template(_) = v {
                let s = tpl.render(v, ctx)?;
                let hv = HeaderValue::from_str(&s).map_err(|_| RenderProblem::Header {
                    name: k.to_string(),
                    value: s.clone(),
                })?;
                headers.append(k.clone(), hv);
            }
        }
        let body = match (&prep.body, &step.body) {
            (Some(b), _) => b.clone(),
            (None, Body::Json(j)) => Bytes::from(serde_json::to_vec(&render_json(j, sh, ctx)?)?),
            (None, Body::Text(t)) => Bytes::from(tpl.render(t, ctx)?),
            (None, _) => Bytes::new(),
        };
        Ok((uri, body))
    }

    /// Builds the request of a step; a template error names the step.
    pub fn build(
        &mut self,
        sh: &Shared,
        step: &Step,
        prep: &Prepared,
    ) -> Result<Request<Full<Bytes>>, Error> {
        let mut headers = prep.headers.clone();
        let (uri, body) = if prep.templated {
            let ctx = self.context(sh).clone();
            self.render(sh, step, prep, &ctx, &mut headers)
                .map_err(|e| Error::Step {
                    step: step.name.clone(),
                    problem: e.into(),
                })?
        } else {
            (
                prep.uri.clone().expect("untemplated steps have a URI"),
                prep.body.clone().unwrap_or_default(),
            )
        };
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = step.method.clone();
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        Ok(req)
    }

    /// Sends a request to `uri` (the request's own, for the cookie jar);
    /// `keep` is how much of the body to hold (see Client::send).
    async fn send(
        &mut self,
        mut req: Request<Full<Bytes>>,
        uri: &Uri,
        timeout: Duration,
        keep: usize,
    ) -> (Result<Response, Error>, Duration) {
        let url = self.cookies.as_ref().and_then(|_| self.client.url_of(uri));
        if let (Some(jar), Some(url)) = (&self.cookies, &url) {
            // A step's own Cookie header wins.
            if !req.headers().contains_key(http::header::COOKIE) {
                let line: Vec<String> = jar
                    .get_request_values(url)
                    .map(|(n, v)| format!("{n}={v}"))
                    .collect();
                if let Ok(v) = HeaderValue::from_str(&line.join("; ")) {
                    if !line.is_empty() {
                        req.headers_mut().insert(http::header::COOKIE, v);
                    }
                }
            }
        }
        let out = self.client.send(req, timeout, keep).await;
        if let (Ok(r), _) = &out {
            let mut set = r
                .parts
                .headers
                .get_all(http::header::SET_COOKIE)
                .iter()
                .peekable();
            if set.peek().is_some() {
                if let Some(url) = url.or_else(|| self.client.url_of(uri)) {
                    let jar = self.cookies.get_or_insert_with(Default::default);
                    for v in set {
                        if let Ok(text) = v.to_str() {
                            // A cookie the jar refuses (bad domain, bad syntax) is dropped, as browsers do.
                            let _ = jar.parse(text, &url);
                        }
                    }
                }
            }
        }
        out
    }

    /// Sends a step's request and follows its redirects within the target's
    /// origin (up to `max_redirects`), with the cookies each hop set. The
    /// chain counts as one request of the step: its latency runs from the
    /// first byte sent to the last byte of the final response. Compressed
    /// bodies are decoded when the scenario asks for it and the body is kept.
    pub async fn exchange(
        &mut self,
        sh: &Shared,
        step: &Step,
        prep: &Prepared,
        req: Request<Full<Bytes>>,
        keep: usize,
    ) -> (Result<Response, Error>, Duration) {
        let opts = &sh.scenario.options;
        // A step with a fixed path sends the prepared URI: no copy needed.
        let uri = match &prep.uri {
            Some(u) => std::borrow::Cow::Borrowed(u),
            None => std::borrow::Cow::Owned(req.uri().clone()),
        };
        let (mut res, mut elapsed) = self.send(req, &uri, opts.timeout, keep).await;
        if opts.max_redirects > 0 && matches!(&res, Ok(r) if redirect_location(r).is_some()) {
            // Boxed: a redirect is rare, and its state would otherwise make
            // every request's future larger (copied at each await level).
            let uri = uri.into_owned();
            (res, elapsed) = Box::pin(self.follow(sh, step, prep, uri, res, elapsed, keep)).await;
        }
        if opts.decompress && keep > 0 {
            if let Ok(r) = &mut res {
                if let Err(e) = decode_body(r, keep) {
                    res = Err(e);
                }
            }
        }
        (res, elapsed)
    }

    /// The redirects after a first response `res` to a request for `uri`.
    #[allow(clippy::too_many_arguments)]
    async fn follow(
        &mut self,
        sh: &Shared,
        step: &Step,
        prep: &Prepared,
        mut uri: Uri,
        mut res: Result<Response, Error>,
        mut elapsed: Duration,
        keep: usize,
    ) -> (Result<Response, Error>, Duration) {
        let opts = &sh.scenario.options;
        let mut method = step.method.clone();
        let mut opened = self.client.take_opened();
        let mut hops = 0;
        while let Ok(r) = &res {
            let Some(location) = redirect_location(r) else {
                break;
            };
            if hops == opts.max_redirects {
                res = Err(Error::TooManyRedirects(hops));
                break;
            }
            let next = match self.client.follow(&uri, location) {
                Ok(u) => u,
                Err(e) => {
                    res = Err(e);
                    break;
                }
            };
            // Browsers' (and k6's) rules: 303 turns into GET, and so do 301
            // and 302 after a POST; 307 and 308 repeat the request as it was.
            let status = r.parts.status;
            let to_get = status == StatusCode::SEE_OTHER && method != Method::HEAD
                || matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND)
                    && method == Method::POST;
            let mut again = match self.build(sh, step, prep) {
                Ok(q) => q,
                Err(e) => {
                    res = Err(e);
                    break;
                }
            };
            if to_get {
                method = Method::GET;
                *again.body_mut() = Full::new(Bytes::new());
                again.headers_mut().remove(CONTENT_TYPE);
                again.headers_mut().remove(CONTENT_LENGTH);
            }
            *again.method_mut() = method.clone();
            *again.uri_mut() = next.clone();
            uri = next;
            hops += 1;
            let (r2, e2) = self.send(again, &uri, opts.timeout, keep).await;
            res = r2;
            elapsed += e2;
            // The chain reports the first connection it opened.
            if let Some(o) = self.client.take_opened() {
                opened.get_or_insert(o);
            }
        }
        self.client.put_opened(opened);
        (res, elapsed)
    }

    /// Sets the variables a step extracts from a JSON body; a missing value unsets it.
    pub fn extract(&mut self, step: &Step, json: Option<&serde_json::Value>) -> Vec<String> {
        let mut missing = Vec::new();
        for (var, path) in &step.extract {
            match json.and_then(|j| path.query(j).first()) {
                Some(v) => {
                    self.vars
                        .insert(var.clone(), Value::from(minijinja::value::Serde(v)));
                }
                None => {
                    self.vars.remove(var);
                    missing.push(var.clone());
                }
            }
        }
        if !step.extract.is_empty() {
            self.ctx = None;
        }
        missing
    }

    /// Sets a variable for the next requests (populate's `item` and `index`).
    pub fn set_var(&mut self, name: &str, value: Value) {
        self.vars.insert(name.to_string(), value);
        self.ctx = None;
    }

    pub fn vars(&self) -> &BTreeMap<String, Value> {
        &self.vars
    }

    /// Runs every load step once. `scheduled` is the planned start under an
    /// arrival-rate executor: the first request's latency is measured from it.
    pub async fn iteration(
        &mut self,
        sh: &Shared,
        metrics: &RefCell<MetricsSet>,
        scheduled: Option<Instant>,
    ) {
        let scenario = &sh.scenario;
        // Variables extracted by steps, and cookies, live for one iteration.
        if !self.vars.is_empty() {
            self.vars.clear();
        }
        if let Some(jar) = &mut self.cookies {
            jar.clear();
        }
        self.ctx = None;
        if let Some(f) = &sh.feed {
            self.row = Some(f.pick(self.id));
        }
        let started = Instant::now();
        for (i, (step, prep)) in scenario.steps.iter().zip(&sh.prepared).enumerate() {
            let req = match self.build(sh, step, prep) {
                Ok(r) => r,
                Err(e) => {
                    // Grouped without the rendered value (unbounded, maybe a secret).
                    metrics.borrow_mut().error(&e.group_key());
                    // Nothing was awaited: give the timer, the window ticker and
                    // Ctrl-C their turn before the next iteration fails the same way.
                    tokio::task::yield_now().await;
                    break;
                }
            };
            let keep = if step.needs_body { BODY_KEEP_MAX } else { 0 };
            let (res, elapsed) = self.exchange(sh, step, prep, req, keep).await;
            if let Some(c) = self.client.take_opened() {
                metrics
                    .borrow_mut()
                    .record_connection(c.connect_us, c.tls_us);
            }
            let json = match &res {
                Ok(r) if step.needs_json && !r.body.is_empty() => {
                    serde_json::from_slice::<serde_json::Value>(&r.body).ok()
                }
                _ => None,
            };
            let error;
            let sample = match &res {
                Ok(r) => {
                    let latency_us = elapsed.as_micros() as u64;
                    // Time between the planned start and the send: a late start is
                    // latency the user would see, except for the timer's own granularity.
                    let late_us = match scheduled {
                        Some(at) if i == 0 => {
                            (Instant::now().saturating_duration_since(at).as_micros() as u64)
                                .saturating_sub(latency_us)
                                .saturating_sub(SCHEDULER_SLACK_US)
                        }
                        _ => 0,
                    };
                    Sample::Response {
                        status: r.parts.status.as_u16(),
                        latency_us,
                        late_us,
                        http2: r.parts.version == http::Version::HTTP_2,
                    }
                }
                Err(e) => {
                    error = format!("{}: {e}", step.name);
                    Sample::Failed { error: &error }
                }
            };
            let checks = step.checks.iter().map(|check| match &res {
                Ok(r) => check.passes(
                    r.parts.status.as_u16(),
                    &r.parts.headers,
                    &r.body,
                    json.as_ref(),
                ),
                Err(_) => false,
            });
            metrics
                .borrow_mut()
                .record_request(i, sample, step.first_check, checks);
            if !step.extract.is_empty() {
                self.extract(step, json.as_ref());
            }
        }
        if let Some((lo, hi)) = scenario.options.think_time {
            let pause = if hi > lo {
                lo + Duration::from_nanos(fastrand::u64(0..=(hi - lo).as_nanos() as u64))
            } else {
                lo
            };
            tokio::time::sleep(pause).await;
        }
        let mut m = metrics.borrow_mut();
        m.iterations += 1;
        m.iteration_duration
            .saturating_record((started.elapsed().as_micros() as u64).max(1));
        drop(m);
        self.iter += 1;
    }
}
