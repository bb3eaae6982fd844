//! The dashboard at `/`: server-rendered HTML over the very calls the API answers with, so
//! a page never shows what the API would not say.
//!
//! | page | what |
//! |---|---|
//! | `/` | today: the schedule as a timeline, the counts, the countdown to the next kill |
//! | `/history` | terminations, refusals (the audit trail) and drills, filtered and paged |
//! | `/apps` | each app's settings and its eligible instances by zone |
//! | `/kill-switch` | the switch, and a change of it with a confirmation step and the token |
//! | `/proxies` | the proxies and toxics of an attached `simian proxy` (`[server] proxy_api`) |
//!
//! Every page works without JavaScript (forms, links, a refresh header); a few lines of plain
//! script only tick the countdown. Nothing is fetched from elsewhere: the style is inline.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, LOCATION};
use hyper::{Method, Response, StatusCode};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::Value;
use simian_core::EntryStatus;
use simian_core::escape::html as esc;

use super::{
    ControlApi, Failure, History, KillSwitchBody, next_page_query, next_pending, param, query_pairs,
};
use crate::http::ReadRequest;

/// The pages, in the order of the navigation: (path, title).
pub const PAGES: &[(&str, &str)] = &[
    ("/", "Today"),
    ("/history", "History"),
    ("/apps", "Apps"),
    ("/kill-switch", "Kill switch"),
    ("/proxies", "Proxies"),
];

/// The confirmation step of a kill-switch change.
const CONFIRM: &str = "/kill-switch/confirm";

/// Seconds between reloads of the today page (the countdown's script reloads it sooner when
/// the next kill comes first).
const TODAY_REFRESH_S: u32 = 30;

/// How long the proxies page waits for the attached proxy's API.
const PROXY_API_TIMEOUT: Duration = Duration::from_secs(3);

const STYLE: &str = include_str!("dashboard.css");
const SCRIPT: &str = include_str!("dashboard.js");

/// True for a path the dashboard serves.
pub fn is_page(path: &str) -> bool {
    path == CONFIRM || PAGES.iter().any(|(p, _)| *p == path)
}

/// A rendered answer: status, HTML, and where to go next for a redirect.
struct Html {
    status: StatusCode,
    body: String,
    location: Option<String>,
}

/// Answers one dashboard request.
pub async fn serve(api: Arc<ControlApi>, req: ReadRequest) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let mut query = query_pairs(req.uri().query().unwrap_or_default());
    let html = match req.into_body() {
        Err(e) => Html {
            status: e.status(),
            body: esc(&e.to_string()),
            location: None,
        },
        Ok(body) => {
            if method == Method::POST {
                query = query_pairs(&String::from_utf8_lossy(&body));
            }
            // The store and the providers block: off the async threads.
            tokio::task::spawn_blocking(move || api.page(&method, &path, &query))
                .await
                .unwrap_or_else(|e| Html {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    body: format!("the page failed: {e}"),
                    location: None,
                })
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(html.body)));
    *response.status_mut() = html.status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(to) = html.location.and_then(|l| HeaderValue::try_from(l).ok()) {
        headers.insert(LOCATION, to);
    }
    response
}

impl ControlApi {
    fn page(&self, method: &Method, path: &str, query: &[(String, String)]) -> Html {
        let (title, content) = match (method.as_str(), path) {
            ("GET", "/") => ("Today", self.today_page()),
            ("GET", "/history") => ("History", self.history_html(query)),
            ("GET", "/apps") => ("Apps", self.apps_page()),
            ("GET", "/kill-switch") => ("Kill switch", self.kill_switch_page(query)),
            ("GET", CONFIRM) => ("Kill switch", self.confirm_page(query)),
            ("POST", "/kill-switch") => match self.kill_switch_form(query) {
                Ok(()) => {
                    return Html {
                        status: StatusCode::SEE_OTHER,
                        body: String::new(),
                        location: Some("/kill-switch?changed=1".into()),
                    };
                }
                Err(failure) => ("Kill switch", Err(failure)),
            },
            ("GET", "/proxies") => ("Proxies", self.proxies_page()),
            _ => (
                "Not here",
                Err(Failure(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!("{path} does not take {method}"),
                )),
            ),
        };
        let (status, main) = match content {
            Ok(main) => (StatusCode::OK, main),
            Err(Failure(status, message)) => (
                status,
                format!(
                    "<h1>{}</h1><p class=\"error\" role=\"alert\">{}</p>",
                    esc(title),
                    esc(&message)
                ),
            ),
        };
        let refresh = (path == "/").then_some(TODAY_REFRESH_S);
        Html {
            status,
            body: self.layout(path, title, &main, refresh),
            location: None,
        }
    }

    /// The frame of every page: head, navigation with the kill switch's state, main.
    fn layout(&self, path: &str, title: &str, main: &str, refresh: Option<u32>) -> String {
        let mut nav = String::new();
        for (href, name) in PAGES {
            if *href == "/proxies" && self.proxy_api.is_none() {
                continue;
            }
            let current = if *href == path || (path == CONFIRM && *href == "/kill-switch") {
                " aria-current=\"page\""
            } else {
                ""
            };
            let _ = write!(nav, "<a href=\"{href}\"{current}>{name}</a>");
        }
        let switch = match self.kill_switch() {
            Ok((_, v)) if v["kills_allowed"] == true => {
                "<a class=\"badge allowed\" id=\"switch-state\" href=\"/kill-switch\">kills allowed</a>".to_string()
            }
            Ok(_) => "<a class=\"badge stopped\" id=\"switch-state\" href=\"/kill-switch\">kills stopped</a>".to_string(),
            Err(_) => "<span class=\"badge unknown\" id=\"switch-state\">store down</span>".to_string(),
        };
        let refresh = refresh
            .map(|s| format!("<meta http-equiv=\"refresh\" content=\"{s}\">"))
            .unwrap_or_default();
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">{refresh}\
             <title>{} · Simian</title><style>{STYLE}</style></head><body>\
             <header><a class=\"brand\" href=\"/\">Simian</a><nav>{nav}</nav>{switch}</header>\
             <main>{main}</main><footer>simian {} · <a href=\"/api/v1/openapi.json\">API</a> · \
             <a href=\"/metrics\">metrics</a></footer><script>{SCRIPT}</script></body></html>",
            esc(title),
            env!("CARGO_PKG_VERSION"),
        )
    }

    fn today_page(&self) -> Result<String, Failure> {
        let (policy, schedule, now) = self.day(None)?;
        let calendar = &policy.calendar;
        let tz = calendar.time_zone();
        let mut out = format!(
            "<h1>Today <small>{} · {}</small></h1>",
            schedule.date,
            esc(tz.iana_name().unwrap_or("local time"))
        );
        // The counts.
        out.push_str("<dl class=\"counts\" id=\"counts\">");
        let _ = write!(
            out,
            "<div data-status=\"planned\"><dt>planned</dt><dd>{}</dd></div>",
            schedule.entries.len()
        );
        for status in [
            EntryStatus::Fired,
            EntryStatus::Refused,
            EntryStatus::Pending,
            EntryStatus::Missed,
        ] {
            let n = schedule
                .entries
                .iter()
                .filter(|e| e.status == status)
                .count();
            let s = status.as_str();
            let _ = write!(
                out,
                "<div class=\"{s}\" data-status=\"{s}\"><dt>{s}</dt><dd>{n}</dd></div>"
            );
        }
        out.push_str("</dl>");
        // The next kill, with its countdown.
        match next_pending(&schedule, now) {
            Some(next) => {
                let real = self.engine.clock().real_wait(next.time).as_secs_f64();
                let simulated = next.time.duration_since(now).as_secs_f64().max(0.0);
                let _ = write!(
                    out,
                    "<p class=\"next\" id=\"next-kill\" data-real-seconds=\"{real:.1}\" \
                     data-sim-seconds=\"{simulated:.1}\">Next kill at <time datetime=\"{}\">{}</time> \
                     in {}, <span class=\"countdown\">{}</span></p>",
                    next.time,
                    local(next.time, tz, "%H:%M"),
                    esc(&group_name(&next.group)),
                    human(simulated)
                );
            }
            None => {
                out.push_str("<p class=\"next\" id=\"next-kill\">No kill is pending today.</p>")
            }
        }
        // The timeline: the day as a line, the window shaded, each kill a mark placed by its
        // minute (in percent, so that it holds at every width).
        let (start, end) = calendar.window(schedule.date);
        let (midnight, _) = calendar.day_bounds(schedule.date);
        let at =
            |t: Timestamp| (t.duration_since(midnight).as_secs_f64() / 864.0).clamp(0.0, 100.0);
        let _ = write!(
            out,
            "<figure><div id=\"timeline\" role=\"img\" aria-label=\"today's kills on a 24-hour line\">\
             <div class=\"window\" style=\"left:{:.2}%;width:{:.2}%\"></div>",
            at(start),
            at(end) - at(start)
        );
        for hour in (0..=24).step_by(3) {
            let edge = match hour {
                0 => " first",
                24 => " last",
                _ => "",
            };
            let _ = write!(
                out,
                "<span class=\"hour{edge}\" style=\"left:{:.2}%\">{hour:02}h</span>",
                f64::from(hour) * 100.0 / 24.0
            );
        }
        for entry in &schedule.entries {
            let _ = write!(
                out,
                "<span class=\"kill {s}\" data-entry=\"{id}\" style=\"left:{x:.2}%\" \
                 title=\"{t} {g}: {s}\"></span>",
                s = entry.status.as_str(),
                id = entry.id,
                x = at(entry.time),
                t = local(entry.time, tz, "%H:%M"),
                g = esc(&group_name(&entry.group)),
            );
        }
        if calendar.local_date(now) == schedule.date {
            let _ = write!(
                out,
                "<span class=\"now\" id=\"now\" style=\"left:{:.2}%\">now</span>",
                at(now)
            );
        }
        let _ = write!(
            out,
            "</div><figcaption>Kills are planned between {} and {} ({}); now is {}.</figcaption></figure>",
            local(start, tz, "%H:%M"),
            local(end, tz, "%H:%M"),
            esc(tz.iana_name().unwrap_or("local time")),
            local(now, tz, "%H:%M:%S"),
        );
        // The same as a table.
        if schedule.entries.is_empty() {
            out.push_str("<p>No kill is planned today.</p>");
        } else {
            out.push_str(
                "<div class=\"scroll\"><table id=\"schedule\"><thead><tr><th>time</th><th>group</th>\
                 <th>status</th></tr></thead><tbody>",
            );
            for entry in &schedule.entries {
                let s = entry.status.as_str();
                let _ = write!(
                    out,
                    "<tr data-status=\"{s}\"><td><time datetime=\"{}\">{}</time></td><td>{}</td>\
                     <td><span class=\"status {s}\">{s}</span></td></tr>",
                    entry.time,
                    local(entry.time, tz, "%H:%M"),
                    esc(&group_name(&entry.group)),
                );
            }
            out.push_str("</tbody></table></div>");
        }
        let _ = write!(
            out,
            "<p class=\"more\"><a href=\"/history?kind=refusals&amp;since={d}\">Today's refusals</a> · \
             <a href=\"/history?kind=terminations&amp;since={d}\">today's kills</a></p>",
            d = schedule.date
        );
        Ok(out)
    }

    fn history_html(&self, query: &[(String, String)]) -> Result<String, Failure> {
        let kind = match param(query, "kind").unwrap_or("terminations") {
            "terminations" => History::Terminations,
            "refusals" => History::Refusals,
            "drills" => History::Drills,
            other => {
                return Err(Failure::bad(format!(
                    "kind={other:?} is not terminations, refusals or drills"
                )));
            }
        };
        let kind_name = match kind {
            History::Terminations => "terminations",
            History::Refusals => "refusals",
            History::Drills => "drills",
        };
        // The form sends every field; an empty one means no filter.
        let filters: Vec<(String, String)> = query
            .iter()
            .filter(|(k, v)| {
                k != "kind" && !(v.is_empty() || (kind == History::Drills && k == "app"))
            })
            .cloned()
            .collect();
        let (items, last) = self.history_page(kind, &filters)?;
        let tz = self.policy()?.calendar.time_zone().clone();
        let mut out = String::from("<h1>History</h1>");
        let _ = write!(
            out,
            "<form class=\"filters\" method=\"get\" action=\"/history\"><label>what \
             <select name=\"kind\">{}</select></label><label>app \
             <input name=\"app\" value=\"{}\" placeholder=\"any\"></label><label>since \
             <input name=\"since\" type=\"date\" value=\"{}\"></label><button>Filter</button></form>",
            ["terminations", "refusals", "drills"]
                .iter()
                .map(|k| format!(
                    "<option{}>{k}</option>",
                    if *k == kind_name { " selected" } else { "" }
                ))
                .collect::<String>(),
            esc(param(query, "app").unwrap_or_default()),
            esc(param(query, "since").unwrap_or_default()),
        );
        let columns: &[(&str, &str)] = match kind {
            History::Terminations => &[
                ("id", "id"),
                ("recorded_at", "when"),
                ("app", "app"),
                ("instance_id", "instance"),
                ("zone", "zone"),
                ("cluster", "cluster"),
                ("origin", "origin"),
                ("state", "state"),
                ("detail", "detail"),
            ],
            History::Refusals => &[
                ("id", "id"),
                ("at", "when"),
                ("app", "app"),
                ("cluster", "cluster"),
                ("instance_id", "instance"),
                ("check", "check"),
                ("reason", "reason"),
            ],
            History::Drills => &[
                ("id", "id"),
                ("started_at", "started"),
                ("kind", "kind"),
                ("target", "target"),
                ("mode", "mode"),
                ("dry_run", "dry run"),
                ("ending", "ending"),
                ("detail", "detail"),
            ],
        };
        if items.is_empty() {
            out.push_str("<p id=\"empty\">Nothing recorded under these filters.</p>");
        } else {
            let _ = write!(
                out,
                "<div class=\"scroll\"><table id=\"history\" data-kind=\"{kind_name}\"><thead><tr>"
            );
            for (_, head) in columns {
                let _ = write!(out, "<th>{head}</th>");
            }
            out.push_str("</tr></thead><tbody>");
            for item in &items {
                out.push_str("<tr>");
                for (key, _) in columns {
                    let cell = cell(&item[*key], &tz);
                    let class = match *key {
                        "state" | "check" | "ending" => format!(" class=\"status {}\"", esc(&cell)),
                        _ => String::new(),
                    };
                    let _ = write!(out, "<td><span{class}>{}</span></td>", esc(&cell));
                }
                out.push_str("</tr>");
            }
            out.push_str("</tbody></table></div>");
        }
        if let Some(last) = last {
            let mut next: Vec<(String, String)> = filters;
            next.push(("kind".into(), kind_name.into()));
            let _ = write!(
                out,
                "<p class=\"more\"><a id=\"older\" href=\"/history?{}\">Older →</a></p>",
                esc(&next_page_query(&next, last))
            );
        }
        Ok(out)
    }

    fn apps_page(&self) -> Result<String, Failure> {
        let (_, apps) = self.apps()?;
        let mut out = String::from("<h1>Apps</h1>");
        let apps = apps["apps"].as_array().cloned().unwrap_or_default();
        if apps.is_empty() {
            out.push_str("<p>No app is configured: add [[apps]] to the configuration.</p>");
        }
        for app in &apps {
            let name = app["name"].as_str().unwrap_or_default();
            let enabled = app["enabled"] == true;
            let _ = write!(
                out,
                "<section class=\"app\" data-app=\"{n}\"><h2>{n} <span class=\"badge {c}\">{e}</span></h2>\
                 <dl class=\"settings\"><div><dt>provider</dt><dd>{p}</dd></div>\
                 <div><dt>mean time between kills (work days)</dt><dd>{m}</dd></div>\
                 <div><dt>minimum time between kills (work days)</dt><dd>{min}</dd></div>\
                 <div><dt>grouping</dt><dd>{g}</dd></div>\
                 <div><dt>chance of a kill per group per day</dt><dd>{pr:.1}%</dd></div></dl>",
                n = esc(name),
                c = if enabled { "allowed" } else { "stopped" },
                e = if enabled { "enabled" } else { "disabled" },
                p = esc(app["provider"].as_str().unwrap_or_default()),
                m = app["mean_time_between_kills"],
                min = app["min_time_between_kills"],
                g = esc(app["grouping"].as_str().unwrap_or_default()),
                pr = app["daily_kill_probability"].as_f64().unwrap_or(0.0) * 100.0,
            );
            if let Some(error) = app["error"].as_str() {
                let _ = write!(
                    out,
                    "<p class=\"error\" role=\"alert\">The instances cannot be listed: {}</p>",
                    esc(error)
                );
            }
            let eligible = app["eligible"].as_array().cloned().unwrap_or_default();
            let mut zones: std::collections::BTreeMap<String, Vec<&Value>> = Default::default();
            for instance in &eligible {
                let zone = instance["zone"].as_str().unwrap_or_default();
                zones
                    .entry(if zone.is_empty() {
                        "no zone".into()
                    } else {
                        zone.into()
                    })
                    .or_default()
                    .push(instance);
            }
            let _ = write!(
                out,
                "<p>{} eligible instance{} in {} zone{}.</p><div class=\"zones\">",
                eligible.len(),
                if eligible.len() == 1 { "" } else { "s" },
                zones.len(),
                if zones.len() == 1 { "" } else { "s" },
            );
            for (zone, instances) in &zones {
                let _ = write!(
                    out,
                    "<div class=\"zone\" data-zone=\"{z}\"><h3>{z} <small>{n}</small></h3><ul>",
                    z = esc(zone),
                    n = instances.len()
                );
                for instance in instances {
                    let _ = write!(
                        out,
                        "<li data-instance=\"{id}\"><code>{id}</code> <small>{c}</small></li>",
                        id = esc(instance["id"].as_str().unwrap_or_default()),
                        c = esc(instance["cluster"].as_str().unwrap_or_default()),
                    );
                }
                out.push_str("</ul></div>");
            }
            out.push_str("</div>");
            let exceptions = app["exceptions"].as_array().cloned().unwrap_or_default();
            if !exceptions.is_empty() {
                out.push_str("<p class=\"exceptions\">Never killed: ");
                let list: Vec<String> = exceptions
                    .iter()
                    .map(|e| {
                        ["account", "region", "stack", "detail"]
                            .iter()
                            .filter_map(|k| e[*k].as_str().map(|v| format!("{k} {}", esc(v))))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .collect();
                out.push_str(&list.join("; "));
                out.push_str("</p>");
            }
            out.push_str("</section>");
        }
        Ok(out)
    }

    fn kill_switch_page(&self, query: &[(String, String)]) -> Result<String, Failure> {
        let (_, v) = self.kill_switch()?;
        let tz = self.policy()?.calendar.time_zone().clone();
        let allowed = v["kills_allowed"] == true;
        let mut out = String::from("<h1>Kill switch</h1>");
        if param(query, "changed").is_some() {
            out.push_str("<p class=\"done\" role=\"status\">The kill switch was changed.</p>");
        }
        let _ = write!(
            out,
            "<p class=\"state {c}\" id=\"kill-switch\" data-allowed=\"{allowed}\">{t}</p>",
            c = if allowed { "allowed" } else { "stopped" },
            t = if allowed {
                "Kills are allowed.".to_string()
            } else {
                format!(
                    "Kills are stopped: {}.",
                    esc(v["holding"].as_str().unwrap_or("by the kill switch"))
                )
            },
        );
        if v["set"].is_object() {
            let set = &v["set"];
            let _ = write!(
                out,
                "<p id=\"last-change\">Last set to <b>{}</b> by {} at {}{}.</p>",
                if set["enabled"] == true {
                    "allow kills"
                } else {
                    "stop kills"
                },
                esc(set["changed_by"].as_str().unwrap_or_default()),
                esc(&cell(&set["at"], &tz)),
                match set["reason"].as_str() {
                    Some(r) if !r.is_empty() => format!(": “{}”", esc(r)),
                    _ => String::new(),
                },
            );
        }
        if v["config_enabled"] == false {
            out.push_str(
                "<p class=\"error\">The configuration's <code>[monkey] enabled = false</code> stops kills too, whatever this switch says.</p>",
            );
        }
        if self.token.is_none() {
            out.push_str(
                "<p class=\"error\" id=\"no-token\">Changing the switch needs an API token: start simian serve with SIMIAN_API_TOKEN or [server] token_file.</p>",
            );
            return Ok(out);
        }
        let (enabled, verb) = if allowed {
            (false, "Stop kills…")
        } else {
            (true, "Allow kills…")
        };
        let _ = write!(
            out,
            "<form class=\"change\" method=\"get\" action=\"{CONFIRM}\">\
             <input type=\"hidden\" name=\"enabled\" value=\"{enabled}\">\
             <label>your name <input name=\"changed_by\" required maxlength=\"200\"></label>\
             <label>reason <input name=\"reason\" maxlength=\"500\"></label>\
             <button class=\"{c}\">{verb}</button></form>",
            c = if allowed { "danger" } else { "" },
        );
        Ok(out)
    }

    /// The confirmation step: what will change, and the token.
    fn confirm_page(&self, query: &[(String, String)]) -> Result<String, Failure> {
        let enabled = match param(query, "enabled") {
            Some("true") => true,
            Some("false") => false,
            _ => return Err(Failure::bad("enabled must be true or false")),
        };
        let changed_by = param(query, "changed_by").unwrap_or_default();
        if changed_by.trim().is_empty() {
            return Err(Failure::bad(
                "give your name: the change is recorded with who made it",
            ));
        }
        let reason = param(query, "reason").unwrap_or_default();
        let what = if enabled {
            "allow kills again"
        } else {
            "stop every kill, scheduled or asked for, until someone allows them again"
        };
        Ok(format!(
            "<h1>Kill switch</h1><p class=\"confirm\" id=\"confirm\">You are about to <b>{what}</b>, \
             as {who}{why}.</p><form class=\"change\" method=\"post\" action=\"/kill-switch\">\
             <input type=\"hidden\" name=\"enabled\" value=\"{enabled}\">\
             <input type=\"hidden\" name=\"changed_by\" value=\"{who}\">\
             <input type=\"hidden\" name=\"reason\" value=\"{reason}\">\
             <input type=\"hidden\" name=\"confirm\" value=\"yes\">\
             <label>API token <input name=\"token\" type=\"password\" required autocomplete=\"off\"></label>\
             <button class=\"{c}\">Yes, {verb}</button> <a href=\"/kill-switch\">Cancel</a></form>",
            who = esc(changed_by),
            why = if reason.is_empty() {
                String::new()
            } else {
                format!(", because “{}”", esc(reason))
            },
            reason = esc(reason),
            c = if enabled { "" } else { "danger" },
            verb = if enabled { "allow kills" } else { "stop kills" },
        ))
    }

    /// The confirmed change, from the form.
    fn kill_switch_form(&self, form: &[(String, String)]) -> Result<(), Failure> {
        if let Some((k, _)) = form.iter().find(|(k, _)| {
            !["enabled", "changed_by", "reason", "token", "confirm"].contains(&k.as_str())
        }) {
            return Err(Failure::bad(format!("unknown field {k:?}")));
        }
        self.authorize(param(form, "token"))?;
        if param(form, "confirm") != Some("yes") {
            return Err(Failure::bad(
                "the change was not confirmed: use the form on the kill switch page",
            ));
        }
        let enabled = match param(form, "enabled") {
            Some("true") => true,
            Some("false") => false,
            _ => return Err(Failure::bad("enabled must be true or false")),
        };
        self.change_kill_switch(KillSwitchBody {
            enabled,
            changed_by: param(form, "changed_by").unwrap_or_default().to_string(),
            reason: param(form, "reason").unwrap_or_default().to_string(),
        })
        .map(|_| ())
    }

    fn proxies_page(&self) -> Result<String, Failure> {
        let Some(api) = &self.proxy_api else {
            return Ok("<h1>Proxies</h1><p>No proxy is attached: set <code>[server] proxy_api</code> to the API address of a running <code>simian proxy</code>.</p>".into());
        };
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(PROXY_API_TIMEOUT))
            .build()
            .new_agent();
        let url = format!("{api}/proxies");
        let proxies: Value = agent
            .get(&url)
            .call()
            .map_err(|e| e.to_string())
            .and_then(|mut r| r.body_mut().read_to_string().map_err(|e| e.to_string()))
            .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
            .map_err(|e| {
                Failure(
                    StatusCode::BAD_GATEWAY,
                    format!("the proxy API at {api} does not answer with its proxies: {e}"),
                )
            })?;
        let mut out = format!("<h1>Proxies <small>{}</small></h1>", esc(api));
        let map = proxies.as_object().cloned().unwrap_or_default();
        if map.is_empty() {
            out.push_str("<p id=\"empty\">The proxy has no proxies.</p>");
            return Ok(out);
        }
        out.push_str(
            "<div class=\"scroll\"><table id=\"proxies\"><thead><tr><th>name</th><th>listen</th>\
             <th>upstream</th><th>enabled</th><th>toxics</th></tr></thead><tbody>",
        );
        for (name, proxy) in &map {
            let toxics: Vec<String> = proxy["toxics"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|t| {
                    let attributes: Vec<String> = t["attributes"]
                        .as_object()
                        .cloned()
                        .unwrap_or_default()
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    format!(
                        "<li><b>{}</b> {} {} {} · toxicity {}</li>",
                        esc(t["name"].as_str().unwrap_or_default()),
                        esc(t["type"].as_str().unwrap_or_default()),
                        esc(t["stream"].as_str().unwrap_or_default()),
                        esc(&attributes.join(" ")),
                        t["toxicity"]
                    )
                })
                .collect();
            let enabled = proxy["enabled"] == true;
            let _ = write!(
                out,
                "<tr data-proxy=\"{n}\"><td>{n}</td><td><code>{l}</code></td><td><code>{u}</code></td>\
                 <td><span class=\"status {c}\">{e}</span></td><td>{t}</td></tr>",
                n = esc(name),
                l = esc(proxy["listen"].as_str().unwrap_or_default()),
                u = esc(proxy["upstream"].as_str().unwrap_or_default()),
                c = if enabled { "allowed" } else { "stopped" },
                e = if enabled { "enabled" } else { "disabled" },
                t = if toxics.is_empty() {
                    "none".to_string()
                } else {
                    format!("<ul class=\"toxics\">{}</ul>", toxics.concat())
                },
            );
        }
        out.push_str("</tbody></table></div>");
        Ok(out)
    }
}

/// `app/account/region/stack/cluster`, the parts the group has.
fn group_name(group: &simian_core::Group) -> String {
    [
        Some(group.app.as_str()),
        Some(group.account.as_str()),
        group.region.as_deref(),
        group.stack.as_deref(),
        group.cluster.as_deref(),
    ]
    .into_iter()
    .flatten()
    .filter(|p| !p.is_empty())
    .collect::<Vec<_>>()
    .join("/")
}

/// A JSON value as a table cell: instants in the calendar's zone, absent as a dash.
fn cell(v: &Value, tz: &TimeZone) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => match s.parse::<Timestamp>() {
            Ok(t) => local(t, tz, "%Y-%m-%d %H:%M:%S"),
            Err(_) => s.clone(),
        },
        other => other.to_string(),
    }
}

fn local(t: Timestamp, tz: &TimeZone, format: &str) -> String {
    t.to_zoned(tz.clone()).strftime(format).to_string()
}

/// A duration in words: "in 2 h 05 min", "in 4 min 10 s", "now".
fn human(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0 => "now".into(),
        1..=59 => format!("in {s} s"),
        60..=3599 => format!("in {} min {:02} s", s / 60, s % 60),
        _ => format!("in {} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_durations_read_well() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(human(0.2), "now");
        assert_eq!(human(42.0), "in 42 s");
        assert_eq!(human(250.0), "in 4 min 10 s");
        assert_eq!(human(7500.0), "in 2 h 05 min");
        assert!(is_page("/") && is_page(CONFIRM) && !is_page("/api/v1/apps"));
    }
}
