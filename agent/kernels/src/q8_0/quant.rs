//! Activations to Q8_0 blocks exactly as candle's `BlockQ8_0::from_float` makes them: the scale
//! is the block's largest magnitude over 127, each quant `f32::round` (half away from zero) of
//! the activation times the scale's inverse. The dot product uses the scale after its round
//! trip through f16, so that is what is returned.

use half::f16;

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::QK;

/// The scale as the dot product sees it (stored as f16, widened back) and the quants of `x`.
/// The model every vectorised version must reproduce bit for bit.
pub fn block_scalar(x: &[f32]) -> (f32, [i8; QK]) {
    let mut amax = 0f32;
    for &v in x {
        amax = amax.max(v.abs());
    }
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut qs = [0i8; QK];
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = f32::round(v * id) as i8;
    }
    (f16::from_f32(d).to_f32(), qs)
}

/// [`block_scalar`] with AVX2: 32 floats at `x`, 32 quants written to `qs`.
///
/// `f32::round` rounds half away from zero, which no AVX2 rounding mode does, so each value
/// is truncated and moved one step away from zero when the dropped fraction is at least one
/// half (the fraction `v - trunc(v)` is exact in f32). The maximum of magnitudes does not
/// depend on order. NaN activations are the one difference: `f32::max` skips them.
///
/// # Safety
/// The CPU has AVX2; `x` is readable for 32 floats and `qs` writable for 32 bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn block_avx2(x: *const f32, qs: *mut i8) -> f32 {
    let sign = _mm256_set1_ps(-0.0);
    // SAFETY: the caller gives 32 readable floats.
    let v = unsafe {
        [
            _mm256_loadu_ps(x),
            _mm256_loadu_ps(x.add(8)),
            _mm256_loadu_ps(x.add(16)),
            _mm256_loadu_ps(x.add(24)),
        ]
    };
    let abs = |v: __m256| _mm256_andnot_ps(sign, v);
    let m = _mm256_max_ps(
        _mm256_max_ps(abs(v[0]), abs(v[1])),
        _mm256_max_ps(abs(v[2]), abs(v[3])),
    );
    let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    let m = _mm_max_ss(m, _mm_movehdup_ps(m));
    let amax = _mm_cvtss_f32(m);
    let d = amax / 127.0;
    let id = _mm256_set1_ps(if d != 0.0 { 1.0 / d } else { 0.0 });
    let half = _mm256_set1_ps(0.5);
    let one = _mm256_set1_ps(1.0);
    let round = |v: __m256| {
        let s = _mm256_mul_ps(v, id);
        let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(s);
        let up = _mm256_cmp_ps::<_CMP_GE_OQ>(abs(_mm256_sub_ps(s, t)), half);
        let step = _mm256_and_ps(up, _mm256_or_ps(one, _mm256_and_ps(sign, s)));
        _mm256_cvttps_epi32(_mm256_add_ps(t, step))
    };
    let r = [round(v[0]), round(v[1]), round(v[2]), round(v[3])];
    // The packs work within 128-bit halves: the bytes come out as 4-byte groups in the order
    // r0 r1 r2 r3 (low elements), r0 r1 r2 r3 (high elements); the permute restores it.
    let p = _mm256_packs_epi16(
        _mm256_packs_epi32(r[0], r[1]),
        _mm256_packs_epi32(r[2], r[3]),
    );
    let p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    // SAFETY: the caller gives 32 writable bytes.
    unsafe { _mm256_storeu_si256(qs as *mut __m256i, p) };
    f16::from_f32(d).to_f32()
}
