//! `eb`: the operator's command line of event-backbone. See the crate's
//! README.
#![forbid(unsafe_code)]

mod args;
mod commands;
mod connect;
mod error;
mod progress;
mod render;

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::args::{Cli, Command};
use crate::error::Result;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    // clap exits with 2 on a usage error and 0 for --help.
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match run(&cli, &mut out).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = out.flush();
            eprintln!("eb: {}", render::clean(&e.to_string()));
            if e.is_usage() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

async fn run(cli: &Cli, out: &mut impl Write) -> Result<()> {
    let connection = &cli.connection;
    match &cli.command {
        Command::Streams { json } => commands::streams::run(connection, *json, out).await,
        Command::Info { json, groups } => commands::info::run(connection, *json, groups, out).await,
        Command::Tail(tail) => commands::tail::run(connection, tail, out).await,
        Command::Get { entry } => commands::get::run(connection, entry, out).await,
        Command::DeadLetters(what) => commands::dead_letters::run(connection, what, out).await,
        Command::Copy(copy) => commands::copy::run(connection, copy, out).await,
        Command::Erase { subject } => commands::subject::erase(connection, subject, out).await,
        Command::Export { subject, out: to } => {
            commands::subject::export(connection, subject, to.as_deref(), out).await
        }
        Command::New(new) => commands::new::run(new, out),
        Command::Outbox(args::Outbox::Relay(relay)) => {
            commands::outbox::relay(connection, relay, out).await
        }
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "eb", out);
            Ok(())
        }
    }
}
