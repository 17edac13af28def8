//! Containing panics of code Cairn does not own, so that one bad input ends
//! one piece of work with an error, never the process.
//!
//! Cairn's own code does not panic on input (the lints forbid `unwrap`,
//! `expect`, `panic!` and unchecked indexing); dependencies can, on inputs
//! their authors did not foresee (wasmtime compiling an odd component, say).
//! [`catch`] runs such a call and turns a panic into its message, printed by
//! no one: the caller reports it as the error it is. The panic hook stays
//! quiet only while a [`catch`] is running (on any thread: a compiler's
//! worker threads panic on our behalf); other panics are printed as usual.
//! Panics that abort (a stack overflow) cannot be caught: `policy::bounds`
//! keeps inputs small enough that none happens.

use std::panic::{AssertUnwindSafe, PanicHookInfo};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once, PoisonError};

/// How many [`catch`]es are running.
static CATCHING: AtomicUsize = AtomicUsize::new(0);
/// Where the last quiet panic happened.
static LAST: Mutex<Option<String>> = Mutex::new(None);

fn install() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
            if CATCHING.load(Ordering::SeqCst) > 0 {
                let place = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()));
                *LAST.lock().unwrap_or_else(PoisonError::into_inner) = place;
            } else {
                previous(info);
            }
        }));
    });
}

/// Run `work`; a panic in it (or in threads it waits for) becomes `Err`
/// with the panic's message and where it happened.
///
/// # Errors
///
/// The panic's message, when `work` panicked.
pub fn catch<T>(work: impl FnOnce() -> T) -> Result<T, String> {
    install();
    CATCHING.fetch_add(1, Ordering::SeqCst);
    let result = std::panic::catch_unwind(AssertUnwindSafe(work));
    CATCHING.fetch_sub(1, Ordering::SeqCst);
    result.map_err(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "a panic without a message".to_owned());
        match LAST.lock().unwrap_or_else(PoisonError::into_inner).take() {
            Some(place) => format!("{message} (at {place})"),
            None => message,
        }
    })
}

#[cfg(test)]
#[allow(clippy::panic, reason = "the panics under test")]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message_also_from_another_thread() {
        assert_eq!(catch(|| 7), Ok(7));
        let e = catch(|| panic!("boom {}", 1)).unwrap_err();
        assert!(e.starts_with("boom 1 (at "), "{e}");
        let e = catch(|| {
            std::thread::scope(|s| {
                s.spawn(|| panic!("worker"));
            });
        })
        .unwrap_err();
        assert!(e.contains("worker") || e.contains("panicked"), "{e}");
    }
}
