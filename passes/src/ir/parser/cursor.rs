//! A position in one line of IR text and the lexical pieces: comments, list items,
//! quoted strings.

use super::*;

pub(super) fn is_comment(line: &str) -> bool {
    let t = line.trim_start();
    t.is_empty() || t.starts_with(';')
}

/// A position in one line.
pub(super) struct Cursor<'a> {
    pub(super) line: &'a str,
    pub(super) lineno: usize,
    pub(super) pos: usize,
    /// Bytes of filler tensors the rest of the parse may still allocate.
    pub(super) budget: &'a Cell<u64>,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(line: &'a str, lineno: usize, budget: &'a Cell<u64>) -> Self {
        Cursor {
            line: line.trim_end(),
            lineno,
            pos: 0,
            budget,
        }
    }
    pub(super) fn rest(&self) -> &'a str {
        self.line.get(self.pos..).unwrap_or("")
    }
    pub(super) fn at_end(&self) -> bool {
        self.pos >= self.line.len()
    }
    pub(super) fn err_at(&self, pos: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            line: self.lineno,
            column: self.line[..pos.min(self.line.len())].chars().count() + 1,
            message: message.into(),
        }
    }
    pub(super) fn err(&self, message: impl Into<String>) -> ParseError {
        self.err_at(self.pos, message)
    }
    pub(super) fn eat(&mut self, s: &str) -> bool {
        if self.rest().starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }
    pub(super) fn expect(&mut self, s: &str) -> Result<(), ParseError> {
        if self.eat(s) {
            Ok(())
        } else {
            Err(self.err(format!("expected '{s}'")))
        }
    }
    pub(super) fn skip_spaces(&mut self) {
        while self.rest().starts_with(' ') {
            self.pos += 1;
        }
    }
    /// The text up to (not including) the first char in `stops`, or to the end.
    pub(super) fn until(&mut self, stops: &[char]) -> &'a str {
        let r = self.rest();
        let n = r.find(|ch| stops.contains(&ch)).unwrap_or(r.len());
        self.pos += n;
        &r[..n]
    }
    pub(super) fn end(&self) -> Result<(), ParseError> {
        if self.at_end() {
            Ok(())
        } else {
            Err(self.err("unexpected text at the end of the line"))
        }
    }
}

/// One element of a printed list.
#[derive(Debug)]
pub(super) enum Item {
    /// A number or `true`/`false`, as written.
    Word(String, usize),
    Str(Vec<u8>),
    Tensor(Tensor),
}

/// `[item, item]`: numbers, quoted strings or tensors, separated by `,` and optional spaces.
pub(super) fn parse_items(c: &mut Cursor) -> Result<Vec<Item>, ParseError> {
    c.expect("[")?;
    let mut items = Vec::new();
    c.skip_spaces();
    if c.eat("]") {
        return Ok(items);
    }
    loop {
        c.skip_spaces();
        if c.rest().starts_with('"') {
            items.push(Item::Str(parse_string(c)?));
        } else if c.rest().starts_with("tensor<") {
            items.push(Item::Tensor(parse_tensor(c)?));
        } else {
            let at = c.pos;
            let w = c.until(&[',', ']', ' ']);
            if w.is_empty() {
                return Err(c.err("expected a list element"));
            }
            items.push(Item::Word(w.to_string(), at));
        }
        c.skip_spaces();
        if c.eat("]") {
            return Ok(items);
        }
        c.expect(",")?;
    }
}

/// A Rust-escaped string literal, as `{:?}` prints it.
pub(super) fn parse_string(c: &mut Cursor) -> Result<Vec<u8>, ParseError> {
    c.expect("\"")?;
    let mut out = String::new();
    let mut chars = c.rest().char_indices();
    let start = c.pos;
    while let Some((k, ch)) = chars.next() {
        match ch {
            '"' => {
                c.pos = start + k + 1;
                return Ok(out.into_bytes());
            }
            '\\' => {
                let bad = |c: &Cursor| c.err_at(start + k, "unknown escape in a string");
                let Some((_, e)) = chars.next() else {
                    return Err(bad(c));
                };
                out.push(match e {
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    '0' => '\0',
                    '\\' | '"' | '\'' => e,
                    'u' => {
                        let hex: String = chars
                            .by_ref()
                            .map(|(_, h)| h)
                            .take_while(|&h| h != '}')
                            .collect();
                        hex.strip_prefix('{')
                            .and_then(|h| u32::from_str_radix(h, 16).ok())
                            .and_then(char::from_u32)
                            .ok_or_else(|| bad(c))?
                    }
                    _ => return Err(bad(c)),
                });
            }
            _ => out.push(ch),
        }
    }
    Err(c.err_at(start - 1, "the string is not closed"))
}
