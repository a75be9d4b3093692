//! `config:caddy`, `caddy:ls`: read-only views of what Caddy runs.

use crate::caddy::{Admin, ServerSummary, summarize};
use crate::paths::Paths;

fn admin(paths: &Paths) -> anyhow::Result<Admin> {
    let settings = crate::settings::load(paths)?;
    Ok(Admin::from_settings(&settings, paths)?)
}

/// Prints the app's live server object as pretty JSON.
pub fn config_caddy(app: &str) -> anyhow::Result<i32> {
    let app = super::app_arg(app)?;
    let paths = Paths::from_env();
    let admin = admin(&paths)?;
    match admin.get_server(&app)? {
        Some(server) => {
            println!("{}", serde_json::to_string_pretty(&server)?);
            Ok(0)
        }
        None => anyhow::bail!(
            "app {app} has no Caddy server (apps.http.servers.{app} at {})",
            admin.endpoint()
        ),
    }
}

/// Whether `name` is one of kata's apps on this host.
fn is_kata_app(paths: &Paths, name: &str) -> bool {
    crate::names::is_app_name(name) && (paths.state(name).is_dir() || paths.repo(name).is_dir())
}

fn join(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(",")
    }
}

fn table(rows: &[ServerSummary]) -> String {
    let header = ["APP", "KATA", "HOSTS", "LISTEN", "UPSTREAMS"].map(str::to_owned);
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                if r.kata_app { "yes" } else { "-" }.to_owned(),
                join(&r.hosts),
                join(&r.listen),
                join(&r.upstreams),
            ]
        })
        .collect();
    let mut widths = header.clone().map(|h| h.len());
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&cells) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Lists every server in Caddy (kata apps marked), as a table or `--json`.
pub fn ls(json: bool) -> anyhow::Result<i32> {
    let paths = Paths::from_env();
    let admin = admin(&paths)?;
    let rows: Vec<ServerSummary> = admin
        .servers()?
        .iter()
        // a deploy key sees its own apps' servers, not other apps' or hand-made ones
        .filter(|(name, _)| {
            crate::audit::is_admin() || crate::audit::visible(name) && is_kata_app(&paths, name)
        })
        .map(|(name, server)| summarize(name, server, is_kata_app(&paths, name)))
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if rows.is_empty() {
        println!("no servers in Caddy at {}", admin.endpoint());
    } else {
        print!("{}", table(&rows));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let rows = vec![
            ServerSummary {
                name: "shop".into(),
                kata_app: true,
                hosts: vec!["shop.test".into(), "www.shop.test".into()],
                listen: vec![":80".into(), ":443".into()],
                upstreams: vec!["172.18.0.2:8000".into()],
            },
            ServerSummary {
                name: "handmade".into(),
                kata_app: false,
                hosts: vec![],
                listen: vec![":8080".into()],
                upstreams: vec![],
            },
        ];
        insta::assert_snapshot!(table(&rows), @r"
        APP       KATA  HOSTS                    LISTEN    UPSTREAMS
        shop      yes   shop.test,www.shop.test  :80,:443  172.18.0.2:8000
        handmade  -     -                        :8080     -
        ");
    }
}
