//! Captured stdout and stderr of a guest, with a hard cap.
//!
//! A guest's standard streams never reach the host's: they are captured into
//! memory, and a guest that writes past its limit is stopped (a trap, so that
//! a program ignoring write errors cannot spin forever). The capture remembers
//! that it overflowed, so the outcome names the limit.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi_io::poll::Pollable;
use wasmtime_wasi_io::streams::{OutputStream, StreamError, StreamResult};

#[derive(Debug)]
struct State {
    buf: Vec<u8>,
    limit: usize,
    overflowed: bool,
}

/// One captured stream; clones share the same buffer.
#[derive(Debug, Clone)]
pub(crate) struct Capture(Arc<Mutex<State>>);

impl Capture {
    pub(crate) fn new(limit: u64) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Self(Arc::new(Mutex::new(State {
            buf: Vec::new(),
            limit,
            overflowed: false,
        })))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the buffer torn.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Append `bytes`; false (and nothing appended) if that would pass the limit.
    fn append(&self, bytes: &[u8]) -> bool {
        let mut state = self.state();
        if bytes.len() > state.limit.saturating_sub(state.buf.len()) {
            state.overflowed = true;
            return false;
        }
        state.buf.extend_from_slice(bytes);
        true
    }

    pub(crate) fn overflowed(&self) -> bool {
        self.state().overflowed
    }

    pub(crate) fn take(&self) -> Vec<u8> {
        std::mem::take(&mut self.state().buf)
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl OutputStream for Capture {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        if self.append(&bytes) {
            Ok(())
        } else {
            Err(StreamError::Trap(wasmtime::format_err!(
                "output limit exceeded"
            )))
        }
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always accept a write: one past the limit is what trips it.
        Ok(64 * 1024)
    }
}

impl AsyncWrite for Capture {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.append(buf) {
            Poll::Ready(Ok(buf.len()))
        } else {
            Poll::Ready(Err(io::Error::other("output limit exceeded")))
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_and_remembers_overflow() {
        let mut capture = Capture::new(4);
        assert!(OutputStream::write(&mut capture, Bytes::from_static(b"abc")).is_ok());
        assert!(!capture.overflowed());
        assert!(OutputStream::write(&mut capture, Bytes::from_static(b"de")).is_err());
        assert!(capture.overflowed());
        assert_eq!(capture.take(), b"abc");
    }
}
