//! The AVX-512 VNNI kernel: two tokens per 512-bit register, `vpdpbusd` for the products.
//!
//! `vpdpbusd` multiplies unsigned by signed bytes, so the weights are made unsigned (`w + 128`,
//! one XOR per block) and each token block's `128 · Σa` over every group of four, computed once
//! when the activations are quantized, is the accumulator every product sum starts from: the
//! i32 group sums are exactly candle's. Lanes 0-7 of a register belong
//! to the first token of a pair, lanes 8-15 to the second, so each output still has candle's
//! eight accumulators.

use std::arch::x86_64::*;

use rayon::prelude::*;

use super::{BlockQ8_0, Out, QK, for_each_tile, quant};

/// One block of a pair of tokens: their quants, and each token's scale and `-128 · Σa` per
/// group of four in the eight lanes that token uses. (The one-token kernel holds its token
/// in both halves.)
#[repr(C, align(64))]
#[derive(Clone, Copy)]
pub(super) struct PairBlock {
    pub(super) qs: [i8; 2 * QK],
    pub(super) d: [f32; 16],
    pub(super) neg: [i32; 16],
}

pub(super) const EMPTY: PairBlock = PairBlock {
    qs: [0; 2 * QK],
    d: [0.0; 16],
    neg: [0; 16],
};

impl PairBlock {
    /// Puts one token's block, quantized as `(d, qs)`, in half `half` (0 or 1).
    pub(super) fn set(&mut self, half: usize, d: f32, qs: &[i8; QK]) {
        self.qs[half * QK..(half + 1) * QK].copy_from_slice(qs);
        self.d[half * 8..(half + 1) * 8].fill(d);
        for (g, four) in qs.chunks_exact(4).enumerate() {
            self.neg[half * 8 + g] = -128 * four.iter().map(|&q| q as i32).sum::<i32>();
        }
    }
}

/// Weight rows per micro-kernel call.
const ROWS: usize = 4;
/// Token pairs per micro-kernel call: 4 × 3 accumulators, 3 activation and 3 scale registers.
const PAIRS: usize = 3;
/// Token pairs per tile (32 tokens: 2 × 16 × k/32 × 128 bytes of activations, in L2).
const PAIR_BLOCK: usize = 16;

/// # Safety
/// The CPU has AVX2, FMA, F16C, AVX-512 F/BW/DQ/VL and VNNI; shapes were checked by the caller.
pub(super) unsafe fn matmul(
    (m, k, n): (usize, usize, usize),
    lhs: &[f32],
    rhs: &[BlockQ8_0],
    dst: &mut [f32],
) {
    if m == 1 {
        // SAFETY: the same CPU features; one token of `k` activations.
        return unsafe { super::avx512_token::matvec(k, n, lhs, rhs, dst) };
    }
    let nb = k / QK;
    let pairs = m.div_ceil(2);
    let mut act = vec![EMPTY; pairs * nb];
    act.par_chunks_mut(nb).enumerate().for_each(|(p, blocks)| {
        for half in 0..2 {
            let t = 2 * p + half;
            if t >= m {
                break;
            }
            for (b, block) in blocks.iter_mut().enumerate() {
                let mut qs = [0i8; QK];
                // SAFETY: 32 floats from `lhs[t * k + b * 32]`, within `lhs` (m × k).
                let d =
                    unsafe { quant::block_avx2(lhs.as_ptr().add(t * k + b * QK), qs.as_mut_ptr()) };
                block.set(half, d, &qs);
            }
        }
    });
    let out = Out(dst.as_mut_ptr());
    let act = &act;
    for_each_tile((pairs, PAIR_BLOCK, PAIRS), (n, ROWS), |r, tr, p, tp| {
        let w = &rhs[r * nb..];
        let a = &act[p * nb..];
        let at = Tile {
            m,
            n,
            row: r,
            pair: p,
        };
        // SAFETY: `w` holds `tr` rows and `a` holds `tp` pairs of `nb` blocks each; this
        // micro-tile alone writes rows r..r+tr of tokens 2p..2(p+tp).
        unsafe {
            match (tr, tp) {
                (4, 3) => kernel::<4, 3>(w, a, nb, out, at),
                (4, 2) => kernel::<4, 2>(w, a, nb, out, at),
                (4, 1) => kernel::<4, 1>(w, a, nb, out, at),
                (3, 3) => kernel::<3, 3>(w, a, nb, out, at),
                (3, 2) => kernel::<3, 2>(w, a, nb, out, at),
                (3, 1) => kernel::<3, 1>(w, a, nb, out, at),
                (2, 3) => kernel::<2, 3>(w, a, nb, out, at),
                (2, 2) => kernel::<2, 2>(w, a, nb, out, at),
                (2, 1) => kernel::<2, 1>(w, a, nb, out, at),
                (1, 3) => kernel::<1, 3>(w, a, nb, out, at),
                (1, 2) => kernel::<1, 2>(w, a, nb, out, at),
                _ => kernel::<1, 1>(w, a, nb, out, at),
            }
        }
    });
}

/// Where a micro-kernel's outputs go: its first weight row and first token pair.
#[derive(Clone, Copy)]
struct Tile {
    m: usize,
    n: usize,
    row: usize,
    pair: usize,
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
unsafe fn kernel<const R: usize, const T: usize>(
    w: &[BlockQ8_0],
    a: &[PairBlock],
    nb: usize,
    out: Out,
    at: Tile,
) {
    debug_assert!(w.len() >= R * nb && a.len() >= T * nb);
    let zero = _mm512_setzero_si512();
    let flip = _mm512_set1_epi8(-128);
    let mut acc = [[_mm512_setzero_ps(); T]; R];
    for b in 0..nb {
        let mut aq = [zero; T];
        let mut ad = [_mm512_setzero_ps(); T];
        let mut neg = [zero; T];
        for t in 0..T {
            let pb = &a[t * nb + b];
            aq[t] = unsafe { _mm512_load_si512(pb.qs.as_ptr() as *const __m512i) };
            ad[t] = unsafe { _mm512_load_ps(pb.d.as_ptr()) };
            neg[t] = unsafe { _mm512_load_si512(pb.neg.as_ptr() as *const __m512i) };
        }
        for (r, acc) in acc.iter_mut().enumerate() {
            let blk = &w[r * nb + b];
            let wu = _mm512_xor_si512(
                _mm512_broadcast_i64x4(unsafe {
                    _mm256_loadu_si256(blk.qs.as_ptr() as *const __m256i)
                }),
                flip,
            );
            let dw = _mm512_set1_ps(blk.d.to_f32());
            for t in 0..T {
                let q = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(neg[t], wu, aq[t]));
                acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dw, ad[t]), q, acc[t]);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (t, &v) in acc.iter().enumerate() {
            let token = 2 * (at.pair + t);
            let lo = _mm512_castps512_ps256(v);
            let hi = _mm512_extractf32x8_ps::<1>(v);
            // SAFETY: token < m and row < n; this tile owns these outputs.
            unsafe {
                out.write(token * at.n + at.row + r, super::avx2::hsum(lo));
                if token + 1 < at.m {
                    out.write((token + 1) * at.n + at.row + r, super::avx2::hsum(hi));
                }
            }
        }
    }
}
