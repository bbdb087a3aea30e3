//! `calculator`: exact-enough arithmetic for models that cannot do it in their heads.
//! A small recursive-descent parser over f64: + - * / % ^ (right-associative), unary minus,
//! parentheses, constants `pi` and `e`, and common functions.

use serde_json::{Value, json};

use crate::{BoxFuture, CallContext, Tool, ToolOutput, ToolSpec};

/// The `calculator` tool: evaluates one expression (see [`evaluate`]) and answers
/// `EXPRESSION = RESULT`, with the number as the structured result.
pub struct Calculator {
    spec: ToolSpec,
}

impl Calculator {
    /// The tool with its fixed spec.
    pub fn new() -> Self {
        Self {
            spec: ToolSpec {
                name: "calculator".into(),
                description: "Evaluate an arithmetic expression, e.g. \"(17 * 23) + 4\". Supports + - * / % ^, parentheses, pi, e, and sqrt, abs, ln, log10, log2, exp, sin, cos, tan, floor, ceil, round, min, max.".into(),
                parameters: json!({
                    "type": "object",
                    "properties": {
                        "expression": {"type": "string", "description": "The expression to evaluate."}
                    },
                    "required": ["expression"]
                }),
            },
        }
    }
}

impl Default for Calculator {
    fn default() -> Self {
        Self::new()
    }
}

impl Tool for Calculator {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn annotations(&self) -> crate::ToolAnnotations {
        crate::ToolAnnotations::READ_ONLY
    }

    fn call(&self, arguments: Value, _cx: CallContext) -> BoxFuture<'_, ToolOutput> {
        let expr = arguments
            .get("expression")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Box::pin(async move {
            match evaluate(&expr) {
                // The expression is repeated so that a small model reading the result sees
                // what was computed, not a bare number.
                Ok(v) => ToolOutput {
                    content: format!("{} = {}", expr.trim(), format_number(v)),
                    structured: Some(json!({"result": v})),
                    is_error: false,
                    attachments: Vec::new(),
                },
                Err(e) => ToolOutput::error(format!("cannot evaluate `{expr}`: {e}")),
            }
        })
    }
}

/// Whole numbers print without a fraction so that "2+2" answers "4", not "4.0".
fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Evaluates an expression; the error says what and where (byte offset).
pub fn evaluate(input: &str) -> Result<f64, String> {
    let mut p = Parser {
        s: input.as_bytes(),
        pos: 0,
    };
    let v = p.expr()?;
    p.skip_ws();
    if p.pos != p.s.len() {
        return Err(format!(
            "unexpected `{}` at position {}",
            p.rest_char(),
            p.pos
        ));
    }
    if !v.is_finite() {
        return Err("result is not a finite number".into());
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.pos).copied()
    }

    fn rest_char(&self) -> char {
        std::str::from_utf8(&self.s[self.pos..])
            .ok()
            .and_then(|r| r.chars().next())
            .unwrap_or('?')
    }

    fn expr(&mut self) -> Result<f64, String> {
        let mut v = self.term()?;
        while let Some(op @ (b'+' | b'-')) = self.peek() {
            self.pos += 1;
            let r = self.term()?;
            v = if op == b'+' { v + r } else { v - r };
        }
        Ok(v)
    }

    fn term(&mut self) -> Result<f64, String> {
        let mut v = self.unary()?;
        while let Some(op @ (b'*' | b'/' | b'%')) = self.peek() {
            self.pos += 1;
            let r = self.unary()?;
            v = match op {
                b'*' => v * r,
                _ if r == 0.0 => return Err("division by zero".into()),
                b'/' => v / r,
                _ => v % r,
            };
        }
        Ok(v)
    }

    fn unary(&mut self) -> Result<f64, String> {
        match self.peek() {
            Some(b'-') => {
                self.pos += 1;
                Ok(-self.unary()?)
            }
            Some(b'+') => {
                self.pos += 1;
                self.unary()
            }
            _ => self.power(),
        }
    }

    fn power(&mut self) -> Result<f64, String> {
        let base = self.atom()?;
        if self.peek() == Some(b'^') || self.s[self.pos..].starts_with(b"**") {
            self.pos += if self.s[self.pos] == b'^' { 1 } else { 2 };
            let exp = self.unary()?; // right-associative, and 2^-1 works
            return Ok(base.powf(exp));
        }
        Ok(base)
    }

    fn atom(&mut self) -> Result<f64, String> {
        match self.peek() {
            Some(b'(') => {
                self.pos += 1;
                let v = self.expr()?;
                self.expect(b')')?;
                Ok(v)
            }
            Some(c) if c.is_ascii_digit() || c == b'.' => self.number(),
            Some(c) if c.is_ascii_alphabetic() => self.call(),
            Some(_) => Err(format!(
                "unexpected `{}` at position {}",
                self.rest_char(),
                self.pos
            )),
            None => Err("unexpected end of expression".into()),
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected `{}` at position {}", c as char, self.pos))
        }
    }

    fn number(&mut self) -> Result<f64, String> {
        let start = self.pos;
        while self.pos < self.s.len()
            && (self.s[self.pos].is_ascii_digit() || matches!(self.s[self.pos], b'.' | b'_' | b','))
        {
            self.pos += 1;
        }
        // Scientific notation: 1e5, 2.5E-3.
        if self.pos < self.s.len() && matches!(self.s[self.pos], b'e' | b'E') {
            let save = self.pos;
            self.pos += 1;
            if self.pos < self.s.len() && matches!(self.s[self.pos], b'+' | b'-') {
                self.pos += 1;
            }
            let digits = self.pos;
            while self.pos < self.s.len() && self.s[self.pos].is_ascii_digit() {
                self.pos += 1;
            }
            if self.pos == digits {
                self.pos = save;
            }
        }
        // Thousands separators (1,000 or 1_000) are common in model output; a comma is only
        // a separator when followed by exactly three digits, so `max(1,2)` still works.
        let raw = std::str::from_utf8(&self.s[start..self.pos]).map_err(|e| e.to_string())?;
        let (text, consumed) = strip_separators(raw);
        self.pos = start + consumed;
        text.parse::<f64>()
            .map_err(|_| format!("bad number `{text}` at position {start}"))
    }

    fn call(&mut self) -> Result<f64, String> {
        let start = self.pos;
        while self.pos < self.s.len()
            && (self.s[self.pos].is_ascii_alphanumeric() || self.s[self.pos] == b'_')
        {
            self.pos += 1;
        }
        let name = std::str::from_utf8(&self.s[start..self.pos])
            .map_err(|e| e.to_string())?
            .to_ascii_lowercase();
        match name.as_str() {
            "pi" => return Ok(std::f64::consts::PI),
            "e" => return Ok(std::f64::consts::E),
            _ => {}
        }
        self.expect(b'(')
            .map_err(|_| format!("unknown name `{name}` at position {start}"))?;
        let mut args = vec![self.expr()?];
        while self.peek() == Some(b',') {
            self.pos += 1;
            args.push(self.expr()?);
        }
        self.expect(b')')?;
        let one = |f: fn(f64) -> f64| -> Result<f64, String> {
            match args.as_slice() {
                [x] => Ok(f(*x)),
                _ => Err(format!("`{name}` takes one argument, got {}", args.len())),
            }
        };
        match name.as_str() {
            "sqrt" => one(f64::sqrt),
            "abs" => one(f64::abs),
            "ln" => one(f64::ln),
            "log" | "log10" => one(f64::log10),
            "log2" => one(f64::log2),
            "exp" => one(f64::exp),
            "sin" => one(f64::sin),
            "cos" => one(f64::cos),
            "tan" => one(f64::tan),
            "floor" => one(f64::floor),
            "ceil" => one(f64::ceil),
            "round" => one(f64::round),
            "min" => args
                .iter()
                .copied()
                .reduce(f64::min)
                .ok_or_else(|| "min needs arguments".into()),
            "max" => args
                .iter()
                .copied()
                .reduce(f64::max)
                .ok_or_else(|| "max needs arguments".into()),
            _ => Err(format!("unknown function `{name}` at position {start}")),
        }
    }
}

/// Removes `_` and thousands-separator commas; returns the number text and how many bytes of
/// `raw` belong to the number.
fn strip_separators(raw: &str) -> (String, usize) {
    let bytes = raw.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'_' => i += 1,
            b',' => {
                let three = bytes.len() >= i + 4
                    && bytes[i + 1..i + 4].iter().all(u8::is_ascii_digit)
                    && bytes.get(i + 4).is_none_or(|c| !c.is_ascii_digit());
                if !three {
                    break;
                }
                i += 1;
            }
            c => {
                out.push(c as char);
                i += 1;
            }
        }
    }
    (out, i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic() {
        let cases = [
            ("2+3*4", 14.0),
            ("(2+3)*4", 20.0),
            ("2^3^2", 512.0),
            ("-2^2", -4.0),
            ("2**10", 1024.0),
            ("10 % 4", 2.0),
            ("sqrt(16) + abs(-3)", 7.0),
            ("max(1,2,3) - min(4, 5)", -1.0),
            ("1,000 * 3", 3000.0),
            ("1.5e3 / 3", 500.0),
            ("9.8 - 9.11", 9.8 - 9.11),
        ];
        for (expr, want) in cases {
            assert_eq!(evaluate(expr), Ok(want), "{expr}");
        }
    }

    #[test]
    fn errors_name_the_position() {
        assert_eq!(evaluate("1 +"), Err("unexpected end of expression".into()));
        assert_eq!(evaluate("1 / 0"), Err("division by zero".into()));
        assert_eq!(
            evaluate("2 $ 3"),
            Err("unexpected `$` at position 2".into())
        );
        assert_eq!(
            evaluate("foo(1)"),
            Err("unknown function `foo` at position 0".into())
        );
        assert_eq!(evaluate("(1"), Err("expected `)` at position 2".into()));
    }

    #[test]
    fn formats_whole_numbers() {
        assert_eq!(format_number(4.0), "4");
        assert_eq!(format_number(0.5), "0.5");
    }
}
