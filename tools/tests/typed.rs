//! Tools from typed Rust functions (`typed::tool`): the schema, description and validation
//! come from the argument type; results and errors reach the model as any tool's do.

use agent_tools::{CallContext, ToolOutput, ToolRegistry, typed};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Tomorrow's weather in a city.
#[derive(Deserialize, JsonSchema)]
struct Forecast {
    /// The city, as people write it.
    city: String,
    /// How many days ahead (1 is tomorrow).
    days: Option<u8>,
    unit: Unit,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Unit {
    Celsius,
    Fahrenheit,
}

#[derive(Serialize)]
struct Weather {
    city: String,
    degrees: i32,
}

fn registry() -> ToolRegistry {
    let mut tools = ToolRegistry::new();
    tools
        .register(typed::tool("forecast", |f: Forecast| async move {
            if f.city.is_empty() {
                return Err("which city?");
            }
            let degrees = match f.unit {
                Unit::Celsius => 21,
                Unit::Fahrenheit => 70,
            } + i32::from(f.days.unwrap_or(1));
            Ok(Weather {
                city: f.city,
                degrees,
            })
        }))
        .unwrap();
    tools
        .register(typed::tool("shout", |s: Shout| async move {
            Ok::<_, std::convert::Infallible>(s.text.to_uppercase())
        }))
        .unwrap();
    // A tool that cannot fail returns its value itself.
    tools
        .register(typed::tool("length", |s: Shout| async move {
            s.text.chars().count()
        }))
        .unwrap();
    tools
}

/// Upper-cases a text.
#[derive(Deserialize, JsonSchema)]
struct Shout {
    text: String,
}

#[test]
fn the_schema_and_description_come_from_the_type() {
    let tools = registry();
    let spec = tools.get("forecast").unwrap().spec().clone();
    assert_eq!(
        (
            spec.name.as_str(),
            spec.description.as_str(),
            spec.parameters
        ),
        (
            "forecast",
            "Tomorrow's weather in a city.",
            json!({
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "The city, as people write it."},
                    "days": {
                        "type": ["integer", "null"],
                        "format": "uint8",
                        "minimum": 0,
                        "maximum": 255,
                        "description": "How many days ahead (1 is tomorrow)."
                    },
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}
                },
                "required": ["city", "unit"]
            })
        )
    );
    assert_eq!(
        tools.get("shout").unwrap().spec().description,
        "Upper-cases a text."
    );
}

#[tokio::test]
async fn results_and_errors_reach_the_model_as_any_tools_do() {
    let tools = registry();
    let call = |name: &'static str, args| {
        let tools = tools.clone();
        async move { tools.call(name, args, CallContext::default()).await }
    };
    assert_eq!(
        call(
            "forecast",
            json!({"city": "Lyon", "days": 2, "unit": "celsius"})
        )
        .await,
        ToolOutput {
            content: r#"{"city":"Lyon","degrees":23}"#.into(),
            structured: Some(json!({"city": "Lyon", "degrees": 23})),
            ..ToolOutput::text("")
        }
    );
    assert_eq!(
        call("shout", json!({"text": "hi"})).await,
        ToolOutput::text("HI")
    );
    assert_eq!(
        call("length", json!({"text": "héllo"})).await,
        ToolOutput {
            content: "5".into(),
            structured: Some(json!(5)),
            ..ToolOutput::text("")
        }
    );
    assert_eq!(
        call("forecast", json!({"city": "", "unit": "celsius"})).await,
        ToolOutput::error("which city?")
    );
    // Refused by the schema before the function runs.
    let refused = call("forecast", json!({"city": "Lyon", "unit": "kelvin"})).await;
    assert!(
        refused.is_error && refused.content.contains("unit"),
        "{refused:?}"
    );
    let refused = call(
        "forecast",
        json!({"city": "Lyon", "days": 300, "unit": "celsius"}),
    )
    .await;
    assert!(
        refused.is_error && refused.content.contains("days"),
        "{refused:?}"
    );
}
