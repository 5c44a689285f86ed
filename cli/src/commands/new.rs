//! `eb new`: a Cargo workspace with a contract, a producer and a consumer,
//! ready to run in memory and on Redis (or Kafka).

use std::io::Write;
use std::path::{Path, PathBuf};

use event_backbone::StreamAddress;

use crate::args::{Backend, New};
use crate::error::{Error, Result};
use crate::render;

/// The files of a new project: (path, template).
const FILES: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../../templates/new/workspace.toml"),
    ),
    ("README.md", include_str!("../../templates/new/README.md")),
    (".gitignore", include_str!("../../templates/new/gitignore")),
    ("scripts/test", include_str!("../../templates/new/test.sh")),
    (
        "contract/Cargo.toml",
        include_str!("../../templates/new/contract.toml"),
    ),
    (
        "contract/src/lib.rs",
        include_str!("../../templates/new/contract.rs"),
    ),
    (
        "contract/src/backend.rs",
        include_str!("../../templates/new/backend.rs"),
    ),
    (
        "producer/Cargo.toml",
        include_str!("../../templates/new/producer.toml"),
    ),
    (
        "producer/src/lib.rs",
        include_str!("../../templates/new/producer_lib.rs"),
    ),
    (
        "producer/src/main.rs",
        include_str!("../../templates/new/producer_main.rs"),
    ),
    (
        "consumer/Cargo.toml",
        include_str!("../../templates/new/consumer.toml"),
    ),
    (
        "consumer/src/lib.rs",
        include_str!("../../templates/new/consumer_lib.rs"),
    ),
    (
        "consumer/src/main.rs",
        include_str!("../../templates/new/consumer_main.rs"),
    ),
    (
        "consumer/tests/round_trip.rs",
        include_str!("../../templates/new/round_trip.rs"),
    ),
];

/// Words an event (a method name) cannot be.
const KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub",
    "ref", "return", "self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use",
    "where", "while", "abstract", "become", "box", "do", "final", "gen", "macro", "override",
    "priv", "try", "typeof", "unsized", "virtual", "yield",
];

/// Writes the project and says how to run it.
pub fn run(new: &New, out: &mut impl Write) -> Result<()> {
    let crate_name = check_name(&new.name)?;
    check_event(&new.event)?;
    StreamAddress::new(None, &new.uri)?;
    event_backbone::names::check("group", &new.group)?;
    for (what, value) in [("--uri", &new.uri), ("--group", &new.group)] {
        if value.contains(['"', '\\']) {
            return Err(Error::Usage(format!(
                "{what} {value:?}: eb new writes it into Rust and TOML strings: leave out \" and \\"
            )));
        }
    }
    let root = new.path.clone().unwrap_or_else(|| PathBuf::from(&new.name));
    if root.exists() {
        return Err(Error::Usage(format!(
            "{} exists: eb new writes a new directory (choose another NAME or --path)",
            root.display()
        )));
    }
    let values = [
        ("{{name}}", new.name.clone()),
        ("{{crate}}", crate_name),
        ("{{trait}}", format!("{}Events", pascal_case(&new.name))),
        ("{{uri}}", new.uri.clone()),
        ("{{group}}", new.group.clone()),
        ("{{event}}", new.event.clone()),
        ("{{dependency}}", dependency(new)?),
        ("{{backend_doc}}", backend_doc(new.backend).to_owned()),
        ("{{from_env}}", from_env(new.backend).to_owned()),
        ("{{servers_hint}}", servers_hint(new.backend).to_owned()),
        (
            "{{servers_exports}}",
            servers_exports(new.backend).to_owned(),
        ),
        ("{{server_steps}}", server_steps(new.backend, &new.name)),
    ];

    for &(path, template) in FILES {
        let text = values
            .iter()
            .fold(template.to_owned(), |text, (key, value)| {
                text.replace(key, value)
            });
        write(&root.join(path), &text)?;
    }
    make_executable(&root.join("scripts/test"))?;
    format_sources(&root);
    let shown = render::clean(&root.display().to_string());
    writeln!(
        out,
        "made {shown}: a contract, a producer and a consumer; next:"
    )?;
    writeln!(out, "  cd {shown}")?;
    writeln!(
        out,
        "  cargo run --bin {}-consumer  # in memory: sends one event, handles it",
        new.name
    )?;
    writeln!(out, "  scripts/test  # its tests")?;
    let servers = match new.backend {
        Backend::Memory => None,
        Backend::Redis => Some(("REDIS_EVENT_SOURCE_ENDPOINT=127.0.0.1:6379", "on Redis")),
        Backend::Kafka => Some((
            "KAFKA_EVENT_SOURCE_BROKERS=127.0.0.1:9092 REDIS_EVENT_SOURCE_ENDPOINT=127.0.0.1:6379",
            "on Kafka, the payloads in Redis",
        )),
    };
    if let Some((variables, on)) = servers {
        writeln!(
            out,
            "  {variables} cargo run --bin {}-producer -- 3  # {on}",
            new.name
        )?;
    }
    Ok(())
}

/// The facade as a dependency: from the checkout named, else the one `eb`
/// was built from while it is there, else crates.io.
fn dependency(new: &New) -> Result<String> {
    let features = match new.backend {
        Backend::Memory => "[]",
        Backend::Redis => "[\"redis\"]",
        Backend::Kafka => "[\"kafka\", \"redis\"]",
    };
    Ok(match new.backbone_path.clone().or_else(built_from) {
        None => {
            let version = env!("CARGO_PKG_VERSION");
            let minor = version.rsplit_once('.').map_or(version, |(m, _)| m);
            format!("event-backbone = {{ version = \"{minor}\", features = {features} }}")
        }
        Some(path) => {
            let path = std::fs::canonicalize(&path).map_err(|source| Error::File {
                path: path.display().to_string(),
                source,
            })?;
            let path = path.to_str().ok_or_else(|| {
                Error::Usage(format!(
                    "event-backbone's checkout {}: its path is not UTF-8 (name another with \
                     --backbone-path)",
                    path.display()
                ))
            })?;
            format!(
                "event-backbone = {{ path = {:?}, features = {features} }}",
                path
            )
        }
    })
}

/// What the project's backend module says it is.
fn backend_doc(backend: Backend) -> &'static str {
    match backend {
        Backend::Memory => "in memory, in this process only.",
        Backend::Redis => {
            "Redis when `REDIS_EVENT_SOURCE_ENDPOINT` is set (stream and payloads),\n//! else in memory, in this process only."
        }
        Backend::Kafka => {
            "Kafka (`KAFKA_EVENT_SOURCE_BROKERS`) with the payloads in\n//! Redis (`REDIS_EVENT_SOURCE_ENDPOINT`) when both are set, else in memory,\n//! in this process only."
        }
    }
}

/// The backend's `from_env`.
fn from_env(backend: Backend) -> &'static str {
    match backend {
        Backend::Memory => include_str!("../../templates/new/from_env_memory.rs"),
        Backend::Redis => include_str!("../../templates/new/from_env_redis.rs"),
        Backend::Kafka => include_str!("../../templates/new/from_env_kafka.rs"),
    }
}

/// What to set for the binaries to use a server.
fn servers_hint(backend: Backend) -> &'static str {
    match backend {
        Backend::Memory => {
            "this project is built for memory only; eb new --backend redis makes one for Redis"
        }
        Backend::Redis => "set REDIS_EVENT_SOURCE_ENDPOINT",
        Backend::Kafka => "set KAFKA_EVENT_SOURCE_BROKERS and REDIS_EVENT_SOURCE_ENDPOINT",
    }
}

/// The shell lines that set it.
fn servers_exports(backend: Backend) -> &'static str {
    match backend {
        Backend::Memory => "# (no server: this project runs in memory only)",
        Backend::Redis => "export REDIS_EVENT_SOURCE_ENDPOINT=127.0.0.1:6379",
        Backend::Kafka => concat!(
            "export KAFKA_EVENT_SOURCE_BROKERS=127.0.0.1:9092\n",
            "export REDIS_EVENT_SOURCE_ENDPOINT=127.0.0.1:6379\n",
            "export EB_CHANNEL=kafka://127.0.0.1:9092 EB_STORE=redis://127.0.0.1:6379  # for eb",
        ),
    }
}

/// The test script's steps on a server, when one is set.
fn server_steps(backend: Backend, name: &str) -> String {
    let variable = match backend {
        Backend::Memory => return "# Built for memory only: no server steps.".to_owned(),
        Backend::Redis => "REDIS_EVENT_SOURCE_ENDPOINT",
        Backend::Kafka => "KAFKA_EVENT_SOURCE_BROKERS",
    };
    format!(
        "if [ -n \"${{{variable}:-}}\" ]; then\n  cargo run --quiet --bin {name}-producer -- 2\n  \
         cargo run --quiet --bin {name}-consumer -- 2\nfi"
    )
}

/// The checkout `eb` was built from, if it is still there (`cargo install
/// --path cli` from a checkout of a version not on crates.io).
fn built_from() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).ok()?;
    manifest
        .lines()
        .any(|line| line.trim() == "name = \"event-backbone\"")
        .then(|| root.to_owned())
}

/// A crate name: lowercase letters, digits, `-` and `_`, a letter first.
fn check_name(name: &str) -> Result<String> {
    let ok = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        return Err(Error::Usage(format!(
            "NAME {name:?}: expected a crate name (lowercase letters, digits, - and _, a letter first)"
        )));
    }
    Ok(name.replace('-', "_"))
}

/// An event: a method name in snake case.
fn check_event(event: &str) -> Result<()> {
    let ok = event.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && event
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !KEYWORDS.contains(&event);
    if !ok {
        return Err(Error::Usage(format!(
            "--event {event:?}: expected a method name in snake case (order_placed), not a Rust keyword"
        )));
    }
    Ok(())
}

/// `my-shop` -> `MyShop`.
fn pascal_case(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn write(path: &Path, text: &str) -> Result<()> {
    let failed = |source| Error::File {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    std::fs::write(path, text).map_err(failed)
}

/// Formats the Rust files as `cargo fmt` would (the names put in change
/// line lengths), with `rustfmt` when there is one; as written otherwise.
fn format_sources(root: &Path) {
    let sources = FILES
        .iter()
        .map(|(path, _)| *path)
        .filter(|path| path.ends_with(".rs"))
        .map(|path| root.join(path));
    let _ = std::process::Command::new("rustfmt")
        .args(["--edition", "2021"])
        .args(sources)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// `chmod +x` (on Unix).
fn make_executable(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(path, mode).map_err(|source| Error::File {
            path: path.display().to_string(),
            source,
        })?;
    }
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_types_and_bad_ones_are_refused() {
        assert_eq!(pascal_case("my-shop_2"), "MyShop2");
        assert_eq!(check_name("my-shop").unwrap(), "my_shop");
        assert!(check_name("My Shop").is_err());
        assert!(check_name("9lives").is_err());
        assert!(check_event("order_placed").is_ok());
        for bad in ["OrderPlaced", "type", "order-placed", ""] {
            assert!(check_event(bad).is_err(), "{bad:?}");
        }
    }
}
