//! `output:`: what the final answer must look like.

use serde::{Deserialize, Serialize, Serializer};
use serde_yaml_ng::Value;

use super::check::{Checked, FieldError, Seg, child, entries, wrong_type};

/// The shape of the final answer.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(try_from = "serde_yaml_ng::Value")]
pub enum OutputSpec {
    /// Free text (`output: text`).
    #[default]
    Text,
    /// A JSON value valid against this JSON Schema (`output: {schema: ...}`).
    /// Always a JSON object that `jsonschema` compiles: checked at parse time
    /// so a broken schema fails before any model is loaded.
    Schema(serde_json::Value),
}

impl OutputSpec {
    /// Checks a final answer against the schema: `Ok` for [`OutputSpec::Text`]
    /// (any answer is text), otherwise the first violation as
    /// `JSON_POINTER: MESSAGE`, with `(root)` for the answer as a whole, so the
    /// message can be fed back to the model verbatim.
    pub fn validate(&self, answer: &serde_json::Value) -> Result<(), String> {
        let OutputSpec::Schema(schema) = self else {
            return Ok(());
        };
        let validator = compile(schema).map_err(|(_, message)| message)?;
        validator.validate(answer).map_err(|error| {
            let pointer = error.instance_path.as_str();
            let pointer = if pointer.is_empty() {
                "(root)"
            } else {
                pointer
            };
            format!("{pointer}: {error}")
        })
    }
}

/// Compiles a schema. The error carries the JSON pointer into the schema of
/// the offending keyword (empty for the schema as a whole) and a message.
fn compile(schema: &serde_json::Value) -> Result<jsonschema::Validator, (String, String)> {
    jsonschema::validator_for(schema).map_err(|error| {
        let pointer = error.instance_path.as_str().to_owned();
        let message = if pointer.is_empty() {
            format!("invalid JSON Schema: {error}")
        } else {
            format!("invalid JSON Schema at {pointer}: {error}")
        };
        (pointer, message)
    })
}

const EXPECTED: &str = "`text` or a mapping {schema: <JSON Schema>}";

/// `output:` as `text` or `{schema: ...}`.
pub(crate) fn check_output(value: &Value, path: &[Seg]) -> Checked<OutputSpec> {
    let map = match value {
        Value::String(s) if s == "text" => return Ok(OutputSpec::Text),
        Value::Mapping(map) => map,
        other => return Err(wrong_type(path, EXPECTED, other)),
    };
    let Some((_, schema)) = entries(map, path, &["schema"])?.into_iter().next() else {
        return Err(FieldError::new(
            path,
            format!("expected {EXPECTED}; found a mapping without `schema`"),
        ));
    };
    let path = child(path, "schema");
    if !matches!(schema, Value::Mapping(_)) {
        return Err(wrong_type(
            &path,
            "a JSON Schema written as a mapping",
            schema,
        ));
    }
    let json = serde_json::to_value(schema)
        .map_err(|e| FieldError::new(&path, format!("cannot be converted to JSON: {e}")))?;
    match compile(&json) {
        Ok(_) => Ok(OutputSpec::Schema(json)),
        Err((pointer, message)) => {
            // Report against `output.schema` but point at the offending
            // keyword's line when it can be found.
            let mut error = FieldError::new(&path, message);
            error.at.extend(pointer_to_path(schema, &pointer));
            Err(error)
        }
    }
}

/// Turns a JSON pointer into the schema into key-path steps, using the YAML
/// tree to tell list indices from numeric-looking keys.
fn pointer_to_path(mut node: &Value, pointer: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    for raw in pointer.split('/').skip(1) {
        let token = raw.replace("~1", "/").replace("~0", "~");
        let next = match node {
            Value::Sequence(items) => token.parse::<usize>().ok().and_then(|index| {
                out.push(Seg::Index(index));
                items.get(index)
            }),
            Value::Mapping(map) => {
                out.push(Seg::Key(token.clone()));
                map.get(token.as_str())
            }
            _ => None,
        };
        match next {
            Some(next) => node = next,
            None => break,
        }
    }
    out
}

impl TryFrom<Value> for OutputSpec {
    type Error = FieldError;

    fn try_from(value: Value) -> Result<Self, FieldError> {
        check_output(&value, &[])
    }
}

impl Serialize for OutputSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            OutputSpec::Text => serializer.serialize_str("text"),
            OutputSpec::Schema(schema) => {
                serde_json::json!({ "schema": schema }).serialize(serializer)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn person() -> OutputSpec {
        OutputSpec::Schema(json!({
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "integer"}}
            },
            "required": ["name"]
        }))
    }

    #[test]
    fn text_accepts_anything() {
        assert_eq!(
            OutputSpec::Text.validate(&json!({"any": [1, "thing"]})),
            Ok(())
        );
    }

    #[test]
    fn schema_accepts_valid_answers() {
        assert_eq!(
            person().validate(&json!({"name": "Ada", "tags": [1, 2]})),
            Ok(())
        );
    }

    #[test]
    fn schema_reports_pointer_and_message_of_first_violation() {
        assert_eq!(
            person().validate(&json!({"name": "Ada", "tags": [1, "two"]})),
            Err(r#"/tags/1: "two" is not of type "integer""#.into())
        );
        assert_eq!(
            person().validate(&json!({"tags": []})),
            Err(r#"(root): "name" is a required property"#.into())
        );
        assert_eq!(
            person().validate(&json!("Ada")),
            Err(r#"(root): "Ada" is not of type "object""#.into())
        );
    }

    #[test]
    fn broken_schema_is_reported_by_validate() {
        let spec = OutputSpec::Schema(json!({"type": 12}));
        let err = spec.validate(&json!(1)).unwrap_err();
        assert!(err.starts_with("invalid JSON Schema at /type: "), "{err}");
    }

    #[test]
    fn pointer_maps_to_yaml_path() {
        let yaml: Value =
            serde_yaml_ng::from_str("properties: {a: {enum: [1, {type: 3}]}}").unwrap();
        assert_eq!(
            pointer_to_path(&yaml, "/properties/a/enum/1/type"),
            vec![
                Seg::Key("properties".into()),
                Seg::Key("a".into()),
                Seg::Key("enum".into()),
                Seg::Index(1),
                Seg::Key("type".into()),
            ]
        );
    }

    #[test]
    fn round_trips_through_json() {
        let json = serde_json::to_value(person()).unwrap();
        assert_eq!(json["schema"]["required"], json!(["name"]));
        assert_eq!(
            serde_json::from_value::<OutputSpec>(json).unwrap(),
            person()
        );
        assert_eq!(
            serde_json::from_value::<OutputSpec>(json!("text")).unwrap(),
            OutputSpec::Text
        );
    }
}
