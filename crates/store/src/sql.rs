//! The tracker's logic, written once in portable SQL over a [`Backend`].

use std::collections::{HashMap, HashSet};

use jiff::Timestamp;
use jiff::civil::Date;
use simian_core::{
    Check, Claim, ClaimResult, Draws, Drill, DrillEnding, DrillKind, DrillMode, EntryStatus,
    FaultKind, Group, HistoryFilter, Instance, KillSwitch, Lease, NewDrill, NewLease, NewSchedule,
    Origin, Refusal, Schedule, ScheduleEntry, Store, StoreError, Termination, TerminationState,
};

use crate::backend::{Backend, Row, Tx, Value};

/// A [`Store`] over any [`Backend`].
pub struct SqlStore<B> {
    backend: B,
}

impl<B: Backend> SqlStore<B> {
    /// Wraps `backend`, applying any migration it has not seen yet, in one transaction.
    /// A store whose schema is newer than this build's is refused, never used.
    pub fn new(backend: B) -> Result<SqlStore<B>, StoreError> {
        let migrations = backend.migrations();
        let supported = migrations.iter().map(|(v, _)| *v).max().unwrap_or(0);
        backend.transaction(true, &mut |tx| {
            tx.execute(
                "CREATE TABLE IF NOT EXISTS simian_migrations (version BIGINT PRIMARY KEY, applied_at_ms BIGINT NOT NULL)",
                &[],
            )?;
            let applied = tx.query("SELECT COALESCE(MAX(version), 0) FROM simian_migrations", &[])?;
            let current = applied.first().map(|r| r.int(0, "migration version")).transpose()?.unwrap_or(0);
            if current > supported {
                return Err(StoreError::NewerSchema { found: current, supported });
            }
            for (version, sql) in migrations.iter().filter(|(v, _)| *v > current) {
                tracing::info!(version, "applying store migration");
                tx.execute(sql, &[]).map_err(|e| migration_error(*version, sql, e))?;
                tx.execute(
                    "INSERT INTO simian_migrations (version, applied_at_ms) VALUES ($1, $2)",
                    &[int(*version), int(Timestamp::now().as_millisecond())],
                )?;
            }
            Ok(())
        })?;
        Ok(SqlStore { backend })
    }
}

/// A failed migration, said without the migration's SQL (drivers quote the whole batch).
fn migration_error(version: i64, sql: &str, e: StoreError) -> StoreError {
    let message = match e {
        StoreError::Query { message, .. } => message,
        other => other.to_string(),
    };
    let message = message
        .replace(sql, "the migration")
        .replace(sql.trim(), "the migration");
    let first_line = message
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    StoreError::Migration {
        version,
        message: first_line,
    }
}

fn int(v: i64) -> Value {
    Value::Int(Some(v))
}
fn text(v: &str) -> Value {
    Value::Text(Some(v.to_string()))
}
fn opt_text(v: &Option<String>) -> Value {
    Value::Text(v.clone())
}
fn ms(t: Timestamp) -> Value {
    int(t.as_millisecond())
}

fn timestamp(v: i64, what: &'static str) -> Result<Timestamp, StoreError> {
    Timestamp::from_millisecond(v).map_err(|_| StoreError::Corrupt {
        what,
        value: v.to_string(),
    })
}

fn parse<T: std::str::FromStr>(v: String, what: &'static str) -> Result<T, StoreError> {
    v.parse()
        .map_err(|_| StoreError::Corrupt { what, value: v })
}

const ENTRY_COLUMNS: &str = "id, date, time_ms, app, account, region, stack, cluster, status";

fn entry(row: &Row) -> Result<ScheduleEntry, StoreError> {
    Ok(ScheduleEntry {
        id: row.int(0, "entry id")?,
        date: parse::<Date>(row.text(1, "entry date")?, "entry date")?,
        time: timestamp(row.int(2, "entry time")?, "entry time")?,
        group: Group {
            app: row.text(3, "entry app")?,
            account: row.text(4, "entry account")?,
            region: row.opt_text(5, "entry region")?,
            stack: row.opt_text(6, "entry stack")?,
            cluster: row.opt_text(7, "entry cluster")?,
        },
        status: parse::<EntryStatus>(row.text(8, "entry status")?, "entry status")?,
    })
}

const TERMINATION_COLUMNS: &str = "id, schedule_entry, recorded_at_ms, finished_at_ms, instance_id, app, account, \
     region, zone, stack, cluster, provider, dry_run, state, detail, origin, drill_id";

fn termination(row: &Row) -> Result<Termination, StoreError> {
    Ok(Termination {
        id: row.int(0, "termination id")?,
        schedule_entry: row.opt_int(1, "termination entry")?,
        recorded_at: timestamp(row.int(2, "recorded_at")?, "recorded_at")?,
        finished_at: row
            .opt_int(3, "finished_at")?
            .map(|v| timestamp(v, "finished_at"))
            .transpose()?,
        instance_id: row.text(4, "instance_id")?,
        app: row.text(5, "app")?,
        account: row.text(6, "account")?,
        region: row.text(7, "region")?,
        zone: row.text(8, "zone")?,
        stack: row.text(9, "stack")?,
        cluster: row.text(10, "cluster")?,
        provider: row.text(11, "provider")?,
        dry_run: row.bool(12, "dry_run")?,
        state: parse::<TerminationState>(row.text(13, "state")?, "state")?,
        detail: row.text(14, "detail")?,
        origin: parse::<Origin>(row.text(15, "origin")?, "origin")?,
        drill: row.opt_int(16, "termination drill")?,
    })
}

const LEASE_COLUMNS: &str = "id, termination_id, provider, instance_id, kind, deadline_ms, created_at_ms, ended_at_ms, ending, drill_id, memo, undo_at_ms";

fn lease(row: &Row) -> Result<Lease, StoreError> {
    Ok(Lease {
        id: row.int(0, "lease id")?,
        termination: row.opt_int(1, "lease termination")?,
        provider: row.text(2, "lease provider")?,
        instance_id: row.text(3, "lease instance")?,
        kind: parse::<FaultKind>(row.text(4, "lease kind")?, "lease kind")?,
        deadline: timestamp(row.int(5, "lease deadline")?, "lease deadline")?,
        created_at: timestamp(row.int(6, "lease created_at")?, "lease created_at")?,
        ended_at: row
            .opt_int(7, "lease ended_at")?
            .map(|v| timestamp(v, "lease ended_at"))
            .transpose()?,
        ending: row.opt_text(8, "lease ending")?,
        drill: row.opt_int(9, "lease drill")?,
        memo: row.opt_text(10, "lease memo")?,
        undo_at: row
            .opt_int(11, "lease undo_at")?
            .map(|v| timestamp(v, "lease undo_at"))
            .transpose()?,
    })
}

const DRILL_COLUMNS: &str = "id, kind, target, mode, dry_run, options, plan, zones, started_at_ms, deadline_ms, ended_at_ms, ending, detail, report, owner";

fn drill(row: &Row) -> Result<Drill, StoreError> {
    Ok(Drill {
        id: row.int(0, "drill id")?,
        kind: parse::<DrillKind>(row.text(1, "drill kind")?, "drill kind")?,
        target: row.text(2, "drill target")?,
        mode: parse::<DrillMode>(row.text(3, "drill mode")?, "drill mode")?,
        dry_run: row.bool(4, "drill dry_run")?,
        options: row.text(5, "drill options")?,
        plan: row.text(6, "drill plan")?,
        zones: row
            .text(7, "drill zones")?
            .split(',')
            .filter(|z| !z.is_empty())
            .map(str::to_string)
            .collect(),
        started_at: timestamp(row.int(8, "drill started_at")?, "drill started_at")?,
        deadline: timestamp(row.int(9, "drill deadline")?, "drill deadline")?,
        ended_at: row
            .opt_int(10, "drill ended_at")?
            .map(|v| timestamp(v, "drill ended_at"))
            .transpose()?,
        ending: row
            .opt_text(11, "drill ending")?
            .map(|v| parse::<DrillEnding>(v, "drill ending"))
            .transpose()?,
        detail: row.opt_text(12, "drill detail")?,
        report: row.opt_text(13, "drill report")?,
        owner: row.text(14, "drill owner")?,
    })
}

fn running_drills(tx: &mut dyn Tx) -> Result<Vec<Drill>, StoreError> {
    tx.query(
        &format!("SELECT {DRILL_COLUMNS} FROM drills WHERE ended_at_ms IS NULL ORDER BY id"),
        &[],
    )?
    .iter()
    .map(drill)
    .collect()
}

fn insert_lease(tx: &mut dyn Tx, l: &NewLease) -> Result<Lease, StoreError> {
    let rows = tx.query(
        &format!(
            "INSERT INTO leases (termination_id, provider, instance_id, kind, deadline_ms, created_at_ms, drill_id, memo) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {LEASE_COLUMNS}"
        ),
        &[
            Value::Int(l.termination),
            text(&l.provider),
            text(&l.instance_id),
            text(l.kind.as_str()),
            ms(l.deadline),
            ms(l.created_at),
            Value::Int(l.drill),
            opt_text(&l.memo),
        ],
    )?;
    rows.first().map(lease).unwrap_or(Err(StoreError::Corrupt {
        what: "lease",
        value: "none returned".into(),
    }))
}

fn insert_termination(tx: &mut dyn Tx, t: &NewTermination<'_>) -> Result<Termination, StoreError> {
    let i = t.instance;
    let rows = tx.query(
        &format!(
            "INSERT INTO terminations ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING {TERMINATION_COLUMNS}",
            &TERMINATION_COLUMNS["id, ".len()..]
        ),
        &[
            Value::Int(t.schedule_entry),
            ms(t.at),
            if t.dry_run { ms(t.at) } else { Value::Int(None) },
            text(&i.id),
            text(&i.app),
            text(&i.account),
            text(&i.region),
            text(&i.zone),
            text(&i.stack),
            text(&i.cluster),
            text(t.provider),
            Value::Bool(t.dry_run),
            text(t.state.as_str()),
            text(t.detail),
            text(t.origin.as_str()),
            Value::Int(t.drill),
        ],
    )?;
    let row = rows.first().ok_or(StoreError::Corrupt {
        what: "termination",
        value: "none returned".into(),
    })?;
    termination(row)
}

/// The fields of a termination row about to be written.
struct NewTermination<'a> {
    instance: &'a Instance,
    provider: &'a str,
    schedule_entry: Option<i64>,
    at: Timestamp,
    dry_run: bool,
    state: TerminationState,
    detail: &'a str,
    origin: Origin,
    drill: Option<i64>,
}

const REFUSAL_COLUMNS: &str = "id, at_ms, app, account, region, stack, cluster, instance_id, check_name, reason, dry_run, schedule_entry, origin";

fn refusal(row: &Row) -> Result<Refusal, StoreError> {
    Ok(Refusal {
        id: row.int(0, "refusal id")?,
        at: timestamp(row.int(1, "refusal time")?, "refusal time")?,
        app: row.text(2, "app")?,
        account: row.text(3, "account")?,
        region: row.text(4, "region")?,
        stack: row.text(5, "stack")?,
        cluster: row.text(6, "cluster")?,
        instance_id: row.opt_text(7, "instance_id")?,
        check: parse::<Check>(row.text(8, "check")?, "check")?,
        reason: row.text(9, "reason")?,
        dry_run: row.bool(10, "dry_run")?,
        schedule_entry: row.opt_int(11, "refusal entry")?,
        origin: parse::<Origin>(row.text(12, "origin")?, "origin")?,
    })
}

fn load_schedule(tx: &mut dyn Tx, date: Date) -> Result<Option<Schedule>, StoreError> {
    let day = date.to_string();
    let Some(head) = tx
        .query(
            "SELECT seed, made_at_ms FROM schedules WHERE date = $1",
            &[text(&day)],
        )?
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    let entries = tx
        .query(
            &format!(
                "SELECT {ENTRY_COLUMNS} FROM schedule_entries WHERE date = $1 ORDER BY time_ms, id"
            ),
            &[text(&day)],
        )?
        .iter()
        .map(entry)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Schedule {
        date,
        seed: head.int(0, "seed")? as u64,
        made_at: timestamp(head.int(1, "made_at")?, "made_at")?,
        entries,
    }))
}

/// True (and the entry moved to `status`) when `entry` was still pending.
fn take_entry(
    tx: &mut dyn Tx,
    entry: Option<i64>,
    status: EntryStatus,
) -> Result<bool, StoreError> {
    let Some(id) = entry else { return Ok(true) };
    let changed = tx.execute(
        "UPDATE schedule_entries SET status = $1 WHERE id = $2 AND status = 'pending'",
        &[text(status.as_str()), int(id)],
    )?;
    Ok(changed == 1)
}

fn insert_refusal(tx: &mut dyn Tx, r: &Refusal) -> Result<i64, StoreError> {
    let rows = tx.query(
        &format!(
            "INSERT INTO refusals ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
            &REFUSAL_COLUMNS["id, ".len()..]
        ),
        &[
            ms(r.at),
            text(&r.app),
            text(&r.account),
            text(&r.region),
            text(&r.stack),
            text(&r.cluster),
            opt_text(&r.instance_id),
            text(r.check.as_str()),
            text(&r.reason),
            Value::Bool(r.dry_run),
            Value::Int(r.schedule_entry),
            text(r.origin.as_str()),
        ],
    )?;
    rows.first()
        .ok_or(StoreError::Corrupt {
            what: "refusal id",
            value: "none returned".into(),
        })?
        .int(0, "refusal id")
}

/// Records `r` and moves its entry out of pending, or does nothing when the entry was handled.
fn refuse_in(tx: &mut dyn Tx, r: &Refusal) -> Result<Option<i64>, StoreError> {
    let status = if r.check == Check::Missed {
        EntryStatus::Missed
    } else {
        EntryStatus::Refused
    };
    if !take_entry(tx, r.schedule_entry, status)? {
        return Ok(None);
    }
    insert_refusal(tx, r).map(Some)
}

fn filter_sql(filter: &HistoryFilter, time_column: &str) -> (String, Vec<Value>) {
    let mut sql = String::from(" WHERE 1 = 1");
    let mut params = Vec::new();
    if let Some(since) = filter.since {
        params.push(ms(since));
        sql.push_str(&format!(" AND {time_column} >= ${}", params.len()));
    }
    if let Some(app) = &filter.app {
        params.push(text(app));
        sql.push_str(&format!(" AND app = ${}", params.len()));
    }
    if let Some(before) = filter.before_id {
        params.push(int(before));
        sql.push_str(&format!(" AND id < ${}", params.len()));
    }
    (sql, params)
}

fn newest_last<T>(mut rows: Vec<T>, reversed: bool) -> Vec<T> {
    if reversed {
        rows.reverse();
    }
    rows
}

/// Why no candidate of a claim may die: the first one drawn, and its group's latest kill.
struct Blocked<'a> {
    instance: &'a Instance,
    reason: String,
}

/// The borrowed identity of a candidate's group: (app, account, region, stack, cluster).
type GroupKey<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
);

fn group_key<'a>(claim: &Claim<'_>, i: &'a Instance) -> GroupKey<'a> {
    use simian_core::Grouping;
    (
        i.app.as_str(),
        i.account.as_str(),
        claim.regions_independent.then_some(i.region.as_str()),
        (claim.grouping == Grouping::Stack).then_some(i.stack.as_str()),
        (claim.grouping == Grouping::Cluster).then_some(i.cluster.as_str()),
    )
}

/// Draws among the candidates whose group allows a kill now: draw one; when its group had a
/// kill too recently, mark the group blocked and draw again. Allowed candidates are never
/// dropped, so the result is uniform over them. Each group is queried at most once; draws that
/// land in a blocked group are rejected, and the pool is compacted whenever blocked groups hold
/// more than half of it, so a fleet of any size costs O(candidates) besides the queries.
/// `Err` when every group is blocked, naming the first candidate drawn.
fn draw_allowed<'a>(
    tx: &mut dyn Tx,
    claim: &Claim<'a>,
    kinds: Value,
) -> Result<Result<&'a Instance, Blocked<'a>>, StoreError> {
    let mut sizes: HashMap<GroupKey<'a>, usize> = HashMap::new();
    for i in &claim.candidates {
        *sizes.entry(group_key(claim, i)).or_default() += 1;
    }
    let mut draws = Draws::new(claim.draw);
    let mut left: Vec<&'a Instance> = claim.candidates.clone();
    let mut blocked: HashSet<GroupKey<'a>> = HashSet::new();
    let mut in_blocked = 0usize;
    let mut first_blocked: Option<Blocked<'a>> = None;
    while blocked.len() < sizes.len() {
        if in_blocked * 2 > left.len() {
            left.retain(|i| !blocked.contains(&group_key(claim, i)));
            in_blocked = 0;
        }
        let picked = left[draws.index(left.len())];
        let key = group_key(claim, picked);
        if blocked.contains(&key) {
            continue;
        }
        let group = claim.group_of(picked);
        let recent = tx.query(
            "SELECT instance_id, recorded_at_ms, dry_run FROM terminations \
             WHERE app = $1 AND account = $2 AND (CAST($3 AS TEXT) IS NULL OR region = $3) \
             AND (CAST($4 AS TEXT) IS NULL OR stack = $4) AND (CAST($5 AS TEXT) IS NULL OR cluster = $5) \
             AND recorded_at_ms >= $6 AND (dry_run = false OR $7) AND state <> 'refused' \
             ORDER BY recorded_at_ms DESC LIMIT 1",
            &[text(&group.app), text(&group.account), opt_text(&group.region), opt_text(&group.stack), opt_text(&group.cluster), ms(claim.min_time_threshold), kinds.clone()],
        )?;
        let Some(row) = recent.first() else {
            return Ok(Ok(picked));
        };
        if first_blocked.is_none() {
            let last = timestamp(row.int(1, "recorded_at")?, "recorded_at")?;
            let kind = if row.bool(2, "dry_run")? {
                "a dry-run kill"
            } else {
                "a kill"
            };
            first_blocked = Some(Blocked {
                instance: picked,
                reason: format!(
                    "{kind} of {} at {last} in group {group} is more recent than min_time_between_kills allows (no kill since {})",
                    row.text(0, "instance_id")?,
                    claim.min_time_threshold
                ),
            });
        }
        in_blocked += sizes.get(&key).copied().unwrap_or(0);
        blocked.insert(key);
    }
    let mut refusal = first_blocked.ok_or(StoreError::Corrupt {
        what: "claim",
        value: "no candidate instance".into(),
    })?;
    if blocked.len() > 1 {
        refusal.reason = format!(
            "each of the {} groups with an eligible instance had a kill too recently; the first drawn: {}",
            blocked.len(),
            refusal.reason
        );
    }
    Ok(Err(refusal))
}

impl<B: Backend> Store for SqlStore<B> {
    fn save_schedule(&self, schedule: &NewSchedule) -> Result<Schedule, StoreError> {
        self.backend.transaction(true, &mut |tx| {
            if let Some(existing) = load_schedule(tx, schedule.date)? {
                return Ok(existing);
            }
            let day = schedule.date.to_string();
            tx.execute(
                "INSERT INTO schedules (date, seed, made_at_ms) VALUES ($1, $2, $3)",
                &[text(&day), int(schedule.seed as i64), ms(schedule.made_at)],
            )?;
            for kill in &schedule.kills {
                let g = &kill.group;
                tx.execute(
                    "INSERT INTO schedule_entries (date, time_ms, app, account, region, stack, cluster, status) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending')",
                    &[text(&day), ms(kill.time), text(&g.app), text(&g.account), opt_text(&g.region), opt_text(&g.stack), opt_text(&g.cluster)],
                )?;
            }
            load_schedule(tx, schedule.date)?.ok_or(StoreError::Corrupt {
                what: "schedule",
                value: "missing right after insert".into(),
            })
        })
    }

    fn schedule(&self, date: Date) -> Result<Option<Schedule>, StoreError> {
        self.backend
            .transaction(false, &mut |tx| load_schedule(tx, date))
    }

    fn due_entries(&self, until: Timestamp) -> Result<Vec<ScheduleEntry>, StoreError> {
        self.backend.transaction(false, &mut |tx| {
            tx.query(
                &format!("SELECT {ENTRY_COLUMNS} FROM schedule_entries WHERE status = 'pending' AND time_ms <= $1 ORDER BY time_ms, id"),
                &[ms(until)],
            )?
            .iter()
            .map(entry)
            .collect()
        })
    }

    fn next_pending(&self) -> Result<Option<Timestamp>, StoreError> {
        self.backend.transaction(false, &mut |tx| {
            let rows = tx.query(
                "SELECT MIN(time_ms) FROM schedule_entries WHERE status = 'pending'",
                &[],
            )?;
            match rows
                .first()
                .map(|r| r.opt_int(0, "next pending"))
                .transpose()?
                .flatten()
            {
                Some(v) => timestamp(v, "next pending").map(Some),
                None => Ok(None),
            }
        })
    }

    fn claim(&self, claim: &Claim<'_>) -> Result<ClaimResult, StoreError> {
        if claim.candidates.is_empty() {
            return Err(StoreError::Corrupt {
                what: "claim",
                value: "no candidate instance".into(),
            });
        }
        self.backend.transaction(true, &mut |tx| {
            if let Some(id) = claim.schedule_entry {
                let rows = tx.query("SELECT status FROM schedule_entries WHERE id = $1", &[int(id)])?;
                let status = match rows.first() {
                    Some(row) => parse::<EntryStatus>(row.text(0, "entry status")?, "entry status")?,
                    None => return Err(StoreError::Corrupt { what: "schedule entry", value: id.to_string() }),
                };
                if status != EntryStatus::Pending {
                    return Ok(ClaimResult::AlreadyHandled);
                }
            }
            let refusal = |i: &Instance, check: Check, reason: String| Refusal {
                id: 0,
                at: claim.at,
                app: i.app.to_string(),
                account: i.account.to_string(),
                region: i.region.to_string(),
                stack: i.stack.to_string(),
                cluster: i.cluster.to_string(),
                instance_id: Some(i.id.to_string()),
                check,
                reason,
                dry_run: claim.dry_run,
                schedule_entry: claim.schedule_entry,
                origin: claim.origin,
            };
            // A dry run counts every earlier kill; a real kill counts only real ones, so dry
            // runs never block real kills.
            let kinds = Value::Bool(claim.dry_run);

            let today = tx.query(
                "SELECT COUNT(*) FROM terminations WHERE recorded_at_ms >= $1 AND recorded_at_ms < $2 AND (dry_run = false OR $3) AND state <> 'refused'",
                &[ms(claim.day_start), ms(claim.day_end), kinds.clone()],
            )?;
            let count = today.first().map(|r| r.int(0, "count")).transpose()?.unwrap_or(0);
            if count >= i64::from(claim.max_kills_per_day) {
                let mut draws = Draws::new(claim.draw);
                let shown = claim.candidates[draws.index(claim.candidates.len())];
                let mut r = refusal(
                    shown,
                    Check::MaxKillsPerDay,
                    format!("max_kills_per_day ({}) reached: {count} kills recorded today", claim.max_kills_per_day),
                );
                r.id = refuse_in(tx, &r)?.unwrap_or(0);
                return Ok(ClaimResult::Refused(r));
            }

            let i = match draw_allowed(tx, claim, kinds.clone())? {
                Ok(i) => i,
                Err(blocked) => {
                    let mut r = refusal(blocked.instance, Check::MinTimeBetweenKills, blocked.reason);
                    r.id = refuse_in(tx, &r)?.unwrap_or(0);
                    return Ok(ClaimResult::Refused(r));
                }
            };

            if !take_entry(tx, claim.schedule_entry, EntryStatus::Fired)? {
                return Ok(ClaimResult::AlreadyHandled);
            }
            let state = if claim.dry_run { TerminationState::DryRun } else { TerminationState::Recorded };
            let detail = if claim.dry_run { "dry run: recorded, nothing was done" } else { "" };
            let recorded = insert_termination(tx, &NewTermination {
                instance: i,
                provider: &claim.provider,
                schedule_entry: claim.schedule_entry,
                at: claim.at,
                dry_run: claim.dry_run,
                state,
                detail,
                origin: claim.origin,
                drill: None,
            })?;
            Ok(ClaimResult::Recorded(recorded))
        })
    }

    fn finish(
        &self,
        id: i64,
        state: TerminationState,
        detail: &str,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.backend.transaction(false, &mut |tx| {
            tx.execute(
                "UPDATE terminations SET state = $1, detail = $2, finished_at_ms = $3 WHERE id = $4 AND state = 'recorded'",
                &[text(state.as_str()), text(detail), ms(at), int(id)],
            )?;
            Ok(())
        })
    }

    fn refuse_recorded(
        &self,
        termination: i64,
        detail: &str,
        refusal: &Refusal,
    ) -> Result<Option<i64>, StoreError> {
        self.backend.transaction(true, &mut |tx| {
            let changed = tx.execute(
                "UPDATE terminations SET state = $1, detail = $2, finished_at_ms = $3 WHERE id = $4 AND state = 'recorded'",
                &[text(TerminationState::Refused.as_str()), text(detail), ms(refusal.at), int(termination)],
            )?;
            if changed != 1 {
                return Ok(None);
            }
            if let Some(entry) = refusal.schedule_entry {
                tx.execute(
                    "UPDATE schedule_entries SET status = $1 WHERE id = $2",
                    &[text(EntryStatus::Refused.as_str()), int(entry)],
                )?;
            }
            insert_refusal(tx, refusal).map(Some)
        })
    }

    fn unfinished(&self) -> Result<Vec<Termination>, StoreError> {
        self.backend.transaction(false, &mut |tx| {
            tx.query(&format!("SELECT {TERMINATION_COLUMNS} FROM terminations WHERE state = 'recorded' ORDER BY id"), &[])?
                .iter()
                .map(termination)
                .collect()
        })
    }

    fn refuse(&self, r: &Refusal) -> Result<bool, StoreError> {
        self.backend
            .transaction(true, &mut |tx| Ok(refuse_in(tx, r)?.is_some()))
    }

    fn terminations(&self, filter: &HistoryFilter) -> Result<Vec<Termination>, StoreError> {
        let (mut sql, mut params) = filter_sql(filter, "recorded_at_ms");
        sql = format!("SELECT {TERMINATION_COLUMNS} FROM terminations{sql} ORDER BY id DESC");
        if let Some(limit) = filter.limit {
            params.push(int(limit as i64));
            sql.push_str(&format!(" LIMIT ${}", params.len()));
        }
        let rows = self.backend.transaction(false, &mut |tx| {
            tx.query(&sql, &params)?.iter().map(termination).collect()
        })?;
        Ok(newest_last(rows, true))
    }

    fn open_lease(&self, l: &NewLease) -> Result<Lease, StoreError> {
        self.backend
            .transaction(false, &mut |tx| insert_lease(tx, l))
    }

    fn end_lease(&self, id: i64, at: Timestamp, ending: &str) -> Result<bool, StoreError> {
        Ok(self.end_leases(&[(id, ending.to_string())], at)? == 1)
    }

    fn end_leases(&self, endings: &[(i64, String)], at: Timestamp) -> Result<usize, StoreError> {
        self.backend.transaction(false, &mut |tx| {
            let mut ended = 0;
            for (id, ending) in endings {
                ended += tx.execute(
                    "UPDATE leases SET ended_at_ms = $1, ending = $2 WHERE id = $3 AND ended_at_ms IS NULL",
                    &[ms(at), text(ending), int(*id)],
                )?;
            }
            Ok(ended as usize)
        })
    }

    fn record_leases(&self, leases: &[NewLease]) -> Result<Vec<Lease>, StoreError> {
        self.backend.transaction(false, &mut |tx| {
            leases.iter().map(|l| insert_lease(tx, l)).collect()
        })
    }

    fn begin_undo(&self, ids: &[i64], at: Timestamp) -> Result<(), StoreError> {
        self.backend.transaction(false, &mut |tx| {
            for id in ids {
                tx.execute(
                    "UPDATE leases SET undo_at_ms = $1 WHERE id = $2 AND ended_at_ms IS NULL AND undo_at_ms IS NULL",
                    &[ms(at), int(*id)],
                )?;
            }
            Ok(())
        })
    }

    fn begin_drill(&self, d: &NewDrill) -> Result<Result<Drill, Drill>, StoreError> {
        self.backend.transaction(true, &mut |tx| {
            let running = running_drills(tx)?;
            if let Some(other) = running.into_iter().find(|r| r.overlaps(&d.zones)) {
                return Ok(Err(other));
            }
            let rows = tx.query(
                &format!(
                    "INSERT INTO drills (kind, target, mode, dry_run, options, plan, zones, started_at_ms, deadline_ms, owner) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {DRILL_COLUMNS}"
                ),
                &[
                    text(d.kind.as_str()),
                    text(&d.target),
                    text(d.mode.as_str()),
                    Value::Bool(d.dry_run),
                    text(&d.options),
                    text(&d.plan),
                    text(&d.zones.join(",")),
                    ms(d.started_at),
                    ms(d.deadline),
                    text(&d.owner),
                ],
            )?;
            rows.first().map(drill).unwrap_or(Err(StoreError::Corrupt {
                what: "drill",
                value: "none returned".into(),
            })).map(Ok)
        })
    }

    fn drill(&self, id: i64) -> Result<Option<Drill>, StoreError> {
        self.backend.transaction(false, &mut |tx| {
            tx.query(
                &format!("SELECT {DRILL_COLUMNS} FROM drills WHERE id = $1"),
                &[int(id)],
            )?
            .first()
            .map(drill)
            .transpose()
        })
    }

    fn running_drills(&self) -> Result<Vec<Drill>, StoreError> {
        self.backend
            .transaction(false, &mut |tx| running_drills(tx))
    }

    fn drills(&self, filter: &HistoryFilter) -> Result<Vec<Drill>, StoreError> {
        let mut sql = format!("SELECT {DRILL_COLUMNS} FROM drills WHERE 1 = 1");
        let mut params = Vec::new();
        if let Some(since) = filter.since {
            params.push(ms(since));
            sql.push_str(&format!(" AND started_at_ms >= ${}", params.len()));
        }
        if let Some(before) = filter.before_id {
            params.push(int(before));
            sql.push_str(&format!(" AND id < ${}", params.len()));
        }
        sql.push_str(" ORDER BY id DESC");
        if let Some(limit) = filter.limit {
            params.push(int(limit as i64));
            sql.push_str(&format!(" LIMIT ${}", params.len()));
        }
        let rows = self.backend.transaction(false, &mut |tx| {
            tx.query(&sql, &params)?.iter().map(drill).collect()
        })?;
        Ok(newest_last(rows, true))
    }

    fn end_drill(
        &self,
        id: i64,
        at: Timestamp,
        ending: DrillEnding,
        detail: &str,
        report: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.backend.transaction(false, &mut |tx| {
            let changed = tx.execute(
                "UPDATE drills SET ended_at_ms = $1, ending = $2, detail = $3, report = $4 WHERE id = $5 AND ended_at_ms IS NULL",
                &[ms(at), text(ending.as_str()), text(detail), Value::Text(report.map(str::to_string)), int(id)],
            )?;
            Ok(changed == 1)
        })
    }

    fn record_drill_terminations(
        &self,
        d: &Drill,
        victims: &[(&str, &Instance)],
        at: Timestamp,
    ) -> Result<Vec<Termination>, StoreError> {
        self.backend.transaction(false, &mut |tx| {
            victims
                .iter()
                .map(|(provider, instance)| {
                    insert_termination(
                        tx,
                        &NewTermination {
                            instance,
                            provider,
                            schedule_entry: None,
                            at,
                            dry_run: false,
                            state: TerminationState::Recorded,
                            detail: "",
                            origin: d.kind.origin(),
                            drill: Some(d.id),
                        },
                    )
                })
                .collect()
        })
    }

    fn kill_switch(&self) -> Result<Option<KillSwitch>, StoreError> {
        self.backend.transaction(false, &mut |tx| {
            let rows = tx.query(
                "SELECT enabled, changed_by, at_ms, reason FROM kill_switch ORDER BY id DESC LIMIT 1",
                &[],
            )?;
            rows.first()
                .map(|r| {
                    Ok(KillSwitch {
                        enabled: r.bool(0, "kill switch")?,
                        changed_by: r.text(1, "kill switch changed_by")?,
                        at: timestamp(r.int(2, "kill switch at")?, "kill switch at")?,
                        reason: r.text(3, "kill switch reason")?,
                    })
                })
                .transpose()
        })
    }

    fn set_kill_switch(&self, change: &KillSwitch) -> Result<(), StoreError> {
        self.backend.transaction(true, &mut |tx| {
            tx.execute(
                "INSERT INTO kill_switch (at_ms, enabled, changed_by, reason) VALUES ($1, $2, $3, $4)",
                &[ms(change.at), Value::Bool(change.enabled), text(&change.changed_by), text(&change.reason)],
            )?;
            Ok(())
        })
    }

    fn drill_leases(&self, drill: i64) -> Result<Vec<Lease>, StoreError> {
        self.backend.transaction(false, &mut |tx| {
            tx.query(
                &format!("SELECT {LEASE_COLUMNS} FROM leases WHERE drill_id = $1 ORDER BY id"),
                &[int(drill)],
            )?
            .iter()
            .map(lease)
            .collect()
        })
    }

    fn drill_terminations(&self, drill: i64) -> Result<Vec<Termination>, StoreError> {
        self.backend.transaction(false, &mut |tx| {
            tx.query(
                &format!(
                    "SELECT {TERMINATION_COLUMNS} FROM terminations WHERE drill_id = $1 ORDER BY id"
                ),
                &[int(drill)],
            )?
            .iter()
            .map(termination)
            .collect()
        })
    }

    fn lease(&self, id: i64) -> Result<Option<Lease>, StoreError> {
        self.backend.transaction(false, &mut |tx| {
            tx.query(
                &format!("SELECT {LEASE_COLUMNS} FROM leases WHERE id = $1"),
                &[int(id)],
            )?
            .first()
            .map(lease)
            .transpose()
        })
    }

    fn open_leases(&self) -> Result<Vec<Lease>, StoreError> {
        self.backend.transaction(false, &mut |tx| {
            tx.query(
                &format!(
                    "SELECT {LEASE_COLUMNS} FROM leases WHERE ended_at_ms IS NULL ORDER BY deadline_ms, id"
                ),
                &[],
            )?
            .iter()
            .map(lease)
            .collect()
        })
    }

    fn refusals(&self, filter: &HistoryFilter) -> Result<Vec<Refusal>, StoreError> {
        let (mut sql, mut params) = filter_sql(filter, "at_ms");
        sql = format!("SELECT {REFUSAL_COLUMNS} FROM refusals{sql} ORDER BY id DESC");
        if let Some(limit) = filter.limit {
            params.push(int(limit as i64));
            sql.push_str(&format!(" LIMIT ${}", params.len()));
        }
        let rows = self.backend.transaction(false, &mut |tx| {
            tx.query(&sql, &params)?.iter().map(refusal).collect()
        })?;
        Ok(newest_last(rows, true))
    }
}
