//! Progress bars for the library's long steps (replay, snapshot load and
//! write, compaction): the library reports through
//! [`Options::progress`](ticketlog::Options::progress); this draws a bar on
//! stderr once a step has run for a second, and never when stderr is not a
//! terminal. The drawing happens on its own thread, so the callback — which
//! runs on the store's threads — only stores three numbers.

use std::io::IsTerminal;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ticketlog::{Options, Progress, ProgressStep};

/// How long a step runs before its bar appears.
const SHOW_AFTER: Duration = Duration::from_secs(1);
/// How often the bar is redrawn.
const REDRAW_EVERY: Duration = Duration::from_millis(100);

/// The latest report and when its step began.
#[derive(Default)]
struct Latest {
    report: Option<(Progress, Instant)>,
}

/// Draws the bars of one CLI invocation until dropped.
pub(crate) struct StepBars {
    latest: Arc<Mutex<Latest>>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl StepBars {
    /// Starts the drawing thread (only when stderr is a terminal).
    pub fn start() -> StepBars {
        let latest = Arc::new(Mutex::new(Latest::default()));
        if !std::io::stderr().is_terminal() {
            return StepBars {
                latest,
                stop: None,
                thread: None,
            };
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let shared = Arc::clone(&latest);
        let thread = thread::spawn(move || {
            let mut shown: Option<(ProgressStep, ProgressBar)> = None;
            loop {
                let report = shared.lock().map_or(None, |latest| latest.report);
                if let Some((progress, began)) = report
                    && began.elapsed() >= SHOW_AFTER
                {
                    if shown
                        .as_ref()
                        .is_none_or(|(step, _)| *step != progress.step)
                    {
                        if let Some((_, bar)) = shown.take() {
                            bar.finish_and_clear();
                        }
                        let bar = ProgressBar::with_draw_target(
                            Some(progress.total),
                            ProgressDrawTarget::stderr(),
                        );
                        if let Ok(style) = ProgressStyle::with_template(
                            "{msg} [{bar:40}] {pos}/{len} ({percent}%, eta {eta})",
                        ) {
                            bar.set_style(style);
                        }
                        bar.set_message(progress.step.name());
                        shown = Some((progress.step, bar));
                    }
                    if let Some((_, bar)) = &shown {
                        bar.set_length(progress.total);
                        bar.set_position(progress.done);
                    }
                }
                match stopped.recv_timeout(REDRAW_EVERY) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => break,
                }
            }
            if let Some((_, bar)) = shown {
                bar.finish_and_clear();
            }
        });
        StepBars {
            latest,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `options` with a progress callback that feeds these bars.
    pub fn install(&self, options: Options) -> Options {
        let latest = Arc::clone(&self.latest);
        options.progress(move |progress| {
            if let Ok(mut latest) = latest.lock() {
                let began = match latest.report {
                    Some((previous, began)) if previous.step == progress.step => began,
                    _ => Instant::now(),
                };
                latest.report = Some((progress, began));
            }
        })
    }
}

impl Drop for StepBars {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
