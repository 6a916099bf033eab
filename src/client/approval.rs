//! `govtrust approval ...`: dual control. Officers list, inspect, approve and reject requests;
//! commands that file a request print it with what to do next.

use clap::Subcommand;
use govtrust_proto::approval::{
    Approval, ApprovalStatus, ApproveRequest, GetApprovalRequest, ListApprovalsRequest,
    RejectRequest, approvals_client::ApprovalsClient,
};

use super::connection::Connection;
use super::text::{print_json, printable, status_error, timestamp};

#[derive(Debug, Subcommand)]
pub enum ApprovalCommand {
    /// List approval requests (administrators).
    List {
        /// Only requests in this status.
        #[arg(long, value_parser = ["pending", "approved", "rejected", "expired", "executed"])]
        status: Option<String>,
        #[command(flatten)]
        connection: Connection,
    },
    /// Show one approval request.
    Show {
        /// The request's id (ap-…).
        id: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Approve a request: never your own, and only of a kind your role may approve.
    Approve {
        id: String,
        /// How you checked it; recorded in the audit log.
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Reject a request (or withdraw your own).
    Reject {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        connection: Connection,
    },
}

pub async fn run(command: ApprovalCommand) -> anyhow::Result<()> {
    match command {
        ApprovalCommand::List { status, connection } => {
            let request = ListApprovalsRequest {
                status: status
                    .as_deref()
                    .map_or(ApprovalStatus::Unspecified, wire_status)
                    as i32,
                page_size: 1000,
                page_token: String::new(),
            };
            let mut client = ApprovalsClient::new(connection.channel().await?);
            let response = client.list_approvals(request).await.map_err(status_error)?;
            let approvals = response.into_inner().approvals;
            if connection.json {
                print_json(&serde_json::Value::Array(
                    approvals.iter().map(json).collect(),
                ));
            } else {
                approvals.iter().for_each(|a| outln!("{}", line(a)));
            }
            Ok(())
        }
        ApprovalCommand::Show { id, connection } => {
            let mut client = ApprovalsClient::new(connection.channel().await?);
            let response = client.get_approval(GetApprovalRequest { id }).await;
            show(
                &connection,
                response.map_err(status_error)?.into_inner().approval,
            )
        }
        ApprovalCommand::Approve {
            id,
            reason,
            connection,
        } => {
            let mut client = ApprovalsClient::new(connection.channel().await?);
            let response = client.approve(ApproveRequest { id, reason }).await;
            show(
                &connection,
                response.map_err(status_error)?.into_inner().approval,
            )
        }
        ApprovalCommand::Reject {
            id,
            reason,
            connection,
        } => {
            let mut client = ApprovalsClient::new(connection.channel().await?);
            let response = client.reject(RejectRequest { id, reason }).await;
            show(
                &connection,
                response.map_err(status_error)?.into_inner().approval,
            )
        }
    }
}

fn wire_status(name: &str) -> ApprovalStatus {
    match name {
        "pending" => ApprovalStatus::Pending,
        "approved" => ApprovalStatus::Approved,
        "rejected" => ApprovalStatus::Rejected,
        "expired" => ApprovalStatus::Expired,
        "executed" => ApprovalStatus::Executed,
        _ => ApprovalStatus::Unspecified,
    }
}

fn status_name(approval: &Approval) -> &'static str {
    match ApprovalStatus::try_from(approval.status) {
        Ok(ApprovalStatus::Pending) => "pending",
        Ok(ApprovalStatus::Approved) => "approved",
        Ok(ApprovalStatus::Rejected) => "rejected",
        Ok(ApprovalStatus::Expired) => "expired",
        Ok(ApprovalStatus::Executed) => "executed",
        _ => "unknown",
    }
}

fn show(connection: &Connection, approval: Option<Approval>) -> anyhow::Result<()> {
    let approval = approval.ok_or_else(|| anyhow::anyhow!("the server returned no approval"))?;
    if connection.json {
        print_json(&json(&approval));
    } else {
        outln!("{}", line(&approval));
        outln!("  {}", printable(&approval.summary));
        for decision in &approval.approvals {
            outln!(
                "  approved by {} ({}) at {}: {}",
                printable(&decision.by),
                decision.role,
                timestamp(decision.at.as_ref()),
                printable(&decision.reason)
            );
        }
    }
    Ok(())
}

fn line(approval: &Approval) -> String {
    format!(
        "{} {} {} of {} by {} ({}/{} approvals by {}), expires {}",
        approval.id,
        status_name(approval),
        approval.kind,
        printable(&approval.target),
        printable(&approval.requester),
        approval.approvals.len(),
        approval.required,
        approval.approver_roles.join(" or "),
        timestamp(approval.expires_at.as_ref())
    )
}

/// An approval as JSON, for scripts.
pub fn json(approval: &Approval) -> serde_json::Value {
    let parameters: serde_json::Map<String, serde_json::Value> = approval
        .parameters
        .iter()
        .map(|p| (p.name.clone(), p.value.clone().into()))
        .collect();
    serde_json::json!({
        "approval_id": approval.id,
        "status": status_name(approval),
        "kind": approval.kind,
        "target": approval.target,
        "parameters": parameters,
        "summary": approval.summary,
        "requester": approval.requester,
        "approver_roles": approval.approver_roles,
        "required": approval.required,
        "approved_by": approval.approvals.iter().map(|d| d.by.clone()).collect::<Vec<_>>(),
        "expires_at": timestamp(approval.expires_at.as_ref()),
    })
}

/// Prints a request a command filed instead of acting, and what to do next.
pub fn pending(connection: &Connection, approval: &Approval, again: &str) {
    if connection.json {
        print_json(&serde_json::json!({ "pending_approval": json(approval) }));
        return;
    }
    outln!("{}", line(approval));
    outln!("  {}", printable(&approval.summary));
    outln!(
        "This needs a second officer: a {} runs `govtrust approval approve {}`;",
        approval.approver_roles.join(" or "),
        approval.id
    );
    outln!(
        "then run {again} --approval {} to carry it out.",
        approval.id
    );
}
