//! Routes, authentication, validation and storage.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{Datelike, Utc};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row};

use crate::card::{self, Card};

#[derive(Clone)]
pub struct App {
    db: PgPool,
    admin_key: Arc<str>,
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    slow: SlowDown,
}

/// A known slowdown for testing the harness's A/B verdicts: one extra
/// database round trip of `DEMO_DB_DELAY_MS` per authenticated request,
/// plus `DEMO_DRIFT_MS` that rises and falls over `DEMO_DRIFT_PERIOD_S`
/// seconds (a service whose speed drifts), and `DEMO_CPU_SPIN_US` of busy
/// CPU in the app per authenticated request (no query). Off unless set.
#[derive(Clone, Copy, Default)]
struct SlowDown {
    base_ms: f64,
    drift_ms: f64,
    period_s: f64,
    spin_us: f64,
}

impl SlowDown {
    fn from_env() -> SlowDown {
        let num = |k: &str| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v >= 0.0 && *v <= 10_000.0)
                .unwrap_or(0.0)
        };
        SlowDown {
            base_ms: num("DEMO_DB_DELAY_MS"),
            drift_ms: num("DEMO_DRIFT_MS"),
            period_s: num("DEMO_DRIFT_PERIOD_S"),
            spin_us: num("DEMO_CPU_SPIN_US"),
        }
    }

    /// Burns `spin_us` of CPU on this thread: the app's own cost, not a wait.
    fn spin(&self) {
        if self.spin_us <= 0.0 {
            return;
        }
        let until =
            std::time::Instant::now() + std::time::Duration::from_secs_f64(self.spin_us / 1e6);
        let mut x = 0u64;
        while std::time::Instant::now() < until {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }

    fn now_ms(&self) -> f64 {
        if self.drift_ms > 0.0 && self.period_s > 0.0 {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            let phase = (std::f64::consts::TAU * t / self.period_s).sin();
            self.base_ms + self.drift_ms * (1.0 + phase) / 2.0
        } else {
            self.base_ms
        }
    }
}

impl App {
    pub fn new(db: PgPool, admin_key: String) -> App {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Server-side request latency",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(requests.clone()))
            .expect("registered once");
        registry
            .register(Box::new(latency.clone()))
            .expect("registered once");
        App {
            db,
            admin_key: admin_key.into(),
            registry,
            requests,
            latency,
            slow: SlowDown::from_env(),
        }
    }
}

pub enum ApiError {
    BadRequest(&'static str, String),
    Unauthorized(String),
    NotFound,
    Conflict(String),
    Db(sqlx::Error),
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Db(e)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        ApiError::BadRequest("invalid_body", r.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            ApiError::BadRequest(code, m) => (StatusCode::BAD_REQUEST, code, m),
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "unauthorized", m),
            ApiError::NotFound => (
                StatusCode::NOT_FOUND,
                "not_found",
                "no such payment".to_string(),
            ),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "conflict", m),
            ApiError::Db(e) => {
                eprintln!("database error: {e}");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_error",
                    "the database is unavailable".to_string(),
                )
            }
        };
        (
            status,
            Json(json!({"error": {"code": code, "message": message}})),
        )
            .into_response()
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn api_key(headers: &HeaderMap) -> Option<&str> {
    headers.get("api-key").and_then(|v| v.to_str().ok())
}

/// Compares two secrets in time that does not depend on where they differ:
/// both are hashed to a fixed length first, then every byte is compared.
fn same_secret(given: &str, expected: &str) -> bool {
    let (a, b) = (
        Sha256::digest(given.as_bytes()),
        Sha256::digest(expected.as_bytes()),
    );
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// What an unconfirmed payment keeps of its card: the charge's outcome and the
/// last four digits, never the number or the CVC.
#[derive(Serialize, Deserialize)]
struct StoredCard {
    outcome: String,
    last4: String,
}

/// The merchant an `api-key` header belongs to.
async fn merchant(app: &App, headers: &HeaderMap) -> Result<String, ApiError> {
    let key =
        api_key(headers).ok_or_else(|| ApiError::Unauthorized("missing api-key header".into()))?;
    app.slow.spin();
    let delay = app.slow.now_ms();
    if delay > 0.0 {
        sqlx::query("SELECT pg_sleep($1)")
            .bind(delay / 1000.0)
            .execute(&app.db)
            .await?;
    }
    let row = sqlx::query("SELECT merchant_id FROM api_keys WHERE key_hash = $1")
        .bind(key_hash(key))
        .fetch_optional(&app.db)
        .await?;
    row.map(|r| r.get::<String, _>(0))
        .ok_or_else(|| ApiError::Unauthorized("unknown api-key".into()))
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn ready(State(app): State<App>) -> Response {
    match sqlx::query("SELECT 1").execute(&app.db).await {
        Ok(_) => Json(json!({"status": "ok"})).into_response(),
        Err(e) => {
            // The details (hosts, users) are for the logs, not for callers.
            eprintln!("readiness check: database error: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "error": "database unavailable"})),
            )
                .into_response()
        }
    }
}

#[derive(Deserialize)]
struct NewAccount {
    merchant_name: String,
    merchant_id: Option<String>,
}

async fn create_account(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<Json<NewAccount>, JsonRejection>,
) -> ApiResult {
    if !api_key(&headers).is_some_and(|k| same_secret(k, &app.admin_key)) {
        return Err(ApiError::Unauthorized("admin api-key required".into()));
    }
    let Json(body) = body?;
    if body.merchant_name.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "invalid_body",
            "merchant_name must not be empty".into(),
        ));
    }
    let merchant_id = body
        .merchant_id
        .unwrap_or_else(|| format!("mer_{}", uuid::Uuid::new_v4().simple()));
    let key = format!("snd_{}", uuid::Uuid::new_v4().simple());
    let mut tx = app.db.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO merchants (merchant_id, merchant_name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(&merchant_id)
    .bind(body.merchant_name.trim())
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(ApiError::Conflict(format!("merchant {merchant_id} exists")));
    }
    sqlx::query("INSERT INTO api_keys (key_hash, merchant_id) VALUES ($1, $2)")
        .bind(key_hash(&key))
        .bind(&merchant_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Json(json!({"merchant_id": merchant_id, "api_key": key})))
}

#[derive(Deserialize)]
struct CardData {
    card: Card,
}

#[derive(Deserialize)]
struct NewPayment {
    amount: i64,
    currency: String,
    #[serde(default)]
    confirm: bool,
    customer_id: Option<String>,
    email: Option<String>,
    capture_method: Option<String>,
    payment_method: Option<String>,
    payment_method_data: Option<CardData>,
    metadata: Option<Value>,
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest("invalid_body", msg.into())
}

/// The outcome of charging a card now.
fn charge(card: &Card) -> Result<&'static str, ApiError> {
    let now = Utc::now();
    card::outcome(card, now.year(), now.month())
        .map_err(|m| ApiError::BadRequest("card_invalid", m))
}

// A macro so the queries stay static strings (sqlx refuses SQL built at run time).
macro_rules! payment_columns {
    () => {
        "payment_id, merchant_id, status, amount, currency, customer_id, email, capture_method, payment_method, card_last4, metadata, created_at"
    };
}

fn payment_json(r: &sqlx::postgres::PgRow) -> Value {
    json!({
        "payment_id": r.get::<String, _>("payment_id"),
        "merchant_id": r.get::<String, _>("merchant_id"),
        "status": r.get::<String, _>("status"),
        "amount": r.get::<i64, _>("amount"),
        "currency": r.get::<String, _>("currency"),
        "customer_id": r.get::<Option<String>, _>("customer_id"),
        "email": r.get::<Option<String>, _>("email"),
        "capture_method": r.get::<String, _>("capture_method"),
        "payment_method": r.get::<Option<String>, _>("payment_method"),
        "card_last4": r.get::<Option<String>, _>("card_last4"),
        "metadata": r.get::<Option<Value>, _>("metadata"),
        "created_at": r.get::<chrono::DateTime<Utc>, _>("created_at").to_rfc3339(),
    })
}

fn last4(card: &Card) -> String {
    let digits: String = card
        .card_number
        .chars()
        .filter(|c| c.is_ascii_digit())
        .collect();
    digits[digits.len().saturating_sub(4)..].to_string()
}

async fn create_payment(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<Json<NewPayment>, JsonRejection>,
) -> ApiResult {
    let merchant_id = merchant(&app, &headers).await?;
    let Json(p) = body?;
    if p.amount <= 0 {
        return Err(bad("amount must be a positive integer (minor units)"));
    }
    if p.currency.len() != 3 || !p.currency.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(bad("currency must be three capital letters, e.g. USD"));
    }
    let capture = p.capture_method.unwrap_or_else(|| "automatic".into());
    if capture != "automatic" && capture != "manual" {
        return Err(bad("capture_method must be automatic or manual"));
    }
    if p.payment_method.as_deref().is_some_and(|m| m != "card") {
        return Err(bad("payment_method must be card"));
    }
    if let Some(m) = &p.metadata {
        if !m.is_object() {
            return Err(bad("metadata must be an object"));
        }
    }
    let card = p.payment_method_data.map(|d| d.card);
    let (status, stored_card, last4) = if p.confirm {
        let c = card
            .as_ref()
            .ok_or_else(|| bad("payment_method_data.card is required to confirm"))?;
        (charge(c)?, None, Some(last4(c)))
    } else {
        // The card is judged now (bad data is rejected at creation); only the
        // outcome and its last four digits wait for the confirmation.
        let stored = card
            .as_ref()
            .map(|c| {
                Ok::<_, ApiError>(StoredCard {
                    outcome: charge(c)?.to_string(),
                    last4: last4(c),
                })
            })
            .transpose()?;
        (
            "requires_confirmation",
            stored.map(|c| serde_json::to_value(c).expect("stored card serialises")),
            None,
        )
    };
    let payment_id = format!("pay_{}", uuid::Uuid::new_v4().simple());
    let row = sqlx::query(concat!(
        "INSERT INTO payments (payment_id, merchant_id, status, amount, currency, customer_id, email, capture_method, payment_method, card, card_last4, metadata)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING ",
        payment_columns!()
    ))
    .bind(&payment_id)
    .bind(&merchant_id)
    .bind(status)
    .bind(p.amount)
    .bind(&p.currency)
    .bind(&p.customer_id)
    .bind(&p.email)
    .bind(&capture)
    .bind(p.payment_method.as_deref().or(card.as_ref().map(|_| "card")))
    .bind(stored_card)
    .bind(last4)
    .bind(p.metadata)
    .fetch_one(&app.db)
    .await?;
    Ok(Json(payment_json(&row)))
}

#[derive(Deserialize, Default)]
struct Confirm {
    payment_method: Option<String>,
    payment_method_data: Option<CardData>,
}

async fn confirm_payment(
    State(app): State<App>,
    headers: HeaderMap,
    Path(payment_id): Path<String>,
    body: Option<Json<Confirm>>,
) -> ApiResult {
    let merchant_id = merchant(&app, &headers).await?;
    let body = body.map(|Json(b)| b).unwrap_or_default();
    if body.payment_method.as_deref().is_some_and(|m| m != "card") {
        return Err(bad("payment_method must be card"));
    }
    let mut tx = app.db.begin().await?;
    let row = sqlx::query(
        "SELECT status, card FROM payments WHERE payment_id = $1 AND merchant_id = $2 FOR UPDATE",
    )
    .bind(&payment_id)
    .bind(&merchant_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound)?;
    let status: String = row.get("status");
    if status != "requires_confirmation" {
        return Err(ApiError::Conflict(format!(
            "payment {payment_id} is already {status}"
        )));
    }
    let stored: Option<StoredCard> = row
        .get::<Option<Value>, _>("card")
        .and_then(|v| serde_json::from_value(v).ok());
    let (outcome, card_last4) = match (body.payment_method_data.map(|d| d.card), stored) {
        (Some(card), _) => (charge(&card)?.to_string(), last4(&card)),
        (None, Some(s)) => (s.outcome, s.last4),
        (None, None) => {
            return Err(bad(
                "payment_method_data.card is required: none was given at creation",
            ))
        }
    };
    let row = sqlx::query(concat!(
        "UPDATE payments SET status = $3, card = NULL, card_last4 = $4, payment_method = 'card', updated_at = now()
         WHERE payment_id = $1 AND merchant_id = $2 RETURNING ",
        payment_columns!()
    ))
    .bind(&payment_id)
    .bind(&merchant_id)
    .bind(outcome)
    .bind(card_last4)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(payment_json(&row)))
}

async fn get_payment(
    State(app): State<App>,
    headers: HeaderMap,
    Path(payment_id): Path<String>,
) -> ApiResult {
    let merchant_id = merchant(&app, &headers).await?;
    let row = sqlx::query(concat!(
        "SELECT ",
        payment_columns!(),
        " FROM payments WHERE payment_id = $1 AND merchant_id = $2"
    ))
    .bind(&payment_id)
    .bind(&merchant_id)
    .fetch_optional(&app.db)
    .await?
    .ok_or(ApiError::NotFound)?;
    Ok(Json(payment_json(&row)))
}

async fn metrics(State(app): State<App>) -> Response {
    let mut buf = Vec::new();
    let families = app.registry.gather();
    if TextEncoder::new().encode(&families, &mut buf).is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    ([("content-type", "text/plain; version=0.0.4")], buf).into_response()
}

/// Counts every routed request and its latency by route template and status.
async fn track(State(app): State<App>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    let labels = [route.as_str(), method.as_str(), status.as_str()];
    app.requests.with_label_values(&labels).inc();
    app.latency
        .with_label_values(&labels)
        .observe(start.elapsed().as_secs_f64());
    resp
}

pub fn router(app: App) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/health/ready", get(ready))
        .route("/accounts", post(create_account))
        .route("/payments", post(create_payment))
        .route("/payments/{payment_id}", get(get_payment))
        .route("/payments/{payment_id}/confirm", post(confirm_payment))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(app.clone(), track))
        .with_state(app)
}
