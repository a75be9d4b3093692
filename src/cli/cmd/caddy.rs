//! `config:caddy`, `caddy:ls`: read-only views of what Caddy runs;
//! `caddy:sync`: every app's part written again from its release records.

use crate::caddy::{Admin, ServerSummary, summarize_entry};
use crate::paths::Paths;
use crate::ui;

fn admin(paths: &Paths) -> anyhow::Result<Admin> {
    let settings = crate::settings::load(paths)?;
    Ok(Admin::from_settings(&settings, paths)?)
}

/// Prints the app's part as pretty JSON: the shared server's `listen` and
/// settings with the app's own routes (a server object, as it deployed it).
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
            "app {app} has no Caddy server: no route @id {} in Caddy at {}",
            crate::caddy::shared::part_id(&app),
            admin.endpoint()
        ),
    }
}

fn join(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(",")
    }
}

fn table(rows: &[ServerSummary]) -> String {
    let header = ["APP", "KATA", "SERVER", "HOSTS", "LISTEN", "UPSTREAMS"].map(str::to_owned);
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                if r.kata_app { "yes" } else { "-" }.to_owned(),
                r.server.clone(),
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

/// Lists every app's part and every other server in Caddy (kata apps
/// marked), or one app's part, as a table or `--json`.
pub fn ls(app: Option<&str>, json: bool) -> anyhow::Result<i32> {
    let paths = Paths::from_env();
    let admin = admin(&paths)?;
    let app = app.map(super::app_arg).transpose()?;
    let rows = match &app {
        Some(app) => match one_part(&paths, &admin, app)? {
            Some(row) => vec![row],
            None => every_entry(&admin)?
                .into_iter()
                .filter(|r| &r.name == app)
                .collect(),
        },
        None => every_entry(&admin)?,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if let Some(app) = app.filter(|_| rows.is_empty()) {
        anyhow::bail!(
            "app {app} has no part in Caddy at {}: no route @id {}",
            admin.endpoint(),
            crate::caddy::shared::part_id(&app)
        );
    } else if rows.is_empty() {
        println!("no servers in Caddy at {}", admin.endpoint());
    } else {
        print!("{}", table(&rows));
    }
    Ok(0)
}

/// Who may see an entry: a deploy key sees its own apps' parts, not other
/// apps' or hand-made ones (even one whose name matches its patterns).
fn visible(admin: &Admin, e: &crate::caddy::shared::Entry) -> bool {
    crate::audit::is_admin() || e.part && crate::audit::visible(e.name) && admin.is_kata_app(e.name)
}

fn every_entry(admin: &Admin) -> anyhow::Result<Vec<ServerSummary>> {
    // only `apps.http.servers`: what is listed, nothing else of the config
    let servers = admin.servers()?;
    Ok(
        crate::caddy::shared::entries(&servers, &|n| admin.is_kata_app(n))
            .iter()
            .filter(|e| visible(admin, e))
            .map(summarize_entry)
            .collect(),
    )
}

/// One app's part read on its own: the part by its `@id`, and the `listen`
/// and `errors` of the shared server its live release names, so the reads
/// do not grow with the apps beside it. `None` when Caddy's layout is not
/// the recorded one (an old per-app server, a part elsewhere): the caller
/// then reads everything.
fn one_part(paths: &Paths, admin: &Admin, app: &str) -> anyhow::Result<Option<ServerSummary>> {
    use crate::caddy::shared;
    use serde_json::{Map, Value, json};
    let Some(live) = crate::apps::live(paths, app)? else {
        return Ok(None);
    };
    let Ok(text) = std::fs::read(live.dir.join("caddy.json")) else {
        return Ok(None);
    };
    let Ok(record) = serde_json::from_slice::<Value>(&text) else {
        return Ok(None);
    };
    let server = shared::server_name(&shared::listen_of(&record));
    let (Some(part), Some(listen)) = (admin.part(app)?, admin.server_field(&server, "listen")?)
    else {
        return Ok(None);
    };
    let mut view = json!({ "listen": listen, "routes": [part] });
    if let Some(errors) = admin.server_field(&server, "errors")? {
        view["errors"] = errors;
    }
    let one = Map::from_iter([(server, view)]);
    let is_kata = |n: &str| admin.is_kata_app(n);
    let entries = shared::entries(&one, &is_kata);
    Ok(entries
        .iter()
        .find(|e| e.part && e.name == app && visible(admin, e))
        .map(summarize_entry))
}

/// Writes every app's part again from its live release's record
/// (`caddy.json` in kata's state, never the checkout), with upstreams
/// resolved to its containers now. For a Caddy that lost its config (started
/// without `--resume`), and to move parts written by an older kata. Writes
/// nothing for parts Caddy already runs exactly; prints what it changed.
pub fn sync() -> anyhow::Result<i32> {
    let paths = Paths::from_env();
    let settings = crate::settings::load(&paths)?;
    let mut failed = vec![];
    let (mut changed, mut same) = (0, 0);
    // after a Caddy upgrade: find out again what this Caddy accepts
    let _ = std::fs::remove_file(paths.caddy_without_stream_close_delay());
    if let Ok(admin) = Admin::from_settings(&settings, &paths) {
        crate::rollout::remove_orphans_in_caddy(&admin);
    }
    for app in crate::apps::names(&paths) {
        let Some(live) = crate::apps::live(&paths, &app)? else {
            continue;
        };
        let record = crate::release::dir(&paths, &app, live.release.number).join("caddy.json");
        let Ok(text) = std::fs::read(&record) else {
            continue; // the release routes nothing
        };
        let _lock = crate::deploy::lock_app(&paths, &app)?;
        let done = serde_json::from_slice(&text)
            .map_err(|e| format!("{} is damaged: {e}", record.display()))
            .and_then(|server| {
                let addrs = crate::rollout::container_addresses(&paths, &app, live.mode)
                    .map_err(|e| e.to_string())?;
                crate::rollout::put_server(&paths, &settings, &app, &server, &addrs)
                    .map_err(|e| e.to_string())
            });
        match done {
            Ok(plan) if plan.is_noop() => {
                same += 1;
                ui::info(format!("{app}: unchanged on {}", plan.server));
            }
            Ok(plan) => {
                changed += 1;
                let calls: Vec<String> = plan
                    .calls
                    .iter()
                    .map(|c| format!("{} {}", c.method, c.path))
                    .collect();
                ui::info(format!(
                    "{app}: written on {} ({})",
                    plan.server,
                    calls.join(", ")
                ));
            }
            Err(e) => {
                ui::warn(format!("{app}: {e}"));
                failed.push(app);
            }
        }
    }
    println!(
        "caddy:sync: {changed} written, {same} unchanged{}",
        if failed.is_empty() {
            String::new()
        } else {
            format!(", {} failed: {}", failed.len(), failed.join(", "))
        }
    );
    Ok(if failed.is_empty() { 0 } else { 1 })
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
                server: "kata.443-80".into(),
                hosts: vec!["shop.test".into(), "www.shop.test".into()],
                listen: vec![":80".into(), ":443".into()],
                upstreams: vec!["172.18.0.2:8000".into()],
            },
            ServerSummary {
                name: "handmade".into(),
                kata_app: false,
                server: "handmade".into(),
                hosts: vec![],
                listen: vec![":8080".into()],
                upstreams: vec![],
            },
        ];
        insta::assert_snapshot!(table(&rows), @r"
        APP       KATA  SERVER       HOSTS                    LISTEN    UPSTREAMS
        shop      yes   kata.443-80  shop.test,www.shop.test  :80,:443  172.18.0.2:8000
        handmade  -     handmade     -                        :8080     -
        ");
    }
}
