//! The serve loop of one worker: the handshake, then functions and chunks in,
//! outcomes out.

use std::collections::HashMap;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use dilly::ErasedFunc;

use crate::protocol::{self, AfterRun, FromWorker, Ticket, ToWorker, connect};
use crate::sys;

use super::results::{Finished, Results};
use super::*;

/// The order of a worker's handshake.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Handshake {
    /// A spawned worker connects and says hello; the pool answers with the settings
    /// once it has checked the hello.
    HelloFirst,
    /// A forked worker's pool sent the settings with its socket, without waiting:
    /// the worker reads them first, then says hello — with `Ready` in the same
    /// write when there is no initializer, so the pool wakes once per start.
    ConfigFirst,
}

pub(super) fn worker(ticket: &Ticket) -> io::Result<()> {
    serve(connect(ticket)?, ticket, Handshake::HelloFirst)
}

pub(super) fn serve(stream: UnixStream, ticket: &Ticket, handshake: Handshake) -> io::Result<()> {
    if handshake == Handshake::HelloFirst {
        send(&stream, &hello(ticket))?;
    }
    let mut reader = io::BufReader::with_capacity(64 << 10, stream.try_clone()?);
    let mut limit = dilly::Limits::DEFAULT.max_len as u64;
    let Some(body) = protocol::read_frame(&mut reader, limit)? else {
        return Ok(());
    };
    let config = match ToWorker::decode(&body)? {
        ToWorker::Config(config) => config,
        ToWorker::Reject | ToWorker::Exit => return Ok(()),
        other => {
            return Err(protocol::violation(format!(
                "expected config, got {other:?}"
            )));
        }
    };
    // Frames to send before `Ready` (or with it): a forked worker's hello.
    let mut greeting = match handshake {
        Handshake::HelloFirst => Vec::new(),
        Handshake::ConfigFirst => hello(ticket).encode()?,
    };
    if config.registry != dilly::registry::fingerprint() {
        // The parent refuses us too (it compares our hello); nothing to do.
        return sys::send_all(&stream, &greeting);
    }
    limit = config.max_frame;
    install_panic_hook();
    if let Some(bytes) = config.memory_limit {
        // Best effort: a failure leaves the worker unlimited, which the parent
        // cannot observe; report it on stderr like any worker diagnostic.
        if let Err(err) = sys::set_memory_limit(bytes) {
            eprintln!(
                "dilly-pool: worker {}: cannot set the memory limit: {err}",
                std::process::id()
            );
        }
    }
    if let Some(init) = &config.initializer {
        // The pool learns the PID from the hello before the initializer runs, so
        // that it can kill a worker stuck in it.
        sys::send_all(&stream, &std::mem::take(&mut greeting))?;
        let unit = dilly::to_bytes(&())
            .map(|b| b[1..].to_vec())
            .unwrap_or_default();
        match load(init).and_then(|f| call(&f, &unit, &mut Vec::new())) {
            Ok(_) => send(&stream, &FromWorker::Ready)?,
            Err(err) => {
                send(&stream, &FromWorker::InitFailed(err))?;
                return Ok(());
            }
        }
    } else {
        greeting.extend_from_slice(&FromWorker::Ready.encode()?);
        sys::send_all(&stream, &greeting)?;
    }

    let results = Results::start(stream.try_clone()?, config.result_window);
    let mut funcs: HashMap<u64, Result<Arc<dyn ErasedFunc>, TaskError>> = HashMap::new();
    // Each task's result is encoded here first (outside the results lock), reused.
    let mut scratch = Vec::new();
    while let Some(body) = protocol::read_frame(&mut reader, limit)? {
        // The hot message, with its items borrowed from the frame.
        if let Some((key, items)) = protocol::decode_run(&body)? {
            let func = funcs.get(&key).cloned().unwrap_or_else(|| {
                Err(TaskError::Rejected {
                    error: dilly::Error::Malformed {
                        what: "function".into(),
                        detail: format!("no function loaded under key {key}"),
                    },
                })
            });
            if !items.is_empty() {
                results.start_task(items.len() == 1);
            }
            for (n, item) in items.iter().enumerate() {
                let last = n + 1 == items.len();
                let outcome = match &func {
                    Ok(f) => match call(f, item, &mut scratch) {
                        Ok(()) if scratch.len() as u64 > limit => Err(TaskError::Unserializable {
                            error: dilly::Error::Encode {
                                what: "result".into(),
                                detail: format!(
                                    "a result of {} bytes exceeds the frame limit of {limit} \
                                     bytes; raise it with `Builder::max_frame`",
                                    scratch.len()
                                ),
                            },
                        }),
                        other => other,
                    },
                    Err(err) => Err(err.clone()),
                };
                // The chunk's last result goes out at once, with any before it.
                let next = (!last).then_some(n + 2 == items.len());
                match outcome {
                    Ok(()) => results.finish(Finished::Done(&scratch), last, next)?,
                    Err(err) => {
                        let frame = FromWorker::Failed(err).encode()?;
                        results.finish(Finished::Frame(&frame), last, next)?
                    }
                }
            }
            // Its results are out; a caller waits for them and may send more at
            // once: poll a while before the blocking read, so that a chunk sent
            // soon is taken without a wake-up.
            match protocol::after_run(&body) {
                AfterRun::Spin if !protocol::holds_frame(reader.buffer()) => {
                    sys::spin_until_readable(reader.get_ref().as_fd(), config.spin);
                }
                // Its results are out (the chunk's last one is written at once).
                AfterRun::Exit => return Ok(()),
                _ => {}
            }
            continue;
        }
        match ToWorker::decode(&body)? {
            ToWorker::Load { key, func } => {
                funcs.insert(key, load(&func));
            }
            ToWorker::Clear => funcs.clear(),
            ToWorker::Exit => return Ok(()),
            other => return Err(protocol::violation(format!("unexpected {other:?}"))),
        }
    }
    Ok(())
}
