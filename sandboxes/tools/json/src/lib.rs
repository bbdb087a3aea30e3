//! `json`: query a JSON document with a JSONPath expression. A typed WIT export
//! (`wit/json.wit`).

use serde_json::Value;

wit_bindgen::generate!({ world: "json", path: "wit" });

#[unsafe(link_section = "agent-tool-wit")]
#[used]
static WIT: [u8; include_bytes!("../wit/json.wit").len()] = *include_bytes!("../wit/json.wit");

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(i64),
    All,
    Slice(Option<i64>, Option<i64>),
    /// `..key` (`None`: `..*`, every descendant).
    Descend(Option<String>),
    Filter(Filter),
}

#[derive(Debug, Clone, PartialEq)]
struct Filter {
    /// Keys under `@`.
    field: Vec<String>,
    /// `None`: the field exists.
    test: Option<(Op, Value)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

struct Lexer<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
}

impl<'a> Lexer<'a> {
    fn err(&self, what: &str) -> String {
        format!(
            "bad path `{}` at character {}: {what}",
            self.text,
            self.i + 1
        )
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn skip_space(&mut self) {
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn name(&mut self) -> Result<String, String> {
        let start = self.i;
        while self.i < self.s.len() && !b".[]()=!<> ".contains(&self.s[self.i]) {
            self.i += 1;
        }
        if start == self.i {
            return Err(self.err("expected a key"));
        }
        Ok(self.text[start..self.i].to_string())
    }

    fn quoted(&mut self) -> Result<String, String> {
        let q = self.s[self.i];
        self.i += 1;
        let start = self.i;
        while self.i < self.s.len() && self.s[self.i] != q {
            self.i += 1;
        }
        if self.i >= self.s.len() {
            return Err(self.err("unclosed quote"));
        }
        let out = self.text[start..self.i].to_string();
        self.i += 1;
        Ok(out)
    }

    fn int(&mut self) -> Option<i64> {
        let start = self.i;
        if self.s.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        self.text[start..self.i].parse().ok().or_else(|| {
            self.i = start;
            None
        })
    }

    fn literal(&mut self) -> Result<Value, String> {
        self.skip_space();
        match self.s.get(self.i) {
            Some(b'\'' | b'"') => Ok(Value::String(self.quoted()?)),
            _ => {
                let start = self.i;
                while self.i < self.s.len()
                    && self.s[self.i] != b')'
                    && !self.s[self.i].is_ascii_whitespace()
                {
                    self.i += 1;
                }
                serde_json::from_str(&self.text[start..self.i]).map_err(|_| {
                    self.i = start;
                    self.err("expected a number, a quoted string, true, false or null")
                })
            }
        }
    }

    fn filter(&mut self) -> Result<Filter, String> {
        // After `[?(`.
        self.skip_space();
        if !self.eat(b'@') {
            return Err(self.err("a filter starts with @"));
        }
        let mut field = Vec::new();
        while self.eat(b'.') {
            field.push(self.name()?);
        }
        self.skip_space();
        let op = [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("<", Op::Lt),
            (">", Op::Gt),
        ]
        .into_iter()
        .find(|(t, _)| self.text[self.i..].starts_with(t));
        let test = match op {
            Some((t, op)) => {
                self.i += t.len();
                Some((op, self.literal()?))
            }
            None => None,
        };
        self.skip_space();
        if !(self.eat(b')') && self.eat(b']')) {
            return Err(self.err("expected `)]` to end the filter"));
        }
        Ok(Filter { field, test })
    }

    fn bracket(&mut self) -> Result<Step, String> {
        // After `[`.
        self.skip_space();
        let step = match self.s.get(self.i) {
            Some(b'*') => {
                self.i += 1;
                Step::All
            }
            Some(b'\'' | b'"') => Step::Key(self.quoted()?),
            Some(b'?') => {
                self.i += 1;
                if !self.eat(b'(') {
                    return Err(self.err("expected `(` after `?`"));
                }
                return Ok(Step::Filter(self.filter()?));
            }
            _ => {
                let a = self.int();
                if self.eat(b':') {
                    Step::Slice(a, self.int())
                } else {
                    Step::Index(a.ok_or_else(|| {
                        self.err("expected an index, a slice, *, a quoted key or a filter")
                    })?)
                }
            }
        };
        self.skip_space();
        if !self.eat(b']') {
            return Err(self.err("expected `]`"));
        }
        Ok(step)
    }
}

fn parse(path: &str) -> Result<Vec<Step>, String> {
    let trimmed = path.trim();
    let mut lx = Lexer {
        s: trimmed.as_bytes(),
        text: trimmed,
        i: 0,
    };
    lx.eat(b'$');
    let mut steps = Vec::new();
    // A path may start with a bare key (`a.b`), as people often write.
    if lx.i == 0 && !trimmed.is_empty() && !trimmed.starts_with(['.', '[']) {
        steps.push(Step::Key(lx.name()?));
    }
    while lx.i < lx.s.len() {
        if lx.eat(b'.') {
            if lx.eat(b'.') {
                steps.push(if lx.eat(b'*') {
                    Step::Descend(None)
                } else if lx.s.get(lx.i) == Some(&b'[') {
                    Step::Descend(None)
                } else {
                    Step::Descend(Some(lx.name()?))
                });
            } else if lx.eat(b'*') {
                steps.push(Step::All);
            } else {
                steps.push(Step::Key(lx.name()?));
            }
        } else if lx.eat(b'[') {
            steps.push(lx.bracket()?);
        } else {
            return Err(lx.err("expected `.` or `[`"));
        }
    }
    Ok(steps)
}

fn index(len: usize, i: i64) -> Option<usize> {
    let i = if i < 0 { len as i64 + i } else { i };
    (0..len as i64).contains(&i).then_some(i as usize)
}

fn descendants<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    let children: Box<dyn Iterator<Item = &Value>> = match v {
        Value::Array(a) => Box::new(a.iter()),
        Value::Object(o) => Box::new(o.values()),
        _ => return,
    };
    for c in children {
        out.push(c);
        descendants(c, out);
    }
}

fn compare(a: &Value, op: Op, b: &Value) -> bool {
    use std::cmp::Ordering;
    let ord = match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .zip(y.as_f64())
            .and_then(|(x, y)| x.partial_cmp(&y)),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => (a == b).then_some(Ordering::Equal),
    };
    match op {
        Op::Eq => ord == Some(Ordering::Equal),
        Op::Ne => ord != Some(Ordering::Equal),
        Op::Lt => ord == Some(Ordering::Less),
        Op::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
        Op::Gt => ord == Some(Ordering::Greater),
        Op::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
    }
}

fn apply<'a>(step: &Step, v: &'a Value, out: &mut Vec<&'a Value>) {
    match (step, v) {
        (Step::Key(k), Value::Object(o)) => out.extend(o.get(k)),
        (Step::Index(i), Value::Array(a)) => out.extend(index(a.len(), *i).map(|i| &a[i])),
        (Step::All, Value::Array(a)) => out.extend(a.iter()),
        (Step::All, Value::Object(o)) => out.extend(o.values()),
        (Step::Slice(from, to), Value::Array(a)) => {
            let clamp = |i: i64| {
                (if i < 0 { a.len() as i64 + i } else { i }).clamp(0, a.len() as i64) as usize
            };
            let (f, t) = (
                from.map(clamp).unwrap_or(0),
                to.map(clamp).unwrap_or(a.len()),
            );
            if f < t {
                out.extend(a[f..t].iter());
            }
        }
        (Step::Descend(key), _) => {
            let mut all = vec![v];
            descendants(v, &mut all);
            for d in all {
                match key {
                    Some(k) => {
                        if let Value::Object(o) = d {
                            out.extend(o.get(k));
                        }
                    }
                    None if !std::ptr::eq(d, v) => out.push(d),
                    None => {}
                }
            }
        }
        (Step::Filter(f), Value::Array(_) | Value::Object(_)) => {
            let items: Vec<&Value> = match v {
                Value::Array(a) => a.iter().collect(),
                Value::Object(o) => o.values().collect(),
                _ => Vec::new(),
            };
            for item in items {
                let field = f.field.iter().try_fold(item, |cur, k| cur.get(k));
                let keep = match (&f.test, field) {
                    (None, Some(_)) => true,
                    (Some((op, lit)), Some(x)) => compare(x, *op, lit),
                    _ => false,
                };
                if keep {
                    out.push(item);
                }
            }
        }
        _ => {}
    }
}

/// What was at the last step that still matched, to make "no match" useful.
fn describe(values: &[&Value]) -> String {
    match values.first() {
        Some(Value::Object(o)) => format!(
            "an object with keys {}",
            o.keys()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some(Value::Array(a)) => format!("an array of {} elements", a.len()),
        Some(other) => format!("the value {other}"),
        None => "nothing".into(),
    }
}

/// Steps written back as a path, for messages.
fn show(steps: &[Step]) -> String {
    let mut out = String::from("$");
    for s in steps {
        match s {
            Step::Key(k) => out.push_str(&format!(".{k}")),
            Step::Index(i) => out.push_str(&format!("[{i}]")),
            Step::All => out.push_str("[*]"),
            Step::Slice(a, b) => out.push_str(&format!(
                "[{}:{}]",
                a.map(|a| a.to_string()).unwrap_or_default(),
                b.map(|b| b.to_string()).unwrap_or_default()
            )),
            Step::Descend(Some(k)) => out.push_str(&format!("..{k}")),
            Step::Descend(None) => out.push_str("..*"),
            Step::Filter(_) => out.push_str("[?(...)]"),
        }
    }
    out
}

fn query(document: &str, path: &str) -> Result<String, String> {
    let doc: Value = serde_json::from_str(document)
        .map_err(|e| format!("the document is not valid JSON: {e}"))?;
    let steps = parse(path)?;
    let mut current = vec![&doc];
    for (n, step) in steps.iter().enumerate() {
        let mut next = Vec::new();
        for v in &current {
            apply(step, v, &mut next);
        }
        if next.is_empty() {
            let at = if n == 0 {
                "the document".to_string()
            } else {
                format!("`{}`", show(&steps[..n]))
            };
            return Err(format!(
                "no match for `{}`: {at} is {}",
                path.trim(),
                describe(&current)
            ));
        }
        current = next;
    }
    Ok(match current.as_slice() {
        [one] => one.to_string(),
        many => Value::Array(many.iter().map(|v| (*v).clone()).collect()).to_string(),
    })
}

struct Json;

impl Guest for Json {
    fn query(document: String, path: String) -> Result<String, String> {
        query(&document, &path)
    }
}

export!(Json);

#[cfg(test)]
mod tests {
    use super::query;

    const DOC: &str = r#"{"store": {"book": [
        {"title": "A", "price": 8.95, "tags": ["x"]},
        {"title": "B", "price": 12.99},
        {"title": "C", "price": 8.99, "isbn": "123"}
    ], "bicycle": {"color": "red", "price": 19.95}}}"#;

    #[test]
    fn paths() {
        assert_eq!(query(DOC, "$.store.book[0].title"), Ok("\"A\"".into()));
        assert_eq!(query(DOC, "store.book[-1].title"), Ok("\"C\"".into()));
        assert_eq!(
            query(DOC, "$.store.book[*].title"),
            Ok(r#"["A","B","C"]"#.into())
        );
        assert_eq!(query(DOC, "$..price"), Ok("[8.95,12.99,8.99,19.95]".into()));
        assert_eq!(
            query(DOC, "$.store.book[?(@.price < 10)].title"),
            Ok(r#"["A","C"]"#.into())
        );
        assert_eq!(
            query(DOC, "$.store.book[?(@.isbn)].title"),
            Ok("\"C\"".into())
        );
        assert_eq!(
            query(DOC, "$.store.book[?(@.title == 'B')].price"),
            Ok("12.99".into())
        );
        assert_eq!(
            query(DOC, "$.store.book[1:].title"),
            Ok(r#"["B","C"]"#.into())
        );
        assert_eq!(
            query(DOC, "$['store']['bicycle'].color"),
            Ok("\"red\"".into())
        );
        assert_eq!(query(DOC, "$.store.*.color"), Ok("\"red\"".into()));
        assert_eq!(
            query(DOC, "$"),
            Ok(serde_json::from_str::<serde_json::Value>(DOC)
                .unwrap()
                .to_string())
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            query(DOC, "$.store.car"),
            Err(
                "no match for `$.store.car`: `$.store` is an object with keys `book`, `bicycle`"
                    .into()
            )
        );
        assert_eq!(
            query("{", "$"),
            Err(
                "the document is not valid JSON: EOF while parsing an object at line 1 column 1"
                    .into()
            )
        );
        assert_eq!(query(DOC, "$.store[abc]"), Err("bad path `$.store[abc]` at character 9: expected an index, a slice, *, a quoted key or a filter".into()));
        assert_eq!(query(DOC, "$.store.book[?(@.price < x)]"), Err("bad path `$.store.book[?(@.price < x)]` at character 26: expected a number, a quoted string, true, false or null".into()));
    }
}
