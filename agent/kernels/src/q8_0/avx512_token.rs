//! The AVX-512 VNNI kernel for one token (decode): two weight rows per 512-bit register.
//!
//! The pair kernel (`avx512`) puts two tokens in a register; with one token, half of every
//! register did no work, and each weight block paid a second `vpdpbusd` and a subtraction for
//! its `128 · Σw` correction. Here lanes 0-7 belong to one weight row and lanes 8-15 to the
//! next, both against the same token block, and the operands of `vpdpbusd` are swapped: the
//! weights are made unsigned (`w + 128`, one XOR) and the token's quants stay signed, so the
//! correction, `-128 · Σa` per group of four, depends only on the token and is computed once
//! per block, as the accumulator every row starts from. The group sums are exact, so each
//! output is still candle's arithmetic: eight i32 sums per block, converted, scaled by
//! `f16(d_w) * f16(d_x)` and fused-multiply-added in block order, then `hsum_float_8`.

use std::arch::x86_64::*;

use super::avx512::{EMPTY, PairBlock};
use super::{BlockQ8_0, Out, QK, for_each_tile, quant};

/// Weight rows per micro-kernel call: four pairs, four accumulators.
const ROWS: usize = 8;

/// # Safety
/// The CPU has AVX2, FMA, F16C, AVX-512 F/BW/DQ/VL and VNNI; `lhs` is one token of `k`
/// activations and the other shapes were checked by the caller.
pub(super) unsafe fn matvec(k: usize, n: usize, lhs: &[f32], rhs: &[BlockQ8_0], dst: &mut [f32]) {
    let nb = k / QK;
    // The token in both halves of each block, one copy per row of a pair.
    let act: Vec<PairBlock> = (0..nb)
        .map(|b| {
            let mut qs = [0i8; QK];
            // SAFETY: 32 floats from `lhs[b * 32]`, within `lhs` (k floats).
            let d = unsafe { quant::block_avx2(lhs.as_ptr().add(b * QK), qs.as_mut_ptr()) };
            let mut block = EMPTY;
            block.set(0, d, &qs);
            block.set(1, d, &qs);
            block
        })
        .collect();
    let out = Out(dst.as_mut_ptr());
    let act = &act;
    for_each_tile((1, 1, 1), (n, ROWS), |r, tr, _, _| {
        // SAFETY: `rhs` holds rows r..r+tr of `nb` blocks each and `act` one token of `nb`
        // blocks; this micro-tile alone writes outputs r..r+tr.
        unsafe {
            match tr.div_ceil(2) {
                4 => kernel::<4>(rhs, act, nb, r, tr, out),
                3 => kernel::<3>(rhs, act, nb, r, tr, out),
                2 => kernel::<2>(rhs, act, nb, r, tr, out),
                _ => kernel::<1>(rhs, act, nb, r, tr, out),
            }
        }
    });
}

/// Rows `row..row + rows` (at most `2 * P`) against the token. A last row without a partner
/// is paired with itself and written once.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
unsafe fn kernel<const P: usize>(
    w: &[BlockQ8_0],
    a: &[PairBlock],
    nb: usize,
    row: usize,
    rows: usize,
    out: Out,
) {
    debug_assert!(rows <= 2 * P && w.len() >= (row + rows) * nb && a.len() >= nb);
    let pair_rows: [(usize, usize); P] = std::array::from_fn(|p| {
        let first = row + 2 * p;
        (first, (first + 1).min(row + rows - 1))
    });
    let flip = _mm512_set1_epi8(-128);
    let mut acc = [_mm512_setzero_ps(); P];
    for b in 0..nb {
        let tb = &a[b];
        let aq = unsafe { _mm512_load_si512(tb.qs.as_ptr() as *const __m512i) };
        let ad = unsafe { _mm512_load_ps(tb.d.as_ptr()) };
        let neg = unsafe { _mm512_load_si512(tb.neg.as_ptr() as *const __m512i) };
        for (acc, &(r0, r1)) in acc.iter_mut().zip(&pair_rows) {
            let (b0, b1) = (&w[r0 * nb + b], &w[r1 * nb + b]);
            let wq = unsafe {
                _mm512_inserti64x4::<1>(
                    _mm512_castsi256_si512(_mm256_loadu_si256(b0.qs.as_ptr() as *const __m256i)),
                    _mm256_loadu_si256(b1.qs.as_ptr() as *const __m256i),
                )
            };
            let sums = _mm512_dpbusd_epi32(neg, _mm512_xor_si512(wq, flip), aq);
            let dw = _mm512_cvtph_ps(_mm256_set_m128i(
                _mm_set1_epi16(b1.d.to_bits() as i16),
                _mm_set1_epi16(b0.d.to_bits() as i16),
            ));
            *acc = _mm512_fmadd_ps(_mm512_mul_ps(dw, ad), _mm512_cvtepi32_ps(sums), *acc);
        }
    }
    for (acc, &(r0, r1)) in acc.iter().zip(&pair_rows) {
        // SAFETY: r0 and r1 are rows of this micro-tile, below n; it alone writes them.
        unsafe {
            out.write(r0, super::avx2::hsum(_mm512_castps512_ps256(*acc)));
            if r1 != r0 {
                out.write(r1, super::avx2::hsum(_mm512_extractf32x8_ps::<1>(*acc)));
            }
        }
    }
}
