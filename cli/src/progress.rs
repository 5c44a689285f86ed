//! Progress bars on long operations (copy, redrive, erase, export): count,
//! rate and time left on a terminal; nothing when the standard error is not
//! one (a pipe, a file, CI).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar of `total` steps (a spinner with a count when the total is not
/// known), labelled `what`, drawn on the standard error when it is a
/// terminal.
pub fn bar(total: Option<u64>, what: &'static str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
    let template = match total {
        Some(_) => "{msg} [{bar:30}] {human_pos}/{human_len} {per_sec} ETA {eta}",
        None => "{spinner} {msg} {human_pos} {per_sec}",
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what);
    bar
}
