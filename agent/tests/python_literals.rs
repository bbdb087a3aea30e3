//! The Python literal reader (Llama 4's pythonic calls, Qwen3-Coder's parameter values) against
//! Python's own `ast.literal_eval` on generated literals: every one Python reads into a value
//! with a JSON form, we read into the same JSON; every one it refuses (or that has no JSON
//! form: bytes, sets, complex numbers, infinities, integers beyond 64 bits), we refuse.

use agent::formats::python_literal;
use serde_json::Value;

/// splitmix64: reproducible cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

fn digits(r: &mut Rng, alphabet: &str, n: usize) -> String {
    let chars: Vec<char> = alphabet.chars().collect();
    (0..n).map(|_| chars[r.below(chars.len())]).collect()
}

/// Digits with underscores now and then (sometimes where Python refuses them).
fn grouped(r: &mut Rng, alphabet: &str) -> String {
    let n = 1 + r.below(6);
    let mut s = digits(r, alphabet, n);
    if r.chance(20) {
        let at = r.below(s.len() + 1);
        s.insert_str(at, r.pick(&["_", "_", "__"]));
    }
    s
}

fn number(r: &mut Rng) -> String {
    match r.below(9) {
        0 => grouped(r, "0123456789"),
        1 => format!("0{}", grouped(r, "0123456789")),
        2 => format!(
            "{}{}",
            r.pick(&["0x", "0X", "0o", "0b", "0x_"]),
            grouped(r, "0123456789abcdefABCDEF")
        ),
        3 => format!("{}.{}", grouped(r, "0123456789"), grouped(r, "0123456789")),
        4 => format!(".{}", grouped(r, "0123456789")),
        5 => format!("{}.", grouped(r, "0123456789")),
        6 => format!(
            "{}{}{}{}",
            grouped(r, "0123456789"),
            r.pick(&["e", "E", "e+", "e-", "E-"]),
            grouped(r, "0123456789"),
            r.pick(&["", "", "", "j"])
        ),
        7 => format!(
            "{}e{}",
            r.pick(&["1", "9.9", "2"]),
            r.pick(&["400", "-400", "308", "-5"])
        ),
        _ => {
            let n = 1 + r.below(20);
            digits(r, "123456789", n)
        }
    }
}

fn string(r: &mut Rng) -> String {
    let quote = r.pick(&["'", "\""]);
    let triple = r.chance(15);
    let q = if triple {
        quote.repeat(3)
    } else {
        quote.to_string()
    };
    let prefix = if r.chance(25) {
        r.pick(&["r", "u", "R", "U", "b", "f", "rb"])
    } else {
        ""
    };
    let mut body = String::new();
    for _ in 0..r.below(5) {
        let piece = match r.below(12) {
            0 => "\\n".to_string(),
            1 => "\\t\\\\".to_string(),
            2 => format!("\\{quote}"),
            3 => "\\x41\\u00e9".to_string(),
            4 => "\\U0001F600".to_string(),
            5 => {
                let n = 1 + r.below(4);
                format!("\\{}", digits(r, "01234567", n))
            }
            6 => "\\q\\ ".to_string(),
            7 => (if quote == "'" { "\"" } else { "'" }).to_string(),
            8 => "é中🎉".to_string(),
            9 if triple => "\nline".to_string(),
            10 => "\\\n".to_string(),
            _ => {
                let n = 1 + r.below(4);
                digits(r, "abc xyz", n)
            }
        };
        body.push_str(&piece);
    }
    let one = format!("{prefix}{q}{body}{q}");
    if r.chance(15) {
        format!("{one}{}{}", r.pick(&["", " ", "  "]), string(r))
    } else {
        one
    }
}

/// Blanks between tokens inside brackets: spaces, line breaks, a comment.
fn gap(r: &mut Rng) -> &'static str {
    match r.below(10) {
        0 => "\n  ",
        1 => "  ",
        2 => " # note\n",
        3..=5 => " ",
        _ => "",
    }
}

fn value(r: &mut Rng, depth: usize) -> String {
    let leaf = depth > 2 || r.chance(55);
    if leaf {
        return match r.below(8) {
            0..=2 => number(r),
            3 => format!("{}{}{}", r.pick(&["-", "+", "- ", "--"]), "", number(r)),
            4..=5 => string(r),
            6 => r
                .pick(&["True", "False", "None", "true", "null"])
                .to_string(),
            _ => format!("({})", value(r, depth + 1)),
        };
    }
    let n = r.below(4);
    let items: Vec<String> = (0..n).map(|_| value(r, depth + 1)).collect();
    let trailing = if n > 0 && r.chance(25) { "," } else { "" };
    match r.below(5) {
        0 | 1 => format!(
            "[{}{}{}]",
            gap(r),
            items.join(&format!(",{}", gap(r))),
            trailing
        ),
        2 => format!(
            "({}{})",
            items.join(", "),
            if n == 1 { "," } else { trailing }
        ),
        3 => {
            let pairs: Vec<String> = items
                .iter()
                .map(|v| {
                    let key = match r.below(6) {
                        0 => number(r),
                        1 => r.pick(&["True", "None", "(1, 2)"]).to_string(),
                        _ => string(r),
                    };
                    format!("{key}{}:{}{v}", gap(r), gap(r))
                })
                .collect();
            format!("{{{}{}}}", pairs.join(", "), trailing)
        }
        _ => format!("{{{}}}", items.join(", ")),
    }
}

const PYTHON: &str = r#"
import ast, json, math, sys

def key(k):
    if isinstance(k, str): return k
    if isinstance(k, bool): return "true" if k else "false"
    if k is None: return "null"
    if isinstance(k, int): conv(k); return str(k)
    if isinstance(k, float): conv(k); return repr(k)
    raise ValueError("no JSON key")

def conv(v):
    if v is None or isinstance(v, (bool, str)): return v
    if isinstance(v, int):
        if not -2**63 <= v < 2**64: raise ValueError("beyond 64 bits")
        return v
    if isinstance(v, float):
        if not math.isfinite(v): raise ValueError("not finite")
        return {"float": repr(v)}
    if isinstance(v, (list, tuple)): return [conv(x) for x in v]
    if isinstance(v, dict): return {key(k): conv(x) for k, x in v.items()}
    raise ValueError("no JSON form")

out = []
for case in json.load(open(sys.argv[1])):
    try:
        out.append({"ok": conv(ast.literal_eval(case))})
    except Exception as e:
        out.append({"err": type(e).__name__})
json.dump(out, open(sys.argv[2], "w"))
"#;

/// Floats as their exact value, written the shortest way: Python's are `{"float": repr}`
/// (serde_json's own float parsing may round the last bit differently), ours are numbers.
fn floats_exact(v: Value) -> Value {
    match v {
        Value::Object(m) if m.len() == 1 && m.get("float").is_some_and(Value::is_string) => {
            let repr = m["float"].as_str().unwrap_or_default();
            Value::String(format!("float {}", repr.parse::<f64>().unwrap()))
        }
        Value::Number(n) if n.is_f64() => Value::String(format!("float {}", n.as_f64().unwrap())),
        Value::Array(a) => Value::Array(a.into_iter().map(floats_exact).collect()),
        Value::Object(m) => {
            Value::Object(m.into_iter().map(|(k, v)| (k, floats_exact(v))).collect())
        }
        other => other,
    }
}

#[test]
fn generated_literals_read_as_python_reads_them() {
    let mut r = Rng(20261202);
    let mut cases: Vec<String> = (0..4000).map(|_| value(&mut r, 0)).collect();
    cases.sort();
    cases.dedup();
    let dir = std::env::temp_dir().join(format!("agent-pylit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (input, output) = (dir.join("cases.json"), dir.join("python.json"));
    std::fs::write(&input, serde_json::to_string(&cases).unwrap()).unwrap();
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let status = std::process::Command::new(&python)
        .args(["-c", PYTHON])
        .arg(&input)
        .arg(&output)
        .status()
        .expect("python3 runs");
    assert!(status.success());
    let expected: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&output).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let (mut values, mut refused, mut wrong) = (0, 0, Vec::new());
    for (case, want) in cases.iter().zip(&expected) {
        let ours = python_literal(case);
        match (want.get("ok"), &ours) {
            (Some(v), Ok(o)) if floats_exact(v.clone()) == floats_exact(o.clone()) => values += 1,
            (None, Err(_)) => refused += 1,
            _ => wrong.push(format!("{case:?}: python {want}, ours {ours:?}")),
        }
    }
    eprintln!(
        "{} cases: {values} read alike, {refused} refused by both",
        cases.len()
    );
    assert!(
        wrong.is_empty(),
        "{} of {} differ from ast.literal_eval:\n{}",
        wrong.len(),
        cases.len(),
        wrong[..wrong.len().min(25)].join("\n")
    );
    // Both kinds are well represented.
    assert!(values > cases.len() / 4 && refused > cases.len() / 10);
}
