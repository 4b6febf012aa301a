//! The live view of a run on a terminal: one line per step with a spinner, its agent, the
//! tokens streamed so far and the time spent; plain lines when stderr is not a terminal.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use botarmy_protocol::{Event, LiveEvent, Plan, RunId};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

struct StepLine {
    bar: Option<ProgressBar>,
    tokens: u64,
    started: Instant,
}

/// Renders the live events of one run until its task is stopped.
pub struct Progress {
    run_id: RunId,
    plan: Plan,
    multi: Option<MultiProgress>,
    lines: HashMap<u32, StepLine>,
}

impl Progress {
    /// A view of `run_id`; animated when stderr is a terminal.
    pub fn new(run_id: RunId, plan: Plan) -> Self {
        let multi = std::io::stderr()
            .is_terminal()
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8)));
        Self {
            run_id,
            plan,
            multi,
            lines: HashMap::new(),
        }
    }

    /// Consumes live events until the run reaches its end, the channel closes, or `done`
    /// is cancelled (then what is already queued is still shown).
    pub async fn follow(
        mut self,
        mut rx: broadcast::Receiver<std::sync::Arc<LiveEvent>>,
        done: CancellationToken,
    ) {
        loop {
            let received = tokio::select! {
                r = rx.recv() => r,
                () = done.cancelled() => {
                    while let Ok(event) = rx.try_recv() {
                        self.show(&event);
                    }
                    break;
                }
            };
            match received {
                Ok(event) => {
                    if self.show(&event) {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
        if let Some(multi) = &self.multi {
            let _ = multi.clear();
        }
    }

    fn label(&self, step: u32) -> (String, String, String) {
        self.plan.steps.get(step as usize).map_or_else(
            || (String::new(), String::new(), format!("step {step}")),
            |s| {
                let what = s.creates.clone().unwrap_or_else(|| s.title.clone());
                (s.phase.clone().unwrap_or_default(), s.agent.clone(), what)
            },
        )
    }

    fn print(&self, line: String) {
        match &self.multi {
            Some(multi) => {
                let _ = multi.println(line);
            }
            None => {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{line}");
            }
        }
    }

    /// Shows one event; returns whether the run has ended.
    fn show(&mut self, live: &LiveEvent) -> bool {
        match live {
            LiveEvent::Token { run_id, step, .. } if *run_id == self.run_id => {
                if let Some(line) = self.lines.get_mut(step) {
                    line.tokens += 1;
                    if let Some(bar) = &line.bar {
                        bar.set_position(line.tokens);
                    }
                }
                false
            }
            LiveEvent::Event(record) if record.run_id == self.run_id => {
                self.show_event(&record.event)
            }
            _ => false,
        }
    }

    fn show_event(&mut self, event: &Event) -> bool {
        match event {
            Event::StepStarted { step, attempt, .. } => {
                let (phase, agent, what) = self.label(*step);
                let retry = if *attempt > 1 {
                    format!(" (attempt {attempt})")
                } else {
                    String::new()
                };
                let bar = self.multi.as_ref().map(|multi| {
                    let bar = multi.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{spinner} {prefix} {msg} {pos} tok {elapsed}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.set_prefix(format!("{phase:<9} {agent:<10}"));
                    bar.set_message(format!("{what}{retry}"));
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar
                });
                if bar.is_none() {
                    self.print(format!("  … {phase:<9} {agent:<10} {what}{retry}"));
                }
                self.lines.insert(
                    *step,
                    StepLine {
                        bar,
                        tokens: 0,
                        started: Instant::now(),
                    },
                );
                false
            }
            Event::StepCompleted { step, usage, .. } => {
                let (phase, agent, what) = self.label(*step);
                let secs = self
                    .lines
                    .get(step)
                    .map_or(0.0, |l| l.started.elapsed().as_secs_f64());
                self.finish_line(*step);
                self.print(format!(
                    "  ✓ {phase:<9} {agent:<10} {what}  ({} tok, {secs:.1}s)",
                    usage.output_tokens
                ));
                false
            }
            Event::StepSkipped { step, reason } => {
                let (phase, agent, what) = self.label(*step);
                self.finish_line(*step);
                self.print(format!(
                    "  – {phase:<9} {agent:<10} {what}  skipped: {reason}"
                ));
                false
            }
            Event::StepFailed {
                step,
                attempt,
                error,
            } => {
                let (phase, agent, what) = self.label(*step);
                self.finish_line(*step);
                self.print(format!(
                    "  ✗ {phase:<9} {agent:<10} {what}  attempt {attempt} failed: {}",
                    error.message
                ));
                false
            }
            Event::StepInterrupted { step, .. } => {
                self.finish_line(*step);
                false
            }
            Event::ConflictDetected { detail, .. } => {
                let sides: Vec<String> = detail
                    .positions
                    .iter()
                    .map(|p| format!("{} ({})", p.artifact, p.agent))
                    .collect();
                self.print(format!(
                    "  ⚔ conflict: {} [{}]",
                    detail.description,
                    sides.join(" vs ")
                ));
                false
            }
            Event::ConflictMediated { round, outcome, .. } => {
                self.print(format!(
                    "    mediation round {round}: agreement {:.2}",
                    outcome.score
                ));
                false
            }
            Event::ConflictResolved { resolution, .. } => {
                self.print(format!("    settled by {}", resolution.by));
                false
            }
            Event::PipelineCompleted { .. }
            | Event::PipelineFailed { .. }
            | Event::PipelineCancelled { .. }
            | Event::PipelinePaused { .. }
            | Event::PipelineWaiting { .. } => true,
            _ => false,
        }
    }

    fn finish_line(&mut self, step: u32) {
        if let Some(line) = self.lines.get_mut(&step)
            && let Some(bar) = line.bar.take()
        {
            bar.finish_and_clear();
        }
    }
}
