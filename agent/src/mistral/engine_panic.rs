//! Why the engine last died: mistral.rs runs its engine on a thread of its own, and a panic
//! there reaches a request only as a closed channel. A panic hook keeps the message, which the
//! failed request (or load) then reports as one error; the panic itself is not printed (a user
//! sees the error, never a backtrace), only logged at debug level.

use std::sync::{Mutex, Once};

static LAST: Mutex<Option<String>> = Mutex::new(None);
static INSTALL: Once = Once::new();

/// Records panics raised in the engine's crates (the previous hook still runs).
pub fn watch() {
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let engine = info.location().is_some_and(|l| {
                // The engine's crates, and our logits processors, which run on its thread.
                ["mistralrs", "candle", "llguidance", "agent/src/mistral"]
                    .iter()
                    .any(|c| l.file().contains(c))
            });
            if engine && let Ok(mut last) = LAST.lock() {
                let message = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into());
                let at = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                tracing::debug!("engine panic: {message}{at}");
                *last = Some(format!("{message}{at}"));
                return;
            }
            previous(info);
        }));
    });
}

/// The last engine panic's message and place, taken (each is reported once).
pub fn last() -> Option<String> {
    LAST.lock().ok().and_then(|mut l| l.take())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_engine_side_panic_is_kept_once() {
        watch();
        let line = line!() + 1;
        let died = std::thread::spawn(|| panic!("the sampler broke")).join();
        assert!(died.is_err());
        assert_eq!(
            last(),
            Some(format!(
                "the sampler broke at agent/src/mistral/engine_panic.rs:{line}"
            ))
        );
        assert_eq!(last(), None);
    }
}
