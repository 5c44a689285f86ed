//! What can go wrong in `eb`, each with what to do about it.

/// Why an `eb` command failed. Printed as one line, never with a backtrace;
/// URLs in it have their passwords masked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No channel URL given and none in the environment.
    #[error(
        "no channel to read: pass --channel URL (redis://host:6379, kafka://host:9092, ...) \
         or set EB_CHANNEL, REDIS_EVENT_SOURCE_ENDPOINT or KAFKA_EVENT_SOURCE_BROKERS"
    )]
    NoChannel,

    /// The command needs a stream name.
    #[error("name the stream: --uri URI (and --environment ENV if it has one)")]
    NoStream,

    /// Several `--uri` to a command that reads one stream.
    #[error("this command reads one stream, and --uri was given {given} times")]
    OneStream {
        /// How many were given.
        given: usize,
    },

    /// A stream with no entry and no group.
    #[error(
        "stream {stream:?} does not exist (no entry, no group): are --uri and --environment right?"
    )]
    NoSuchStream {
        /// The stream key.
        stream: String,
    },

    /// No such entry.
    #[error("stream {stream:?} has no entry {entry}")]
    NoSuchEntry {
        /// The stream key.
        stream: String,
        /// The entry id asked for.
        entry: String,
    },

    /// No such group.
    #[error(
        "stream {stream:?} has no group {group:?} (none the channel lists, and none by that name)"
    )]
    NoSuchGroup {
        /// The stream key.
        stream: String,
        /// The group asked for.
        group: String,
    },

    /// The command needs the payload store.
    #[error("{command} needs the payload store: pass --store URL (or set EB_STORE)")]
    NoStore {
        /// The command.
        command: &'static str,
    },

    /// `--id` names no dead letter.
    #[error("dead-letter stream {stream:?} has no entry {entry}")]
    NoSuchDeadLetter {
        /// The dead-letter stream's key.
        stream: String,
        /// The entry id asked for.
        entry: String,
    },

    /// A `--from` that is neither `start`, `now`, an entry id nor a time.
    #[error("--from {given:?}: expected start, now, an entry id, or a time in milliseconds since the Unix epoch (t=1733500000000)")]
    BadPosition {
        /// What was given.
        given: String,
    },

    /// `--follow` or `--from t=` on a stream in several partitions.
    #[error(
        "stream {stream:?} is in {partitions} partitions, not in one order of appends: \
         --follow would miss what comes later to a partition already read past (and on Kafka \
         --from t= would show entries before the time); tail from start, now or an entry, or run \
         a consumer group"
    )]
    Unordered {
        /// The stream key.
        stream: String,
        /// Its partitions.
        partitions: u32,
    },

    /// A command line that asks for what cannot be.
    #[error("{0}")]
    Usage(String),

    /// `eb copy` into the stream it reads.
    #[error(
        "copy of stream {stream:?} onto itself: name another stream (--to-uri, \
         --to-environment) or another channel (--to-channel)"
    )]
    OntoItself {
        /// The stream key.
        stream: String,
    },

    /// Some of what a command was to do could not be done (listed above).
    #[error("{left} entries could not be {what} (listed above); the others were")]
    Incomplete {
        /// What was not done to them (`copied`).
        what: &'static str,
        /// How many.
        left: usize,
    },

    /// The library refused or the server failed.
    #[error(transparent)]
    Backbone(#[from] event_backbone::Error),

    /// A file could not be written.
    #[error("writing {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },

    /// Writing the output failed.
    #[error("writing the output: {0}")]
    Output(#[from] std::io::Error),
}

impl Error {
    /// Whether the command line itself is wrong (exit code 2, as clap's
    /// own usage errors), rather than what it asked for failing (1).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Error::NoChannel
                | Error::NoStream
                | Error::OneStream { .. }
                | Error::OntoItself { .. }
                | Error::Usage(_)
                | Error::NoStore { .. }
                | Error::BadPosition { .. }
                | Error::Backbone(event_backbone::Error::InvalidName { .. })
        )
    }
}

/// `Result` of `eb`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
