//! The last lines a stdio server wrote to its stderr, kept to explain why it failed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::ChildStderr;
use tokio::task::JoinHandle;

const KEPT_LINES: usize = 20;
const MAX_LINE: usize = 500;

/// The tail of a server's stderr (empty for an HTTP server).
#[derive(Debug, Clone, Default)]
pub(crate) struct StderrTail {
    lines: Arc<Mutex<VecDeque<String>>>,
}

impl StderrTail {
    /// Reads `stderr` until it closes, keeping its last lines; the task ends with it.
    pub(crate) fn follow(stderr: ChildStderr) -> (Self, JoinHandle<()>) {
        let tail = Self::default();
        let lines = tail.lines.clone();
        let task = tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(mut line)) = reader.next_line().await {
                if let Some((cut, _)) = line.char_indices().nth(MAX_LINE) {
                    line.truncate(cut);
                    line.push('…');
                }
                let mut kept = match lines.lock() {
                    Ok(kept) => kept,
                    Err(poisoned) => poisoned.into_inner(),
                };
                if kept.len() == KEPT_LINES {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
        });
        (tail, task)
    }

    /// The kept lines, introduced, or nothing when there are none.
    pub(crate) fn render(&self) -> String {
        let kept = match self.lines.lock() {
            Ok(kept) => kept,
            Err(poisoned) => poisoned.into_inner(),
        };
        if kept.is_empty() {
            return String::new();
        }
        let lines: Vec<&str> = kept.iter().map(String::as_str).collect();
        format!("; the server's stderr ended with:\n{}", lines.join("\n"))
    }
}
