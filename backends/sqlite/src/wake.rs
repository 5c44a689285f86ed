//! Wake-ups of blocked reads: an append in this process wakes the reads of
//! its stream, whichever [`crate::Sqlite`] handle on the same file made
//! it. Appends by another process are seen by polling.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use tokio::sync::Notify;

/// The reads waiting per stream, for one file.
#[derive(Debug, Default)]
pub(crate) struct Wakeups {
    streams: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Wakeups {
    /// The wake-ups of the file at `path`, shared by every handle on it in
    /// this process.
    pub(crate) fn of_file(path: &Path) -> Arc<Self> {
        static FILES: OnceLock<Mutex<HashMap<PathBuf, Weak<Wakeups>>>> = OnceLock::new();
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        let mut files = FILES
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        files.retain(|_, w| w.strong_count() > 0);
        if let Some(found) = files.get(&key).and_then(Weak::upgrade) {
            return found;
        }
        let made = Arc::new(Self::default());
        files.insert(key, Arc::downgrade(&made));
        made
    }

    /// What a read of `stream` waits on.
    pub(crate) fn of(&self, stream: &str) -> Arc<Notify> {
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        streams.entry(stream.to_owned()).or_default().clone()
    }

    /// Wakes the reads of `stream`.
    pub(crate) fn wake(&self, stream: &str) {
        let streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(notify) = streams.get(stream) {
            notify.notify_waiters();
        }
    }
}
