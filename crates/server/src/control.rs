//! Simian's own control API (`simian serve`), under `/api/v1`, described by the OpenAPI 3
//! document it serves at `/api/v1/openapi.json`.
//!
//! | route | what |
//! |---|---|
//! | `GET /healthz` | the process answers |
//! | `GET /readyz` | the store answers |
//! | `GET /metrics` | Prometheus metrics (OpenMetrics text) |
//! | `GET /api/v1/openapi.json` | this API, described |
//! | `GET /api/v1/schedule?date=D` | a day's schedule (default today) with each kill's status |
//! | `GET /api/v1/terminations`, `/refusals`, `/drills` | history: `since`, `app`, `limit`, `before` (paging) |
//! | `GET /api/v1/apps` | each app's settings and eligible instances now |
//! | `POST /api/v1/terminate` | one kill now, through every check (as `simian terminate`) |
//! | `GET`, `PUT /api/v1/kill-switch` | the kill switch: read, or set with who and why |
//!
//! Every answer is JSON; an error is `{"error": "..."}` with its status. Bodies are limited
//! to [`MAX_BODY`] and unknown fields are refused. The mutating routes (`POST`, `PUT`) always
//! need `Authorization: Bearer TOKEN`; without a configured token they are refused (403).
//! Outcomes of a kill are HTTP statuses: terminated 200, refused by a check 409 (with the
//! check and the reason), failed 502.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::{Method, Response, StatusCode};
use jiff::Timestamp;
use jiff::civil::Date;
use serde::Deserialize;
use serde_json::{Value, json};
use simian_core::escape::decode_query;
use simian_core::{Check, HistoryFilter, KillSwitch, Schedule, TerminationState};
use simian_monkey::{Decision, Engine, KillRequest, Target, eligibility, kill_switch_holds};

use crate::http::ReadRequest;
use crate::metrics::Metrics;

mod dashboard;

/// Every route: (method, path).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/readyz"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/schedule"),
    ("GET", "/api/v1/terminations"),
    ("GET", "/api/v1/refusals"),
    ("GET", "/api/v1/drills"),
    ("GET", "/api/v1/apps"),
    ("POST", "/api/v1/terminate"),
    ("GET", "/api/v1/kill-switch"),
    ("PUT", "/api/v1/kill-switch"),
];

/// The OpenAPI 3 document served at `/api/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("control/openapi.json");

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// Largest page of history.
pub const MAX_PAGE: usize = 1000;

/// The control API over an engine (and through it the store, the providers, the policy).
pub struct ControlApi {
    engine: Arc<Engine>,
    token: Option<String>,
    metrics: Option<Arc<Metrics>>,
    proxy_api: Option<String>,
}

/// A failed request: status and message.
struct Failure(StatusCode, String);

impl Failure {
    fn bad(message: impl Into<String>) -> Failure {
        Failure(StatusCode::BAD_REQUEST, message.into())
    }
}

type Answer = Result<(StatusCode, Value), Failure>;

impl ControlApi {
    /// The API over `engine`; `token` guards the mutating routes; `metrics`, when given, are
    /// served at `/metrics`; `proxy_api`, when given, is the API of an attached proxy whose
    /// proxies the dashboard shows.
    pub fn new(
        engine: Arc<Engine>,
        token: Option<String>,
        metrics: Option<Arc<Metrics>>,
        proxy_api: Option<String>,
    ) -> Arc<ControlApi> {
        Arc::new(ControlApi {
            engine,
            token,
            metrics,
            proxy_api,
        })
    }

    /// Answers one request: a dashboard page, or the API.
    pub async fn handle(self: Arc<Self>, req: ReadRequest) -> Response<Full<Bytes>> {
        if dashboard::is_page(req.uri().path()) {
            return dashboard::serve(self, req).await;
        }
        if req.uri().path() == "/metrics" && req.method() == Method::GET {
            let api = self.clone();
            if let Ok(Some(text)) = tokio::task::spawn_blocking(move || api.scrape()).await {
                let mut response = Response::new(Full::new(Bytes::from(text)));
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static(
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                );
                return response;
            }
        }
        let answer = self.route(req).await;
        let (status, body) = match answer {
            Ok((status, body)) => (status, body),
            Err(Failure(status, message)) => (status, json!({ "error": message })),
        };
        let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }

    async fn route(self: Arc<Self>, req: ReadRequest) -> Answer {
        let path = req.uri().path().to_string();
        let method = req.method().clone();
        let admitted = self.admit(&req);
        let query = query_pairs(req.uri().query().unwrap_or_default());
        // The body was read before the route was known (crate::http): a refusal still
        // leaves the connection able to carry the next request.
        let body = req
            .into_body()
            .map_err(|e| Failure(e.status(), e.to_string()))?;
        admitted?;
        // The store and the providers block: off the async threads.
        tokio::task::spawn_blocking(move || self.answer(&method, &path, &query, &body))
            .await
            .unwrap_or_else(|e| {
                Err(Failure(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("the request failed: {e}"),
                ))
            })
    }

    /// Checks what the request line and headers alone decide: the route, the method, the token.
    fn admit(&self, req: &ReadRequest) -> Result<(), Failure> {
        let path = req.uri().path();
        let method = req.method();
        if !ROUTES.iter().any(|(_, p)| *p == path) {
            return Err(Failure(
                StatusCode::NOT_FOUND,
                format!("no route {path}: /api/v1/openapi.json lists them"),
            ));
        }
        if !ROUTES
            .iter()
            .any(|(m, p)| *p == path && *m == method.as_str())
        {
            return Err(Failure(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{path} does not take {method}"),
            ));
        }
        if method != Method::GET {
            let given = req
                .headers()
                .get(AUTHORIZATION)
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.strip_prefix("Bearer "));
            self.authorize(given)?;
        }
        Ok(())
    }

    /// The metrics, with today's schedule and the kill switch read now; `None` without
    /// metrics (the route then answers 404) or when the store does not answer (503).
    fn scrape(&self) -> Option<String> {
        let metrics = self.metrics.as_ref()?;
        let policy = self.engine.policy().ok()?;
        let store = self.engine.store();
        let today = policy.calendar.local_date(self.engine.clock().now());
        let schedule = store.schedule(today).ok()?;
        let holding = kill_switch_holds(&policy, store.as_ref()).ok()?;
        metrics.scrape(schedule.as_ref(), holding.as_deref()).ok()
    }

    /// Lets a change through when `given` is the API token.
    fn authorize(&self, given: Option<&str>) -> Result<(), Failure> {
        let Some(token) = &self.token else {
            return Err(Failure(
                StatusCode::FORBIDDEN,
                "this route changes things and needs a token: start simian serve with SIMIAN_API_TOKEN or [server] token_file".into(),
            ));
        };
        let given = given.unwrap_or_default();
        if constant_time_eq(given.as_bytes(), token.as_bytes()) {
            Ok(())
        } else {
            Err(Failure(
                StatusCode::UNAUTHORIZED,
                "send the API token as Authorization: Bearer TOKEN".into(),
            ))
        }
    }

    fn answer(
        &self,
        method: &Method,
        path: &str,
        query: &[(String, String)],
        body: &[u8],
    ) -> Answer {
        let store = self.engine.store();
        match (method.as_str(), path) {
            ("GET", "/healthz") => Ok((StatusCode::OK, json!({ "status": "ok" }))),
            ("GET", "/metrics") if self.metrics.is_none() => Err(Failure(
                StatusCode::NOT_FOUND,
                "no metrics here: simian serve serves them".into(),
            )),
            ("GET", "/metrics") => Err(Failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "metrics cannot be read now: the configuration or the store does not answer".into(),
            )),
            ("GET", "/readyz") => match store.kill_switch() {
                Ok(_) => Ok((StatusCode::OK, json!({ "status": "ready" }))),
                Err(e) => Err(Failure(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the store does not answer: {e}"),
                )),
            },
            ("GET", "/api/v1/openapi.json") => serde_json::from_str(OPENAPI)
                .map(|v| (StatusCode::OK, v))
                .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
            ("GET", "/api/v1/schedule") => self.schedule(query),
            ("GET", "/api/v1/terminations" | "/api/v1/refusals" | "/api/v1/drills") => {
                self.history(path, query)
            }
            ("GET", "/api/v1/apps") => self.apps(),
            ("POST", "/api/v1/terminate") => self.terminate(body),
            ("GET", "/api/v1/kill-switch") => self.kill_switch(),
            ("PUT", "/api/v1/kill-switch") => self.set_kill_switch(body),
            _ => Err(Failure(StatusCode::NOT_FOUND, format!("no route {path}"))),
        }
    }

    fn policy(&self) -> Result<simian_monkey::Policy, Failure> {
        self.engine.policy().map_err(|e| {
            Failure(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot read the configuration: {e}"),
            )
        })
    }

    /// A day's stored schedule (`date`, default today on the calendar), with the policy and
    /// the clock's now.
    fn day(
        &self,
        date: Option<&str>,
    ) -> Result<(simian_monkey::Policy, Schedule, Timestamp), Failure> {
        let policy = self.policy()?;
        let now = self.engine.clock().now();
        let date = match date {
            Some(d) => d
                .parse::<Date>()
                .map_err(|_| Failure::bad(format!("date={d:?} is not a date (YYYY-MM-DD)")))?,
            None => policy.calendar.local_date(now),
        };
        let schedule = self.engine.store().schedule(date).map_err(store_failure)?;
        let Some(schedule) = schedule else {
            return Err(Failure(
                StatusCode::NOT_FOUND,
                format!(
                    "no schedule is stored for {date}: the daemon makes each day's at midnight (or at start)"
                ),
            ));
        };
        Ok((policy, schedule, now))
    }

    fn schedule(&self, query: &[(String, String)]) -> Answer {
        known_params(query, &["date"])?;
        let (_, schedule, now) = self.day(param(query, "date"))?;
        let next = next_pending(&schedule, now).map(|e| e.time);
        Ok((
            StatusCode::OK,
            json!({
                "date": schedule.date,
                "seed": schedule.seed,
                "made_at": schedule.made_at,
                "now": now,
                "next_kill": next,
                "seconds_to_next_kill": next.map(|t| t.duration_since(now).as_secs_f64().max(0.0)),
                "entries": schedule.entries,
            }),
        ))
    }

    fn history(&self, path: &str, query: &[(String, String)]) -> Answer {
        let kind = match path {
            "/api/v1/terminations" => History::Terminations,
            "/api/v1/refusals" => History::Refusals,
            _ => History::Drills,
        };
        let (items, last) = self.history_page(kind, query)?;
        let next = last.map(|last| format!("{path}?{}", next_page_query(query, last)));
        Ok((StatusCode::OK, json!({ "items": items, "next": next })))
    }

    /// One page of history (newest first) under the filters of `query` (`since`, `app`
    /// except for drills, `limit`, `before`), and the id the next page starts below.
    fn history_page(
        &self,
        kind: History,
        query: &[(String, String)],
    ) -> Result<(Vec<Value>, Option<i64>), Failure> {
        // A drill spans apps: it is found by when it started, not by app.
        match kind {
            History::Drills => known_params(query, &["since", "limit", "before"])?,
            _ => known_params(query, &["since", "app", "limit", "before"])?,
        }
        let policy = self.policy()?;
        let since = match param(query, "since").filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(if let Ok(t) = s.parse::<Timestamp>() {
                t
            } else if let Ok(d) = s.parse::<Date>() {
                policy.calendar.day_bounds(d).0
            } else {
                return Err(Failure::bad(format!(
                    "since={s:?} is neither a date (YYYY-MM-DD) nor an RFC 3339 instant"
                )));
            }),
        };
        let limit = match param(query, "limit") {
            None => 100,
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| {
                    Failure::bad(format!("limit={l:?} is not a number from 1 to {MAX_PAGE}"))
                })?,
        };
        let before_id = match param(query, "before") {
            None => None,
            Some(b) => Some(
                b.parse::<i64>()
                    .map_err(|_| Failure::bad(format!("before={b:?} is not an id")))?,
            ),
        };
        // One more than the page, to know whether another page follows.
        let filter = HistoryFilter {
            since,
            app: param(query, "app")
                .filter(|a| !a.is_empty())
                .map(str::to_string),
            limit: Some(limit + 1),
            before_id,
        };
        let store = self.engine.store();
        Ok(match kind {
            History::Terminations => page(
                store.terminations(&filter).map_err(store_failure)?,
                |t| t.id,
                limit,
            ),
            History::Refusals => page(
                store.refusals(&filter).map_err(store_failure)?,
                |r| r.id,
                limit,
            ),
            History::Drills => page(
                store.drills(&filter).map_err(store_failure)?,
                |d| d.id,
                limit,
            ),
        })
    }

    fn apps(&self) -> Answer {
        let policy = self.policy()?;
        let mut apps = Vec::new();
        for app in &policy.apps {
            let target = Target {
                app: app.name.clone(),
                account: None,
                region: None,
                stack: None,
                cluster: None,
            };
            let (eligible, error) = match self.engine.providers().get(&app.provider) {
                None => (
                    Vec::new(),
                    Some(format!("provider {:?} is not configured", app.provider)),
                ),
                Some(p) => match p.instances() {
                    Ok(list) => (
                        eligibility::eligible(app, &target, &list)
                            .into_iter()
                            .cloned()
                            .collect(),
                        None,
                    ),
                    Err(e) => (Vec::new(), Some(e.to_string())),
                },
            };
            apps.push(json!({
                "name": app.name,
                "provider": app.provider,
                "enabled": app.enabled,
                "mean_time_between_kills": app.mean_time_between_kills,
                "min_time_between_kills": app.min_time_between_kills,
                "grouping": app.grouping.as_str(),
                "regions_independent": app.regions_independent,
                "daily_kill_probability": app.daily_probability(),
                "exceptions": app.exceptions.iter().map(|e| json!({
                    "account": e.account, "region": e.region, "stack": e.stack, "detail": e.detail,
                })).collect::<Vec<_>>(),
                "eligible": eligible,
                "error": error,
            }));
        }
        Ok((StatusCode::OK, json!({ "apps": apps })))
    }

    fn terminate(&self, body: &[u8]) -> Answer {
        let request: TerminateBody = parse_body(body)?;
        let mut kill = KillRequest::manual(Target {
            app: request.app,
            account: request.account,
            region: request.region,
            stack: request.stack,
            cluster: request.cluster,
        });
        kill.dry_run = request.dry_run;
        let decision = self
            .engine
            .terminate(&kill)
            .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        Ok(match decision {
            Decision::Terminated(t) if t.state == TerminationState::Failed => (
                StatusCode::BAD_GATEWAY,
                json!({ "decision": "terminated", "termination": t }),
            ),
            Decision::Terminated(t) => (
                StatusCode::OK,
                json!({ "decision": "terminated", "termination": t }),
            ),
            Decision::Refused(r) if r.check == Check::Inventory => (
                StatusCode::BAD_GATEWAY,
                json!({ "decision": "refused", "refusal": r }),
            ),
            Decision::Refused(r) => (
                StatusCode::CONFLICT,
                json!({ "decision": "refused", "refusal": r }),
            ),
            Decision::AlreadyHandled => (StatusCode::OK, json!({ "decision": "already_handled" })),
        })
    }

    fn kill_switch(&self) -> Answer {
        let policy = self.policy()?;
        let set = self.engine.store().kill_switch().map_err(store_failure)?;
        let holding =
            kill_switch_holds(&policy, self.engine.store().as_ref()).map_err(store_failure)?;
        Ok((
            StatusCode::OK,
            json!({
                "kills_allowed": holding.is_none(),
                "holding": holding,
                "config_enabled": policy.enabled,
                "set": set,
            }),
        ))
    }

    fn set_kill_switch(&self, body: &[u8]) -> Answer {
        self.change_kill_switch(parse_body(body)?)
    }

    /// Records a change of the kill switch and tells the notifiers.
    fn change_kill_switch(&self, request: KillSwitchBody) -> Answer {
        if request.changed_by.trim().is_empty() || request.changed_by.chars().any(char::is_control)
        {
            return Err(Failure::bad(
                "changed_by must name who changes the switch (no control characters)",
            ));
        }
        if request.reason.chars().any(|c| c.is_control() && c != '\n') {
            return Err(Failure::bad("reason holds a control character"));
        }
        let change = KillSwitch {
            enabled: request.enabled,
            changed_by: request.changed_by,
            at: Timestamp::now(),
            reason: request.reason,
        };
        self.engine
            .store()
            .set_kill_switch(&change)
            .map_err(store_failure)?;
        self.engine
            .notifier()
            .notify(simian_core::Event::KillSwitch(&change));
        self.kill_switch()
    }
}

/// Which history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum History {
    Terminations,
    Refusals,
    Drills,
}

/// The first pending kill at or after `now`.
fn next_pending(schedule: &Schedule, now: Timestamp) -> Option<&simian_core::ScheduleEntry> {
    schedule
        .entries
        .iter()
        .filter(|e| e.status == simian_core::EntryStatus::Pending && e.time >= now)
        .min_by_key(|e| e.time)
}

/// `query` with `before` set to `last`: the next page's query string.
fn next_page_query(query: &[(String, String)], last: i64) -> String {
    let mut q: Vec<String> = query
        .iter()
        .filter(|(k, _)| k != "before")
        .map(|(k, v)| format!("{k}={}", simian_core::escape::query(v)))
        .collect();
    q.push(format!("before={last}"));
    q.join("&")
}

/// A page of `rows` (oldest first, one more than `limit` when another page follows) as JSON,
/// newest first, and the id the next page starts below, if there is one.
fn page<T: serde::Serialize>(
    mut rows: Vec<T>,
    id: impl Fn(&T) -> i64,
    limit: usize,
) -> (Vec<Value>, Option<i64>) {
    rows.reverse();
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more { rows.last().map(&id) } else { None };
    (rows.iter().map(|r| json!(r)).collect(), next)
}

/// `POST /api/v1/terminate`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TerminateBody {
    app: String,
    account: Option<String>,
    region: Option<String>,
    stack: Option<String>,
    cluster: Option<String>,
    dry_run: Option<bool>,
}

/// `PUT /api/v1/kill-switch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KillSwitchBody {
    enabled: bool,
    changed_by: String,
    #[serde(default)]
    reason: String,
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Failure> {
    if body.is_empty() {
        return Err(Failure::bad("the body is empty: send a JSON object"));
    }
    serde_json::from_slice(body).map_err(|e| Failure::bad(format!("the body is not valid: {e}")))
}

fn store_failure(e: simian_core::StoreError) -> Failure {
    Failure(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

/// `a=1&b=x%20y` as pairs, decoded.
fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode_query(k), decode_query(v))
        })
        .collect()
}

fn param<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Refuses a parameter the route does not take (a typo would otherwise be ignored).
fn known_params(query: &[(String, String)], known: &[&str]) -> Result<(), Failure> {
    match query.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        Some((k, _)) => Err(Failure::bad(format!(
            "unknown parameter {k:?}: this route takes {}",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

/// Compares without an early exit, so the time taken says nothing about the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The OpenAPI document describes exactly the routes served, method by method.
    #[test]
    fn the_openapi_document_matches_the_routes() {
        let doc: Value = serde_json::from_str(OPENAPI).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for method in item.as_object().into_iter().flatten().map(|(m, _)| m) {
                documented.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
        let served: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        assert_eq!(documented, served);
    }

    #[test]
    fn queries_decode_and_tokens_compare() {
        assert_eq!(
            query_pairs("app=web%2Dprod&since=2026-03-02T09%3A00%3A00Z&x"),
            vec![
                ("app".to_string(), "web-prod".to_string()),
                ("since".to_string(), "2026-03-02T09:00:00Z".to_string()),
                ("x".to_string(), String::new()),
            ]
        );
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
