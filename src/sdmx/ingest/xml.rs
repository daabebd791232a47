//! A bounded pull reader over an SDMX-ML file: elements come one at a time with their line,
//! the file is never held as a tree, and every token (a tag with its attributes, a run of
//! text) is refused past [`MAX_TOKEN_BYTES`], nesting past [`MAX_DEPTH`].

use std::io::{BufRead, Read};

use quick_xml::events::{BytesStart, Event};

use super::{fail, MAX_DEPTH, MAX_TOKEN_BYTES};
use crate::domain::text::{quote_at_most, QUOTE};
use crate::import::ImportError;

/// The input, counting the lines consumed and refusing a token longer than the limit
/// (bytes read since [`Counted::reset_token`]) once it is past it, before more is held.
pub struct Counted<R> {
    inner: R,
    newlines: usize,
    since: usize,
}

impl<R: BufRead> Counted<R> {
    pub fn new(inner: R) -> Self {
        Counted {
            inner,
            newlines: 0,
            since: 0,
        }
    }

    /// Starts a new token: the limit counts from here.
    pub fn reset_token(&mut self) {
        self.since = 0;
    }
}

impl<R: BufRead> Read for Counted<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = {
            let buf = self.fill_buf()?;
            let n = buf.len().min(out.len());
            out[..n].copy_from_slice(&buf[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counted<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.since > MAX_TOKEN_BYTES {
            return Err(std::io::Error::other(format!(
                "a tag or text longer than the limit of {MAX_TOKEN_BYTES} bytes"
            )));
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        // The bytes consumed are still in the inner reader's buffer: no input is read here.
        if let Ok(buf) = self.inner.fill_buf() {
            self.newlines += buf[..amt.min(buf.len())].iter().filter(|&&b| b == b'\n').count();
        }
        self.since += amt;
        self.inner.consume(amt);
    }
}

/// One element's start: its local name (no prefix), its attributes by local name, and the
/// line where it ends.
#[derive(Debug, Clone)]
pub struct Start {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub line: usize,
}

impl Start {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// `Name at line N`, how errors name an element.
    pub fn at(&self) -> String {
        format!("line {}: element {}", self.line, self.name)
    }
}

#[derive(Debug, Clone)]
pub enum Ev {
    Start(Start),
    /// The end of the innermost open element (also sent after an empty one).
    End(String),
    Text(String),
    Eof,
}

/// The reader; `stack` holds the local names of the open elements.
pub struct Xml<R: BufRead> {
    reader: quick_xml::Reader<Counted<R>>,
    pub file: String,
    pub stack: Vec<String>,
    pending_end: bool,
}

impl<R: BufRead> Xml<R> {
    pub fn new(file: &str, input: R) -> Self {
        let mut reader = quick_xml::Reader::from_reader(Counted::new(input));
        reader.config_mut().trim_text(true);
        reader.config_mut().check_end_names = true;
        Xml {
            reader,
            file: file.to_owned(),
            stack: Vec::new(),
            pending_end: false,
        }
    }

    /// The line the reader has reached.
    pub fn line(&self) -> usize {
        self.reader.get_ref().newlines + 1
    }

    pub fn error(&self, at: String, message: String) -> ImportError {
        fail(&self.file, at, message)
    }

    fn start(&self, e: &BytesStart) -> Result<Start, ImportError> {
        let line = self.line();
        let bad = |m: String| self.error(format!("line {line}"), m);
        let name = std::str::from_utf8(e.local_name().as_ref())
            .map_err(|_| bad("an element name is not UTF-8".into()))?
            .to_owned();
        let mut attrs = Vec::new();
        for a in e.attributes() {
            let a = a.map_err(|err| bad(format!("element {name}: {err}")))?;
            let key = std::str::from_utf8(a.key.local_name().as_ref())
                .map_err(|_| bad(format!("element {name}: an attribute name is not UTF-8")))?
                .to_owned();
            let value = a
                .unescape_value()
                .map_err(|err| bad(format!("element {name}, attribute {key}: {err}")))?
                .into_owned();
            attrs.push((key, value));
        }
        Ok(Start { name, attrs, line })
    }

    /// The next element start, end or text; comments, processing instructions and the
    /// declaration are skipped.
    pub fn next(&mut self) -> Result<Ev, ImportError> {
        if self.pending_end {
            self.pending_end = false;
            return Ok(Ev::End(self.stack.pop().unwrap_or_default()));
        }
        loop {
            let mut buf = Vec::new();
            self.reader.get_mut().reset_token();
            let event = self.reader.read_event_into(&mut buf);
            let line = self.line();
            if self.reader.get_ref().since > MAX_TOKEN_BYTES {
                return Err(self.error(
                    format!("line {line}"),
                    format!("a tag or text longer than the limit of {MAX_TOKEN_BYTES} bytes"),
                ));
            }
            let event = match event {
                Ok(e) => e,
                Err(e) => {
                    return Err(self.error(
                        format!("line {line}"),
                        format!("not well-formed XML: {}", quote_at_most(&e.to_string(), QUOTE)),
                    ))
                }
            };
            let empty = matches!(event, Event::Empty(_));
            match event {
                Event::Start(e) | Event::Empty(e) => {
                    let s = self.start(&e)?;
                    if self.stack.len() >= MAX_DEPTH {
                        return Err(self.error(s.at(), format!("elements nested deeper than the limit of {MAX_DEPTH}")));
                    }
                    self.stack.push(s.name.clone());
                    self.pending_end = empty;
                    return Ok(Ev::Start(s));
                }
                Event::End(_) => return Ok(Ev::End(self.stack.pop().unwrap_or_default())),
                Event::Text(t) => {
                    let text = t
                        .unescape()
                        .map_err(|e| self.error(format!("line {line}"), format!("not well-formed XML: {e}")))?;
                    if !text.is_empty() {
                        return Ok(Ev::Text(text.into_owned()));
                    }
                }
                Event::CData(t) => {
                    let text = String::from_utf8(t.into_inner().into_owned())
                        .map_err(|_| self.error(format!("line {line}"), "text is not UTF-8".into()))?;
                    return Ok(Ev::Text(text));
                }
                Event::Eof => {
                    if let Some(open) = self.stack.last() {
                        return Err(self.error(
                            format!("line {line}"),
                            format!("not well-formed XML: the file ends inside element {open}"),
                        ));
                    }
                    return Ok(Ev::Eof);
                }
                Event::DocType(_) => {
                    return Err(self.error(format!("line {line}"), "a DOCTYPE is not accepted in SDMX-ML".into()))
                }
                Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
            }
        }
    }
}
