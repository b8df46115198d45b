//! `log` records on the guest console, at the level the `--solo5:` option
//! chose (`quiet` prints none).

use hvt_bindings::cmdline::LogLevel;
use hvt_bindings::console::log_enabled;
use log::{Level, LevelFilter, Metadata, Record};

struct ConsoleLogger;

fn solo5_level(level: Level) -> LogLevel {
    match level {
        Level::Error => LogLevel::Error,
        Level::Warn => LogLevel::Warn,
        Level::Info => LogLevel::Info,
        Level::Debug | Level::Trace => LogLevel::Debug,
    }
}

impl log::Log for ConsoleLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        log_enabled(solo5_level(metadata.level()))
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            hvt_bindings::console::print_fmt(format_args!(
                "[{}] {}\n",
                record.level(),
                record.args()
            ));
        }
    }

    fn flush(&self) {}
}

static LOGGER: ConsoleLogger = ConsoleLogger;

/// Installs the console logger (once per process; later calls only set the
/// level) with the level the command line chose.
pub fn init() {
    let _ = log::set_logger(&LOGGER);
    let max = [
        LevelFilter::Debug,
        LevelFilter::Info,
        LevelFilter::Warn,
        LevelFilter::Error,
        LevelFilter::Off,
    ]
    .into_iter()
    .find(|filter| {
        filter
            .to_level()
            .is_none_or(|level| log_enabled(solo5_level(level)))
    })
    .unwrap_or(LevelFilter::Off);
    log::set_max_level(max);
}
