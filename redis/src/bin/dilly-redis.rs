//! `dilly-redis`: an operator's command for a dilly-redis queue — its state, its
//! hosts and its dead letters; `--watch` for a live view, `--json` for scripts.
//! Run `dilly-redis --help`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use dilly_redis::{DeadLetter, DeadLetterDetail, HostInfo, Queue, Stats};
use serde::Serialize;

const USAGE: &str = "\
dilly-redis: the state of a dilly-redis queue, its hosts and its dead letters

usage: dilly-redis [options] [command]

commands:
  info                    counters, hosts and recent throughput (the default)
  dead [list]             dead letters, oldest first (--count N, default 20)
  dead show ID            one dead letter, its message decoded when its tag checks
  dead requeue ID... | --all
                          put dead letters back on the task stream, tag and all
  dead purge ID... | --all
                          delete dead letters

options:
  --url URL               the Redis (else DILLY_REDIS_URL, else redis://127.0.0.1:6379)
  --queue NAME            the queue (else DILLY_REDIS_QUEUE, else `default`)
  --key KEY               the shared HMAC key, to check dead letters' tags
                          (else DILLY_REDIS_KEY)
  --json                  JSON for scripts (one object per line with --watch)
  --watch                 `info` again every --interval seconds (default 2) until
                          interrupted
  --interval SECS         the --watch period
  --count N               how many dead letters `dead list` shows
  -h, --help              this text
";

/// A host counts as live when its heartbeat is younger than this.
const LIVE_WITHIN: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct Args {
    url: Option<String>,
    queue: Option<String>,
    key: Option<String>,
    json: bool,
    watch: bool,
    interval: Option<f64>,
    count: Option<usize>,
    all: bool,
    words: Vec<String>,
}

fn parse(mut it: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut args = Args::default();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |what: &str| {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{what} needs a value"))
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(None),
            "--url" => args.url = Some(value("--url")?),
            "--queue" => args.queue = Some(value("--queue")?),
            "--key" => args.key = Some(value("--key")?),
            "--json" => args.json = true,
            "--watch" => args.watch = true,
            "--all" => args.all = true,
            "--interval" => {
                let v = value("--interval")?;
                let secs: f64 = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s >= 0.1)
                    .ok_or_else(|| {
                        format!("--interval `{v}`: a number of seconds, at least 0.1")
                    })?;
                args.interval = Some(secs);
            }
            "--count" => {
                let v = value("--count")?;
                args.count = Some(
                    v.parse()
                        .map_err(|_| format!("--count `{v}`: a whole number"))?,
                );
            }
            flag if flag.starts_with('-') && flag.len() > 1 => {
                return Err(format!("unknown option `{flag}`"));
            }
            _ => args.words.push(arg),
        }
    }
    Ok(Some(args))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("dilly-redis: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("dilly-redis: {e}\n\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Run(e)) => {
            eprintln!("dilly-redis: {e}");
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    Usage(String),
    Run(String),
}

impl From<dilly_redis::Error> for Failure {
    fn from(e: dilly_redis::Error) -> Failure {
        Failure::Run(e.to_string())
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::Run(format!("cannot write the output: {e}"))
    }
}

fn run(args: &Args) -> Result<(), Failure> {
    let url = args
        .url
        .clone()
        .or_else(|| env("DILLY_REDIS_URL"))
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
    let queue = args
        .queue
        .clone()
        .or_else(|| env("DILLY_REDIS_QUEUE"))
        .unwrap_or_else(|| "default".to_owned());
    let words: Vec<&str> = args.words.iter().map(String::as_str).collect();
    let usage = |e: &str| Err(Failure::Usage(e.to_owned()));
    if args.watch && !matches!(words.as_slice(), [] | ["info"]) {
        return usage("--watch goes with `info` only");
    }
    if args.all && !matches!(words.as_slice(), ["dead", "requeue" | "purge"]) {
        return usage("--all goes with `dead requeue` or `dead purge`, without IDs");
    }
    let open = || Queue::open(&url, &queue, args.key.as_deref().map(str::as_bytes));
    let mut out = std::io::stdout().lock();
    match words.as_slice() {
        [] | ["info"] => {
            let q = open()?;
            if !args.watch {
                return info(&mut out, &q, args.json);
            }
            let every = Duration::from_secs_f64(args.interval.unwrap_or(2.0));
            let tty = std::io::stdout().is_terminal();
            loop {
                if tty && !args.json {
                    // Clear the screen and go home.
                    write!(out, "\x1b[2J\x1b[H")?;
                }
                info(&mut out, &q, args.json)?;
                if !tty && !args.json {
                    writeln!(out)?;
                }
                out.flush()?;
                std::thread::sleep(every);
            }
        }
        ["dead"] | ["dead", "list"] => {
            let letters = open()?.dead_letters(args.count.unwrap_or(20))?;
            if args.json {
                let rows: Vec<LetterJson> = letters.iter().map(LetterJson::from).collect();
                json_line(&mut out, &rows)?;
            } else {
                dead_list(&mut out, &letters)?;
            }
            Ok(())
        }
        ["dead", "show", id] => {
            let q = open()?;
            let detail = q.dead_letter(id)?;
            if args.json {
                json_line(&mut out, &DetailJson::from(&detail))?;
            } else {
                dead_show(&mut out, &detail, q.key_id() != "none")?;
            }
            Ok(())
        }
        ["dead", action @ ("requeue" | "purge"), ids @ ..] => {
            if ids.is_empty() != args.all {
                return usage(&format!("`dead {action}` takes entry IDs or --all"));
            }
            let q = open()?;
            let ids: Vec<String> = if args.all {
                if *action == "purge" {
                    let n = q.purge_dead_letters()?;
                    return Ok(report(&mut out, args.json, action, &[], n)?);
                }
                q.dead_letters(usize::MAX)?
                    .into_iter()
                    .map(|l| l.id)
                    .collect()
            } else {
                ids.iter().map(|s| s.to_string()).collect()
            };
            let mut done = Vec::new();
            for id in &ids {
                if *action == "purge" {
                    q.purge_dead_letter(id)?;
                    done.push((id.clone(), None));
                } else {
                    let new = q.requeue_dead_letter(id)?;
                    done.push((id.clone(), Some(new)));
                }
            }
            Ok(report(
                &mut out,
                args.json,
                action,
                &done,
                done.len() as u64,
            )?)
        }
        other => usage(&format!("unknown command `{}`", other.join(" "))),
    }
}

fn json_line(out: &mut impl Write, value: &impl Serialize) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    writeln!(out)
}

#[derive(Serialize)]
struct InfoJson<'a> {
    queue: &'a str,
    url: &'a str,
    key_id: String,
    queued: u64,
    in_flight: u64,
    retried: u64,
    dead_letters: u64,
    dead_lettered: u64,
    refused: u64,
    skipped: u64,
    tasks_last_minute: u64,
    hosts: Vec<HostJson>,
}

#[derive(Serialize)]
struct HostJson {
    name: String,
    live: bool,
    seen_ms_ago: u64,
    pid: u32,
    processes: usize,
    build: String,
    registry: String,
    key_id: Option<String>,
    tasks_done: u64,
    tasks_last_minute: u64,
}

fn age(host: &HostInfo) -> Duration {
    SystemTime::now()
        .duration_since(host.last_heartbeat)
        .unwrap_or(Duration::ZERO)
}

fn info(out: &mut impl Write, q: &Queue, json: bool) -> Result<(), Failure> {
    let stats: Stats = q.stats()?;
    let live: Vec<&HostInfo> = stats
        .hosts
        .iter()
        .filter(|h| h.is_live(LIVE_WITHIN))
        .collect();
    let per_minute: u64 = live.iter().map(|h| h.tasks_last_minute).sum();
    if json {
        let hosts = stats
            .hosts
            .iter()
            .map(|h| HostJson {
                name: h.name.clone(),
                live: h.is_live(LIVE_WITHIN),
                seen_ms_ago: age(h).as_millis() as u64,
                pid: h.pid,
                processes: h.processes,
                build: h.build.clone(),
                registry: h.registry.clone(),
                key_id: h.key_id.clone(),
                tasks_done: h.tasks_done,
                tasks_last_minute: h.tasks_last_minute,
            })
            .collect();
        json_line(
            out,
            &InfoJson {
                queue: q.name(),
                url: q.url(),
                key_id: q.key_id(),
                queued: stats.queued,
                in_flight: stats.in_flight,
                retried: stats.retried,
                dead_letters: stats.dead_letters,
                dead_lettered: stats.dead_lettered,
                refused: stats.refused,
                skipped: stats.skipped,
                tasks_last_minute: per_minute,
                hosts,
            },
        )?;
        return Ok(());
    }
    writeln!(out, "queue `{}` at {}", q.name(), q.url())?;
    writeln!(
        out,
        "chunks      {} queued, {} in flight, {} retried",
        stats.queued, stats.in_flight, stats.retried
    )?;
    writeln!(
        out,
        "dead        {} dead letters ({} ever), {} refused, {} skipped",
        stats.dead_letters, stats.dead_lettered, stats.refused, stats.skipped
    )?;
    writeln!(
        out,
        "throughput  {per_minute} tasks in the last minute ({:.1}/s)",
        per_minute as f64 / 60.0
    )?;
    writeln!(
        out,
        "hosts       {} live, {} silent",
        live.len(),
        stats.hosts.len() - live.len()
    )?;
    if stats.hosts.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(
        out,
        "{:<20} {:<6} {:>5} {:>7} {:>7} {:<12} KEY ID",
        "HOST", "STATE", "PROCS", "DONE", "LAST 1M", "BUILD"
    )?;
    for h in &stats.hosts {
        let state = if h.is_live(LIVE_WITHIN) {
            "live".to_owned()
        } else {
            format!("{}s", age(h).as_secs())
        };
        writeln!(
            out,
            "{:<20} {:<6} {:>5} {:>7} {:>7} {:<12} {}",
            cut(&h.name, 20),
            state,
            h.processes,
            h.tasks_done,
            h.tasks_last_minute,
            cut(&h.build, 12),
            cut(h.key_id.as_deref().unwrap_or("?"), 16),
        )?;
    }
    Ok(())
}

/// `text` cut to `width` characters, with `…` when cut.
fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(width - 1).collect();
    s.push('…');
    s
}

#[derive(Serialize)]
struct LetterJson {
    id: String,
    entry: String,
    reason: String,
    deliveries: u64,
    host: String,
    bytes: usize,
}

impl From<&DeadLetter> for LetterJson {
    fn from(l: &DeadLetter) -> LetterJson {
        LetterJson {
            id: l.id.clone(),
            entry: l.entry.clone(),
            reason: l.reason.clone(),
            deliveries: l.deliveries,
            host: l.host.clone(),
            bytes: l.bytes,
        }
    }
}

fn dead_list(out: &mut impl Write, letters: &[DeadLetter]) -> std::io::Result<()> {
    if letters.is_empty() {
        return writeln!(out, "no dead letters");
    }
    writeln!(
        out,
        "{:<16} {:>4} {:>7} {:<14} REASON",
        "ID", "DLV", "BYTES", "HOST"
    )?;
    for l in letters {
        writeln!(
            out,
            "{:<16} {:>4} {:>7} {:<14} {}",
            l.id,
            l.deliveries,
            l.bytes,
            cut(&l.host, 14),
            cut(&l.reason, 34)
        )?;
    }
    Ok(())
}

#[derive(Serialize)]
struct DetailJson {
    #[serde(flatten)]
    letter: LetterJson,
    tag_ok: bool,
    tag_error: Option<String>,
    submitter: Option<String>,
    job: Option<u64>,
    first: Option<u64>,
    items: Option<usize>,
    function: Option<String>,
    malformed: Option<String>,
}

impl From<&DeadLetterDetail> for DetailJson {
    fn from(d: &DeadLetterDetail) -> DetailJson {
        DetailJson {
            letter: LetterJson::from(&d.letter),
            tag_ok: d.tag.is_ok(),
            tag_error: d.tag.clone().err(),
            submitter: d.submitter.clone(),
            job: d.job,
            first: d.first,
            items: d.items,
            function: d.function.clone(),
            malformed: d.malformed.clone(),
        }
    }
}

/// `keyed`: whether this command was given a key to check the tag with.
fn dead_show(out: &mut impl Write, d: &DeadLetterDetail, keyed: bool) -> std::io::Result<()> {
    let l = &d.letter;
    writeln!(out, "dead letter  {}", l.id)?;
    writeln!(out, "task entry   {}", l.entry)?;
    writeln!(out, "deliveries   {}", l.deliveries)?;
    writeln!(out, "host         {}", l.host)?;
    writeln!(out, "bytes        {}", l.bytes)?;
    writeln!(out, "reason       {}", l.reason)?;
    match &d.tag {
        Ok(()) if keyed => writeln!(out, "tag          checks")?,
        Ok(()) => writeln!(
            out,
            "tag          none, and no key given (--key, DILLY_REDIS_KEY)"
        )?,
        Err(e) => writeln!(out, "tag          does not check: {e}")?,
    }
    if let (Some(s), Some(job), Some(first), Some(items), Some(function)) =
        (&d.submitter, d.job, d.first, d.items, &d.function)
    {
        writeln!(out, "submitter    {s}, job {job}")?;
        let last = first + (items as u64).saturating_sub(1);
        writeln!(out, "tasks        {items} (indexes {first} to {last})")?;
        writeln!(out, "function     {function}")?;
    }
    if let Some(m) = &d.malformed {
        writeln!(out, "malformed    {m}")?;
    }
    Ok(())
}

fn report(
    out: &mut impl Write,
    json: bool,
    action: &str,
    done: &[(String, Option<String>)],
    count: u64,
) -> std::io::Result<()> {
    #[derive(Serialize)]
    struct Done<'a> {
        id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        new_entry: Option<&'a str>,
    }
    if json {
        #[derive(Serialize)]
        struct Report<'a> {
            action: &'a str,
            count: u64,
            letters: Vec<Done<'a>>,
        }
        let letters = done
            .iter()
            .map(|(id, new)| Done {
                id,
                new_entry: new.as_deref(),
            })
            .collect();
        return json_line(
            out,
            &Report {
                action,
                count,
                letters,
            },
        );
    }
    for (id, new) in done {
        match new {
            Some(new) => writeln!(out, "requeued {id} as task entry {new}")?,
            None => writeln!(out, "purged {id}")?,
        }
    }
    let verb = if action == "purge" {
        "purged"
    } else {
        "requeued"
    };
    writeln!(
        out,
        "{verb} {count} dead letter{}",
        if count == 1 { "" } else { "s" }
    )
}
