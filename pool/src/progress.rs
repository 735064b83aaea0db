//! The progress bar of long maps (indicatif, drawn on stderr; hidden when stderr is
//! not a terminal).

use indicatif::{ProgressBar, ProgressStyle};

/// Maps shorter than this draw no bar: it would only flicker.
const MIN_ITEMS: u64 = 2;

/// A progress bar, or nothing.
pub(crate) struct Progress(Option<ProgressBar>);

impl Progress {
    /// A bar over `total` items when `enabled`; `total` `None` draws a spinner.
    pub(crate) fn new(enabled: bool, total: Option<u64>) -> Progress {
        if !enabled || total.is_some_and(|t| t < MIN_ITEMS) {
            return Progress(None);
        }
        let bar = match total {
            Some(total) => {
                let bar = ProgressBar::new(total);
                if let Ok(style) = ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} tasks ({per_sec}, eta {eta})",
                ) {
                    bar.set_style(style);
                }
                bar
            }
            None => ProgressBar::new_spinner(),
        };
        Progress(Some(bar))
    }

    /// One more item done.
    pub(crate) fn inc(&self) {
        self.inc_by(1);
    }

    /// `n` more items done.
    pub(crate) fn inc_by(&self, n: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(n);
        }
    }

    /// Leaves the bar's final state on screen, and ends its line: indicatif leaves
    /// the cursor after the bar, where the program's next output would continue it.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish();
            if !bar.is_hidden() {
                eprintln!();
            }
        }
    }
}
