//! Llama 4's pythonic call list: `[f(a=1, b="x"), pkg.g()]` with Python literals. A small
//! recursive-descent reader that tells "the text ended too early" (wait for more) apart from
//! "this is not a valid call" (report it), so the stream parser can emit each call as it closes.

use agent_tools::ToolSpec;
use serde_json::{Map, Value};

use crate::prompt::ToolCall;

use super::pyliteral::{PResult, Reader, bad};
pub(crate) use super::pyliteral::{PyErr, literal, parse_literal};

impl Reader<'_> {
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
                None if !args.is_empty() => {
                    return bad(format!(
                        "`{name}`: a positional argument follows a keyword argument"
                    ));
                }
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
                c => {
                    return bad(format!(
                        "`{name}`: mismatched brackets: expected `,` or `)`, found `{c}`"
                    ));
                }
            }
        }
        if positional.is_empty() {
            return Ok(ToolCall {
                name,
                arguments: Value::Object(args),
            });
        }
        let Some(names) = params(&name) else {
            return bad(format!(
                "`{name}`: positional arguments need the tool's schema to be named; write key=value"
            ));
        };
        if positional.len() > names.len() {
            return bad(format!(
                "`{name}` takes {} parameters; {} positional arguments given",
                names.len(),
                positional.len()
            ));
        }
        let mut named = Map::new();
        for (k, v) in names.into_iter().zip(positional) {
            if args.contains_key(&k) {
                return bad(format!("`{name}`: argument `{k}` is given twice"));
            }
            named.insert(k, v);
        }
        named.extend(args);
        Ok(ToolCall {
            name,
            arguments: Value::Object(named),
        })
    }
}

/// Reads one call starting at byte `pos` of `s`; returns it and the byte offset after it.
/// `tools` name positional arguments (see `Reader::call`).
pub(crate) fn parse_call(s: &str, pos: usize, tools: &[ToolSpec]) -> PResult<(ToolCall, usize)> {
    let mut r = Reader::new(s, pos);
    let params = |name: &str| {
        let props = tools
            .iter()
            .find(|t| t.name == name)?
            .parameters
            .get("properties")?
            .as_object()?;
        Some(props.keys().cloned().collect())
    };
    let call = r.call(&params)?;
    Ok((call, r.pos))
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
    while chars
        .peek()
        .is_some_and(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
    {
        chars.next();
    }
    while chars.peek().is_some_and(|c| c.is_whitespace()) {
        chars.next();
    }
    Some(chars.next()? == '(')
}

/// One call as `name(k=v, ...)`.
pub(crate) fn render_call(call: &ToolCall) -> String {
    let args = match &call.arguments {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}={}", literal(v)))
            .collect::<Vec<_>>()
            .join(", "),
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
            call(
                r#"get_weather(city='Martha\'s Vineyard', u='\"cool units\"', a=None, b=True, c=False, n=-3, f=2.5e3, l=[1, (2, 3)], d={'k': {"x": []}}, e='\u00e9\x41\n')"#
            ),
            Ok(ToolCall {
                name: "get_weather".into(),
                arguments: json!({"city": "Martha's Vineyard", "u": "\"cool units\"", "a": null, "b": true, "c": false, "n": -3, "f": 2500.0, "l": [1, [2, 3]], "d": {"k": {"x": []}}, "e": "éA\n"})
            })
        );
        assert_eq!(
            call("math.factorial(n=5)"),
            Ok(ToolCall {
                name: "math.factorial".into(),
                arguments: json!({"n": 5})
            })
        );
        assert_eq!(
            call("f()"),
            Ok(ToolCall {
                name: "f".into(),
                arguments: json!({})
            })
        );
    }

    #[test]
    fn incomplete_versus_bad() {
        for prefix in [
            "f",
            "f(",
            "f(a",
            "f(a=",
            "f(a=1",
            "f(a='x",
            "f(a=Tru",
            "f(a=[1, 2",
            "f(a='\\u00",
        ] {
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
        let c = ToolCall {
            name: "a.b".into(),
            arguments: json!({"s": "it's \"q\"\n中文 🎉", "f": 1.0, "g": 1e20, "n": null, "l": [true, {"k": -1}]}),
        };
        let text = render_call(&c);
        assert_eq!(call(&text), Ok(c));
        assert_eq!(parse_literal(" [1, 'a'] "), Some(json!([1, "a"])));
        assert_eq!(looks_like_call_list("[get_weather("), Some(true));
        assert_eq!(looks_like_call_list("[get_wea"), None);
        assert_eq!(looks_like_call_list("[1] is"), Some(false));
    }
}
