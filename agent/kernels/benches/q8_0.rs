//! `cargo bench -p agent-kernels`: multiply-accumulates per second of each Q8_0 kernel on
//! SmolLM2-135M's projection shapes at a 2,048-token prefill and at decode (one token).

use std::time::Instant;

use agent_kernels::q8_0::{BlockQ8_0, Kernel, QK};

fn main() {
    let shapes = [
        ("q/o 576x576", 576, 576),
        ("k/v 576x192", 576, 192),
        ("gate/up 576x1536", 576, 1536),
        ("down 1536x576", 1536, 576),
        // The output layer: 30 MB of Q8_0, past the L2, as a whole decode step's weights are.
        ("output 576x49152", 576, 49152),
    ];
    println!("{} rayon threads", rayon::current_num_threads());
    println!("| kernel | shape | tokens | GMAC/s | ms per call |");
    println!("|---|---|---|---|---|");
    for kernel in Kernel::available() {
        for &(name, k, n) in &shapes {
            for m in [2048usize, 1] {
                let lhs: Vec<f32> = (0..m * k)
                    .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
                    .collect();
                let rhs: Vec<BlockQ8_0> = (0..n * k / QK)
                    .map(|i| BlockQ8_0 {
                        d: half::f16::from_f32(0.01 + (i % 13) as f32 * 1e-3),
                        qs: std::array::from_fn(|j| ((i * 31 + j * 17) % 255) as i32 as i8),
                    })
                    .collect();
                let mut dst = vec![0f32; m * n];
                let reps = match (m, n) {
                    (1, 49152) => 50,
                    (1, _) => 2000,
                    (_, 49152) => 1,
                    _ => 5,
                };
                // On rayon's pool, as the engine's forward pass calls it (vendored patch 18):
                // from outside, each call would also pay a hand-off to the pool and back.
                let secs = rayon::scope(|_| {
                    kernel.matmul((m, k, n), &lhs, &rhs, &mut dst);
                    let start = Instant::now();
                    for _ in 0..reps {
                        kernel.matmul((m, k, n), &lhs, &rhs, &mut dst);
                    }
                    start.elapsed().as_secs_f64() / reps as f64
                });
                println!(
                    "| {kernel:?} | {name} | {m} | {:.1} | {:.3} |",
                    (m * k * n) as f64 / secs / 1e9,
                    secs * 1e3
                );
            }
        }
    }
}
