//! The vendored mistral.rs's vectorised CPU attention dot product (its patch 4, see
//! agent/vendor/README.md), counted through `agent-bench dot` under callgrind.

/// Patch 4: CPU attention's dot product is vectorised. Counted in instructions under callgrind
/// (repeatable, unlike time): the difference between 10 and 30 products of 100 000 elements,
/// so that everything else the process does cancels out, per element. A scalar loop takes
/// several instructions an element (stock 0.8.1's, about 8.5); eight lanes well under one.
#[test]
fn the_attention_dot_product_is_vectorised() {
    let instructions = |repeats: usize| -> u64 {
        let out =
            std::env::temp_dir().join(format!("agent-dot-{repeats}-{}.out", std::process::id()));
        let o = std::process::Command::new("valgrind")
            .args(["--tool=callgrind", "--cache-sim=no"])
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg(env!("CARGO_BIN_EXE_agent-bench"))
            .args(["dot", "--n", "100000", "--repeats"])
            .arg(repeats.to_string())
            .output()
            .expect("valgrind runs");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let text = std::fs::read_to_string(&out).unwrap();
        let _ = std::fs::remove_file(&out);
        text.lines()
            .find_map(|l| l.strip_prefix("summary: "))
            .and_then(|v| v.trim().parse().ok())
            .expect("callgrind's summary line")
    };
    let per_element = (instructions(30) - instructions(10)) as f64 / (20.0 * 100_000.0);
    eprintln!("{per_element:.3} instructions per element");
    assert!(
        per_element < 1.0,
        "{per_element:.3} instructions per element"
    );
}
