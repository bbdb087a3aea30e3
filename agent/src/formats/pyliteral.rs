//! Python literals as `ast.literal_eval` reads them, into JSON: strings (prefixes `r` and `u`,
//! triple quotes, adjacent strings joined, every escape but `\N{…}`), numbers (underscores,
//! `0x`/`0o`/`0b`, floats, a sign with spaces after it), `True`/`False`/`None`, lists, tuples
//! (a parenthesised value without a comma is the value itself), dicts (keys made strings as
//! `json.dumps` makes them). What has no JSON form (bytes, sets, complex numbers, infinities,
//! integers beyond 64 bits) is an error that says so. `agent/tests/formats.rs` checks the reader
//! against `ast.literal_eval` on generated cases.
//!
//! The reader tells "the text ended too early" (wait for more: the stream parser reads calls as
//! they arrive) apart from "this is not valid".

use serde_json::{Map, Number, Value};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PyErr {
    /// The input ended before the construct did.
    Incomplete,
    /// The construct is invalid; the message is for the model.
    Bad(String),
}

pub(crate) type PResult<T> = Result<T, PyErr>;

pub(crate) fn bad<T>(msg: impl Into<String>) -> PResult<T> {
    Err(PyErr::Bad(msg.into()))
}

pub(crate) struct Reader<'a> {
    pub s: &'a str,
    pub pos: usize,
    /// The text is whole: its end is the end (a literal given whole), not a chunk boundary.
    pub whole: bool,
}

impl<'a> Reader<'a> {
    pub fn new(s: &'a str, pos: usize) -> Self {
        Reader {
            s,
            pos,
            whole: false,
        }
    }

    pub fn peek(&self) -> Option<char> {
        self.s.get(self.pos..).and_then(|r| r.chars().next())
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.s.get(self.pos..).and_then(|r| r.chars().nth(n))
    }

    pub fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    /// The end of the text: more may come, unless the text is whole.
    fn end<T>(&self) -> PResult<T> {
        if self.whole {
            bad("the text ends too early")
        } else {
            Err(PyErr::Incomplete)
        }
    }

    /// Whitespace between tokens, as inside brackets: blanks, line breaks, comments, and a
    /// backslash that joins lines.
    pub fn ws(&mut self) {
        loop {
            match self.peek() {
                Some(' ' | '\t' | '\n' | '\r' | '\x0c') => {
                    self.bump();
                }
                Some('#') => {
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.bump();
                    }
                }
                Some('\\') if matches!(self.peek_at(1), Some('\n')) => {
                    self.pos += 2;
                }
                _ => return,
            }
        }
    }

    pub fn need(&self) -> PResult<char> {
        self.peek().map_or_else(|| self.end(), Ok)
    }

    pub fn ident(&mut self) -> PResult<&'a str> {
        let start = self.pos;
        match self.peek() {
            None => return self.end(),
            Some(c) if c.is_alphabetic() || c == '_' => {}
            Some(c) => return bad(format!("expected a name, found `{c}`")),
        }
        while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            self.bump();
        }
        // A name that touches the end of the text may continue in the next chunk.
        if self.peek().is_none() && !self.whole {
            return Err(PyErr::Incomplete);
        }
        Ok(self.s.get(start..self.pos).unwrap_or(""))
    }

    pub fn value(&mut self) -> PResult<Value> {
        self.ws();
        match self.need()? {
            '\'' | '"' => self.strings(false).map(Value::String),
            '[' => {
                self.bump();
                self.sequence(']').map(Value::Array)
            }
            '(' => {
                self.bump();
                self.parenthesised()
            }
            '{' => {
                self.bump();
                self.dict()
            }
            '-' | '+' => self.signed(),
            c if c.is_ascii_digit() || c == '.' => self.number(false),
            c if c.is_alphabetic() || c == '_' => {
                let start = self.pos;
                let id = self.ident()?;
                if matches!(self.peek(), Some('\'' | '"')) {
                    self.pos = start;
                    return self.strings(true).map(Value::String);
                }
                match id {
                    "True" => Ok(Value::Bool(true)),
                    "False" => Ok(Value::Bool(false)),
                    "None" => Ok(Value::Null),
                    _ => bad(format!("`{id}` is not a Python literal")),
                }
            }
            c => bad(format!("unexpected `{c}` where a value was expected")),
        }
    }

    /// One string, then any strings written right after it (Python joins them).
    fn strings(&mut self, prefixed: bool) -> PResult<String> {
        let mut out = self.string(prefixed)?;
        loop {
            let before = self.pos;
            self.ws();
            let prefix_len = self
                .s
                .get(self.pos..)
                .unwrap_or("")
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .count();
            let next = self.peek_at(prefix_len);
            match next {
                Some('\'' | '"') if prefix_len <= 2 => {
                    out.push_str(&self.string(prefix_len > 0)?);
                }
                // More text may bring another string (or a prefix of one).
                None if !self.whole => return Err(PyErr::Incomplete),
                _ => {
                    self.pos = before;
                    return Ok(out);
                }
            }
        }
    }

    /// A string literal, with its prefix when `prefixed`.
    fn string(&mut self, prefixed: bool) -> PResult<String> {
        let mut raw = false;
        if prefixed {
            let start = self.pos;
            while self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
                self.bump();
            }
            let prefix = self.s.get(start..self.pos).unwrap_or("").to_lowercase();
            match prefix.as_str() {
                "r" => raw = true,
                "u" => {}
                p if p.contains('b') => return bad("bytes (b'…') have no JSON form; use a string"),
                p if p.contains('f') || p.contains('t') => {
                    return bad(format!(
                        "`{p}'…'` strings are not literals; use a plain string"
                    ));
                }
                p => return bad(format!("`{p}` is not a string prefix")),
            }
        }
        let quote = self.bump().map_or_else(|| self.end(), Ok)?;
        // Triple quotes: `''` then a third quote; an empty string is `''` then anything else.
        let triple = match (self.peek(), self.peek_at(1)) {
            (Some(a), Some(b)) if a == quote && b == quote => {
                self.pos += 2;
                true
            }
            (Some(a), None) if a == quote && !self.whole => return Err(PyErr::Incomplete),
            _ => false,
        };
        let mut out = String::new();
        loop {
            let c = self.bump().map_or_else(|| self.end(), Ok)?;
            if c == quote {
                if !triple {
                    return Ok(out);
                }
                match (self.peek(), self.peek_at(1)) {
                    (Some(a), Some(b)) if a == quote && b == quote => {
                        self.pos += 2;
                        return Ok(out);
                    }
                    (None, _) | (Some(_), None) if !self.whole => return Err(PyErr::Incomplete),
                    _ => {
                        out.push(c);
                        continue;
                    }
                }
            }
            if c == '\n' && !triple {
                return bad("a line break inside a quoted string; write it as \\n");
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let e = self.bump().map_or_else(|| self.end(), Ok)?;
            if raw {
                // A raw string keeps its backslashes; one before a quote still escapes it.
                out.push('\\');
                out.push(e);
                continue;
            }
            match e {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'a' => out.push('\u{7}'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'v' => out.push('\u{b}'),
                '\\' | '\'' | '"' => out.push(e),
                '\n' => {}
                '0'..='7' => {
                    let mut code = e.to_digit(8).unwrap_or(0);
                    for _ in 0..2 {
                        match self.peek().and_then(|d| d.to_digit(8)) {
                            Some(d) => {
                                code = code * 8 + d;
                                self.bump();
                            }
                            None => break,
                        }
                    }
                    out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                }
                'x' => out.push(self.hex_escape(2)?),
                'u' => out.push(self.hex_escape(4)?),
                'U' => out.push(self.hex_escape(8)?),
                'N' => return bad("\\N{…} escapes are not supported; write the character itself"),
                other => {
                    // Python keeps unknown escapes as written.
                    out.push('\\');
                    out.push(other);
                }
            }
        }
    }

    fn hex_escape(&mut self, digits: usize) -> PResult<char> {
        let mut code = 0u32;
        for _ in 0..digits {
            let c = self.bump().map_or_else(|| self.end(), Ok)?;
            let d = c
                .to_digit(16)
                .ok_or_else(|| PyErr::Bad(format!("invalid hex digit `{c}` in an escape")))?;
            code = code * 16 + d;
        }
        char::from_u32(code)
            .ok_or_else(|| PyErr::Bad(format!("escape \\u{code:x} is not a valid character")))
    }

    /// `-` or `+`, blanks allowed, then a number (the only operand `literal_eval` signs).
    fn signed(&mut self) -> PResult<Value> {
        let negative = self.bump() == Some('-');
        self.ws();
        match self.need()? {
            c if c.is_ascii_digit() || c == '.' => self.number(negative),
            c => bad(format!("a sign must be followed by a number, found `{c}`")),
        }
    }

    fn number(&mut self, negative: bool) -> PResult<Value> {
        let start = self.pos;
        let hex = |r: &Self| r.s[start..r.pos].to_ascii_lowercase().starts_with("0x");
        while let Some(c) = self.peek() {
            let exponent_sign = matches!(c, '+' | '-')
                && self.pos > start
                && matches!(self.s.as_bytes().get(self.pos - 1), Some(b'e' | b'E'))
                && !hex(self);
            if !(c.is_ascii_alphanumeric() || c == '_' || c == '.' || exponent_sign) {
                break;
            }
            self.bump();
        }
        if self.peek().is_none() && !self.whole {
            return Err(PyErr::Incomplete);
        }
        let text = self.s.get(start..self.pos).unwrap_or("");
        let value = python_number(text)?;
        if !negative {
            return Ok(value);
        }
        let n = match &value {
            Value::Number(n) => n,
            _ => return Ok(value),
        };
        if let Some(u) = n.as_u64() {
            return match i64::try_from(u) {
                Ok(i) => Ok(Value::Number((-i).into())),
                Err(_) if u == i64::MIN.unsigned_abs() => Ok(Value::Number(i64::MIN.into())),
                Err(_) => bad(format!("`-{text}` is beyond 64-bit integers")),
            };
        }
        match n.as_f64().and_then(|f| Number::from_f64(-f)) {
            Some(m) => Ok(Value::Number(m)),
            None => bad(format!("`-{text}` is not a number")),
        }
    }

    /// Items up to `close` (the opening bracket is consumed); a trailing comma is allowed.
    fn sequence(&mut self, close: char) -> PResult<Vec<Value>> {
        let mut items = Vec::new();
        loop {
            self.ws();
            if self.need()? == close {
                self.bump();
                return Ok(items);
            }
            items.push(self.value()?);
            self.ws();
            match self.need()? {
                ',' => {
                    self.bump();
                }
                c if c == close => {
                    self.bump();
                    return Ok(items);
                }
                c => {
                    return bad(format!(
                        "mismatched brackets: expected `,` or `{close}`, found `{c}`"
                    ));
                }
            }
        }
    }

    /// After `(`: `()` and `(x,)` are tuples (lists in JSON); `(x)` is `x` itself.
    fn parenthesised(&mut self) -> PResult<Value> {
        self.ws();
        if self.need()? == ')' {
            self.bump();
            return Ok(Value::Array(Vec::new()));
        }
        let first = self.value()?;
        self.ws();
        match self.need()? {
            ')' => {
                self.bump();
                Ok(first)
            }
            ',' => {
                self.bump();
                let mut items = vec![first];
                items.extend(self.sequence(')')?);
                Ok(Value::Array(items))
            }
            c => bad(format!(
                "mismatched brackets: expected `,` or `)`, found `{c}`"
            )),
        }
    }

    fn dict(&mut self) -> PResult<Value> {
        let mut map = Map::new();
        // Python's keys 1, 1.0 and True are one key (equal, same hash): the first written names
        // it, the last value wins.
        let mut numeric: Vec<(f64, String)> = Vec::new();
        loop {
            self.ws();
            if self.need()? == '}' {
                self.bump();
                return Ok(Value::Object(map));
            }
            let raw = self.value()?;
            let as_number = match &raw {
                Value::Bool(b) => Some(f64::from(u8::from(*b))),
                Value::Number(n) => n.as_f64(),
                _ => None,
            };
            let mut key = dict_key(raw)?;
            if let Some(x) = as_number {
                match numeric.iter().find(|(y, _)| *y == x) {
                    Some((_, first)) => key = first.clone(),
                    None => numeric.push((x, key.clone())),
                }
            }
            self.ws();
            match self.need()? {
                ':' => {
                    self.bump();
                }
                ',' | '}' if map.is_empty() => return bad("a set has no JSON form; use a list"),
                c => return bad(format!("expected `:` after a dictionary key, found `{c}`")),
            }
            let v = self.value()?;
            map.insert(key, v);
            self.ws();
            match self.need()? {
                ',' => {
                    self.bump();
                }
                '}' => {
                    self.bump();
                    return Ok(Value::Object(map));
                }
                c => {
                    return bad(format!(
                        "mismatched brackets: expected `,` or `}}`, found `{c}`"
                    ));
                }
            }
        }
    }
}

/// A dictionary key as `json.dumps` writes it: strings as they are, numbers and constants as
/// text (`1`, `1.5`, `true`, `null`).
fn dict_key(key: Value) -> PResult<String> {
    match key {
        Value::String(s) => Ok(s),
        Value::Bool(b) => Ok(if b { "true" } else { "false" }.to_string()),
        Value::Null => Ok("null".to_string()),
        Value::Number(n) => Ok(match n.as_f64().filter(|_| n.is_f64()) {
            Some(f) => float_repr(f),
            None => n.to_string(),
        }),
        _ => bad("a dictionary key must be a string, a number, True, False or None"),
    }
}

/// Python's `repr` of a float: the shortest digits that read back the same, in positional
/// notation for exponents from -4 to 15 (with `.0` when whole), scientific otherwise
/// (`1e+16`, `1e-05`).
pub(crate) fn float_repr(f: f64) -> String {
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if !(-4..16).contains(&exp) {
        let rest = &digits[1..];
        let dot = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{}{dot}e{esign}{:02}", &digits[..1], exp.abs());
    }
    let point = exp + 1;
    let (int, frac) = if point <= 0 {
        (
            "0".to_string(),
            format!("{}{digits}", "0".repeat((-point) as usize)),
        )
    } else if point as usize >= digits.len() {
        (
            format!("{digits}{}", "0".repeat(point as usize - digits.len())),
            String::new(),
        )
    } else {
        (
            digits[..point as usize].to_string(),
            digits[point as usize..].to_string(),
        )
    };
    let frac = if frac.is_empty() {
        "0".to_string()
    } else {
        frac
    };
    format!("{sign}{int}.{frac}")
}

/// A number token as Python reads it (no sign).
fn python_number(text: &str) -> PResult<Value> {
    let not = |why: &str| bad(format!("`{text}` is not a number: {why}"));
    let lower = text.to_ascii_lowercase();
    // Underscores only between digits.
    let underscores_ok = |body: &str, digit: fn(char) -> bool| {
        !body.starts_with('_')
            && !body.ends_with('_')
            && !body.contains("__")
            && body
                .split('_')
                .all(|g| !g.is_empty() && g.chars().all(digit))
    };
    for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(body) = lower.strip_prefix(prefix) {
            let body = body.strip_prefix('_').unwrap_or(body);
            let digit: fn(char) -> bool = match radix {
                16 => |c| c.is_ascii_hexdigit(),
                8 => |c| ('0'..='7').contains(&c),
                _ => |c| c == '0' || c == '1',
            };
            if body.is_empty() || !underscores_ok(body, digit) {
                return not("bad digits");
            }
            return match u64::from_str_radix(&body.replace('_', ""), radix) {
                Ok(u) => Ok(Value::Number(u.into())),
                Err(_) => not("beyond 64-bit integers"),
            };
        }
    }
    if lower.ends_with('j') {
        return not("complex numbers have no JSON form");
    }
    let is_float = lower.contains(['.', 'e']);
    let (mantissa, exponent) = match lower.split_once('e') {
        Some((m, e)) => (m, Some(e)),
        None => (lower.as_str(), None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.is_empty() || underscores_ok(s, |c| c.is_ascii_digit());
    if int.is_empty() && frac.is_none_or(str::is_empty) {
        return not("no digits");
    }
    if !digits(int) || !frac.is_none_or(digits) {
        return not("bad digits");
    }
    if let Some(e) = exponent {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        if e.is_empty() || !underscores_ok(e, |c| c.is_ascii_digit()) {
            return not("bad exponent");
        }
    }
    let plain = lower.replace('_', "");
    if is_float {
        let f: f64 = plain
            .parse()
            .map_err(|_| PyErr::Bad(format!("`{text}` is not a number: bad digits")))?;
        return match Number::from_f64(f) {
            Some(n) => Ok(Value::Number(n)),
            None => not("beyond what a 64-bit float holds"),
        };
    }
    // Decimal integers: no leading zeros, except zero itself.
    if plain.len() > 1 && plain.starts_with('0') && plain.chars().any(|c| c != '0') {
        return not("leading zeros are not allowed (write 0o… for octal)");
    }
    match plain.parse::<u64>() {
        Ok(u) => Ok(Value::Number(u.into())),
        Err(_) => not("beyond 64-bit integers"),
    }
}

/// Parses a whole string as one Python literal (surrounding whitespace allowed).
pub(crate) fn parse_literal(s: &str) -> Option<Value> {
    parse_literal_explained(s).ok()
}

/// [`parse_literal`], with the reason when it is not one.
pub(crate) fn parse_literal_explained(s: &str) -> Result<Value, String> {
    let mut r = Reader {
        s,
        pos: 0,
        whole: true,
    };
    let v = r.value().map_err(|e| match e {
        PyErr::Bad(m) => m,
        PyErr::Incomplete => "the text ends too early".into(),
    })?;
    r.ws();
    if r.pos != s.len() {
        return Err(format!(
            "unexpected text after the value: `{}`",
            s.get(r.pos..).unwrap_or("")
        ));
    }
    Ok(v)
}

/// A JSON value written as a Python literal.
pub(crate) fn literal(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => float_repr(f),
            _ => n.to_string(),
        },
        // JSON string escapes are valid Python escapes; non-ASCII stays as is.
        Value::String(s) => Value::String(s.clone()).to_string(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(literal).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", Value::String(k.clone()), literal(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_rules() {
        let ok = |s: &str| parse_literal_explained(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(ok("(3)"), json!(3));
        assert_eq!(ok("(3,)"), json!([3]));
        assert_eq!(ok("()"), json!([]));
        assert_eq!(ok("((1, 2))"), json!([1, 2]));
        assert_eq!(ok("'a' \"b\"  r'\\c'"), json!("ab\\c"));
        assert_eq!(ok("'''x'y'''"), json!("x'y"));
        assert_eq!(ok("''"), json!(""));
        assert_eq!(ok("'\\101\\0'"), json!("A\0"));
        assert_eq!(ok("u'x'"), json!("x"));
        assert_eq!(ok("- 1_000"), json!(-1000));
        assert_eq!(ok("0x_ff"), json!(255));
        assert_eq!(ok("0o17"), json!(15));
        assert_eq!(ok("00"), json!(0));
        assert_eq!(ok("01.5"), json!(1.5));
        assert_eq!(ok("1."), json!(1.0));
        assert_eq!(ok("-9223372036854775808"), json!(i64::MIN));
        // 1 and True are one key in Python: the first spelling, the last value.
        assert_eq!(
            ok("{1: 2, True: 3, None: 4, 1.5: 5}"),
            json!({"1": 3, "null": 4, "1.5": 5})
        );
        assert_eq!(ok("{True: 1, 'a': 2}"), json!({"true": 1, "a": 2}));
        assert_eq!(ok("[1, # one\n 2]"), json!([1, 2]));
        for bad_text in [
            "01",
            "1__0",
            "1_",
            "0x",
            "1j",
            "b'x'",
            "f'x'",
            "{1, 2}",
            "--1",
            "'a\nb'",
            "1e400",
            "18446744073709551616",
            "-9223372036854775809",
            "'\\N{BULLET}'",
            "(1 2)",
            "x",
        ] {
            assert!(
                parse_literal_explained(bad_text).is_err(),
                "{bad_text:?} was read"
            );
        }
    }

    #[test]
    fn floats_print_as_python_does() {
        for (f, want) in [
            (1.0, "1.0"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
            (123.456, "123.456"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
        ] {
            assert_eq!(float_repr(f), want);
        }
    }
}
