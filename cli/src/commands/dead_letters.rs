//! `eb dead-letters list` and `eb dead-letters redrive`.

use std::io::Write;

use event_backbone::{DeadLetter, Redrive};

use crate::args::{self, Connection};
use crate::connect;
use crate::error::{Error, Result};
use crate::{progress, render};

/// Lists or redrives.
pub async fn run(
    connection: &Connection,
    what: &args::DeadLetters,
    out: &mut impl Write,
) -> Result<()> {
    let command = match what {
        args::DeadLetters::List { .. } => "dead-letters list",
        args::DeadLetters::Redrive(_) => "dead-letters redrive",
    };
    let address = connect::stream(connection)?;
    let channel = connect::channel(connection).await?;
    let store = connect::store(connection)
        .await?
        .ok_or(Error::NoStore { command })?;
    let redrive = connect::endpoint(Redrive::builder(), channel, store, &address, None).build()?;
    let letters = redrive.list().await?;
    match what {
        args::DeadLetters::List { all, json } => list(&letters, *all, *json, out),
        args::DeadLetters::Redrive(which) => {
            let chosen = choose(&redrive, &letters, which)?;
            let bar = progress::bar(Some(chosen.len() as u64), "redriving");
            let mut redriven = 0;
            for letter in &chosen {
                bar.inc(1);
                let shown = render::dead_letter_line(letter);
                let line = if let Some(to) = &letter.redriven_to {
                    format!("already redriven to {to}  {shown}")
                } else if let (true, Some(why)) = (which.dry_run, letter.not_redrivable()) {
                    format!("cannot redrive ({why})  {shown}")
                } else if which.dry_run {
                    redriven += 1;
                    format!("would redrive  {shown}")
                } else {
                    let copy = redrive.redrive(letter).await?;
                    redriven += 1;
                    format!("redriven to {copy}  {shown}")
                };
                bar.suspend(|| writeln!(out, "{line}").and_then(|()| out.flush()))?;
            }
            bar.finish_and_clear();
            let verb = if which.dry_run {
                "would redrive"
            } else {
                "redrove"
            };
            writeln!(out, "{verb} {redriven} of {} dead letters", letters.len())?;
            Ok(())
        }
    }
}

/// The dead letters `--id`, `--all` and `--operation` pick: with `--all`,
/// those not yet redriven that can be; with `--id`, each named one (an
/// unknown id is an error before anything is redriven).
fn choose<'a>(
    redrive: &Redrive,
    letters: &'a [DeadLetter],
    which: &args::Redrive,
) -> Result<Vec<&'a DeadLetter>> {
    let of_operation = |l: &DeadLetter| {
        which
            .operation
            .as_deref()
            .is_none_or(|op| l.operation() == Some(op))
    };
    if which.all {
        return Ok(letters
            .iter()
            .filter(|l| l.redriven_to.is_none() && l.not_redrivable().is_none())
            .filter(|l| of_operation(l))
            .collect());
    }
    let mut chosen = Vec::new();
    for id in &which.ids {
        let letter = letters
            .iter()
            .find(|l| l.entry.as_str() == id)
            .ok_or_else(|| Error::NoSuchDeadLetter {
                stream: redrive.dead_letter_stream(),
                entry: id.clone(),
            })?;
        if of_operation(letter) {
            chosen.push(letter);
        }
    }
    Ok(chosen)
}

fn list(letters: &[DeadLetter], all: bool, json: bool, out: &mut impl Write) -> Result<()> {
    let shown: Vec<&DeadLetter> = letters
        .iter()
        .filter(|l| all || l.redriven_to.is_none())
        .collect();
    if json {
        let rows: Vec<serde_json::Value> = shown
            .iter()
            .map(|l| {
                serde_json::json!({
                    "entry": l.entry.to_string(),
                    "operation": l.operation(),
                    "original_message_id": l.metadata.as_ref().map(|m| m.original_id().to_string()),
                    "original_entry": l.original_entry,
                    "group": l.group,
                    "deliveries": l.deliveries,
                    "reason": l.reason,
                    "redriven_to": l.redriven_to.as_ref().map(|e| e.to_string()),
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::Value::Array(rows))?;
        return Ok(());
    }
    if shown.is_empty() {
        let redriven = letters.len();
        match redriven {
            0 => writeln!(out, "no dead letters")?,
            n => writeln!(out, "no dead letters left ({n} redriven: --all lists them)")?,
        }
        return Ok(());
    }
    for letter in shown {
        match &letter.redriven_to {
            Some(to) => writeln!(
                out,
                "{}  redriven to {to}",
                render::dead_letter_line(letter)
            )?,
            None => writeln!(out, "{}", render::dead_letter_line(letter))?,
        }
    }
    Ok(())
}
