//! `govtrust audit list`: the audit log, oldest first.

use clap::Subcommand;
use govtrust_proto::audit::{Event, ListEventsRequest, audit_log_client::AuditLogClient};

use super::{Connection, print_json, printable, status_error, timestamp};

/// Events fetched per call.
const PAGE: u32 = 1000;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit events (audit administrator).
    List {
        /// Only events after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Stop after this many events.
        #[arg(long, default_value_t = 10_000)]
        limit: usize,
        #[command(flatten)]
        connection: Connection,
    },
}

pub async fn run(command: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::List {
        after,
        limit,
        connection,
    } = command;
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
        events.extend(page.events);
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
        let details: Vec<String> = event
            .details
            .iter()
            .map(|d| format!("{}={}", printable(&d.name), printable(&d.value)))
            .collect();
        println!(
            "{:>6} {} {:<24} {} -> {} {}",
            event.sequence,
            timestamp(event.time.as_ref()),
            printable(&event.action),
            printable(&event.actor),
            printable(&event.target),
            details.join(" ")
        );
    }
}
