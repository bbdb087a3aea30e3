//! `calc`: arithmetic a small model gets wrong in its head, done exactly. Numbers are exact
//! fractions (big integers over big integers), so 0.1 + 0.2 is 0.3 and 1/3 * 3 is 1; only the
//! final value is rounded, and only when it has no finite decimal form. A typed WIT export:
//! the host derives the tool's schema from `wit/calc.wit`.

use num_bigint::BigInt;
use num_integer::Integer;
use num_traits::{One, Signed, ToPrimitive, Zero};

wit_bindgen::generate!({ world: "calc", path: "wit" });

/// The WIT, doc comments included, for the host to describe the tool from (the component's own
/// type information has no docs).
#[unsafe(link_section = "agent-tool-wit")]
#[used]
static WIT: [u8; include_bytes!("../wit/calc.wit").len()] = *include_bytes!("../wit/calc.wit");

const MAX_EXPRESSION_CHARS: usize = 10_000;
const MAX_DEPTH: usize = 200;
const MAX_EXPONENT: i64 = 10_000;
/// Largest number of bits a value may reach (about 30 000 decimal digits).
const MAX_BITS: u64 = 100_000;

/// An exact rational number, kept reduced with a positive denominator.
#[derive(Debug, Clone, PartialEq)]
struct Q {
    num: BigInt,
    den: BigInt,
}

impl Q {
    fn new(num: BigInt, den: BigInt) -> Result<Q, String> {
        if den.is_zero() {
            return Err("division by zero".into());
        }
        let g = num.gcd(&den);
        let (mut num, mut den) = (num / &g, den / &g);
        if den.is_negative() {
            num = -num;
            den = -den;
        }
        if num.bits() > MAX_BITS || den.bits() > MAX_BITS {
            return Err("the numbers grow too large (more than about 30 000 digits)".into());
        }
        Ok(Q { num, den })
    }

    fn int(n: BigInt) -> Q {
        Q {
            num: n,
            den: BigInt::one(),
        }
    }

    fn add(&self, o: &Q) -> Result<Q, String> {
        Q::new(&self.num * &o.den + &o.num * &self.den, &self.den * &o.den)
    }

    fn sub(&self, o: &Q) -> Result<Q, String> {
        Q::new(&self.num * &o.den - &o.num * &self.den, &self.den * &o.den)
    }

    fn mul(&self, o: &Q) -> Result<Q, String> {
        Q::new(&self.num * &o.num, &self.den * &o.den)
    }

    fn div(&self, o: &Q) -> Result<Q, String> {
        Q::new(&self.num * &o.den, &self.den * &o.num)
    }

    /// Remainder with the sign of the dividend, as in most languages: 7 % -2 = 1.
    fn rem(&self, o: &Q) -> Result<Q, String> {
        let q = self.div(o)?;
        let whole = Q::int(&q.num / &q.den);
        self.sub(&o.mul(&whole)?)
    }

    fn pow(&self, e: &Q) -> Result<Q, String> {
        if !e.den.is_one() {
            return Err("only whole-number powers are exact (found a fractional exponent)".into());
        }
        let n = e
            .num
            .to_i64()
            .filter(|n| n.abs() <= MAX_EXPONENT)
            .ok_or(format!(
                "the exponent must be between -{MAX_EXPONENT} and {MAX_EXPONENT}"
            ))?;
        let bits = self.num.bits().max(self.den.bits());
        if bits.saturating_mul(n.unsigned_abs()) > MAX_BITS {
            return Err("the numbers grow too large (more than about 30 000 digits)".into());
        }
        let (num, den) = (
            self.num.pow(n.unsigned_abs() as u32),
            self.den.pow(n.unsigned_abs() as u32),
        );
        if n < 0 {
            Q::new(den, num)
        } else {
            Q::new(num, den)
        }
    }

    /// Whether the value has a finite decimal form (its denominator is 2^a 5^b).
    fn terminates(&self) -> bool {
        let mut d = self.den.clone();
        for p in [2u32, 5] {
            let p = BigInt::from(p);
            while (&d % &p).is_zero() {
                d /= &p;
            }
        }
        d.is_one()
    }

    /// The value in decimal, exact when it terminates, else rounded half away from zero to
    /// `places` decimals. The bool says whether it is exact.
    fn to_decimal(&self, places: u32) -> (String, bool) {
        let exact = self.terminates();
        let places = if exact {
            // Enough places for the exact value: the larger power of 2 or 5 in the denominator.
            let mut d = self.den.clone();
            let mut n = 0u32;
            while !d.is_one() {
                d = if (&d % 10u32).is_zero() {
                    d / 10u32
                } else if (&d % 2u32).is_zero() {
                    d / 2u32
                } else {
                    d / 5u32
                };
                n += 1;
            }
            n
        } else {
            places
        };
        let scale = BigInt::from(10u32).pow(places);
        let scaled: BigInt = (&self.num.abs() * &scale * 2u32 + &self.den) / (&self.den * 2u32);
        let digits = scaled.to_string();
        let (int, frac) = if places == 0 {
            (digits, String::new())
        } else {
            let padded = format!("{digits:0>width$}", width = places as usize + 1);
            let (i, f) = padded.split_at(padded.len() - places as usize);
            (i.to_string(), f.trim_end_matches('0').to_string())
        };
        let sign = if self.num.is_negative() && (int != "0" || !frac.is_empty()) {
            "-"
        } else {
            ""
        };
        let text = if frac.is_empty() {
            format!("{sign}{int}")
        } else {
            format!("{sign}{int}.{frac}")
        };
        (text, exact)
    }
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn new(text: &str) -> Parser {
        // Accept what people type: full-width digits and operators, × ÷ and the minus sign.
        let chars = text
            .chars()
            .map(|c| match c {
                '０'..='９' => char::from(b'0' + (c as u32 - '０' as u32) as u8),
                '．' => '.',
                '＋' => '+',
                '－' | '−' | '–' => '-',
                '×' | '＊' | '·' => '*',
                '÷' | '／' => '/',
                '（' => '(',
                '）' => ')',
                '＾' => '^',
                other => other,
            })
            .collect();
        Parser {
            chars,
            pos: 0,
            depth: 0,
        }
    }

    fn skip_space(&mut self) {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_space();
        self.chars.get(self.pos).copied()
    }

    fn error(&self, expected: &str) -> String {
        match self.chars.get(self.pos) {
            Some(c) => format!(
                "unexpected `{c}` at character {}: expected {expected}",
                self.pos + 1
            ),
            None => format!("the expression ends too early: expected {expected}"),
        }
    }

    fn expression(&mut self) -> Result<Q, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!(
                "the expression nests more than {MAX_DEPTH} levels deep"
            ));
        }
        let mut value = self.term()?;
        while let Some(op @ ('+' | '-')) = self.peek() {
            self.pos += 1;
            let rhs = self.term()?;
            value = if op == '+' {
                value.add(&rhs)?
            } else {
                value.sub(&rhs)?
            };
        }
        self.depth -= 1;
        Ok(value)
    }

    fn term(&mut self) -> Result<Q, String> {
        let mut value = self.unary()?;
        while let Some(op @ ('*' | '/' | '%')) = self.peek() {
            self.pos += 1;
            let rhs = self.unary()?;
            value = match op {
                '*' => value.mul(&rhs)?,
                '/' => value.div(&rhs)?,
                _ => value.rem(&rhs)?,
            };
        }
        Ok(value)
    }

    /// A sign binds looser than a power: -2^2 is -4.
    fn unary(&mut self) -> Result<Q, String> {
        match self.peek() {
            Some('-') => {
                self.pos += 1;
                self.nested(|p| p.unary()).map(|v| Q {
                    num: -v.num,
                    den: v.den,
                })
            }
            Some('+') => {
                self.pos += 1;
                self.nested(|p| p.unary())
            }
            _ => self.power(),
        }
    }

    /// Right-associative: 2^3^2 is 2^9.
    fn power(&mut self) -> Result<Q, String> {
        let base = self.atom()?;
        if self.peek() == Some('^') || self.starts_with("**") {
            self.pos += if self.chars[self.pos] == '^' { 1 } else { 2 };
            let exponent = self.nested(|p| p.unary())?;
            return base.pow(&exponent);
        }
        Ok(base)
    }

    fn nested(&mut self, f: impl FnOnce(&mut Parser) -> Result<Q, String>) -> Result<Q, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!(
                "the expression nests more than {MAX_DEPTH} levels deep"
            ));
        }
        let v = f(self)?;
        self.depth -= 1;
        Ok(v)
    }

    fn starts_with(&self, s: &str) -> bool {
        s.chars()
            .enumerate()
            .all(|(i, c)| self.chars.get(self.pos + i) == Some(&c))
    }

    fn atom(&mut self) -> Result<Q, String> {
        match self.peek() {
            Some('(') => {
                self.pos += 1;
                let v = self.expression()?;
                if self.peek() != Some(')') {
                    return Err(self.error("`)`"));
                }
                self.pos += 1;
                Ok(v)
            }
            Some(c) if c.is_ascii_digit() || c == '.' => self.number(),
            _ => Err(self.error("a number or `(`")),
        }
    }

    /// `12`, `1.5`, `.5`, `1_000`, `2.5e-3`.
    fn number(&mut self) -> Result<Q, String> {
        let start = self.pos;
        let mut digits = String::new();
        let mut frac_len = 0i64;
        let mut seen_point = false;
        while let Some(&c) = self.chars.get(self.pos) {
            if c.is_ascii_digit() {
                digits.push(c);
                if seen_point {
                    frac_len += 1;
                }
            } else if c == '.' && !seen_point {
                seen_point = true;
            } else if c != '_' {
                break;
            }
            self.pos += 1;
        }
        if digits.is_empty() {
            self.pos = start;
            return Err(self.error("a number"));
        }
        let mut exp = 0i64;
        if matches!(self.chars.get(self.pos), Some('e' | 'E')) {
            let save = self.pos;
            self.pos += 1;
            let mut s = String::new();
            if let Some(&c @ ('+' | '-')) = self.chars.get(self.pos) {
                s.push(c);
                self.pos += 1;
            }
            while let Some(&c) = self.chars.get(self.pos).filter(|c| c.is_ascii_digit()) {
                s.push(c);
                self.pos += 1;
            }
            exp = match s.parse::<i64>() {
                Ok(e) if e.abs() <= MAX_EXPONENT => e,
                Ok(_) => {
                    return Err(format!(
                        "the exponent at character {} is out of range",
                        save + 1
                    ));
                }
                Err(_) => {
                    self.pos = save + 1;
                    return Err(self.error("the digits of an exponent"));
                }
            };
        }
        let mantissa: BigInt = digits.parse().map_err(|_| self.error("a number"))?;
        let shift = exp - frac_len;
        let ten = BigInt::from(10u32);
        if shift >= 0 {
            Q::new(mantissa * ten.pow(shift as u32), BigInt::one())
        } else {
            Q::new(mantissa, ten.pow((-shift) as u32))
        }
    }
}

fn evaluate(expression: &str, places: u8) -> Result<String, String> {
    let shown = expression.trim();
    if shown.is_empty() {
        return Err("the expression is empty".into());
    }
    if shown.chars().count() > MAX_EXPRESSION_CHARS {
        return Err(format!(
            "the expression is longer than {MAX_EXPRESSION_CHARS} characters"
        ));
    }
    let mut p = Parser::new(shown);
    let value = p.expression()?;
    if p.peek().is_some() {
        return Err(p.error("an operator (+ - * / % ^) or the end"));
    }
    let (text, exact) = value.to_decimal(places as u32);
    Ok(if exact {
        format!("{shown} = {text}")
    } else {
        format!("{shown} ≈ {text} (exactly {}/{})", value.num, value.den)
    })
}

struct Calc;

impl Guest for Calc {
    fn evaluate(expression: String, decimal_places: Option<u8>) -> Result<String, String> {
        evaluate(&expression, decimal_places.unwrap_or(20).min(100))
    }
}

export!(Calc);

#[cfg(test)]
mod tests {
    use super::evaluate;

    #[test]
    fn exact_arithmetic() {
        assert_eq!(evaluate("0.1 + 0.2", 20), Ok("0.1 + 0.2 = 0.3".into()));
        assert_eq!(
            evaluate("(1.5 + 2.25) * 4", 20),
            Ok("(1.5 + 2.25) * 4 = 15".into())
        );
        assert_eq!(evaluate("-2^2", 20), Ok("-2^2 = -4".into()));
        assert_eq!(evaluate("2^3^2", 20), Ok("2^3^2 = 512".into()));
        assert_eq!(evaluate("7 % -2", 20), Ok("7 % -2 = 1".into()));
        assert_eq!(evaluate("1/3*3", 20), Ok("1/3*3 = 1".into()));
        assert_eq!(evaluate("2^-2", 20), Ok("2^-2 = 0.25".into()));
        assert_eq!(evaluate("1/3", 5), Ok("1/3 ≈ 0.33333 (exactly 1/3)".into()));
        assert_eq!(
            evaluate("-2/3", 3),
            Ok("-2/3 ≈ -0.667 (exactly -2/3)".into())
        );
        assert_eq!(evaluate("１２×３", 20), Ok("１２×３ = 36".into()));
        assert_eq!(
            evaluate("1.5e3 - 1_000", 20),
            Ok("1.5e3 - 1_000 = 500".into())
        );
        assert_eq!(
            evaluate("99999999999999999999 + 1", 20),
            Ok("99999999999999999999 + 1 = 100000000000000000000".into())
        );
    }

    #[test]
    fn clear_errors() {
        assert_eq!(evaluate("1 / (2 - 2)", 20), Err("division by zero".into()));
        assert_eq!(
            evaluate("2 + * 3", 20),
            Err("unexpected `*` at character 5: expected a number or `(`".into())
        );
        assert_eq!(
            evaluate("(1 + 2", 20),
            Err("the expression ends too early: expected `)`".into())
        );
        assert_eq!(
            evaluate("2 ^ 0.5", 20),
            Err("only whole-number powers are exact (found a fractional exponent)".into())
        );
        assert_eq!(
            evaluate("1 2", 20),
            Err(
                "unexpected `2` at character 3: expected an operator (+ - * / % ^) or the end"
                    .into()
            )
        );
        assert_eq!(evaluate("", 20), Err("the expression is empty".into()));
        assert!(
            evaluate(&"(".repeat(500), 20)
                .unwrap_err()
                .contains("nests more than")
        );
        assert!(evaluate("10^10000^2", 20).unwrap_err().contains("exponent"));
        assert!(
            evaluate("123456789^9999", 20)
                .unwrap_err()
                .contains("too large")
        );
    }
}
