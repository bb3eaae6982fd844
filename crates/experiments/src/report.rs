//! The report: one journal as one self-contained HTML page.
//!
//! No script, no stylesheet or font from elsewhere, nothing fetched: the page opens from a
//! CI artifact or an e-mail attachment as it is. The verdict comes first; then a timeline
//! (inline SVG) of every probe's latency and result over the run, with the actions and the
//! rollbacks as shaded windows and the stop condition that fired as a line; then the tables
//! of every activity with its output.

use std::fmt::Write as _;

use jiff::Timestamp;
use serde_json::Value;
use simian_core::escape::html as esc;

/// The page for `journal`.
pub fn html(journal: &Value) -> String {
    let title = journal
        .pointer("/experiment/title")
        .map(text)
        .unwrap_or_default();
    let description = journal
        .pointer("/experiment/description")
        .map(text)
        .unwrap_or_default();
    let (verdict, class, why) = verdict(journal);
    let mut page = String::with_capacity(16 * 1024);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t} - Simian experiment report</title><style>{CSS}</style></head><body>\
         <header><p class=\"kicker\">Simian experiment report</p><h1>{t}</h1><p class=\"description\">{d}</p></header>\
         <section id=\"verdict\" class=\"verdict {class}\"><h2>{v}</h2><p>{w}</p></section>",
        t = esc(&title),
        d = esc(&description),
        v = esc(verdict),
        w = esc(&why),
    );
    summary(&mut page, journal);
    timeline(&mut page, journal);
    for (id, heading, runs) in [
        (
            "before",
            "Steady state before the method",
            journal.pointer("/steady_states/before/probes"),
        ),
        ("method", "Method", journal.get("run")),
        (
            "after",
            "Steady state after the method",
            journal.pointer("/steady_states/after/probes"),
        ),
        ("rollbacks", "Rollbacks", journal.get("rollbacks")),
    ] {
        table(
            &mut page,
            id,
            heading,
            runs.and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default(),
        );
    }
    let during = journal
        .pointer("/steady_states/during")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if !during.is_empty() {
        let met = during
            .iter()
            .filter(|s| s["steady_state_met"].as_bool() == Some(true))
            .count();
        let _ = write!(
            page,
            "<section id=\"during\"><h2>Steady state during the method</h2><p>{met} of {} checks met the hypothesis.</p></section>",
            during.len()
        );
    }
    page.push_str("<footer>Written by Simian from the run's journal.</footer></body></html>\n");
    page
}

/// The verdict's headline, its CSS class, and one sentence of why.
fn verdict(journal: &Value) -> (&'static str, &'static str, String) {
    let status = journal["status"].as_str().unwrap_or("completed");
    let deviated = journal["deviated"].as_bool().unwrap_or(false);
    if let Some(stopped) = journal.pointer("/simian/stopped").filter(|s| !s.is_null()) {
        let by = if stopped["by"].as_str() == Some("signal") {
            "signal"
        } else {
            "stop condition"
        };
        return (
            "Stopped",
            "bad",
            format!(
                "The run was stopped by the {by} {} at {}: {}. Rollbacks were played.",
                text(&stopped["name"]),
                text(&stopped["at"]),
                text(&stopped["reason"])
            ),
        );
    }
    let before_met = journal
        .pointer("/steady_states/before/steady_state_met")
        .and_then(Value::as_bool);
    match (status, deviated, before_met) {
        ("completed", false, Some(false)) => (
            "Not started: the steady state did not hold before the method",
            "warn",
            "The hypothesis was not met before anything was done, so the method was skipped."
                .into(),
        ),
        ("completed", false, _) => (
            "The hypothesis held",
            "good",
            "The system stayed within its steady state through the method.".into(),
        ),
        (_, true, _) => (
            "The hypothesis deviated",
            "bad",
            "After the method the steady state was not met: a weakness may have been found.".into(),
        ),
        ("failed", _, _) => (
            "Failed",
            "bad",
            "A probe of the hypothesis failed to run.".into(),
        ),
        ("aborted", _, _) => (
            "Aborted",
            "bad",
            "The method stopped on an unexpected error.".into(),
        ),
        ("interrupted", _, _) => ("Interrupted", "bad", "The run was interrupted.".into()),
        _ => ("Finished", "warn", format!("status {status}")),
    }
}

fn summary(page: &mut String, journal: &Value) {
    let _ = write!(
        page,
        "<section id=\"summary\"><table class=\"facts\"><tbody>\
         <tr><th>Status</th><td>{}</td></tr><tr><th>Deviated</th><td>{}</td></tr>\
         <tr><th>Started</th><td>{}</td></tr><tr><th>Ended</th><td>{}</td></tr>\
         <tr><th>Duration</th><td>{:.3} s</td></tr><tr><th>Dry</th><td>{}</td></tr></tbody></table></section>",
        esc(&text(&journal["status"])),
        journal["deviated"].as_bool().unwrap_or(false),
        esc(&text(&journal["start"])),
        esc(&text(&journal["end"])),
        journal["duration"].as_f64().unwrap_or(0.0),
        esc(&journal
            .pointer("/experiment/dry")
            .map(text)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "no".into())),
    );
}

/// A point on the timeline: one probe run.
struct Point {
    lane: String,
    at: f64,
    latency: f64,
    good: bool,
}

fn timeline(page: &mut String, journal: &Value) {
    let Some(t0) = journal["start"].as_str().and_then(seconds) else {
        return;
    };
    let total = journal["end"]
        .as_str()
        .and_then(seconds)
        .map(|e| e - t0)
        .filter(|d| *d > 0.0)
        .unwrap_or(1.0);
    let mut points = Vec::new();
    let mut windows = Vec::new();
    let hypothesis_runs = [
        "/steady_states/before/probes",
        "/steady_states/after/probes",
    ]
    .iter()
    .filter_map(|p| journal.pointer(p).and_then(Value::as_array))
    .flatten()
    .chain(
        journal
            .pointer("/steady_states/during")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|s| s["probes"].as_array())
            .flatten(),
    );
    for run in hypothesis_runs {
        if let Some(p) = point(run, t0) {
            points.push(p);
        }
    }
    for (key, kind) in [("run", "action"), ("rollbacks", "rollback")] {
        for run in journal[key].as_array().into_iter().flatten() {
            let is_probe = run.pointer("/activity/type").and_then(Value::as_str) == Some("probe");
            if is_probe && key == "run" {
                if let Some(p) = point(run, t0) {
                    points.push(p);
                }
            } else if let (Some(s), Some(e)) = (
                run["start"].as_str().and_then(seconds),
                run["end"].as_str().and_then(seconds),
            ) {
                windows.push((
                    kind,
                    s - t0,
                    e - t0,
                    run.pointer("/activity/name").map(text).unwrap_or_default(),
                ));
            }
        }
    }
    let stop = journal
        .pointer("/simian/stopped")
        .filter(|s| !s.is_null())
        .and_then(|s| Some((s["at"].as_str().and_then(seconds)? - t0, text(&s["name"]))));
    let mut lanes: Vec<String> = Vec::new();
    for p in &points {
        if !lanes.contains(&p.lane) {
            lanes.push(p.lane.clone());
        }
    }
    let max_latency = points
        .iter()
        .map(|p| p.latency)
        .fold(0.0_f64, f64::max)
        .max(0.001);
    let (w, h, left, right, top, bottom) = (960.0, 320.0, 64.0, 16.0, 24.0, 40.0);
    let x = |t: f64| left + (t / total).clamp(0.0, 1.0) * (w - left - right);
    let y = |l: f64| top + (1.0 - l / max_latency) * (h - top - bottom);
    let _ = write!(
        page,
        "<section id=\"timeline\"><h2>Timeline</h2><svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"probe latency and result over the run\">"
    );
    for (kind, s, e, name) in &windows {
        let _ = write!(
            page,
            "<rect class=\"window {kind}\" x=\"{:.1}\" y=\"{top}\" width=\"{:.1}\" height=\"{:.1}\"><title>{kind} {}: {:.3}s to {:.3}s</title></rect>",
            x(*s),
            (x(*e) - x(*s)).max(1.5),
            h - top - bottom,
            esc(name),
            s,
            e
        );
    }
    let _ = write!(
        page,
        "<line class=\"axis\" x1=\"{left}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\"/><line class=\"axis\" x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{b}\"/>\
         <text class=\"label\" x=\"{left}\" y=\"{ty}\">0 s</text><text class=\"label end\" x=\"{r}\" y=\"{ty}\">{total:.1} s</text>\
         <text class=\"label end\" x=\"{lx}\" y=\"{ly}\">{ml:.0} ms</text><text class=\"label end\" x=\"{lx}\" y=\"{b}\">0</text>",
        b = h - bottom,
        r = w - right,
        ty = h - bottom + 16.0,
        lx = left - 6.0,
        ly = top + 4.0,
        ml = max_latency * 1000.0,
    );
    for (i, lane) in lanes.iter().enumerate() {
        let mut series: Vec<&Point> = points.iter().filter(|p| &p.lane == lane).collect();
        series.sort_by(|a, b| a.at.total_cmp(&b.at));
        let path: Vec<String> = series
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.at), y(p.latency)))
            .collect();
        let _ = write!(
            page,
            "<polyline class=\"series s{}\" points=\"{}\"/>",
            i % 6,
            path.join(" ")
        );
        for p in series {
            let _ = write!(
                page,
                "<circle class=\"probe {}\" data-probe=\"{}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\"><title>{} at {:.3}s: {:.1} ms, {}</title></circle>",
                if p.good { "met" } else { "missed" },
                esc(&p.lane),
                x(p.at),
                y(p.latency),
                esc(&p.lane),
                p.at,
                p.latency * 1000.0,
                if p.good {
                    "within tolerance"
                } else {
                    "NOT within tolerance"
                }
            );
        }
    }
    if let Some((at, name)) = &stop {
        let _ = write!(
            page,
            "<line class=\"stop\" x1=\"{sx:.1}\" y1=\"{top}\" x2=\"{sx:.1}\" y2=\"{b}\"/><text class=\"label stop{anchor}\" x=\"{tx:.1}\" y=\"{ty}\">stopped: {n}</text>",
            sx = x(*at),
            b = h - bottom,
            // Near the right edge the label goes on the line's left, so it is not cut off.
            anchor = if *at > total * 0.6 { " end" } else { "" },
            tx = if *at > total * 0.6 {
                x(*at) - 4.0
            } else {
                x(*at) + 4.0
            },
            ty = top + 12.0,
            n = esc(name)
        );
    }
    page.push_str("</svg><ul class=\"legend\"><li><span class=\"key met\"></span>probe within tolerance</li><li><span class=\"key missed\"></span>probe not within tolerance, or failed</li><li><span class=\"key action\"></span>action</li><li><span class=\"key rollback\"></span>rollback</li>");
    if stop.is_some() {
        page.push_str("<li><span class=\"key stop\"></span>stop condition fired</li>");
    }
    page.push_str("</ul></section>");
}

fn point(run: &Value, t0: f64) -> Option<Point> {
    let at = run["start"].as_str().and_then(seconds)? - t0;
    let good = run["status"].as_str() == Some("succeeded")
        && run["tolerance_met"].as_bool() != Some(false);
    Some(Point {
        lane: run.pointer("/activity/name").map(text).unwrap_or_default(),
        at,
        latency: run["duration"].as_f64().unwrap_or(0.0),
        good,
    })
}

fn table(page: &mut String, id: &str, heading: &str, runs: &[Value]) {
    let _ = write!(page, "<section id=\"{id}\"><h2>{}</h2>", esc(heading));
    if runs.is_empty() {
        page.push_str("<p class=\"none\">Nothing ran.</p></section>");
        return;
    }
    page.push_str("<table class=\"runs\"><thead><tr><th>Activity</th><th>Type</th><th>Status</th><th>Tolerance</th><th>Duration</th><th>Output</th></tr></thead><tbody>");
    for run in runs {
        let status = text(&run["status"]);
        let tolerance = match run["tolerance_met"].as_bool() {
            Some(true) => "met",
            Some(false) => "not met",
            None => "",
        };
        let mut output = match &run["output"] {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => serde_json::to_string_pretty(other).unwrap_or_default(),
        };
        if let Some(e) = run["exception"].as_array() {
            let lines: Vec<String> = e.iter().map(text).collect();
            output = format!("{output}{}", lines.concat());
        }
        if output.chars().count() > 2000 {
            output = output.chars().take(2000).collect::<String>() + "\n[...]";
        }
        let _ = write!(
            page,
            "<tr class=\"{cls}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3} s</td><td><pre>{}</pre></td></tr>",
            esc(&run.pointer("/activity/name").map(text).unwrap_or_default()),
            esc(&run.pointer("/activity/type").map(text).unwrap_or_default()),
            esc(&status),
            tolerance,
            run["duration"].as_f64().unwrap_or(0.0),
            esc(&output),
            cls = if status == "succeeded" && tolerance != "not met" {
                "ok"
            } else {
                "ko"
            },
        );
    }
    page.push_str("</tbody></table></section>");
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Seconds since the epoch of an ISO-8601 time, as journals write them.
fn seconds(s: &str) -> Option<f64> {
    let t: Timestamp = s.parse().ok()?;
    Some(t.as_microsecond() as f64 / 1e6)
}

const CSS: &str = "\
:root{--good:#1a7f37;--bad:#cf222e;--warn:#9a6700;--ink:#1f2328;--muted:#59636e;--line:#d1d9e0}\
body{font:15px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;color:var(--ink);margin:0 auto;max-width:1040px;padding:24px}\
h1{font-size:26px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px}.kicker{color:var(--muted);margin:0;text-transform:uppercase;font-size:12px;letter-spacing:.08em}\
.description{color:var(--muted);margin:0}\
.verdict{border-radius:8px;padding:14px 18px;margin:20px 0;color:#fff}.verdict h2{margin:0;font-size:22px}.verdict p{margin:4px 0 0}\
.verdict.good{background:var(--good)}.verdict.bad{background:var(--bad)}.verdict.warn{background:var(--warn)}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:6px 8px;border-bottom:1px solid var(--line);vertical-align:top}\
table.facts{width:auto}table.facts th{color:var(--muted);font-weight:600;padding-right:24px}\
tr.ko td:nth-child(3){color:var(--bad);font-weight:600}tr.ok td:nth-child(3){color:var(--good)}\
pre{margin:0;white-space:pre-wrap;word-break:break-word;max-height:16em;overflow:auto;font-size:12px}\
svg{width:100%;height:auto;border:1px solid var(--line);border-radius:6px;background:#fff}\
.axis{stroke:#8c959f}.label{font-size:11px;fill:var(--muted)}.label.end{text-anchor:end}\
.window.action{fill:#0969da;opacity:.15}.window.rollback{fill:#bf8700;opacity:.2}\
.series{fill:none;stroke-width:1.2;opacity:.5}.s0{stroke:#0969da}.s1{stroke:#8250df}.s2{stroke:#1a7f37}.s3{stroke:#bf3989}.s4{stroke:#9a6700}.s5{stroke:#57606a}\
circle.met{fill:var(--good)}circle.missed{fill:var(--bad)}\
line.stop{stroke:var(--bad);stroke-width:2;stroke-dasharray:6 3}text.stop{fill:var(--bad);font-weight:600}\
.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:16px;color:var(--muted);font-size:13px}\
.key{display:inline-block;width:12px;height:12px;border-radius:3px;margin-right:6px;vertical-align:-1px}\
.key.met{background:var(--good);border-radius:6px}.key.missed{background:var(--bad);border-radius:6px}.key.action{background:#0969da;opacity:.35}\
.key.rollback{background:#bf8700;opacity:.45}.key.stop{background:var(--bad);height:3px;vertical-align:3px}\
footer{margin-top:32px;color:var(--muted);font-size:12px}\
@media (max-width:600px){body{padding:12px}td:nth-child(2),th:nth-child(2),td:nth-child(4),th:nth-child(4){display:none}}";
