//! Llama 4's pythonic call list: `[f(a=1, b="x"), pkg.g()]` with Python literals. A small
//! recursive-descent reader that tells "the text ended too early" (wait for more) apart from
//! "this is not a valid call" (report it), so the stream parser can emit each call as it closes.

use agent_tools::ToolSpec;
use serde_json::{Map, Number, Value};

use crate::prompt::ToolCall;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PyErr {
    /// The input ended before the construct did.
    Incomplete,
    /// The construct is invalid; the message is for the model.
    Bad(String),
}

type PResult<T> = Result<T, PyErr>;

fn bad<T>(msg: impl Into<String>) -> PResult<T> {
    Err(PyErr::Bad(msg.into()))
}

struct Reader<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.pos..).and_then(|r| r.chars().next())
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    fn need(&self) -> PResult<char> {
        self.peek().ok_or(PyErr::Incomplete)
    }

    fn ident(&mut self) -> PResult<&'a str> {
        let start = self.pos;
        match self.peek() {
            None => return Err(PyErr::Incomplete),
            Some(c) if c.is_alphabetic() || c == '_' => {}
            Some(c) => return bad(format!("expected a name, found `{c}`")),
        }
        while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            self.bump();
        }
        // A name that touches the end of the text may continue in the next chunk.
        if self.peek().is_none() {
            return Err(PyErr::Incomplete);
        }
        Ok(self.s.get(start..self.pos).unwrap_or(""))
    }

    fn value(&mut self) -> PResult<Value> {
        self.ws();
        match self.need()? {
            '\'' | '"' => self.string().map(Value::String),
            '[' => {
                self.bump();
                self.sequence(']').map(Value::Array)
            }
            '(' => {
                self.bump();
                self.sequence(')').map(Value::Array)
            }
            '{' => {
                self.bump();
                self.dict()
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => self.number(),
            c if c.is_alphabetic() || c == '_' => {
                let id = self.ident()?;
                match id {
                    "True" => Ok(Value::Bool(true)),
                    "False" => Ok(Value::Bool(false)),
                    "None" => Ok(Value::Null),
                    _ if matches!(self.peek(), Some('\'' | '"')) => bad(format!("string prefix `{id}` is not supported; use a plain string")),
                    _ => bad(format!("`{id}` is not a Python literal")),
                }
            }
            c => bad(format!("unexpected `{c}` where a value was expected")),
        }
    }

    fn string(&mut self) -> PResult<String> {
        let quote = self.bump().ok_or(PyErr::Incomplete)?;
        let mut out = String::new();
        loop {
            let c = self.bump().ok_or(PyErr::Incomplete)?;
            if c == quote {
                return Ok(out);
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let e = self.bump().ok_or(PyErr::Incomplete)?;
            match e {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '0' => out.push('\0'),
                'a' => out.push('\u{7}'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'v' => out.push('\u{b}'),
                '\\' | '\'' | '"' => out.push(e),
                '\n' => {}
                'x' => out.push(self.hex_escape(2)?),
                'u' => out.push(self.hex_escape(4)?),
                'U' => out.push(self.hex_escape(8)?),
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
            let c = self.bump().ok_or(PyErr::Incomplete)?;
            let d = c.to_digit(16).ok_or_else(|| PyErr::Bad(format!("invalid hex digit `{c}` in an escape")))?;
            code = code * 16 + d;
        }
        char::from_u32(code).ok_or_else(|| PyErr::Bad(format!("escape \\u{code:x} is not a valid character")))
    }

    fn number(&mut self) -> PResult<Value> {
        let start = self.pos;
        if matches!(self.peek(), Some('-' | '+')) {
            self.bump();
        }
        let mut prev = ' ';
        while let Some(c) = self.peek() {
            let ok = c.is_ascii_digit() || c == '.' || c == '_' || c == 'e' || c == 'E' || ((c == '+' || c == '-') && (prev == 'e' || prev == 'E'));
            if !ok {
                break;
            }
            prev = c;
            self.bump();
        }
        if self.peek().is_none() {
            return Err(PyErr::Incomplete);
        }
        let text: String = self.s.get(start..self.pos).unwrap_or("").chars().filter(|c| *c != '_').collect();
        let text = text.strip_prefix('+').unwrap_or(&text);
        if text.contains(['.', 'e', 'E']) {
            let f: f64 = text.parse().map_err(|_| PyErr::Bad(format!("`{text}` is not a number")))?;
            if !f.is_finite() {
                return bad(format!("`{text}` is not a finite number"));
            }
            Number::from_f64(f).map(Value::Number).ok_or_else(|| PyErr::Bad(format!("`{text}` is not a finite number")))
        } else if let Ok(i) = text.parse::<i64>() {
            Ok(Value::Number(i.into()))
        } else if let Ok(u) = text.parse::<u64>() {
            Ok(Value::Number(u.into()))
        } else {
            bad(format!("`{text}` is not a supported number"))
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
                c => return bad(format!("mismatched brackets: expected `,` or `{close}`, found `{c}`")),
            }
        }
    }

    fn dict(&mut self) -> PResult<Value> {
        let mut map = Map::new();
        loop {
            self.ws();
            if self.need()? == '}' {
                self.bump();
                return Ok(Value::Object(map));
            }
            let key = match self.value()? {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => if b { "True" } else { "False" }.to_string(),
                other => return bad(format!("dictionary keys must be strings, not {other}")),
            };
            self.ws();
            match self.need()? {
                ':' => {
                    self.bump();
                }
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
                c => return bad(format!("mismatched brackets: expected `,` or `}}`, found `{c}`")),
            }
        }
    }

    /// `name(key=value, ...)` with a possibly dotted name. Positional arguments (BFCL's ground
    /// truth has `sort('report.pdf')`) take the names of the tool's parameters in schema order,
    /// which `params` gives; without a schema they are an error.
    fn call(&mut self, params: &dyn Fn(&str) -> Option<Vec<String>>) -> PResult<ToolCall> {
        self.ws();
        let mut name = self.ident()?.to_string();
        while self.peek() == Some('.') {
            self.bump();
            name.push('.');
            name.push_str(self.ident()?);
        }
        self.ws();
        match self.need()? {
            '(' => {
                self.bump();
            }
            c => return bad(format!("expected `(` after `{name}`, found `{c}`")),
        }
        let mut args = Map::new();
        let mut positional = Vec::new();
        loop {
            self.ws();
            if self.need()? == ')' {
                self.bump();
                break;
            }
            let start = self.pos;
            let c = self.need()?;
            let mut key = None;
            if c.is_alphabetic() || c == '_' {
                let k = self.ident()?.to_string();
                self.ws();
                if self.need()? == '=' {
                    self.bump();
                    key = Some(k);
                } else {
                    self.pos = start;
                }
            }
            let v = self.value()?;
            match key {
                Some(k) => {
                    if args.insert(k.clone(), v).is_some() {
                        return bad(format!("`{name}`: argument `{k}` is given twice"));
                    }
                }
                None if !args.is_empty() => return bad(format!("`{name}`: a positional argument follows a keyword argument")),
                None => positional.push(v),
            }
            self.ws();
            match self.need()? {
                ',' => {
                    self.bump();
                }
                ')' => {
                    self.bump();
                    break;
                }
                c => return bad(format!("`{name}`: mismatched brackets: expected `,` or `)`, found `{c}`")),
            }
        }
        if positional.is_empty() {
            return Ok(ToolCall { name, arguments: Value::Object(args) });
        }
        let Some(names) = params(&name) else {
            return bad(format!("`{name}`: positional arguments need the tool's schema to be named; write key=value"));
        };
        if positional.len() > names.len() {
            return bad(format!("`{name}` takes {} parameters; {} positional arguments given", names.len(), positional.len()));
        }
        let mut named = Map::new();
        for (k, v) in names.into_iter().zip(positional) {
            if args.contains_key(&k) {
                return bad(format!("`{name}`: argument `{k}` is given twice"));
            }
            named.insert(k, v);
        }
        named.extend(args);
        Ok(ToolCall { name, arguments: Value::Object(named) })
    }
}

/// Reads one call starting at byte `pos` of `s`; returns it and the byte offset after it.
/// `tools` name positional arguments (see `Reader::call`).
pub(crate) fn parse_call(s: &str, pos: usize, tools: &[ToolSpec]) -> PResult<(ToolCall, usize)> {
    let mut r = Reader { s, pos };
    let params = |name: &str| {
        let props = tools.iter().find(|t| t.name == name)?.parameters.get("properties")?.as_object()?;
        Some(props.keys().cloned().collect())
    };
    let call = r.call(&params)?;
    Ok((call, r.pos))
}

/// Parses a whole string as one Python literal (surrounding whitespace allowed).
pub(crate) fn parse_literal(s: &str) -> Option<Value> {
    // A trailing space lets a number or name at the very end count as complete.
    let padded = format!("{s} ");
    let mut r = Reader { s: &padded, pos: 0 };
    let v = r.value().ok()?;
    r.ws();
    (r.pos == padded.len()).then_some(v)
}

/// From `pos` inside a call list, the offset of the next top-level `,` or of the list's `]`,
/// skipping brackets and quoted strings; `None` when the text ends first.
pub(crate) fn skip_item(s: &str, pos: usize) -> Option<usize> {
    let rest = s.get(pos..)?;
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in rest.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '(' | '[' | '{' => depth += 1,
            ']' if depth == 0 => return Some(pos + i),
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => return Some(pos + i),
            _ => {}
        }
    }
    None
}

/// Whether text (after whitespace and wrappers) starts like `[name(`: `None` while undecided.
pub(crate) fn looks_like_call_list(t: &str) -> Option<bool> {
    let mut chars = t.chars().peekable();
    if chars.next()? != '[' {
        return Some(false);
    }
    while chars.peek().is_some_and(|c| c.is_whitespace()) {
        chars.next();
    }
    let first = chars.next()?;
    if !(first.is_alphabetic() || first == '_') {
        return Some(false);
    }
    while chars.peek().is_some_and(|c| c.is_alphanumeric() || *c == '_' || *c == '.') {
        chars.next();
    }
    while chars.peek().is_some_and(|c| c.is_whitespace()) {
        chars.next();
    }
    Some(chars.next()? == '(')
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
            (_, _, Some(f)) => format!("{f:?}"),
            _ => n.to_string(),
        },
        // JSON string escapes are valid Python escapes; non-ASCII stays as is.
        Value::String(s) => Value::String(s.clone()).to_string(),
        Value::Array(items) => format!("[{}]", items.iter().map(literal).collect::<Vec<_>>().join(", ")),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter().map(|(k, v)| format!("{}: {}", Value::String(k.clone()), literal(v))).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// One call as `name(k=v, ...)`.
pub(crate) fn render_call(call: &ToolCall) -> String {
    let args = match &call.arguments {
        Value::Object(map) => map.iter().map(|(k, v)| format!("{k}={}", literal(v))).collect::<Vec<_>>().join(", "),
        _ => String::new(),
    };
    format!("{}({args})", call.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(s: &str) -> PResult<ToolCall> {
        parse_call(s, 0, &[]).map(|(c, _)| c)
    }

    #[test]
    fn literals_and_escapes() {
        assert_eq!(
            call(r#"get_weather(city='Martha\'s Vineyard', u='\"cool units\"', a=None, b=True, c=False, n=-3, f=2.5e3, l=[1, (2, 3)], d={'k': {"x": []}}, e='\u00e9\x41\n')"#),
            Ok(ToolCall {
                name: "get_weather".into(),
                arguments: json!({"city": "Martha's Vineyard", "u": "\"cool units\"", "a": null, "b": true, "c": false, "n": -3, "f": 2500.0, "l": [1, [2, 3]], "d": {"k": {"x": []}}, "e": "éA\n"})
            })
        );
        assert_eq!(call("math.factorial(n=5)"), Ok(ToolCall { name: "math.factorial".into(), arguments: json!({"n": 5}) }));
        assert_eq!(call("f()"), Ok(ToolCall { name: "f".into(), arguments: json!({}) }));
    }

    #[test]
    fn incomplete_versus_bad() {
        for prefix in ["f", "f(", "f(a", "f(a=", "f(a=1", "f(a='x", "f(a=Tru", "f(a=[1, 2", "f(a='\\u00"] {
            assert_eq!(call(prefix), Err(PyErr::Incomplete), "{prefix}");
        }
        assert!(matches!(call("f(x=1])"), Err(PyErr::Bad(_))));
        assert!(matches!(call("f(x=1e999)"), Err(PyErr::Bad(_))));
        assert!(matches!(call("f(x=b'z')"), Err(PyErr::Bad(_))));
        assert!(matches!(call("f(1)"), Err(PyErr::Bad(_))));
        assert_eq!(skip_item("foo(x=1])], g()", 0), Some(9));
        assert_eq!(skip_item("foo(x=')]'), g()", 0), Some(11));
    }

    #[test]
    fn render_round_trip() {
        let c = ToolCall { name: "a.b".into(), arguments: json!({"s": "it's \"q\"\n中文 🎉", "f": 1.0, "g": 1e20, "n": null, "l": [true, {"k": -1}]}) };
        let text = render_call(&c);
        assert_eq!(call(&text), Ok(c));
        assert_eq!(parse_literal(" [1, 'a'] "), Some(json!([1, "a"])));
        assert_eq!(looks_like_call_list("[get_weather("), Some(true));
        assert_eq!(looks_like_call_list("[get_wea"), None);
        assert_eq!(looks_like_call_list("[1] is"), Some(false));
    }
}
