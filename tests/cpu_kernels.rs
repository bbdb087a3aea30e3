//! The patch to the vendored candle-core (agent/vendor/README.md): Q8_0 matmuls run
//! agent-kernels' tiled kernels, which must give exactly the bits of candle's own code.

mod common;

use agent::Device;
use agent::mistral::MistralBackend;
use agent::models;
use agent_kernels::q8_0::Kernel;
use candle_core::quantized::k_quants::{self, BlockQ8_0, GgmlType};

/// The kernel choice is the process's: tests that switch it run one at a time, or one could
/// run another's path.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Deterministic values in [-1, 1) (xorshift64*), with every fifth block of activations made
/// of integers and halves so that quantization meets exact ties.
fn values(seed: u64, len: usize, ties: bool) -> Vec<f32> {
    let mut s = seed;
    (0..len)
        .map(|i| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            let r = s.wrapping_mul(0x2545_f491_4f6c_dd1d);
            if ties && (i / 32) % 5 == 1 {
                (r % 255) as f32 - 127.0 + 0.5 * (r >> 63) as f32
            } else {
                (r >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            }
        })
        .collect()
}

/// candle's matmul (now agent-kernels' tiles) against candle's own per-output code: the
/// activations quantized by `BlockQ8_0::from_float`, each output one `BlockQ8_0::vec_dot`.
#[test]
fn q8_0_matmul_gives_candles_stock_bits() {
    let _one = serial();
    let available = Kernel::available();
    assert!(
        !std::arch::is_x86_feature_detected!("avx2") || !available.is_empty(),
        "an AVX2 CPU must get a tiled kernel"
    );
    for &(m, k, n) in &[(1, 576, 576), (7, 64, 9), (130, 576, 192), (513, 1536, 576)] {
        let lhs = values(m as u64 * 31 + 1, m * k, true);
        let mut rhs = vec![BlockQ8_0::zeros(); n * k / 32];
        BlockQ8_0::from_float(&values(n as u64 + 7, n * k, false), &mut rhs);
        let mut act = vec![BlockQ8_0::zeros(); m * k / 32];
        BlockQ8_0::from_float(&lhs, &mut act);
        let mut want = vec![0f32; m * n];
        for t in 0..m {
            for j in 0..n {
                want[t * n + j] = BlockQ8_0::vec_dot(
                    k,
                    &rhs[j * k / 32..(j + 1) * k / 32],
                    &act[t * k / 32..(t + 1) * k / 32],
                );
            }
        }
        for &kernel in &available {
            Kernel::select(Some(kernel));
            let mut got = vec![f32::NAN; m * n];
            k_quants::matmul((m, k, n), &lhs, &rhs, &mut got).unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{kernel:?} at ({m}, {k}, {n})");
        }
    }
}

/// SmolLM2 (Q8_0) on a 300-token prompt and 8 greedy steps: the same logits, to the bit, with
/// candle's own matmul and with each tiled kernel, in prefill and in decode.
#[tokio::test(flavor = "multi_thread")]
async fn smollm2_logits_are_the_same_bits_with_every_kernel() {
    let _one = serial();
    let m = models::resolve("smollm2-135m").unwrap();
    let backend = MistralBackend::load_with_prefix_cache(&m, Device::Cpu, None)
        .await
        .unwrap();
    let text =
        "The lighthouse keeper climbed the stairs every evening to light the lantern. ".repeat(24);
    let prompt = backend.tokenize(&text).await.unwrap();
    assert!(prompt.len() >= 300, "{} tokens", prompt.len());
    let mut runs = Vec::new();
    let mut paths = vec![None];
    paths.extend(Kernel::available().into_iter().map(Some));
    for &path in &paths {
        Kernel::select(path);
        let trace = backend.greedy_trace(prompt.clone(), 8).await.unwrap();
        let bits: Vec<Vec<u32>> = trace
            .logits
            .iter()
            .map(|row| row.iter().map(|x| x.to_bits()).collect())
            .collect();
        runs.push((path, trace.tokens, bits));
    }
    let (_, stock_tokens, stock_bits) = &runs[0];
    for (path, tokens, bits) in &runs[1..] {
        assert_eq!(tokens, stock_tokens, "{path:?}: greedy tokens");
        assert!(
            bits == stock_bits,
            "{path:?}: logits differ from candle's own matmul"
        );
    }
}

/// Vendored patch 18: a CPU forward pass runs on rayon's pool, so none of the matmuls of a
/// prefill or of a decode step pays a hand-off into the pool (on stock 0.8.1 every one did,
/// hundreds per decoded token). A matmul called from this test's own thread is counted, which
/// shows that the count sees one.
#[tokio::test(flavor = "multi_thread")]
async fn a_forward_pass_runs_on_the_rayon_pool() {
    let _one = serial();
    let kernel = Kernel::available().last().copied();
    assert!(kernel.is_some(), "an x86-64-v3 CPU has a tiled kernel");
    Kernel::select(kernel);
    let m = models::resolve("smollm2-135m").unwrap();
    let backend = MistralBackend::load_with_prefix_cache(&m, Device::Cpu, None)
        .await
        .unwrap();
    let prompt = backend
        .tokenize(&"The tide came in over the flats. ".repeat(10))
        .await
        .unwrap();
    let before = agent_kernels::q8_0::matmuls_outside_a_pool();
    let trace = backend.greedy_trace(prompt, 4).await.unwrap();
    assert!(!trace.tokens.is_empty(), "no token decoded");
    assert_eq!(agent_kernels::q8_0::matmuls_outside_a_pool(), before);

    let lhs = values(5, 32, false);
    let rhs = vec![BlockQ8_0::zeros(); 2];
    let mut dst = vec![0f32; 2];
    k_quants::matmul((1, 32, 2), &lhs, &rhs, &mut dst).unwrap();
    assert_eq!(agent_kernels::q8_0::matmuls_outside_a_pool(), before + 1);
}

/// Float64 causal attention for one (sequence, head, position): the reference both CPU
/// kernels are held to.
fn attention_f64(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    (kv_len, kv_heads, d): (usize, usize, usize),
    (seq, kv_head, visible): (usize, usize, usize),
    scale: f32,
) -> Vec<f64> {
    let row = |t: &[f32], p: usize| {
        let base = ((seq * kv_len + p) * kv_heads + kv_head) * d;
        t[base..base + d]
            .iter()
            .map(|&x| x as f64)
            .collect::<Vec<f64>>()
    };
    let scores: Vec<f64> = (0..visible)
        .map(|p| {
            row(k, p)
                .iter()
                .zip(q)
                .map(|(a, &b)| a * b as f64)
                .sum::<f64>()
                * scale as f64
        })
        .collect();
    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
    let sum: f64 = w.iter().sum();
    (0..d)
        .map(|j| (0..visible).map(|p| w[p] * row(v, p)[j]).sum::<f64>() / sum)
        .collect()
}

/// Patch 16's tile kernel against the kernel before it and against float64, on a causal
/// prefill of 37 positions after 20 cached ones, 2 sequences, 6 query heads over 2 KV heads,
/// head size 64; and a decode step gives exactly the prefill's last row.
#[test]
fn attention_kernel_matches_the_previous_kernel() {
    use candle_core::{Device, Tensor};
    let (b, q_len, cached, h, kv_heads, d) = (2, 37, 20, 6, 2, 64);
    let kv_len = cached + q_len;
    let scale = 1.0 / (d as f32).sqrt();
    let qv = values(1, b * q_len * h * d, false);
    let kv = values(2, b * kv_len * kv_heads * d, false)
        .iter()
        .map(|x| x * 3.0)
        .collect::<Vec<_>>();
    let vv = values(3, b * kv_len * kv_heads * d, false);
    let q = Tensor::from_vec(qv.clone(), (b, q_len, h, d), &Device::Cpu).unwrap();
    let k = Tensor::from_vec(kv.clone(), (b, kv_len, kv_heads, d), &Device::Cpu).unwrap();
    let v = Tensor::from_vec(vv.clone(), (b, kv_len, kv_heads, d), &Device::Cpu).unwrap();
    let mask: Vec<f32> = (0..q_len)
        .flat_map(|i| {
            (0..kv_len).map(move |j| {
                if j > cached + i {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    let mask = Tensor::from_vec(mask, (q_len, kv_len), &Device::Cpu).unwrap();
    let run = |tiled| {
        mistralrs_core::agent_cpu_attention(&q, &k, &v, Some(&mask), scale, tiled)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let (tiled, before) = (run(true), run(false));
    let (mut worst_tiled, mut worst_before, mut between) = (0f64, 0f64, 0f64);
    for seq in 0..b {
        for head in 0..h {
            for pos in 0..q_len {
                let qrow = &qv[((seq * q_len + pos) * h + head) * d..][..d];
                let want = attention_f64(
                    qrow,
                    &kv,
                    &vv,
                    (kv_len, kv_heads, d),
                    (seq, head / (h / kv_heads), cached + pos + 1),
                    scale,
                );
                let at = ((seq * h + head) * q_len + pos) * d;
                for j in 0..d {
                    worst_tiled = worst_tiled.max((tiled[at + j] as f64 - want[j]).abs());
                    worst_before = worst_before.max((before[at + j] as f64 - want[j]).abs());
                    between = between.max((tiled[at + j] - before[at + j]).abs() as f64);
                }
            }
        }
    }
    eprintln!(
        "max |difference| from float64: tile kernel {worst_tiled:e}, previous kernel {worst_before:e}; between them {between:e}"
    );
    assert!(
        worst_tiled <= 2e-6,
        "tile kernel: {worst_tiled:e} from float64"
    );
    assert!(
        worst_before <= 2e-6,
        "previous kernel: {worst_before:e} from float64"
    );
    // Decode: the last position alone over the whole cache, no mask.
    let last = q.narrow(1, q_len - 1, 1).unwrap().contiguous().unwrap();
    let step = mistralrs_core::agent_cpu_attention(&last, &k, &v, None, scale, true)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    for seq in 0..b {
        for head in 0..h {
            let from_prefill = &tiled[((seq * h + head) * q_len + q_len - 1) * d..][..d];
            let from_decode = &step[(seq * h + head) * d..][..d];
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(from_decode),
                bits(from_prefill),
                "sequence {seq}, head {head}"
            );
        }
    }
}
