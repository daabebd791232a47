//! Responses serialized under the byte cap.

use super::*;

/// A response that would be larger than the limit; nothing of it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseTooLarge {
    pub limit: usize,
}

impl ResponseTooLarge {
    /// The error a client gets instead of the response.
    pub fn error(&self) -> ServerError {
        let mut e = exceeded(format!(
            "the response is larger than the limit of {} bytes; ask for fewer or smaller pages",
            self.limit
        ));
        e.extensions
            .get_or_insert_with(Default::default)
            .set("maxResponseBytes", self.limit as u64);
        e
    }
}

/// A writer that refuses to grow past its limit.
pub(super) struct Capped {
    pub(super) buf: Vec<u8>,
    pub(super) limit: usize,
}

impl std::io::Write for Capped {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > self.limit {
            return Err(std::io::Error::other("response limit reached"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Serializes `value` as JSON, stopping as soon as it would pass `limit` bytes.
pub fn to_json_capped<T: serde::Serialize + ?Sized>(value: &T, limit: usize) -> Result<Vec<u8>, ResponseTooLarge> {
    let mut w = Capped {
        buf: Vec::with_capacity(limit.min(4096)),
        limit,
    };
    match serde_json::to_writer(&mut w, value) {
        Ok(()) => Ok(w.buf),
        // The only writer error is the limit.
        Err(e) if e.is_io() => Err(ResponseTooLarge { limit }),
        Err(e) => panic!("responses serialize: {e}"),
    }
}
