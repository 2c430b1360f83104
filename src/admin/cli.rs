//! The `grants` and `clients` commands: what they ask of [`Admin`] and how the answer is
//! printed (a table, or `--json` for scripts).

use std::fmt::Write as _;

use serde_json::{json, Value};

use super::{Admin, ClientDeleted, ClientView};
use crate::core::tokens::{Grant, GrantFilter};
use crate::core::OAuthError;

/// One command.
#[derive(Debug, Clone)]
pub enum AdminCommand {
    /// `grants list`.
    ListGrants(GrantFilter),
    /// `grants revoke`.
    RevokeGrants(GrantFilter),
    /// `clients list`.
    ListClients,
    /// `clients delete ID`.
    DeleteClient(String),
}

/// A command's answer.
#[derive(Debug)]
pub enum Answer {
    /// Grants found.
    Grants(Vec<Grant>),
    /// Grants revoked.
    Revoked(Vec<Grant>),
    /// Registered clients.
    Clients(Vec<ClientView>),
    /// A deleted client.
    Deleted(ClientDeleted),
}

/// Runs `command`.
pub async fn run(admin: &Admin<'_>, command: AdminCommand) -> Result<Answer, OAuthError> {
    Ok(match command {
        AdminCommand::ListGrants(filter) => Answer::Grants(admin.grants(filter).await?),
        AdminCommand::RevokeGrants(filter) => Answer::Revoked(admin.revoke(filter).await?),
        AdminCommand::ListClients => Answer::Clients(admin.clients().await?),
        AdminCommand::DeleteClient(id) => Answer::Deleted(admin.delete_client(&id).await?),
    })
}

impl Answer {
    /// The answer as the admin API gives it.
    pub fn to_json(&self) -> Value {
        match self {
            Answer::Grants(g) => json!({ "grants": g }),
            Answer::Revoked(g) => json!({ "revoked": g }),
            Answer::Clients(c) => json!({ "clients": c }),
            Answer::Deleted(d) => json!(d),
        }
    }

    /// The answer for a person at a terminal.
    pub fn to_text(&self) -> String {
        match self {
            Answer::Grants(g) => grants_table(g, "no grants"),
            Answer::Revoked(g) => format!("revoked {} grant(s)\n{}", g.len(), grants_table(g, "")),
            Answer::Clients(c) => clients_table(c),
            Answer::Deleted(d) => format!(
                "{}; revoked {} grant(s); forgot {} consent(s)\n",
                if d.registered { "registration deleted" } else { "no registration with this id" },
                d.grants_revoked.len(),
                d.consents_forgotten
            ),
        }
    }
}

/// `text` with control characters (a terminal's escape sequences, tabs, line breaks) shown as
/// `?`: names and URIs come from whoever registered the client.
fn plain(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

fn time(unix: i64) -> String {
    jiff::Timestamp::from_second(unix).map(|t| t.to_string()).unwrap_or_else(|_| unix.to_string())
}

fn grants_table(grants: &[Grant], empty: &str) -> String {
    if grants.is_empty() {
        return if empty.is_empty() { String::new() } else { format!("{empty}\n") };
    }
    let mut out = String::from("GRANT\tUSER\tEMAIL\tCLIENT\tSERVICE\tSCOPE\tCREATED\tLAST USED\n");
    for g in grants {
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            g.grant_id,
            plain(&g.user_id),
            plain(g.email.as_deref().unwrap_or("-")),
            plain(&g.client_id),
            g.service_id,
            if g.scope.is_empty() { "-".to_owned() } else { plain(&g.scope) },
            time(g.created_at),
            time(g.last_used_at),
        );
    }
    out
}

fn clients_table(clients: &[ClientView]) -> String {
    if clients.is_empty() {
        return "no registered clients\n".to_owned();
    }
    let mut out = String::from("CLIENT\tNAME\tAUTH\tREDIRECT URIS\tCREATED\tLAST USED\n");
    for c in clients {
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}",
            plain(&c.client_id),
            plain(c.client_name.as_deref().unwrap_or("-")),
            c.token_endpoint_auth_method,
            plain(&c.redirect_uris.join(" ")),
            time(c.created_at),
            time(c.last_used_at),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_cannot_write_escape_sequences_to_the_terminal() {
        let client = ClientView {
            client_id: "c1".into(),
            client_name: Some("evil\u{1b}[2J\u{1b}]0;pwned\u{7}\nGRANT".into()),
            redirect_uris: vec!["http://127.0.0.1/cb\r\n".into()],
            token_endpoint_auth_method: "none".into(),
            created_at: 0,
            last_used_at: 0,
        };
        let text = Answer::Clients(vec![client]).to_text();
        assert!(!text.chars().any(|c| c.is_control() && c != '\t' && c != '\n'), "{text:?}");
        assert_eq!(text.lines().count(), 2, "one header, one row: {text:?}");
        assert!(text.contains("evil?[2J?]0;pwned??GRANT"));
    }
}
