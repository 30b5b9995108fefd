//! Incremental decoders for upstream streams: Server-Sent Events and NDJSON.
//!
//! Both are fed byte chunks cut anywhere (mid-line, mid-UTF-8, between `\r`
//! and `\n`) and yield whole events, like mini-redis's `Frame::check`. Memory
//! is bounded: a line longer than [`MAX_LINE`], or an SSE event whose
//! `data:` lines add up to more, is an error, not a growing buffer.

/// The longest line either decoder accepts (bytes).
pub const MAX_LINE: usize = 8 * 1024 * 1024;

/// A stream that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A line went past [`MAX_LINE`].
    #[error("line longer than {MAX_LINE} bytes")]
    LineTooLong,
    /// One SSE event's data went past [`MAX_LINE`].
    #[error("event longer than {MAX_LINE} bytes")]
    EventTooLong,
}

/// Splits bytes into lines ending in `\n`, `\r\n` or `\r`.
#[derive(Debug, Default)]
struct Lines {
    buf: Vec<u8>,
    pos: usize,
    /// The previous chunk ended in `\r`: a leading `\n` belongs to it.
    skip_lf: bool,
}

impl Lines {
    fn push(&mut self, chunk: &[u8]) {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    fn next_line(&mut self) -> Result<Option<String>, DecodeError> {
        if self.skip_lf && self.pos < self.buf.len() {
            if self.buf[self.pos] == b'\n' {
                self.pos += 1;
            }
            self.skip_lf = false;
        }
        let rest = &self.buf[self.pos..];
        let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'\r') else {
            if rest.len() > MAX_LINE {
                return Err(DecodeError::LineTooLong);
            }
            self.compact();
            return Ok(None);
        };
        let line = String::from_utf8_lossy(&rest[..end]).into_owned();
        if rest[end] == b'\r' {
            match rest.get(end + 1) {
                Some(b'\n') => self.pos += 1,
                Some(_) => {}
                None => self.skip_lf = true,
            }
        }
        self.pos += end + 1;
        Ok(Some(line))
    }

    /// Whatever is left without a line ending (at the end of the stream).
    fn take_rest(&mut self) -> Option<String> {
        let rest = &self.buf[self.pos..];
        let out = (!rest.is_empty()).then(|| String::from_utf8_lossy(rest).into_owned());
        self.buf.clear();
        self.pos = 0;
        out
    }

    fn compact(&mut self) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, when present.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Incremental SSE decoder.
#[derive(Debug, Default)]
pub struct SseDecoder {
    lines: Lines,
    event: Option<String>,
    data: Option<String>,
}

impl SseDecoder {
    /// A decoder with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add bytes as they arrive.
    pub fn push(&mut self, chunk: &[u8]) {
        self.lines.push(chunk);
    }

    /// The next complete event, `Ok(None)` when more bytes are needed.
    pub fn next_event(&mut self) -> Result<Option<SseEvent>, DecodeError> {
        while let Some(line) = self.lines.next_line()? {
            if line.is_empty() {
                if let Some(ev) = self.dispatch() {
                    return Ok(Some(ev));
                }
                continue;
            }
            self.field(&line)?;
        }
        Ok(None)
    }

    /// At the end of the stream: an event left without its blank line.
    /// (The spec drops it; upstreams that forget the last blank line exist.)
    pub fn finish(&mut self) -> Option<SseEvent> {
        if let Some(line) = self.lines.take_rest() {
            // Too long: no event (the stream then ends incomplete).
            self.field(&line).ok()?;
        }
        self.dispatch()
    }

    fn field(&mut self, line: &str) -> Result<(), DecodeError> {
        if line.starts_with(':') {
            return Ok(());
        }
        let (name, value) = match line.split_once(':') {
            Some((n, v)) => (n, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match name {
            "data" => match &mut self.data {
                Some(d) if d.len() + 1 + value.len() > MAX_LINE => {
                    self.data = None;
                    self.event = None;
                    return Err(DecodeError::EventTooLong);
                }
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            "event" => self.event = Some(value.to_owned()),
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        self.data.take().map(|data| SseEvent { event, data })
    }
}

/// Incremental newline-delimited JSON decoder (yields raw non-empty lines).
#[derive(Debug, Default)]
pub struct NdjsonDecoder {
    lines: Lines,
}

impl NdjsonDecoder {
    /// A decoder with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add bytes as they arrive.
    pub fn push(&mut self, chunk: &[u8]) {
        self.lines.push(chunk);
    }

    /// The next non-blank line, `Ok(None)` when more bytes are needed.
    pub fn next_line(&mut self) -> Result<Option<String>, DecodeError> {
        while let Some(line) = self.lines.next_line()? {
            if !line.trim().is_empty() {
                return Ok(Some(line));
            }
        }
        Ok(None)
    }

    /// At the end of the stream: a last line without its newline.
    pub fn finish(&mut self) -> Option<String> {
        self.lines.take_rest().filter(|l| !l.trim().is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut d = SseDecoder::new();
        let mut out = vec![];
        for c in chunks {
            d.push(c);
            while let Some(e) = d.next_event().unwrap() {
                out.push(e);
            }
        }
        out.extend(d.finish());
        out
    }

    const STREAM: &[u8] = b": keep-alive\r\n\r\ndata: {\"a\":\"\xc3\xa9\"}\r\n\r\nevent: ping\ndata: x\ndata:y\n\ndata: [DONE]\r\r";

    #[test]
    fn sse_cut_at_every_offset_gives_the_same_events() {
        let whole = sse_all(&[STREAM]);
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[0].data, "{\"a\":\"é\"}");
        assert_eq!(
            whole[1],
            SseEvent {
                event: Some("ping".into()),
                data: "x\ny".into()
            }
        );
        assert_eq!(whole[2].data, "[DONE]");
        for i in 0..=STREAM.len() {
            for j in i..=STREAM.len() {
                let (a, rest) = STREAM.split_at(i);
                let (b, c) = rest.split_at(j - i);
                assert_eq!(sse_all(&[a, b, c]), whole, "cut at {i},{j}");
            }
        }
    }

    #[test]
    fn sse_event_without_final_blank_line() {
        let ev = sse_all(&[b"data: {\"x\":1}\n\ndata: last"]);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[1].data, "last");
    }

    #[test]
    fn sse_line_too_long_is_an_error() {
        let mut d = SseDecoder::new();
        let big = vec![b'a'; MAX_LINE + 1];
        d.push(b"data: ");
        d.push(&big);
        assert_eq!(d.next_event(), Err(DecodeError::LineTooLong));
    }

    #[test]
    fn sse_event_of_many_short_lines_is_bounded_too() {
        let mut d = SseDecoder::new();
        // 1 KiB data lines, never a blank line: no single line is long.
        let line = format!("data: {}\n", "a".repeat(1024));
        let mut pushed = 0;
        let err = loop {
            d.push(line.as_bytes());
            pushed += line.len();
            match d.next_event() {
                Ok(None) => assert!(pushed < 2 * MAX_LINE, "never refused"),
                other => break other,
            }
        };
        assert_eq!(err, Err(DecodeError::EventTooLong));
        // The data held is each line's 1 KiB plus a joining newline.
        let lines = pushed / line.len();
        assert_eq!(lines, MAX_LINE / 1025 + 1, "refused at the bound");
    }

    #[test]
    fn ndjson_cut_at_every_offset() {
        let s: &[u8] = b"{\"a\":1}\n\n{\"b\":\"\xe2\x82\xac\"}\r\n{\"c\":3}";
        let collect = |parts: &[&[u8]]| {
            let mut d = NdjsonDecoder::new();
            let mut out = vec![];
            for p in parts {
                d.push(p);
                while let Some(l) = d.next_line().unwrap() {
                    out.push(l);
                }
            }
            out.extend(d.finish());
            out
        };
        let whole = collect(&[s]);
        assert_eq!(whole, vec!["{\"a\":1}", "{\"b\":\"€\"}", "{\"c\":3}"]);
        for i in 0..=s.len() {
            let (a, b) = s.split_at(i);
            assert_eq!(collect(&[a, b]), whole, "cut at {i}");
        }
    }
}
