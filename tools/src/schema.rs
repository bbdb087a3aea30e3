//! Argument validation against a tool's JSON Schema, with the path of the first violation so
//! the model can be told exactly what to fix.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SchemaError {
    #[error("invalid JSON Schema: {0}")]
    InvalidSchema(String),
    #[error("arguments do not match the schema at {path}: {message}")]
    Violation { path: String, message: String },
}

/// Checks `arguments` against `schema`; the error names the JSON pointer of the first problem
/// (`/` for the object itself).
pub fn validate_arguments(schema: &Value, arguments: &Value) -> Result<(), SchemaError> {
    let validator =
        jsonschema::validator_for(schema).map_err(|e| SchemaError::InvalidSchema(e.to_string()))?;
    match validator.iter_errors(arguments).next() {
        None => Ok(()),
        Some(err) => {
            let path = err.instance_path.as_str().to_string();
            Err(SchemaError::Violation {
                path: if path.is_empty() { "/".to_string() } else { path },
                message: err.to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_path_of_violation() {
        let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]});
        assert_eq!(validate_arguments(&schema, &json!({"n": 3})), Ok(()));
        assert_eq!(
            validate_arguments(&schema, &json!({"n": "x"})),
            Err(SchemaError::Violation { path: "/n".into(), message: "\"x\" is not of type \"integer\"".into() })
        );
        assert_eq!(
            validate_arguments(&schema, &json!({})),
            Err(SchemaError::Violation { path: "/".into(), message: "\"n\" is a required property".into() })
        );
    }
}
