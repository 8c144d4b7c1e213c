//! The commands: each builds its request from the options, sends it, and prints the answer as
//! a table or as the API's JSON.

use std::ffi::OsString;
use std::io::Write;

use serde_json::{json, Map, Value};

use crate::cli::{self, Cli, Command, Listing};
use crate::client::{Client, Timeouts};
use crate::table::{cell, fields, Table};
use crate::{config, exit, note, Failure};

/// What every command works with.
pub(crate) struct Ctx<'a> {
    pub(crate) client: Client,
    pub(crate) json: bool,
    pub(crate) out: &'a mut dyn Write,
}

/// The columns aligned right: numbers.
pub(crate) const RIGHT: &[&str] = &[
    "ID",
    "JOB",
    "COMPUTER",
    "PACKAGE",
    "FAMILY",
    "SEQUENCE",
    "PRIORITY",
    "COMPUTER GROUP",
    "PACKAGE GROUP",
    "RC",
    "ATTEMPT",
    "PAYLOAD",
];

/// A column of a table: its header and how a cell is taken from an item.
type Column = (&'static str, fn(&Value) -> String);

/// Runs the command of `cli`; its exit status.
pub(crate) fn run(
    cli: &Cli,
    env: &dyn Fn(&str) -> Option<OsString>,
    out: &mut dyn Write,
) -> Result<u8, Failure> {
    let global = &cli.global;
    let flags = config::Layer {
        server: global.server.clone(),
        token: global.token.clone(),
        token_file: global.token_file.clone(),
    };
    let settings = config::load(&flags, global.config.as_deref(), env)?;
    let timeouts = Timeouts {
        connect: global.connect_timeout,
        read: global.read_timeout,
    };
    let mut ctx = Ctx {
        client: Client::new(&settings.server, &settings.token, timeouts)?,
        json: global.json,
        out,
    };
    let ctx = &mut ctx;
    match &cli.command {
        Command::Computers(command) => computers(ctx, command),
        Command::Families(command) => families(ctx, command),
        Command::Packages(command) => packages(ctx, command),
        Command::Containers(command) => containers(ctx, command),
        Command::Rules(command) => rules(ctx, command),
        Command::Jobs(command) => jobs(ctx, command),
        Command::Tokens(command) => tokens(ctx, command),
    }
}

fn computers(ctx: &mut Ctx<'_>, command: &cli::Computers) -> Result<u8, Failure> {
    const COLUMNS: &[Column] = &[
        ("ID", |v| at(v, "/id")),
        ("HOSTNAME", |v| at(v, "/hostname")),
        ("OS", |v| at(v, "/os")),
        ("OS VERSION", |v| at(v, "/os_version")),
        ("ARCH", |v| at(v, "/architecture")),
        ("LAST HELLO", |v| at(v, "/agent/at")),
        ("ADDRESS", |v| at(v, "/agent/address")),
        ("AGENT", |v| at(v, "/agent/agent_version")),
    ];
    match command {
        cli::Computers::List(listing) => {
            list(ctx, "/computers", &[], listing, COLUMNS, "computers")
        }
        cli::Computers::Show { id } => show(ctx, &format!("/computers/{id}")),
    }
}

fn families(ctx: &mut Ctx<'_>, command: &cli::Families) -> Result<u8, Failure> {
    const COLUMNS: &[Column] = &[("ID", |v| at(v, "/id")), ("NAME", |v| at(v, "/name"))];
    match command {
        cli::Families::List(listing) => list(
            ctx,
            "/package-families",
            &[],
            listing,
            COLUMNS,
            "package families",
        ),
        cli::Families::Create { name } => {
            let created = ctx
                .client
                .post("/package-families", &json!({ "name": name }))?;
            answer(ctx, &created, |created| {
                format!(
                    "created package family {}: {}",
                    at(created, "/id"),
                    at(created, "/name")
                )
            })
        }
    }
}

fn packages(ctx: &mut Ctx<'_>, command: &cli::Packages) -> Result<u8, Failure> {
    const COLUMNS: &[Column] = &[
        ("ID", |v| at(v, "/id")),
        ("FAMILY", |v| at(v, "/family")),
        ("VERSION", |v| at(v, "/version")),
        ("PAYLOAD", payload_size),
        ("UPGRADE", |v| at(v, "/upgrade_behavior")),
        ("INSTALL", |v| at(v, "/install/command")),
    ];
    match command {
        cli::Packages::List(listing) => list(ctx, "/packages", &[], listing, COLUMNS, "packages"),
        cli::Packages::Show { id } => show(ctx, &format!("/packages/{id}")),
        cli::Packages::Create(new) => create_package(ctx, new),
        cli::Packages::Upload { id, file } => {
            let package = crate::upload::upload(&ctx.client, *id, file)?;
            answer(ctx, &package, |package| uploaded(file, *id, package))
        }
    }
}

fn create_package(ctx: &mut Ctx<'_>, new: &cli::NewPackage) -> Result<u8, Failure> {
    let mut body = Map::new();
    body.insert("family".into(), json!(new.family));
    body.insert("version".into(), json!(new.version));
    let procedure = |command: &Option<String>, codes: &Option<String>, action: &Option<String>| {
        let mut procedure = Map::new();
        put(&mut procedure, "command", command);
        put(&mut procedure, "success_codes", codes);
        put(&mut procedure, "post_action", action);
        procedure
    };
    let install = procedure(&new.install, &new.install_codes, &new.install_post_action);
    if !install.is_empty() {
        body.insert("install".into(), Value::Object(install));
    }
    let uninstall = procedure(
        &new.uninstall,
        &new.uninstall_codes,
        &new.uninstall_post_action,
    );
    if !uninstall.is_empty() {
        body.insert("uninstall".into(), Value::Object(uninstall));
    }
    if new.download_for_uninstall {
        body.insert("download_for_uninstall".into(), json!(true));
    }
    put(&mut body, "upgrade_behavior", &new.upgrade_behavior);
    if !(new.os.is_empty() && new.os_version.is_empty() && new.architecture.is_empty()) {
        body.insert(
            "compatibility".into(),
            json!({"os": new.os, "os_version": new.os_version, "architecture": new.architecture}),
        );
    }
    if !new.dependencies.is_empty() {
        body.insert("dependencies".into(), json!(new.dependencies));
    }
    let created = ctx.client.post("/packages", &Value::Object(body))?;
    let id = created
        .get("id")
        .and_then(Value::as_i64)
        .ok_or_else(|| unexpected("package id", &created))?;
    let package = match &new.payload {
        None => created,
        Some(file) => {
            if !ctx.json {
                writeln!(
                    ctx.out,
                    "created package {id}: family {} version {}",
                    at(&created, "/family"),
                    at(&created, "/version")
                )?;
            }
            let package = crate::upload::upload(&ctx.client, id, file).map_err(|failure| {
                Failure::PayloadNotUploaded {
                    package: id,
                    source: Box::new(failure),
                }
            })?;
            return answer(ctx, &package, |package| uploaded(file, id, package));
        }
    };
    answer(ctx, &package, |package| {
        format!(
            "created package {id}: family {} version {}",
            at(package, "/family"),
            at(package, "/version")
        )
    })
}

/// What `upload` says of `file` uploaded to package `id`, answered as `package`.
fn uploaded(file: &std::path::Path, id: i64, package: &Value) -> String {
    format!(
        "uploaded {} to package {id}: {} bytes, sha256 {}",
        file.display(),
        at(package, "/payload/size"),
        at(package, "/payload/sha256"),
    )
}

fn containers(ctx: &mut Ctx<'_>, command: &cli::Containers) -> Result<u8, Failure> {
    const COLUMNS: &[Column] = &[
        ("ID", |v| at(v, "/id")),
        ("NAME", |v| at(v, "/name")),
        ("ENABLED", |v| at(v, "/enabled")),
        ("START", |v| at(v, "/schedule/start")),
        ("END", |v| at(v, "/schedule/end")),
        ("PRIORITY", |v| at(v, "/policy/priority")),
        ("CREATED", |v| at(v, "/created_at")),
    ];
    match command {
        cli::Containers::List(listing) => {
            list(ctx, "/containers", &[], listing, COLUMNS, "containers")
        }
        cli::Containers::Show { id } => show(ctx, &format!("/containers/{id}")),
        cli::Containers::Deploy(deploy) => self::deploy(ctx, deploy),
        cli::Containers::Watch(watch) => crate::watch::watch(ctx, watch.id, watch.interval),
        cli::Containers::Renew { id, jobs, into } => {
            let mut body = Map::new();
            if !jobs.is_empty() {
                body.insert("jobs".into(), json!(jobs));
            }
            put(&mut body, "into", into);
            let renewed = ctx
                .client
                .post(&format!("/containers/{id}/renew"), &Value::Object(body))?;
            print_renewed(ctx, &renewed)
        }
    }
}

fn deploy(ctx: &mut Ctx<'_>, deploy: &cli::Deploy) -> Result<u8, Failure> {
    let mut container = Map::new();
    container.insert("name".into(), json!(deploy.name));
    put(&mut container, "notes", &deploy.notes);
    if deploy.disabled {
        container.insert("enabled".into(), json!(false));
    }
    put(&mut container, "start", &deploy.start);
    put(&mut container, "end", &deploy.end);
    let mut policy = Map::new();
    if let Some(priority) = deploy.priority {
        policy.insert("priority".into(), json!(priority));
    }
    put(&mut policy, "sequence_mode", &deploy.sequence_mode);
    put(&mut policy, "ip_ranges", &deploy.ip_ranges);
    put(&mut policy, "time_frames", &deploy.time_frames);
    put(&mut policy, "time_zone", &deploy.time_zone);
    if let Some(timeout) = deploy.post_action_timeout {
        let value = match timeout {
            cli::PostActionTimeout::Minutes(minutes) => json!(minutes),
            cli::PostActionTimeout::Disabled => Value::Null,
        };
        policy.insert("post_action_timeout".into(), value);
    }
    if !policy.is_empty() {
        container.insert("policy".into(), Value::Object(policy));
    }
    if deploy.wake || deploy.shutdown_after {
        container.insert(
            "wol".into(),
            json!({"wake": deploy.wake, "shutdown_after": deploy.shutdown_after}),
        );
    }
    if deploy.self_service {
        container.insert("self_service".into(), json!(true));
    }
    let mut body = Map::new();
    body.insert("container".into(), Value::Object(container));
    for (key, ids) in [
        ("computers", &deploy.computers),
        ("computer_groups", &deploy.computer_groups),
        ("packages", &deploy.packages),
        ("package_groups", &deploy.package_groups),
    ] {
        if !ids.is_empty() {
            body.insert(key.into(), json!(ids));
        }
    }
    if deploy.force_reinstall {
        body.insert("force_reinstall".into(), json!(true));
    }
    let created = ctx
        .client
        .post("/containers/deploy", &Value::Object(body))?;
    print_warnings(&created);
    let id = created
        .pointer("/container/id")
        .and_then(Value::as_i64)
        .ok_or_else(|| unexpected("container id", &created))?;
    if ctx.json && !deploy.watch {
        return print_json(ctx, &created);
    }
    if !ctx.json {
        let jobs = created
            .get("jobs")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        writeln!(
            ctx.out,
            "created container {id} \"{}\" with {} job{}",
            at(&created, "/container/name"),
            jobs.len(),
            if jobs.len() == 1 { "" } else { "s" }
        )?;
        if !jobs.is_empty() && jobs.len() <= SHOWN_JOBS {
            let mut table =
                Table::new(["JOB", "COMPUTER", "PACKAGE", "SEQUENCE"]).align_right(RIGHT);
            for job in jobs {
                table.row([
                    at(job, "/id"),
                    at(job, "/computer"),
                    at(job, "/package"),
                    at(job, "/sequence"),
                ]);
            }
            write!(ctx.out, "{}", table.render())?;
        }
    }
    if deploy.watch {
        ctx.out.flush()?;
        return crate::watch::watch(ctx, id, deploy.interval);
    }
    Ok(exit::SUCCESS)
}

/// The most jobs a deploy lists; a larger one says how to list them.
const SHOWN_JOBS: usize = 100;

fn rules(ctx: &mut Ctx<'_>, command: &cli::Rules) -> Result<u8, Failure> {
    const COLUMNS: &[Column] = &[
        ("ID", |v| at(v, "/id")),
        ("NAME", |v| at(v, "/name")),
        ("ENABLED", |v| at(v, "/enabled")),
        ("COMPUTER GROUP", |v| at(v, "/computer_group")),
        ("PACKAGE GROUP", |v| at(v, "/package_group")),
        ("PRIORITY", |v| at(v, "/policy/priority")),
        ("CREATED", |v| at(v, "/created_at")),
    ];
    match command {
        cli::Rules::List(listing) => list(ctx, "/rules", &[], listing, COLUMNS, "rules"),
        cli::Rules::Show { id } => show(ctx, &format!("/rules/{id}")),
        cli::Rules::Renew { id, jobs } => {
            let body = if jobs.is_empty() {
                json!({})
            } else {
                json!({ "jobs": jobs })
            };
            let renewed = ctx.client.post(&format!("/rules/{id}/renew"), &body)?;
            print_renewed(ctx, &renewed)
        }
    }
}

/// The columns of a job listing.
pub(crate) const JOB_COLUMNS: &[Column] = &[
    ("ID", |v| at(v, "/id")),
    ("ORIGIN", |v| at(v, "/origin")),
    ("COMPUTER", |v| at(v, "/computer")),
    ("PACKAGE", |v| at(v, "/package")),
    ("KIND", |v| at(v, "/kind")),
    ("STATE", |v| at(v, "/state")),
    ("RC", |v| at(v, "/return_code")),
    ("ATTEMPT", |v| at(v, "/attempt")),
    ("FINISHED", |v| at(v, "/finished")),
];

fn jobs(ctx: &mut Ctx<'_>, command: &cli::Jobs) -> Result<u8, Failure> {
    match command {
        cli::Jobs::List(filter) => {
            let mut query: Vec<(&str, String)> = Vec::new();
            let origin = match (filter.container, filter.rule, &filter.origin) {
                (Some(container), _, _) => Some(format!("container:{container}")),
                (None, Some(rule), _) => Some(format!("rule:{rule}")),
                (None, None, origin) => origin.clone(),
            };
            if let Some(origin) = origin {
                query.push(("origin", origin));
            }
            if let Some(computer) = filter.computer {
                query.push(("computer", computer.to_string()));
            }
            if let Some(package) = filter.package {
                query.push(("package", package.to_string()));
            }
            if let Some(state) = &filter.state {
                query.push(("state", state.clone()));
            }
            // A table shows no output: none is asked for, unless the option says otherwise.
            match (filter.output_chars, ctx.json) {
                (Some(chars), _) => query.push(("output_chars", chars.to_string())),
                (None, false) => query.push(("output_chars", "0".into())),
                (None, true) => {}
            }
            list(ctx, "/jobs", &query, &filter.listing, JOB_COLUMNS, "jobs")
        }
        cli::Jobs::Show { id } => show(ctx, &format!("/jobs/{id}")),
        cli::Jobs::Explain { id, address } => {
            let query: Vec<(&str, String)> = address
                .iter()
                .map(|address| ("address", address.clone()))
                .collect();
            let explained = ctx.client.get(&format!("/jobs/{id}/explain"), &query)?;
            if ctx.json {
                return print_json(ctx, &explained);
            }
            write!(ctx.out, "{}", explain_text(&explained))?;
            Ok(exit::SUCCESS)
        }
    }
}

fn tokens(ctx: &mut Ctx<'_>, command: &cli::Tokens) -> Result<u8, Failure> {
    const COLUMNS: &[Column] = &[
        ("ID", |v| at(v, "/id")),
        ("NAME", |v| at(v, "/name")),
        ("ACCESS", |v| at(v, "/access")),
        ("CREATED", |v| at(v, "/created")),
    ];
    match command {
        cli::Tokens::List(listing) => list(ctx, "/tokens", &[], listing, COLUMNS, "tokens"),
        cli::Tokens::Show { id } => show(ctx, &format!("/tokens/{id}")),
        cli::Tokens::Create { name, read_only } => {
            let access = if *read_only { "read-only" } else { "full" };
            let created = ctx
                .client
                .post("/tokens", &json!({"name": name, "access": access}))?;
            if ctx.json {
                return print_json(ctx, &created);
            }
            let secret = created
                .get("token")
                .and_then(Value::as_str)
                .ok_or_else(|| unexpected("token", &created))?;
            // The secret alone on stdout, so that `TOKEN=$(oco tokens create x)` takes it.
            writeln!(ctx.out, "{secret}")?;
            note(&format!(
                "created token {} \"{}\" ({}); its secret above is shown only now",
                at(&created, "/id"),
                at(&created, "/name"),
                at(&created, "/access"),
            ));
            Ok(exit::SUCCESS)
        }
        cli::Tokens::Revoke { id } => {
            let revoked = ctx.client.delete(&format!("/tokens/{id}"))?;
            answer(ctx, &revoked, |_| format!("revoked token {id}"))
        }
    }
}

/// Lists `path` with `query`, at most `listing.limit` items: one JSON array of every page's
/// items with `--json` (written as the pages arrive), else a table. A note on stderr says when
/// more items follow, with the `--after` that reads them.
fn list(
    ctx: &mut Ctx<'_>,
    path: &str,
    query: &[(&str, String)],
    listing: &Listing,
    columns: &[Column],
    what: &str,
) -> Result<u8, Failure> {
    let cap = usize::try_from(listing.limit).unwrap_or(usize::MAX);
    let end = if ctx.json {
        let out = &mut *ctx.out;
        // `[` once the first page has come: a listing refused at once prints nothing.
        let (mut opened, mut first) = (false, true);
        let end = ctx
            .client
            .list(path, query, listing.after, cap, &mut |items| {
                if !opened {
                    write!(out, "[")?;
                    opened = true;
                }
                for item in items {
                    write!(
                        out,
                        "{}\n{}",
                        if first { "" } else { "," },
                        self::item(&item)
                    )?;
                    first = false;
                }
                Ok(())
            })?;
        if !opened {
            write!(out, "[")?;
        }
        writeln!(out, "{}]", if first { "" } else { "\n" })?;
        end
    } else {
        let mut table = Table::new(columns.iter().map(|(header, _)| *header)).align_right(RIGHT);
        let end = ctx
            .client
            .list(path, query, listing.after, cap, &mut |items| {
                for item in &items {
                    table.row(columns.iter().map(|(_, take)| take(item)));
                }
                Ok(())
            })?;
        if table.is_empty() {
            note(&format!("no {what}"));
        } else {
            write!(ctx.out, "{}", table.render())?;
        }
        end
    };
    if let Some(after) = end.more_after {
        note(&format!(
            "showing {} {what}; more follow: --after {after}, or a larger --limit",
            end.count
        ));
    }
    Ok(exit::SUCCESS)
}

/// Shows the resource at `path`: its fields, or its JSON.
fn show(ctx: &mut Ctx<'_>, path: &str) -> Result<u8, Failure> {
    let value = ctx.client.get(path, &[])?;
    if ctx.json {
        return print_json(ctx, &value);
    }
    write!(ctx.out, "{}", fields(&value))?;
    Ok(exit::SUCCESS)
}

/// Prints `value` as indented JSON.
/// `value` as JSON with `--json`, else the one line `line` makes of it.
fn answer(
    ctx: &mut Ctx<'_>,
    value: &Value,
    line: impl FnOnce(&Value) -> String,
) -> Result<u8, Failure> {
    if ctx.json {
        return print_json(ctx, value);
    }
    writeln!(ctx.out, "{}", line(value))?;
    Ok(exit::SUCCESS)
}

pub(crate) fn print_json(ctx: &mut Ctx<'_>, value: &Value) -> Result<u8, Failure> {
    writeln!(ctx.out, "{}", indent(value))?;
    Ok(exit::SUCCESS)
}

/// `value` as indented JSON.
fn indent(value: &Value) -> String {
    // A `Value` always serializes (its keys are strings); the compact form would do as well.
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// `value` as indented JSON, every line indented two more spaces: an item of a list.
fn item(value: &Value) -> String {
    indent(value)
        .lines()
        .map(|line| format!("  {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A successful answer that lacks `what`.
fn unexpected(what: &'static str, answer: &Value) -> Failure {
    Failure::Unexpected {
        what,
        answer: answer.to_string(),
    }
}

/// What a renewal did, from the API's `renewed`, `incompatible`, `skipped` and `container`.
fn print_renewed(ctx: &mut Ctx<'_>, renewed: &Value) -> Result<u8, Failure> {
    if ctx.json {
        return print_json(ctx, renewed);
    }
    let ids = |key: &str| -> Vec<String> {
        renewed
            .get(key)
            .and_then(Value::as_array)
            .map(|ids| ids.iter().map(cell).collect())
            .unwrap_or_default()
    };
    let (done, incompatible, skipped) = (ids("renewed"), ids("incompatible"), ids("skipped"));
    let listed = |ids: &[String]| {
        if ids.is_empty() {
            String::new()
        } else {
            format!(": {}", ids.join(", "))
        }
    };
    match renewed.get("container").and_then(Value::as_i64) {
        Some(container) => writeln!(
            ctx.out,
            "renewed {} job{} into the new container {container}{}",
            done.len(),
            plural(done.len()),
            listed(&done)
        )?,
        None => writeln!(
            ctx.out,
            "renewed {} job{}{}",
            done.len(),
            plural(done.len()),
            listed(&done)
        )?,
    }
    if !incompatible.is_empty() {
        writeln!(
            ctx.out,
            "left {} incompatible (the package no longer fits the computer){}",
            incompatible.len(),
            listed(&incompatible)
        )?;
    }
    if !skipped.is_empty() {
        writeln!(
            ctx.out,
            "skipped {} (not failed, or its package or computer is gone){}",
            skipped.len(),
            listed(&skipped)
        )?;
    }
    Ok(exit::SUCCESS)
}

/// The lint's warnings of a created container or rule, on stderr.
fn print_warnings(answer: &Value) {
    for warning in answer
        .get("warnings")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        note(&format!("warning: {}", at(warning, "/field")));
        let rendered = at(warning, "/rendered");
        for line in rendered.lines() {
            note(&format!("  {line}"));
        }
    }
}

/// An explanation in words: the verdict, the address it was decided for, the findings.
pub(crate) fn explain_text(explained: &Value) -> String {
    let job = at(explained, "/job");
    let status = explained
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut text = match status {
        "deliverable" => format!("job {job} is deliverable: the agent gets it at its next poll\n"),
        "held" => format!(
            "job {job} is held: {}\n",
            hold_reason(explained.get("reason").unwrap_or(&Value::Null))
        ),
        "depends-on-address" => format!(
            "job {job} is held or not depending on the agent's address (the IP ranges decide), \
             and its computer has not said hello yet; give one with --address\n"
        ),
        "not-pending" => format!(
            "job {job} is not pending ({}): nothing is handed out\n",
            at(explained, "/state")
        ),
        _ => format!("job {job}: {}\n", cell(explained)),
    };
    match explained.get("address_source").and_then(Value::as_str) {
        Some("last-hello") => text.push_str(&format!(
            "  decided for {}, the address of the computer's last hello\n",
            at(explained, "/address")
        )),
        Some("query") => text.push_str(&format!(
            "  decided for {}, the address given\n",
            at(explained, "/address")
        )),
        _ if status == "deliverable" || status == "held" => {
            text.push_str("  the same for every address\n")
        }
        _ => {}
    }
    for finding in explained
        .get("findings")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        text.push_str(&format!("finding on {}:\n", at(finding, "/field")));
        for line in at(finding, "/rendered").lines() {
            text.push_str(&format!("  {line}\n"));
        }
    }
    text
}

/// Why a job is held, in words, from the API's `reason` object.
fn hold_reason(reason: &Value) -> String {
    let kind = reason
        .get("reason")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match kind {
        "corrupt" => format!(
            "the stored policy of its container or rule cannot be read ({})",
            at(reason, "/detail")
        ),
        "disabled" => "its container or rule is disabled".to_owned(),
        "not-started" => format!(
            "its container has not started; it starts at {}",
            at(reason, "/starts_at")
        ),
        "ended" => "its container ended before the job began".to_owned(),
        "ip-denied" => "the IP ranges do not allow the agent's address".to_owned(),
        "outside-time-frames" => match reason.get("next_open").and_then(Value::as_str) {
            Some(next) => format!("outside the time frames; they next allow it at {next}"),
            None => "outside the time frames, which never allow it again".to_owned(),
        },
        "blocked-by-sequence" => format!(
            "job {} of the same computer failed earlier in the sequence (abort-after-failed)",
            at(reason, "/failed_job")
        ),
        _ => format!("for a reason this client does not know: {}", cell(reason)),
    }
}

/// The cell at `pointer` of `value`, `-` where there is none.
pub(crate) fn at(value: &Value, pointer: &str) -> String {
    value.pointer(pointer).map_or_else(|| "-".to_owned(), cell)
}

fn payload_size(package: &Value) -> String {
    match package.pointer("/payload/size") {
        Some(Value::Number(size)) => size.as_u64().map_or_else(
            || size.to_string(),
            |size| indicatif::HumanBytes(size).to_string(),
        ),
        Some(Value::Null) if package.get("payload").is_some_and(Value::is_object) => {
            "unknown size".to_owned()
        }
        _ => "-".to_owned(),
    }
}

fn put(map: &mut Map<String, Value>, key: &str, value: &Option<String>) {
    if let Some(value) = value {
        map.insert(key.to_owned(), json!(value));
    }
}

pub(crate) fn plural(count: usize) -> &'static str {
    if count == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hold_reason_reads_as_a_sentence() {
        let held = |reason: Value| {
            explain_text(&json!({"status": "held", "job": 4, "address": "192.0.2.7",
                "address_source": "last-hello", "reason": reason}))
        };
        assert_eq!(
            held(json!({"reason": "disabled"})),
            "job 4 is held: its container or rule is disabled\n  decided for 192.0.2.7, the \
             address of the computer's last hello\n"
        );
        assert!(
            held(json!({"reason": "not-started", "starts_at": "2027-01-01T00:00:00Z"}))
                .contains("it starts at 2027-01-01T00:00:00Z")
        );
        assert!(
            held(json!({"reason": "outside-time-frames", "next_open": null}))
                .contains("never allow it again")
        );
        assert!(
            held(json!({"reason": "blocked-by-sequence", "failed_job": 3}))
                .contains("job 3 of the same computer failed")
        );
        assert!(held(json!({"reason": "ip-denied"})).contains("IP ranges do not allow"));
        assert!(held(json!({"reason": "ended"})).contains("ended before the job began"));
        assert!(held(json!({"reason": "corrupt", "detail": "bad zone"})).contains("(bad zone)"));
        assert!(held(json!({"reason": "new-kind"})).contains("does not know"));
    }

    #[test]
    fn an_explanation_without_an_address_says_so() {
        let text = explain_text(&json!({"status": "deliverable", "job": 1, "address": null,
            "address_source": null}));
        assert_eq!(
            text,
            "job 1 is deliverable: the agent gets it at its next poll\n  the same for every \
             address\n"
        );
        let text = explain_text(&json!({"status": "not-pending", "job": 2, "state": "succeeded"}));
        assert_eq!(
            text,
            "job 2 is not pending (succeeded): nothing is handed out\n"
        );
    }

    #[test]
    fn payload_sizes_are_human() {
        assert_eq!(payload_size(&json!({"payload": null})), "-");
        assert_eq!(
            payload_size(&json!({"payload": {"size": 3_145_728, "sha256": "x"}})),
            "3.00 MiB"
        );
        assert_eq!(
            payload_size(&json!({"payload": {"size": null, "sha256": null}})),
            "unknown size"
        );
    }
}
