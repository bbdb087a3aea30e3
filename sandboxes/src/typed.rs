//! Typed tools: every function a component exports (at the top level or from an interface)
//! becomes a tool whose JSON Schema is derived from the function's WIT types, with the WIT's
//! doc comments as descriptions. Arguments arrive as JSON, are turned into component values by
//! the same types, and the result comes back as JSON.
//!
//! The mapping, chosen for what a model writes easily and a JSON Schema can say exactly:
//! - integers are `integer` with the type's bounds; floats `number`; `char` a one-character string;
//! - `record` an object with its fields (an `option` field may be left out); `tuple` a fixed array;
//! - `list` an array; `flags` an array of flag names (a repeat is ignored); `enum` one of its case names;
//! - `option<T>` T or null; `result<T, E>` `{"ok": T}` or `{"err": E}`;
//! - `variant` a case name alone (no payload) or `{"case": payload}`.
//!
//! Names written in kebab-case in WIT (`max-bytes`) are snake_case in JSON (`max_bytes`), as
//! tool and argument names usually are. Resources, futures and streams have no JSON form: a
//! function that uses them is not offered as a tool.

use serde_json::{Map, Value, json};
use wasmtime::Engine;
use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::{Component, ComponentExportIndex, Type, Val};

use crate::docs::Docs;

/// One exported function offered as a tool.
pub struct TypedFunc {
    /// The tool's name within its component (snake_case).
    pub tool: String,
    pub description: String,
    pub parameters: Value,
    pub export: ComponentExportIndex,
    params: Vec<(String, Type)>,
    results: Vec<Type>,
}

/// The component's exported functions as tools, and why any were left out. Interfaces of the
/// JSON contract (`agent:tool/json`) and of WASI are not typed tools.
pub fn discover(
    component: &Component,
    engine: &Engine,
    docs: &Docs,
) -> (Vec<TypedFunc>, Vec<String>) {
    let mut found: Vec<(Option<String>, String, ComponentExportIndex, ComponentFunc)> = Vec::new();
    for (name, item) in component.component_type().exports(engine) {
        match item.ty {
            ComponentItem::ComponentFunc(f) => {
                if let Some(idx) = component.get_export_index(None, name) {
                    found.push((None, name.to_string(), idx, f));
                }
            }
            ComponentItem::ComponentInstance(inst)
                if !name.starts_with("agent:tool/json") && !name.starts_with("wasi:") =>
            {
                let Some(parent) = component.get_export_index(None, name) else {
                    continue;
                };
                for (fname, fitem) in inst.exports(engine) {
                    if let ComponentItem::ComponentFunc(f) = fitem.ty
                        && let Some(idx) = component.get_export_index(Some(&parent), fname)
                    {
                        found.push((Some(interface_name(name)), fname.to_string(), idx, f));
                    }
                }
            }
            _ => {}
        }
    }
    let mut funcs = Vec::new();
    let mut skipped = Vec::new();
    for (iface, fname, export, f) in &found {
        let clash = found.iter().filter(|(_, n, _, _)| n == fname).count() > 1;
        let tool = match iface {
            Some(i) if clash => format!("{}_{}", snake(i), snake(fname)),
            _ => snake(fname),
        };
        let params: Vec<(String, Type)> = f.params().map(|(n, t)| (n.to_string(), t)).collect();
        let results: Vec<Type> = f.results().collect();
        let described = if f.async_() {
            Err("async functions are not supported".to_string())
        } else {
            parameters(&params, docs)
        };
        let described = described.and_then(|p| {
            results
                .iter()
                .try_for_each(|t| schema(t, docs).map(drop))
                .map(|_| p)
        });
        match described {
            Ok(parameters) => {
                let description = docs
                    .function(iface.as_deref(), fname)
                    .unwrap_or("")
                    .to_string();
                funcs.push(TypedFunc {
                    tool,
                    description,
                    parameters,
                    export: *export,
                    params,
                    results,
                });
            }
            Err(why) => skipped.push(format!("`{fname}`: {why}")),
        }
    }
    (funcs, skipped)
}

/// `agent:files/files@0.1.0` → `files`.
fn interface_name(export: &str) -> String {
    let s = export.rsplit('/').next().unwrap_or(export);
    s.split('@').next().unwrap_or(s).to_string()
}

pub fn snake(s: &str) -> String {
    s.replace('-', "_")
}

fn parameters(params: &[(String, Type)], docs: &Docs) -> Result<Value, String> {
    let mut props = Map::new();
    let mut required = Vec::new();
    for (name, ty) in params {
        props.insert(
            snake(name),
            schema(ty, docs).map_err(|e| format!("parameter `{name}`: {e}"))?,
        );
        if !matches!(ty, Type::Option(_)) {
            required.push(Value::String(snake(name)));
        }
    }
    Ok(
        json!({"type": "object", "properties": props, "required": required, "additionalProperties": false}),
    )
}

fn with_doc(mut schema: Value, doc: Option<&str>) -> Value {
    if let (Some(d), Some(obj)) = (doc, schema.as_object_mut()) {
        obj.insert("description".into(), Value::String(d.to_string()));
    }
    schema
}

fn int(min: i128, max: i128) -> Value {
    json!({"type": "integer", "minimum": min, "maximum": max})
}

/// The JSON Schema of values of `ty`.
pub fn schema(ty: &Type, docs: &Docs) -> Result<Value, String> {
    Ok(match ty {
        Type::Bool => json!({"type": "boolean"}),
        Type::S8 => int(i8::MIN.into(), i8::MAX.into()),
        Type::U8 => int(0, u8::MAX.into()),
        Type::S16 => int(i16::MIN.into(), i16::MAX.into()),
        Type::U16 => int(0, u16::MAX.into()),
        Type::S32 => int(i32::MIN.into(), i32::MAX.into()),
        Type::U32 => int(0, u32::MAX.into()),
        Type::S64 => int(i64::MIN.into(), i64::MAX.into()),
        Type::U64 => int(0, u64::MAX.into()),
        Type::Float32 | Type::Float64 => json!({"type": "number"}),
        Type::Char => json!({"type": "string", "minLength": 1, "maxLength": 1}),
        Type::String => json!({"type": "string"}),
        Type::List(l) => json!({"type": "array", "items": schema(&l.ty(), docs)?}),
        Type::FixedLengthList(l) => {
            json!({"type": "array", "items": schema(&l.ty(), docs)?, "minItems": l.len(), "maxItems": l.len()})
        }
        Type::Record(r) => {
            let td = docs.of_type(r.fields().map(|f| f.name));
            let mut props = Map::new();
            let mut required = Vec::new();
            for f in r.fields() {
                let member = td.and_then(|t| t.members.get(f.name)).map(String::as_str);
                props.insert(snake(f.name), with_doc(schema(&f.ty, docs)?, member));
                if !matches!(f.ty, Type::Option(_)) {
                    required.push(Value::String(snake(f.name)));
                }
            }
            let s = json!({"type": "object", "properties": props, "required": required, "additionalProperties": false});
            with_doc(s, td.and_then(|t| t.doc.as_deref()))
        }
        Type::Tuple(t) => {
            let items = t
                .types()
                .map(|t| schema(&t, docs))
                .collect::<Result<Vec<_>, _>>()?;
            let n = items.len();
            json!({"type": "array", "prefixItems": items, "items": false, "minItems": n, "maxItems": n})
        }
        Type::Variant(v) => {
            let td = docs.of_type(v.cases().map(|c| c.name));
            let mut any = Vec::new();
            for c in v.cases() {
                let member = td.and_then(|t| t.members.get(c.name)).map(String::as_str);
                any.push(with_doc(
                    match &c.ty {
                        None => json!({"const": c.name}),
                        Some(t) => json!({"type": "object", "properties": {c.name: schema(t, docs)?}, "required": [c.name], "additionalProperties": false}),
                    },
                    member,
                ));
            }
            with_doc(json!({"anyOf": any}), td.and_then(|t| t.doc.as_deref()))
        }
        Type::Enum(e) => {
            let td = docs.of_type(e.names());
            let names: Vec<&str> = e.names().collect();
            // Case docs folded into the description: `enum` has no per-value descriptions.
            let cases: Vec<String> = td
                .map(|t| {
                    names
                        .iter()
                        .filter_map(|n| {
                            t.members
                                .get(*n)
                                .map(|d| format!("{n}: {}", d.trim_end_matches('.')))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let cases = if cases.is_empty() {
                String::new()
            } else {
                format!("{}.", cases.join("; "))
            };
            let doc = [td.and_then(|t| t.doc.clone()).unwrap_or_default(), cases]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            with_doc(
                json!({"type": "string", "enum": names}),
                Some(doc.as_str()).filter(|d| !d.is_empty()),
            )
        }
        Type::Option(o) => json!({"anyOf": [schema(&o.ty(), docs)?, {"type": "null"}]}),
        Type::Result(r) => {
            let side = |t: Option<Type>| {
                t.map(|t| schema(&t, docs))
                    .unwrap_or(Ok(json!({"type": "null"})))
            };
            json!({"anyOf": [
                {"type": "object", "properties": {"ok": side(r.ok())?}, "required": ["ok"], "additionalProperties": false},
                {"type": "object", "properties": {"err": side(r.err())?}, "required": ["err"], "additionalProperties": false},
            ]})
        }
        Type::Flags(f) => {
            let td = docs.of_type(f.names());
            // No `uniqueItems`: grammars cannot enforce it, and a repeated flag is harmless (the
            // host sets each once).
            with_doc(
                json!({"type": "array", "items": {"type": "string", "enum": f.names().collect::<Vec<_>>()}}),
                td.and_then(|t| t.doc.as_deref()),
            )
        }
        Type::Map(_) => return Err("maps are not supported".into()),
        Type::Own(_) | Type::Borrow(_) => return Err("resources have no JSON form".into()),
        Type::Future(_) | Type::Stream(_) | Type::ErrorContext => {
            return Err("futures and streams have no JSON form".into());
        }
    })
}

impl TypedFunc {
    /// The arguments object as the function's parameters; errors name the argument.
    pub fn params(&self, args: &Value) -> Result<Vec<Val>, String> {
        let obj = args
            .as_object()
            .ok_or("the arguments must be a JSON object")?;
        if let Some(k) = obj
            .keys()
            .find(|k| !self.params.iter().any(|(n, _)| snake(n) == **k))
        {
            return Err(format!("unknown argument `{k}`"));
        }
        self.params
            .iter()
            .map(|(name, ty)| match obj.get(&snake(name)) {
                Some(v) => to_val(ty, v, &snake(name)),
                None if matches!(ty, Type::Option(_)) => Ok(Val::Option(None)),
                None => Err(format!("`{}` is missing", snake(name))),
            })
            .collect()
    }

    pub fn result_slots(&self) -> Vec<Val> {
        vec![Val::Bool(false); self.results.len()]
    }
}

/// A JSON value as a component value of type `ty`; `at` names it in errors.
pub fn to_val(ty: &Type, v: &Value, at: &str) -> Result<Val, String> {
    let bad = |what: &str| format!("`{at}`: expected {what}, found {}", short(v));
    let int = |min: i128, max: i128| -> Result<i128, String> {
        let n = v
            .as_i64()
            .map(i128::from)
            .or_else(|| v.as_u64().map(i128::from))
            .or_else(|| {
                v.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 1e19)
                    .map(|f| f as i128)
            });
        n.filter(|n| (min..=max).contains(n))
            .ok_or_else(|| bad(&format!("a whole number from {min} to {max}")))
    };
    Ok(match ty {
        Type::Bool => Val::Bool(v.as_bool().ok_or_else(|| bad("true or false"))?),
        Type::S8 => Val::S8(int(i8::MIN.into(), i8::MAX.into())? as i8),
        Type::U8 => Val::U8(int(0, u8::MAX.into())? as u8),
        Type::S16 => Val::S16(int(i16::MIN.into(), i16::MAX.into())? as i16),
        Type::U16 => Val::U16(int(0, u16::MAX.into())? as u16),
        Type::S32 => Val::S32(int(i32::MIN.into(), i32::MAX.into())? as i32),
        Type::U32 => Val::U32(int(0, u32::MAX.into())? as u32),
        Type::S64 => Val::S64(int(i64::MIN.into(), i64::MAX.into())? as i64),
        Type::U64 => Val::U64(int(0, u64::MAX.into())? as u64),
        Type::Float32 => Val::Float32(v.as_f64().ok_or_else(|| bad("a number"))? as f32),
        Type::Float64 => Val::Float64(v.as_f64().ok_or_else(|| bad("a number"))?),
        Type::Char => {
            let s = v.as_str().ok_or_else(|| bad("a single character"))?;
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Val::Char(c),
                _ => return Err(bad("a single character")),
            }
        }
        Type::String => Val::String(v.as_str().ok_or_else(|| bad("a string"))?.to_string()),
        Type::List(l) => {
            let items = v.as_array().ok_or_else(|| bad("an array"))?;
            Val::List(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, x)| to_val(&l.ty(), x, &format!("{at}[{i}]")))
                    .collect::<Result<_, _>>()?,
            )
        }
        Type::FixedLengthList(l) => {
            let items = v
                .as_array()
                .filter(|a| a.len() == l.len() as usize)
                .ok_or_else(|| bad(&format!("an array of {}", l.len())))?;
            Val::FixedLengthList(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, x)| to_val(&l.ty(), x, &format!("{at}[{i}]")))
                    .collect::<Result<_, _>>()?,
            )
        }
        Type::Record(r) => {
            let obj = v.as_object().ok_or_else(|| bad("an object"))?;
            if let Some(k) = obj
                .keys()
                .find(|k| !r.fields().any(|f| snake(f.name) == **k))
            {
                return Err(format!("`{at}`: unknown field `{k}`"));
            }
            let mut fields = Vec::new();
            for f in r.fields() {
                let key = snake(f.name);
                let val = match obj.get(&key) {
                    Some(x) => to_val(&f.ty, x, &format!("{at}.{key}"))?,
                    None if matches!(f.ty, Type::Option(_)) => Val::Option(None),
                    None => return Err(format!("`{at}`: the field `{key}` is missing")),
                };
                fields.push((f.name.to_string(), val));
            }
            Val::Record(fields)
        }
        Type::Tuple(t) => {
            let items = v
                .as_array()
                .filter(|a| a.len() == t.types().len())
                .ok_or_else(|| bad(&format!("an array of {}", t.types().len())))?;
            Val::Tuple(
                t.types()
                    .zip(items)
                    .enumerate()
                    .map(|(i, (ty, x))| to_val(&ty, x, &format!("{at}[{i}]")))
                    .collect::<Result<_, _>>()?,
            )
        }
        Type::Variant(var) => {
            let names: Vec<String> = var.cases().map(|c| c.name.to_string()).collect();
            let (case, payload) = match v {
                Value::String(s) => (s.as_str(), None),
                Value::Object(o) if o.len() == 1 => o
                    .iter()
                    .next()
                    .map(|(k, x)| (k.as_str(), Some(x)))
                    .ok_or_else(|| bad("a case"))?,
                _ => return Err(bad(&format!("one of {}", names.join(", ")))),
            };
            let c = var
                .cases()
                .find(|c| c.name == case)
                .ok_or_else(|| format!("`{at}`: `{case}` is not one of {}", names.join(", ")))?;
            match (&c.ty, payload) {
                (None, None) => Val::Variant(case.to_string(), None),
                (None, Some(Value::Null)) => Val::Variant(case.to_string(), None),
                (Some(t), Some(x)) => Val::Variant(
                    case.to_string(),
                    Some(Box::new(to_val(t, x, &format!("{at}.{case}"))?)),
                ),
                (Some(_), None) => {
                    return Err(format!(
                        "`{at}`: the case `{case}` needs a value: {{\"{case}\": ...}}"
                    ));
                }
                (None, Some(_)) => {
                    return Err(format!(
                        "`{at}`: the case `{case}` takes no value: write \"{case}\""
                    ));
                }
            }
        }
        Type::Enum(e) => {
            let s = v.as_str().ok_or_else(|| bad("a string"))?;
            if !e.names().any(|n| n == s) {
                return Err(format!(
                    "`{at}`: `{s}` is not one of {}",
                    e.names().collect::<Vec<_>>().join(", ")
                ));
            }
            Val::Enum(s.to_string())
        }
        Type::Option(o) => match v {
            Value::Null => Val::Option(None),
            x => Val::Option(Some(Box::new(to_val(&o.ty(), x, at)?))),
        },
        Type::Result(r) => {
            let obj = v
                .as_object()
                .filter(|o| o.len() == 1)
                .ok_or_else(|| bad("{\"ok\": ...} or {\"err\": ...}"))?;
            let side =
                |t: Option<Type>, x: &Value, name: &str| -> Result<Option<Box<Val>>, String> {
                    match t {
                        Some(t) => Ok(Some(Box::new(to_val(&t, x, &format!("{at}.{name}"))?))),
                        None => Ok(None),
                    }
                };
            match (obj.get("ok"), obj.get("err")) {
                (Some(x), _) => Val::Result(Ok(side(r.ok(), x, "ok")?)),
                (_, Some(x)) => Val::Result(Err(side(r.err(), x, "err")?)),
                _ => return Err(bad("{\"ok\": ...} or {\"err\": ...}")),
            }
        }
        Type::Flags(f) => {
            let items = v.as_array().ok_or_else(|| bad("an array of flag names"))?;
            let mut set = Vec::new();
            for x in items {
                let s = x
                    .as_str()
                    .filter(|s| f.names().any(|n| n == *s))
                    .ok_or_else(|| {
                        format!(
                            "`{at}`: {} is not one of {}",
                            short(x),
                            f.names().collect::<Vec<_>>().join(", ")
                        )
                    })?;
                if !set.iter().any(|n: &String| n == s) {
                    set.push(s.to_string());
                }
            }
            Val::Flags(set)
        }
        Type::Map(_)
        | Type::Own(_)
        | Type::Borrow(_)
        | Type::Future(_)
        | Type::Stream(_)
        | Type::ErrorContext => {
            return Err(format!("`{at}`: this type has no JSON form"));
        }
    })
}

/// A component value as JSON, by the mapping above.
pub fn from_val(v: &Val) -> Value {
    match v {
        Val::Bool(b) => json!(b),
        Val::S8(n) => json!(n),
        Val::U8(n) => json!(n),
        Val::S16(n) => json!(n),
        Val::U16(n) => json!(n),
        Val::S32(n) => json!(n),
        Val::U32(n) => json!(n),
        Val::S64(n) => json!(n),
        Val::U64(n) => json!(n),
        Val::Float32(f) => json!(f),
        Val::Float64(f) => json!(f),
        Val::Char(c) => json!(c.to_string()),
        Val::String(s) => json!(s),
        Val::List(items) | Val::Tuple(items) | Val::FixedLengthList(items) => {
            Value::Array(items.iter().map(from_val).collect())
        }
        Val::Record(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (snake(k), from_val(v)))
                .collect(),
        ),
        Val::Variant(case, None) | Val::Enum(case) => json!(case),
        Val::Variant(case, Some(x)) => json!({case.as_str(): from_val(x)}),
        Val::Option(None) => Value::Null,
        Val::Option(Some(x)) => from_val(x),
        Val::Result(Ok(x)) => json!({"ok": x.as_deref().map(from_val)}),
        Val::Result(Err(x)) => json!({"err": x.as_deref().map(from_val)}),
        Val::Flags(names) => json!(names),
        Val::Map(pairs) => Value::Array(
            pairs
                .iter()
                .map(|(k, v)| json!([from_val(k), from_val(v)]))
                .collect(),
        ),
        Val::Resource(_) | Val::Future(_) | Val::Stream(_) | Val::ErrorContext(_) => {
            json!("<handle>")
        }
    }
}

/// What a call returned, for the model: a function's single `result` is unwrapped into
/// success or a tool error; anything else is the value.
pub fn outcome(results: &[Val]) -> Result<Value, Value> {
    match results {
        [] => Ok(json!("done")),
        [Val::Result(Ok(x))] => Ok(x.as_deref().map(from_val).unwrap_or(json!("done"))),
        [Val::Result(Err(x))] => Err(x.as_deref().map(from_val).unwrap_or(json!("failed"))),
        [one] => Ok(from_val(one)),
        many => Ok(Value::Array(many.iter().map(from_val).collect())),
    }
}

/// A value as JSON, cut at 40 characters, for error messages.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s
    }
}
