//! Value grammars written from JSON Schemas, for the formats llguidance's `%json` cannot cover:
//! Python literals (Llama 4 pythonic) and raw parameter text (Qwen3-Coder). Also the schema
//! rewrites shared with the JSON formats (closed objects, bounded strings).

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::coder;
use super::pythonic;

/// A Lark string literal (JSON string syntax; DEL is escaped, the lexer refuses it raw).
pub(crate) fn lit(s: &str) -> String {
    Value::String(s.to_string())
        .to_string()
        .replace('\u{7f}', "\\u007f")
}

/// Escapes inside a Python or JSON string literal.
const ESC: &str = r#"\\(["'\\nrtbf]|u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2})"#;

/// Terminals the value grammars use, defined once each.
const TERMINALS: [(&str, &str); 3] = [
    ("PYSEP", r"/, ?/"),
    ("PYINT", r"/-?(0|[1-9][0-9]{0,19})/"),
    (
        "PYNUM",
        r"/-?(0|[1-9][0-9]{0,19})(\.[0-9]{1,17})?([eE][+-]?[0-9]{1,3})?/",
    ),
];

/// Collects the rules and terminals the value grammars need.
pub(crate) struct Values {
    max_chars: Option<usize>,
    rules: Vec<String>,
    used: BTreeSet<String>,
    next: usize,
}

impl Values {
    pub(crate) fn new(max_chars: Option<usize>) -> Self {
        Values {
            max_chars,
            rules: Vec::new(),
            used: BTreeSet::new(),
            next: 0,
        }
    }

    /// The definitions of every rule and terminal used so far.
    pub(crate) fn rules(&self) -> String {
        let mut out = String::new();
        for r in &self.rules {
            out.push_str(r);
            out.push('\n');
        }
        for (name, def) in TERMINALS {
            if self.used.contains(name) {
                out.push_str(&format!("{name}: {def}\n"));
            }
        }
        out
    }

    fn rule(&mut self, body: String) -> String {
        self.next += 1;
        let name = format!("v{}", self.next);
        self.rules.push(format!("{name}: {body}"));
        name
    }

    fn terminal(&mut self, name: &str) -> String {
        self.used.insert(name.to_string());
        name.to_string()
    }

    /// A terminal for a string of at most `max` characters, per `kind` (`py`: a Python/JSON
    /// quoted literal; `coder`: raw text up to the closing parameter tag).
    fn string_terminal(&mut self, kind: &str, max: Option<usize>) -> String {
        let name = match max {
            Some(n) => format!("{}STR{n}", kind.to_uppercase()),
            None => format!("{}STR", kind.to_uppercase()),
        };
        if self.used.insert(name.clone()) {
            let reps = max.map_or("*".to_string(), |n| format!("{{0,{n}}}"));
            let def = if kind == "py" {
                format!(r#"/"({ESC}|[^"\\\x00-\x1F]){reps}"/ | /'({ESC}|[^'\\\x00-\x1F]){reps}'/"#)
            } else {
                // Raw text that does not end the parameter or the call, and the closing tag, in
                // one terminal: free text cannot stop just before a string it excludes.
                format!(
                    r#"(/(.|\n){reps}/ & ~/(.|\n)*(<\/parameter>|<\/function>|<function=|<tool_call>|<\/tool_call>)(.|\n)*/) "\n</parameter>\n""#
                )
            };
            self.rules.push(format!("{name}: {def}"));
        }
        name
    }

    fn string_bound(&self, schema: &Value) -> Option<usize> {
        schema
            .get("maxLength")
            .and_then(Value::as_u64)
            .map(|n| n as usize)
            .or(self.max_chars)
    }

    /// Items for each property in schema order, required ones mandatory, joined by `sep`
    /// (no separator before the first item present).
    pub(crate) fn ordered_params(
        &mut self,
        schema: &Value,
        sep: &str,
        mut item: impl FnMut(&mut Values, &str, &Value) -> String,
    ) -> String {
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let Some(props) = schema.get("properties").and_then(Value::as_object) else {
            return String::new();
        };
        if TERMINALS.iter().any(|(name, _)| *name == sep) {
            self.used.insert(sep.to_string());
        }
        // A property no value can satisfy cannot be written; the grammar leaves it out (a
        // required one is refused before this, see `grammar::check_types`).
        let items: Vec<(String, bool)> = props
            .iter()
            .filter(|(_, v)| !enum_conflict(v))
            .map(|(k, v)| (item(self, k, v), required.contains(&k.as_str())))
            .collect();
        if sep.is_empty() {
            return items
                .iter()
                .map(|(i, req)| if *req { i.clone() } else { format!("({i})?") })
                .collect::<Vec<_>>()
                .join(" ");
        }
        // Each alternative starts at a different first item; all before it are optional.
        let mut alternatives = Vec::new();
        let mut all_optional = true;
        for (j, (first, req)) in items.iter().enumerate() {
            let rest: Vec<String> = items
                .iter()
                .skip(j + 1)
                .map(|(i, r)| {
                    if *r {
                        format!("{sep} {i}")
                    } else {
                        format!("({sep} {i})?")
                    }
                })
                .collect();
            alternatives.push(format!("{first} {}", rest.join(" ")));
            if *req {
                all_optional = false;
                break;
            }
        }
        if alternatives.is_empty() {
            return String::new();
        }
        let alts = self.rule(alternatives.join(" | "));
        if all_optional {
            format!("{alts}?")
        } else {
            alts
        }
    }

    /// Alternatives from `enum`/`const`, `anyOf`/`oneOf` or a list of types, if the schema has
    /// them: `render` writes a fixed value, `value` a sub-schema.
    fn alternatives(
        &mut self,
        s: &Value,
        render: fn(&Value) -> String,
        value: fn(&mut Values, &Value) -> String,
    ) -> Option<String> {
        if let Some(values) = typed_values(s) {
            let alts: Vec<String> = values.into_iter().map(|v| lit(&render(v))).collect();
            return Some(format!("({})", alts.join(" | ")));
        }
        if let Some(subs) = s
            .get("anyOf")
            .or_else(|| s.get("oneOf"))
            .and_then(Value::as_array)
        {
            let alts: Vec<String> = subs.iter().map(|sub| value(self, sub)).collect();
            return Some(format!("({})", alts.join(" | ")));
        }
        if let Some(types) = s.get("type").and_then(Value::as_array) {
            let alts: Vec<String> = types
                .iter()
                .map(|t| {
                    let mut one = s.clone();
                    if let Value::Object(o) = &mut one {
                        o.insert("type".into(), t.clone());
                    }
                    value(self, &one)
                })
                .collect();
            return Some(format!("({})", alts.join(" | ")));
        }
        None
    }

    /// A Python literal valid against `s`.
    pub(crate) fn py_value(&mut self, s: &Value) -> String {
        if let Some(a) = self.alternatives(s, pythonic::literal, Values::py_value) {
            return a;
        }
        match s.get("type").and_then(Value::as_str) {
            Some("string") => {
                let max = self.string_bound(s);
                self.string_terminal("py", max)
            }
            Some("integer") => self.terminal("PYINT"),
            Some("number") => self.terminal("PYNUM"),
            Some("boolean") => "(\"True\" | \"False\")".into(),
            Some("null") => "\"None\"".into(),
            Some("array") => {
                let sep = self.terminal("PYSEP");
                // A tuple: `prefixItems` in order, then more only if `items` allows them.
                if let Some(prefix) = s
                    .get("prefixItems")
                    .and_then(Value::as_array)
                    .filter(|p| !p.is_empty())
                {
                    let fixed: Vec<String> = prefix.iter().map(|p| self.py_value(p)).collect();
                    let rest = match s.get("items") {
                        Some(Value::Bool(false)) => String::new(),
                        Some(items @ Value::Object(_)) => {
                            format!(" ({sep} {})*", self.py_value(items))
                        }
                        _ => format!(" ({sep} {})*", self.py_any()),
                    };
                    return self.rule(format!(
                        "\"[\" {}{rest} \"]\"",
                        fixed.join(&format!(" {sep} "))
                    ));
                }
                let item = match s.get("items") {
                    Some(items @ Value::Object(_)) => self.py_value(items),
                    _ => self.py_any(),
                };
                self.rule(format!("\"[\" ({item} ({sep} {item})*)? \"]\""))
            }
            Some("object") if s.get("properties").is_some() => {
                let sep = self.terminal("PYSEP");
                let keys = self.ordered_params(s, &sep, |v, k, value| {
                    let value = v.py_value(value);
                    format!(
                        "{} {value}",
                        lit(&format!("{}: ", Value::String(k.to_string())))
                    )
                });
                self.rule(format!("\"{{\" {keys} \"}}\""))
            }
            _ => self.py_any(),
        }
    }

    /// Any Python literal (lists and dicts of them).
    fn py_any(&mut self) -> String {
        if self.used.insert("pany".into()) {
            let s = self.string_terminal("py", self.max_chars);
            let (int, num, sep) = (
                self.terminal("PYINT"),
                self.terminal("PYNUM"),
                self.terminal("PYSEP"),
            );
            self.rules.push(format!(
                "pany: {s} | {int} | {num} | \"True\" | \"False\" | \"None\" | plist | pdict"
            ));
            self.rules
                .push(format!("plist: \"[\" (pany ({sep} pany)*)? \"]\""));
            self.rules.push(format!(
                "pdict: \"{{\" ({s} \": \" pany ({sep} {s} \": \" pany)*)? \"}}\""
            ));
        }
        "pany".into()
    }

    /// A Qwen3-Coder parameter value valid against `s`, with the closing `</parameter>`: raw
    /// text for strings, JSON otherwise.
    pub(crate) fn coder_value(&mut self, s: &Value) -> String {
        let close = lit("\n</parameter>\n");
        let fixed = |v: &Value| format!("{}\n</parameter>\n", coder::raw_value(v));
        if let Some(values) = typed_values(s) {
            return format!(
                "({})",
                values
                    .into_iter()
                    .map(|v| lit(&fixed(v)))
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
        }
        if let Some(a) = self.alternatives(s, coder::raw_value, Values::coder_value) {
            return a;
        }
        match s.get("type").and_then(Value::as_str) {
            Some("integer") => format!("{} {close}", self.terminal("PYINT")),
            Some("number") => format!("{} {close}", self.terminal("PYNUM")),
            Some("boolean") => format!("(\"true\" | \"false\") {close}"),
            Some("null") => format!("\"null\" {close}"),
            Some("array" | "object") => {
                let mut schema = s.clone();
                close_nested_objects(&mut schema);
                if let Some(n) = self.max_chars {
                    bound_strings(&mut schema, n);
                }
                if has_ref(&schema) {
                    // A `$ref` cannot be resolved outside its document: any JSON of the type.
                    let t = s.get("type").cloned().unwrap_or(Value::Null);
                    schema = serde_json::json!({ "type": t });
                }
                format!("%json {schema} {close}")
            }
            _ => {
                let max = self.string_bound(s);
                self.string_terminal("coder", max)
            }
        }
    }
}

/// Whether the JSON type (as JSON Schema names them) of `v` is admitted by `types`.
fn admits(t: &str, v: &Value) -> bool {
    match v {
        Value::Null => t == "null",
        Value::Bool(_) => t == "boolean",
        Value::Number(n) => t == "number" || (t == "integer" && (n.is_i64() || n.is_u64())),
        Value::String(_) => t == "string",
        Value::Array(_) => t == "array",
        Value::Object(_) => t == "object",
    }
}

/// The `enum`/`const` values that the schema's `type` (if any) admits.
fn typed_values(s: &Value) -> Option<Vec<&Value>> {
    let values: Vec<&Value> = match (s.get("const"), s.get("enum").and_then(Value::as_array)) {
        (Some(c), _) => vec![c],
        (None, Some(e)) => e.iter().collect(),
        (None, None) => return None,
    };
    let types: Vec<&str> = match s.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return Some(values),
    };
    Some(
        values
            .into_iter()
            .filter(|v| types.iter().any(|t| admits(t, v)))
            .collect(),
    )
}

/// A schema whose `enum`/`const` lists no value of its `type` (BFCL has `"type": "boolean"`
/// with `"enum": ["True", "False", "dontcare"]`): nothing satisfies it.
pub(crate) fn enum_conflict(s: &Value) -> bool {
    typed_values(s).is_some_and(|v| v.is_empty())
}

fn has_ref(v: &Value) -> bool {
    match v {
        Value::Object(o) => o.contains_key("$ref") || o.values().any(has_ref),
        Value::Array(a) => a.iter().any(has_ref),
        _ => false,
    }
}

/// The sub-schemas of a schema, for the rewrites below.
fn children(o: &mut Map<String, Value>) -> Vec<&mut Value> {
    let mut out = Vec::new();
    for (k, v) in o.iter_mut() {
        match k.as_str() {
            "properties" | "$defs" | "definitions" | "patternProperties" => {
                if let Value::Object(m) = v {
                    out.extend(m.values_mut());
                }
            }
            "items" | "additionalProperties" | "not" | "contains" => out.push(v),
            "anyOf" | "oneOf" | "allOf" | "prefixItems" => {
                if let Value::Array(a) = v {
                    out.extend(a.iter_mut());
                }
            }
            _ => {}
        }
    }
    out
}

/// Closes the arguments object, and every nested object that lists its properties, unless the
/// schema says otherwise: no invented parameters. (An object without `properties` is a free
/// dictionary and stays open; so does one that requires a property it does not list.)
pub(crate) fn close_objects(schema: &mut Value) {
    close(schema, true);
}

/// As [`close_objects`], for a value inside the arguments: an object without `properties`
/// stays a free dictionary even at its top.
fn close_nested_objects(schema: &mut Value) {
    close(schema, false);
}

fn close(schema: &mut Value, top: bool) {
    fn walk(v: &mut Value, top: bool) {
        let Value::Object(o) = v else { return };
        if o.get("type").and_then(Value::as_str) == Some("object")
            && !o.contains_key("additionalProperties")
            && (top || o.contains_key("properties"))
            && required_are_listed(o)
        {
            o.insert("additionalProperties".into(), Value::Bool(false));
        }
        for c in children(o) {
            walk(c, false);
        }
    }
    walk(schema, top);
}

/// Whether every required property is among `properties` (else closing the object would make
/// it unsatisfiable).
fn required_are_listed(o: &Map<String, Value>) -> bool {
    let props = o.get("properties").and_then(Value::as_object);
    o.get("required").and_then(Value::as_array).is_none_or(|r| {
        r.iter().all(|k| {
            k.as_str()
                .is_some_and(|k| props.is_some_and(|p| p.contains_key(k)))
        })
    })
}

/// Gives every free string (no `maxLength`, `enum`, `const`, `pattern` or `format`) a
/// `maxLength` of `n` characters.
pub(crate) fn bound_strings(schema: &mut Value, n: usize) {
    let Value::Object(o) = schema else { return };
    let is_string = match o.get("type") {
        Some(Value::String(t)) => t == "string",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "string"),
        _ => false,
    };
    if is_string
        && !["maxLength", "enum", "const", "pattern", "format"]
            .iter()
            .any(|k| o.contains_key(*k))
    {
        o.insert("maxLength".into(), Value::from(n));
    }
    for c in children(o) {
        bound_strings(c, n);
    }
}
