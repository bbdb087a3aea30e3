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

/// Small models fill a string parameter with its description ("The text to search") when the
/// task does not make the value obvious to them; such a call is valid by the schema but
/// meaningless, and the tool's answer to it reads like a real result. Names the first
/// top-level string argument that repeats its description: whole, or, for a longer value, its
/// first 24 characters (the model sometimes runs on into another parameter's text). Only prose
/// descriptions count (three words or more, no URL), and never for parameters whose values
/// are fixed by the schema (`enum`, `const`, `pattern`, `format`).
pub fn echoed_description(schema: &Value, arguments: &Value) -> Option<String> {
    let norm = |s: &str| s.trim().trim_end_matches('.').trim().to_lowercase();
    let props = schema.get("properties")?.as_object()?;
    let args = arguments.as_object()?;
    props.iter().find_map(|(name, prop)| {
        if ["enum", "const", "pattern", "format"].iter().any(|k| prop.get(k).is_some()) {
            return None;
        }
        let value = norm(args.get(name)?.as_str()?);
        let description = norm(prop.get("description")?.as_str()?);
        if description.split_whitespace().count() < 3 || description.contains("://") {
            return None;
        }
        let head: String = description.chars().take(24).collect();
        let echoed = value == description || (head.chars().count() == 24 && value.chars().count() > description.chars().count() && value.starts_with(&head));
        echoed.then(|| name.clone())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_a_description_given_as_the_value() {
        let schema = json!({"type": "object", "properties": {
            "text": {"type": "string", "description": "The text to search"},
            "answer": {"description": "The answer itself, as the task asks for it (a number, a word)."},
            "n": {"type": "integer", "description": "How many"}
        }});
        let found = |args: Value| echoed_description(&schema, &args);
        assert_eq!(found(json!({"text": "The text to search"})), Some("text".into()));
        assert_eq!(found(json!({"text": " the text to search. "})), Some("text".into()));
        assert_eq!(found(json!({"answer": "The answer itself, as the task asks for it (a number, a word, any substring)."})), Some("answer".into()));
        assert_eq!(found(json!({"text": "strawberry", "answer": "3", "n": 3})), None);
        // Short descriptions must be matched whole: "The text" is a fine value.
        assert_eq!(found(json!({"text": "The text"})), None);
        assert_eq!(found(json!({"answer": "The answer itself"})), None);
        // Labels, URL templates and values the schema fixes are not prose to echo.
        let schema = json!({"type": "object", "properties": {
            "q": {"type": "string", "description": "query"},
            "url": {"type": "string", "description": "https://api.example.com/v1/{resource}, the endpoint"},
            "mode": {"type": "string", "enum": ["the fast mode"], "description": "the fast mode"}
        }});
        let args = json!({"q": "query", "url": "https://api.example.com/v1/users, the endpoint and more", "mode": "the fast mode"});
        assert_eq!(echoed_description(&schema, &args), None);
    }

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
