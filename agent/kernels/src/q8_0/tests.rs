use half::f16;

use super::quant::block_scalar;
use super::{BlockQ8_0, Kernel, QK};

/// A small deterministic generator (xorshift64*), so that failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [-1, 1).
    fn float(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// candle's AVX2 `vec_dot_q8_0_q8_0`, written out in scalar code: eight lanes, each the sum
/// of four products per block, scaled and fused-multiply-added in block order, then summed as
/// `hsum_float_8` does.
fn reference_dot(w: &[BlockQ8_0], a: &[(f32, [i8; QK])]) -> f32 {
    let mut lanes = [0f32; 8];
    for (wb, (da, aq)) in w.iter().zip(a) {
        let d = wb.d.to_f32() * da;
        for (j, lane) in lanes.iter_mut().enumerate() {
            let q: i32 = (4 * j..4 * j + 4)
                .map(|i| wb.qs[i] as i32 * aq[i] as i32)
                .sum();
            *lane = d.mul_add(q as f32, *lane);
        }
    }
    let l = lanes;
    ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]))
}

fn reference_matmul((m, k, n): (usize, usize, usize), lhs: &[f32], rhs: &[BlockQ8_0]) -> Vec<f32> {
    let nb = k / QK;
    let act: Vec<_> = lhs.chunks(QK).map(block_scalar).collect();
    let mut dst = vec![0f32; m * n];
    for t in 0..m {
        for j in 0..n {
            dst[t * n + j] = reference_dot(&rhs[j * nb..(j + 1) * nb], &act[t * nb..(t + 1) * nb]);
        }
    }
    dst
}

/// Weights as a quantizer writes them: quants in [-127, 127] (some blocks at the extremes),
/// scales of varied size.
fn weights(rng: &mut Rng, blocks: usize) -> Vec<BlockQ8_0> {
    (0..blocks)
        .map(|i| {
            let mut qs = [0i8; QK];
            for q in qs.iter_mut() {
                *q = match i % 7 {
                    0 => [-127, 127][(rng.next() & 1) as usize],
                    _ => ((rng.next() % 255) as i32 - 127) as i8,
                };
            }
            let d = f16::from_f32(rng.float().abs() * 0.02 + 1e-4);
            BlockQ8_0 { d, qs }
        })
        .collect()
}

/// Activations of mixed magnitude, with zero blocks, exact halves after scaling and a few
/// large outliers, as hidden states have.
fn activations(rng: &mut Rng, len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| match (i / QK) % 5 {
            0 => 0.0,
            1 => (rng.next() % 255) as f32 - 127.0 + 0.5 * (rng.next() & 1) as f32,
            _ => {
                rng.float()
                    * if rng.next().is_multiple_of(97) {
                        40.0
                    } else {
                        1.5
                    }
            }
        })
        .collect()
}

#[test]
fn quantization_matches_candles_from_float() {
    let Some(&Kernel::Avx2) = Kernel::available().first() else {
        return eprintln!("no AVX2 on this CPU: nothing to compare");
    };
    let mut rng = Rng(7);
    let xs = activations(&mut rng, 4096 * QK);
    for x in xs.chunks(QK) {
        let mut qs = [0i8; QK];
        // SAFETY: AVX2 checked above; 32 floats in, 32 bytes out.
        let d = unsafe { super::quant::block_avx2(x.as_ptr(), qs.as_mut_ptr()) };
        assert_eq!((d.to_bits(), qs), {
            let (d, q) = block_scalar(x);
            (d.to_bits(), q)
        });
    }
}

#[test]
fn every_kernel_gives_the_stock_bits() {
    let kernels = Kernel::available();
    if kernels.is_empty() {
        return eprintln!("no kernel runs on this CPU");
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // Shapes cover every micro-kernel edge (rows and tokens not multiples of the tile),
    // decode (m = 1) and SmolLM2's projections.
    for &(m, k, n) in &[
        (1, 32, 1),
        (1, 64, 3),
        (1, 96, 13),
        (1, 160, 9),
        (1, 576, 576),
        (2, 64, 5),
        (3, 96, 7),
        (5, 576, 192),
        (7, 32, 63),
        (33, 1536, 576),
        (67, 576, 1536),
    ] {
        let lhs = activations(&mut rng, m * k);
        let rhs = weights(&mut rng, n * k / QK);
        let want = reference_matmul((m, k, n), &lhs, &rhs);
        for &kernel in &kernels {
            let mut dst = vec![f32::NAN; m * n];
            kernel.matmul((m, k, n), &lhs, &rhs, &mut dst);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&dst),
                bits(&want),
                "{kernel:?} at (m, k, n) = ({m}, {k}, {n})"
            );
        }
    }
}

#[test]
#[should_panic(expected = "not a multiple of 32")]
fn a_partial_block_is_refused() {
    if let Some(kernel) = Kernel::available().last() {
        kernel.matmul((1, 40, 1), &[0.0; 40], &[], &mut [0.0]);
    } else {
        panic!("not a multiple of 32 (no kernel here to ask)");
    }
}
