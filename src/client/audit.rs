//! `govtrust audit list`: the audit log, oldest first.
//!
//! `--action`, `--actor` and `--target` select events (here, after reading; the limit counts the
//! selected ones). Key-use records (`kms.key.use`) read as a sentence: who used which key for
//! what, how often, in which minute; refusals show peer, code and reason.

use clap::Subcommand;
use govtrust_proto::audit::{Detail, Event, ListEventsRequest, audit_log_client::AuditLogClient};

use super::connection::Connection;
use super::text::{print_json, printable, status_error, timestamp};

/// Events fetched per call.
const PAGE: u32 = 1000;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit events (audit administrator).
    List {
        /// Only events after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Stop after this many (selected) events.
        #[arg(long, default_value_t = 10_000)]
        limit: usize,
        /// Only events whose action is this or starts with it and a dot
        /// (`kms.key.use`, `authz`, `ca.enroll.failed`).
        #[arg(long)]
        action: Option<String>,
        /// Only events by this actor (a SPIFFE id, `sha256:<fingerprint>`, `token:<digest>`).
        #[arg(long)]
        actor: Option<String>,
        /// Only events about this target (a key id, a serial, a system, a gRPC method).
        #[arg(long)]
        target: Option<String>,
        #[command(flatten)]
        connection: Connection,
    },
}

/// Which events to show.
struct Selection {
    action: Option<String>,
    actor: Option<String>,
    target: Option<String>,
}

impl Selection {
    fn selects(&self, event: &Event) -> bool {
        let action = self.action.as_deref().is_none_or(|wanted| {
            event.action == wanted
                || event
                    .action
                    .strip_prefix(wanted)
                    .is_some_and(|rest| rest.starts_with('.'))
        });
        let actor = self.actor.as_deref().is_none_or(|a| event.actor == a);
        let target = self.target.as_deref().is_none_or(|t| event.target == t);
        action && actor && target
    }
}

pub async fn run(command: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::List {
        after,
        limit,
        action,
        actor,
        target,
        connection,
    } = command;
    let selection = Selection {
        action,
        actor,
        target,
    };
    let mut client = AuditLogClient::new(connection.channel().await?);
    let mut events: Vec<Event> = Vec::new();
    let mut cursor = after;
    while events.len() < limit {
        let request = ListEventsRequest {
            after_sequence: cursor,
            page_size: PAGE,
        };
        let page = client
            .list_events(request)
            .await
            .map_err(status_error)?
            .into_inner();
        let Some(last) = page.events.last() else {
            break;
        };
        cursor = last.sequence;
        events.extend(page.events.into_iter().filter(|e| selection.selects(e)));
    }
    events.truncate(limit);
    show(&connection, &events);
    Ok(())
}

fn json(event: &Event) -> serde_json::Value {
    let details: serde_json::Map<String, serde_json::Value> = event
        .details
        .iter()
        .map(|d| (d.name.clone(), d.value.clone().into()))
        .collect();
    serde_json::json!({
        "sequence": event.sequence,
        "time": timestamp(event.time.as_ref()),
        "action": event.action,
        "actor": event.actor,
        "target": event.target,
        "details": details,
    })
}

fn show(connection: &Connection, events: &[Event]) {
    if connection.json {
        print_json(&serde_json::Value::Array(events.iter().map(json).collect()));
        return;
    }
    for event in events {
        let summary = match event.action.as_str() {
            "kms.key.use" => key_use(event),
            _ => details(event),
        };
        outln!(
            "{:>6} {} {:<24} {} -> {} {}",
            event.sequence,
            timestamp(event.time.as_ref()),
            printable(&event.action),
            printable(&event.actor),
            printable(&event.target),
            summary
        );
    }
}

/// `name=value` pairs; a value with spaces is quoted so the line still splits into pairs.
fn details(event: &Event) -> String {
    let pair = |d: &Detail| {
        let value = printable(&d.value);
        match value.contains(' ') || value.is_empty() {
            true => format!("{}={value:?}", printable(&d.name)),
            false => format!("{}={value}", printable(&d.name)),
        }
    };
    event.details.iter().map(pair).collect::<Vec<_>>().join(" ")
}

/// A ledger record as a sentence: `decrypt x6 (2 failed) in the minute from <time> [more]`.
fn key_use(event: &Event) -> String {
    let detail = |name: &str| {
        event
            .details
            .iter()
            .find(|d| d.name == name)
            .map_or_else(|| "?".to_owned(), |d| printable(&d.value))
    };
    let failed = match detail("failed").as_str() {
        "0" => String::new(),
        n => format!(" ({n} failed)"),
    };
    format!(
        "{} x{}{failed} in the minute from {} [{}]",
        detail("operation"),
        detail("count"),
        detail("minute"),
        detail("tally")
    )
}
