//! The command line: global connection options, then one subcommand.

use clap::{Args, Parser, Subcommand};

/// eb: look into the streams event-backbone writes.
///
/// Connects with --channel and --store URLs (memory:, redis://, kafka://,
/// postgres://, sqlite:PATH, mongodb://, dynamodb://TABLE,
/// couchbase://HOST/BUCKET), the same the
/// library's `open_channel` and `open_store` take. Exit codes: 0 ok, 1 a
/// failure, 2 a usage error.
#[derive(Debug, Parser)]
#[command(name = "eb", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub connection: Connection,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the streams and payloads are.
#[derive(Debug, Args)]
pub struct Connection {
    /// The channel's URL; default: EB_CHANNEL, else redis:// of
    /// REDIS_EVENT_SOURCE_ENDPOINT, else kafka:// of
    /// KAFKA_EVENT_SOURCE_BROKERS.
    #[arg(
        long,
        global = true,
        env = "EB_CHANNEL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub channel: Option<String>,
    /// The payload store's URL; default: EB_STORE, else the channel's URL
    /// when it is also a store (Redis, PostgreSQL, SQLite).
    #[arg(
        long,
        global = true,
        env = "EB_STORE",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub store: Option<String>,
    /// The stream's uri, as producers name it (erase and export take
    /// several: repeat it).
    #[arg(long, global = true, value_name = "URI")]
    pub uri: Vec<String>,
    /// The stream's environment (its key is ENV:URI).
    #[arg(long, global = true, value_name = "ENV")]
    pub environment: Option<String>,
    /// Read the key vault's secrets from the environment
    /// (EVENT_BACKBONE_MASTER_KEY, EVENT_BACKBONE_SUBJECT_KEY; the vault is
    /// in the store): payloads are shown with their personal segments
    /// opened. erase and export always read them.
    #[arg(long, visible_alias = "open", global = true)]
    pub personal_data: bool,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The streams there are, with their length and groups.
    Streams {
        /// JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// One stream: length, first and last entry, per group pending, lag and
    /// consumers; its dead letters.
    Info {
        /// JSON, for scripts.
        #[arg(long)]
        json: bool,
        /// A group to show even when the channel does not list it (a Kafka
        /// group with no member in this process, on a broker that does not
        /// list its groups); repeat for several.
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
    },
    /// The stream's entries, one line each: time, entry id, message id,
    /// operation and version, segments, correlation id.
    Tail(Tail),
    /// One message with its metadata and payload.
    Get {
        /// The entry id.
        entry: String,
    },
    /// The stream's dead letters: list them, put them back.
    #[command(subcommand, name = "dead-letters")]
    DeadLetters(DeadLetters),
    /// Copies the stream, metadata and payloads, into another stream, on
    /// the same backends or others; each copy marked as a copy of its
    /// original. A second run continues where the first stopped.
    Copy(Copy),
    /// Erases a data subject (GDPR article 17) from the streams --uri
    /// names: its data keys first (every sealed copy of its data becomes
    /// unreadable, everywhere), then its payload keys there.
    Erase {
        /// The data subject's id, as producers named it; `-` reads it from
        /// the standard input (out of the shell's history).
        #[arg(long, value_name = "ID")]
        subject: String,
    },
    /// Everything the streams --uri names hold about a data subject (GDPR
    /// article 15), as JSON: each of its messages with its personal
    /// segments, opened.
    Export {
        /// The data subject's id, as producers named it; `-` reads it from
        /// the standard input (out of the shell's history).
        #[arg(long, value_name = "ID")]
        subject: String,
        /// Write the export to this new file (readable by its owner only)
        /// instead of the standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
    },
    /// A new Cargo workspace: a contract crate with one `#[event_contract]`
    /// trait, a producer binary and a consumer binary in a group, a README
    /// and a test script. It runs in memory out of the box, and on Redis
    /// with REDIS_EVENT_SOURCE_ENDPOINT set.
    New(New),
    /// The transactional outbox: moves the messages transactions wrote to
    /// it on to --channel and --store, for the streams --uri names.
    #[command(subcommand)]
    Outbox(Outbox),
    /// A completion script for a shell (bash, zsh, fish, elvish,
    /// powershell), to source.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// What `eb outbox` does.
#[derive(Debug, Subcommand)]
pub enum Outbox {
    /// Relays committed outbox messages to the channel and store, unchanged
    /// (same message ids), at least once and in order: until interrupted
    /// (Ctrl-C, SIGTERM), or with --once until the outbox is empty. Run one
    /// relay per outbox stream.
    Relay(Relay),
}

/// Where `eb outbox relay` reads and how.
#[derive(Debug, Args)]
pub struct Relay {
    /// The outbox: the database the transactions write to
    /// (postgres://…[?schema=NAME]), default EB_OUTBOX.
    #[arg(long, env = "EB_OUTBOX", hide_env_values = true, value_name = "URL")]
    pub outbox: String,
    /// Relay what is there now and stop (after a pass that finds nothing:
    /// entries still behind an older open transaction wait for the next
    /// run).
    #[arg(long)]
    pub once: bool,
    /// Messages per batch.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub batch_size: usize,
    /// How long relayed payloads live in the store (default: for ever).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub payload_ttl: Option<u64>,
}

/// What `eb tail` shows.
#[derive(Debug, Args)]
pub struct Tail {
    /// Where to start: start, now, an entry id, or t=MILLISECONDS since
    /// the Unix epoch.
    #[arg(long, default_value = "start", value_name = "POSITION")]
    pub from: String,
    /// Only entries of this operation.
    #[arg(long, value_name = "OP")]
    pub operation: Option<String>,
    /// At most this many entries (default: all, or none when following).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Keep waiting for new entries.
    #[arg(long, short)]
    pub follow: bool,
    /// Show each message's payload too. JSON-codec segments are shown as
    /// JSON; postcard is not self-describing, so its segments are shown as
    /// hex with their length; sealed (personal) segments as sealed.
    #[arg(long)]
    pub payload: bool,
}

/// Where `eb copy` copies to.
#[derive(Debug, Args)]
pub struct Copy {
    /// The target stream's uri.
    #[arg(long, value_name = "URI")]
    pub to_uri: String,
    /// The target stream's environment (default: none).
    #[arg(long, value_name = "ENV")]
    pub to_environment: Option<String>,
    /// The target's channel (default: EB_TO_CHANNEL, else the source's).
    #[arg(
        long,
        env = "EB_TO_CHANNEL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub to_channel: Option<String>,
    /// The store the copies' payloads go to (default: EB_TO_STORE, else
    /// --to-channel when it is a store too, else the source's store).
    #[arg(long, env = "EB_TO_STORE", hide_env_values = true, value_name = "URL")]
    pub to_store: Option<String>,
    /// Where a first copy starts: start, an entry id, or t=MILLISECONDS
    /// (a later run continues where the last one stopped; one that reads
    /// the source again starts here again).
    #[arg(long, default_value = "start", value_name = "POSITION")]
    pub from: String,
    /// Entries read, and appended, per round trip.
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub page_size: usize,
    /// Read the source again from --from, whatever an earlier run did,
    /// skipping what the target holds (to try again what could not be
    /// copied).
    #[arg(long)]
    pub restart: bool,
    /// How long the copies' payloads live in the target's store (default:
    /// for ever).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub payload_ttl: Option<u64>,
}

/// What `eb new` makes.
#[derive(Debug, Args)]
pub struct New {
    /// The project's name (its directory, and its crates' prefix).
    pub name: String,
    /// The stream's uri.
    #[arg(long, value_name = "URI")]
    pub uri: String,
    /// The consumer's group.
    #[arg(long, value_name = "GROUP")]
    pub group: String,
    /// The contract's first event, in snake case (order_placed).
    #[arg(long, value_name = "EVENT")]
    pub event: String,
    /// The backend it is built for (each also runs in memory).
    #[arg(long, value_enum, default_value_t = Backend::Redis)]
    pub backend: Backend,
    /// Where to write it (default: ./NAME).
    #[arg(long, value_name = "DIR")]
    pub path: Option<std::path::PathBuf>,
    /// Take event-backbone from this checkout (default: the checkout eb
    /// was built from, while it is there; else crates.io).
    #[arg(long, value_name = "DIR")]
    pub backbone_path: Option<std::path::PathBuf>,
}

/// The backends `eb new` builds for.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Backend {
    /// In memory only.
    Memory,
    /// Redis (stream and payloads), else in memory.
    Redis,
    /// Kafka (stream) with Redis (payloads), else in memory.
    Kafka,
}

/// What to do with the dead letters.
#[derive(Debug, Subcommand)]
pub enum DeadLetters {
    /// The dead letters not yet redriven, one line each: entry, operation,
    /// group, deliveries, reason.
    List {
        /// Those already redriven too, with where they went.
        #[arg(long)]
        all: bool,
        /// JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Puts dead letters back on their stream, once each: a copy of each,
    /// linked to the original, the reason in header `redriven.reason`.
    /// Needs the store (`--store`, or the channel's when it is one).
    Redrive(Redrive),
}

/// Which dead letters to redrive.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["ids", "all"])))]
pub struct Redrive {
    /// This dead letter (its entry id in the dead-letter stream); repeat
    /// for several.
    #[arg(long = "id", value_name = "ENTRY")]
    pub ids: Vec<String>,
    /// Every dead letter not yet redriven.
    #[arg(long)]
    pub all: bool,
    /// Only those of this operation.
    #[arg(long, value_name = "OP")]
    pub operation: Option<String>,
    /// Say what would be redriven, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}
