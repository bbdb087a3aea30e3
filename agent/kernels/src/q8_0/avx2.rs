//! The AVX2 kernel: candle's `vec_dot_q8_0_q8_0` instruction for instruction, register-blocked
//! over 4 weight rows × 2 tokens (eight accumulators, the rest of the sixteen registers for
//! operands).

use std::arch::x86_64::*;

use rayon::prelude::*;

use super::{BlockQ8_0, Out, QK, for_each_tile, quant};

/// One token's block: its quants and its scale, widened from f16 once.
#[repr(C)]
#[derive(Clone, Copy)]
struct TokenBlock {
    qs: [i8; QK],
    d: f32,
}

const ROWS: usize = 4;
const TOKENS: usize = 2;
const TOKEN_BLOCK: usize = 32;

/// candle's `hsum_float_8`: the eight lanes summed in its order, (0+4 + 2+6) + (1+5 + 3+7).
#[target_feature(enable = "avx2")]
pub(super) fn hsum(x: __m256) -> f32 {
    let res = _mm_add_ps(_mm256_extractf128_ps::<1>(x), _mm256_castps256_ps128(x));
    let res = _mm_add_ps(res, _mm_movehl_ps(res, res));
    let res = _mm_add_ss(res, _mm_movehdup_ps(res));
    _mm_cvtss_f32(res)
}

/// # Safety
/// The CPU has AVX2, FMA and F16C; shapes were checked by the caller.
pub(super) unsafe fn matmul(
    (m, k, n): (usize, usize, usize),
    lhs: &[f32],
    rhs: &[BlockQ8_0],
    dst: &mut [f32],
) {
    let nb = k / QK;
    let empty = TokenBlock {
        qs: [0; QK],
        d: 0.0,
    };
    let mut act = vec![empty; m * nb];
    act.par_chunks_mut(nb).enumerate().for_each(|(t, blocks)| {
        for (b, block) in blocks.iter_mut().enumerate() {
            // SAFETY: 32 floats from `lhs[t * k + b * 32]`, within `lhs` (m × k).
            block.d = unsafe {
                quant::block_avx2(lhs.as_ptr().add(t * k + b * QK), block.qs.as_mut_ptr())
            };
        }
    });
    let out = Out(dst.as_mut_ptr());
    let act = &act;
    for_each_tile((m, TOKEN_BLOCK, TOKENS), (n, ROWS), |r, tr, t, tt| {
        let w = &rhs[r * nb..];
        let a = &act[t * nb..];
        let first = t * n + r;
        // SAFETY: `w` holds `tr` rows and `a` holds `tt` tokens of `nb` blocks each; this
        // micro-tile alone writes rows r..r+tr of tokens t..t+tt.
        unsafe {
            match (tr, tt) {
                (4, 2) => kernel::<4, 2>(w, a, nb, out, first, n),
                (4, 1) => kernel::<4, 1>(w, a, nb, out, first, n),
                (3, 2) => kernel::<3, 2>(w, a, nb, out, first, n),
                (3, 1) => kernel::<3, 1>(w, a, nb, out, first, n),
                (2, 2) => kernel::<2, 2>(w, a, nb, out, first, n),
                (2, 1) => kernel::<2, 1>(w, a, nb, out, first, n),
                (1, 2) => kernel::<1, 2>(w, a, nb, out, first, n),
                _ => kernel::<1, 1>(w, a, nb, out, first, n),
            }
        }
    });
}

/// Outputs go to `first + t·n + r`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn kernel<const R: usize, const T: usize>(
    w: &[BlockQ8_0],
    a: &[TokenBlock],
    nb: usize,
    out: Out,
    first: usize,
    n: usize,
) {
    debug_assert!(w.len() >= R * nb && a.len() >= T * nb);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_ps(); T]; R];
    for b in 0..nb {
        let mut aq = [_mm256_setzero_si256(); T];
        let mut ad = [0f32; T];
        for t in 0..T {
            let tb = &a[t * nb + b];
            aq[t] = unsafe { _mm256_loadu_si256(tb.qs.as_ptr() as *const __m256i) };
            ad[t] = tb.d;
        }
        for (r, acc) in acc.iter_mut().enumerate() {
            let blk = &w[r * nb + b];
            let wq = unsafe { _mm256_loadu_si256(blk.qs.as_ptr() as *const __m256i) };
            let aw = _mm256_sign_epi8(wq, wq);
            let dw = blk.d.to_f32();
            for t in 0..T {
                let dot = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(aq[t], wq));
                let q = _mm256_cvtepi32_ps(_mm256_madd_epi16(ones, dot));
                acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dw * ad[t]), q, acc[t]);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (t, &v) in acc.iter().enumerate() {
            // SAFETY: inside dst, owned by this tile.
            unsafe { out.write(first + t * n + r, hsum(v)) };
        }
    }
}
