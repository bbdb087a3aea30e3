//! Tools from plain Rust functions: the argument type gives the schema, the description (its
//! doc comment) and the validation; the result is any `Serialize` value; an error goes back to
//! the model as a tool error.
//!
//! ```
//! use agent_tools::{ToolRegistry, typed};
//! use schemars::JsonSchema;
//! use serde::Deserialize;
//!
//! /// Today's weather in a city.
//! #[derive(Deserialize, JsonSchema)]
//! struct Weather {
//!     /// The city, as people write it.
//!     city: String,
//! }
//!
//! let mut tools = ToolRegistry::new();
//! tools
//!     .register(typed::tool("weather", |w: Weather| async move {
//!         Ok::<_, String>(format!("sunny in {}", w.city))
//!     }))
//!     .unwrap();
//! ```

use std::fmt::Display;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{BoxFuture, CallContext, Tool, ToolAnnotations, ToolOutput, ToolSpec};

/// The JSON Schema of `T` as a tool's parameters: subschemas inlined (a tool schema has no
/// `$defs` to point into), without `$schema` and `title`, which chat templates would show the
/// model for nothing.
pub fn parameters<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::draft07()
        .with(|s| {
            s.meta_schema = None;
            s.inline_subschemas = true;
        })
        .into_generator();
    let mut schema = generator.into_root_schema_for::<T>();
    schema.remove("title");
    schema.to_value()
}

/// What a typed tool's function returns: a `Result` whose `Ok` is any `Serialize` value and
/// whose `Err` is a tool error the model reads, or a value of a plain type (text, a number, a
/// boolean, JSON) for a tool that cannot fail.
pub trait IntoToolOutput {
    /// The result as the model will see it.
    fn into_output(self) -> ToolOutput;
}

impl<R: Serialize, E: Display> IntoToolOutput for Result<R, E> {
    fn into_output(self) -> ToolOutput {
        match self {
            Ok(r) => output(r),
            Err(e) => ToolOutput::error(e.to_string()),
        }
    }
}

/// Plain results: the types a tool that cannot fail returns most (a `Result` covers the rest).
macro_rules! plain_outputs {
    ($($t:ty),*) => {$(
        impl IntoToolOutput for $t {
            fn into_output(self) -> ToolOutput {
                output(self)
            }
        }
    )*};
}

plain_outputs!(
    String,
    &'static str,
    Value,
    bool,
    i32,
    i64,
    u32,
    u64,
    usize,
    f32,
    f64
);

/// A tool that deserializes its arguments into `A` and runs `f` on them. Its description is
/// `A`'s doc comment, its parameters `A`'s fields (with theirs). What `f` returns is the result
/// (see [`IntoToolOutput`]): a string is sent as it is, any other value as JSON (and kept as
/// the structured result); an `Err` is a tool error the model reads.
pub fn tool<A, F, Fut>(name: impl Into<String>, f: F) -> Arc<FnTool<A, F>>
where
    A: DeserializeOwned + JsonSchema + Send + 'static,
    F: Fn(A) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoToolOutput,
{
    let mut parameters = parameters::<A>();
    let description = parameters
        .as_object_mut()
        .and_then(|o| o.remove("description"))
        .and_then(|d| d.as_str().map(str::to_owned))
        .unwrap_or_default();
    Arc::new(FnTool {
        spec: ToolSpec {
            name: name.into(),
            description,
            parameters,
        },
        f,
        args: PhantomData,
        annotations: ToolAnnotations::default(),
    })
}

/// A tool made from a function by [`tool`]: `A` is the argument type, `F` the function.
pub struct FnTool<A, F> {
    spec: ToolSpec,
    f: F,
    args: PhantomData<fn(A)>,
    annotations: ToolAnnotations,
}

impl<A, F> FnTool<A, F> {
    /// The tool, saying `annotations` of itself (permissions let a read-only tool run
    /// without asking). Call it on what [`tool`] returned, before the tool is shared: a
    /// shared tool is returned as it was.
    pub fn annotated(self: Arc<Self>, annotations: ToolAnnotations) -> Arc<Self> {
        match Arc::try_unwrap(self) {
            Ok(mut t) => {
                t.annotations = annotations;
                Arc::new(t)
            }
            Err(shared) => shared,
        }
    }
}

impl<A, F, Fut> Tool for FnTool<A, F>
where
    A: DeserializeOwned + JsonSchema + Send + 'static,
    F: Fn(A) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoToolOutput,
{
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn annotations(&self) -> ToolAnnotations {
        self.annotations
    }

    fn call(&self, arguments: Value, _cx: CallContext) -> BoxFuture<'_, ToolOutput> {
        // The registry has checked the arguments against the schema; what serde still refuses
        // (a number out of the type's range, say) is the model's to fix.
        let args = serde_json::from_value::<A>(arguments);
        Box::pin(async move {
            let args = match args {
                Ok(a) => a,
                Err(e) => return ToolOutput::error(format!("invalid arguments: {e}")),
            };
            (self.f)(args).await.into_output()
        })
    }
}

/// A result as the model reads it: a string as it is, anything else as JSON.
fn output<R: Serialize>(r: R) -> ToolOutput {
    match serde_json::to_value(r) {
        Ok(Value::String(s)) => ToolOutput::text(s),
        Ok(v) => ToolOutput {
            content: v.to_string(),
            structured: Some(v),
            ..ToolOutput::text("")
        },
        Err(e) => ToolOutput::error(format!("the tool's result is not JSON: {e}")),
    }
}
