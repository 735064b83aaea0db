//! The errors of `dilly-redis`.

/// Everything that can go wrong with a [`RedisPool`](crate::RedisPool) or a
/// [`WorkerHost`](crate::WorkerHost) as a whole. Failures of single tasks are
/// [`dilly_pool::TaskError`]s, delivered as those tasks' outcomes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The Redis URL does not parse.
    #[error(
        "invalid Redis URL `{url}`: {source}; expected e.g. redis://127.0.0.1:6379, redis://:password@host/0 or rediss://host (TLS)"
    )]
    Url {
        /// The URL, with any password replaced by `***`.
        url: String,
        /// The client's explanation.
        source: redis::RedisError,
    },

    /// Redis could not be reached, refused the credentials, or failed a command.
    #[error("Redis at {url} failed while {doing}: {source}")]
    Redis {
        /// The URL, with any password replaced by `***`.
        url: String,
        /// What dilly-redis was doing.
        doing: &'static str,
        /// The client's error.
        source: redis::RedisError,
    },

    /// A builder option is invalid.
    #[error("invalid option: {0}")]
    Config(String),

    /// An error of dilly-pool, passed on by `?` (`From<dilly_pool::Error>`): the
    /// host's local process pool failed, or an [`Executor`](dilly_pool::Executor)
    /// call on a [`RedisPool`](crate::RedisPool) did. A `dilly::Error` converts
    /// too, through `dilly_pool::Error::Dilly`.
    #[error(transparent)]
    Pool(#[from] dilly_pool::Error),

    /// Live hosts serve the queue, and none has this pool's HMAC key: every chunk
    /// would be refused.
    #[error(
        "the worker hosts of queue `{queue}` have another HMAC key than this pool (key ID \
         `{pool}` here; {hosts}): they would refuse every task; give the pool and the hosts \
         the same key (`key(..)` on both builders, or the DILLY_REDIS_KEY environment variable)"
    )]
    KeyMismatch {
        /// The queue.
        queue: String,
        /// This pool's key ID (`none` without a key).
        pool: String,
        /// The live hosts and their key IDs, as `name: key ID`, comma-separated.
        hosts: String,
    },

    /// The Redis user (the ACL user in the URL, or `default`) may not run
    /// commands this side needs, or not on this queue's keys.
    #[error(
        "the Redis user at {url} may not run {} that a {who} needs: {}; grant them, e.g. \
         `ACL SETUSER <user> {}`, with access to the keys `dilly:{{<queue>}}:*`",
        if missing.len() == 1 { "a command" } else { "commands" },
        missing.join(", "),
        missing.iter().map(|c| format!("+{}", c.to_lowercase())).collect::<Vec<_>>().join(" ")
    )]
    Permissions {
        /// The URL, with any password replaced by `***`.
        url: String,
        /// `worker host` or `pool`.
        who: &'static str,
        /// The commands Redis refused (`NOPERM`), upper case.
        missing: Vec<String>,
    },

    /// No dead letter has this entry ID.
    #[error("no dead letter with entry ID {id} in queue `{queue}`")]
    NoSuchDeadLetter {
        /// The queue.
        queue: String,
        /// The entry ID asked for.
        id: String,
    },
}

impl From<dilly::Error> for Error {
    fn from(error: dilly::Error) -> Self {
        Error::Pool(dilly_pool::Error::from(error))
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The URL with its password, if any, replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((auth, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => format!("{scheme}://***@{host}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            super::redact("redis://:hunter2@h:1/0"),
            "redis://:***@h:1/0"
        );
        assert_eq!(super::redact("rediss://u:p@w@h"), "rediss://u:***@h");
        assert_eq!(super::redact("redis://h:6379"), "redis://h:6379");
    }
}
