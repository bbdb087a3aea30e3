//! agent patch 18: a CPU forward pass runs on rayon's global pool.
//!
//! The engine steps on a tokio worker, outside every rayon pool, so each parallel operation
//! of a forward pass (every quantized matmul, every layer's attention: hundreds per decoded
//! token) injected a job into the pool, woke a worker and put the caller to sleep until it was
//! done. On a small model those hand-offs cost as much as the arithmetic (SmolLM2-135M on two
//! cores: a third of decode time in wake-ups and context switches). Run from inside the pool,
//! the whole pass costs one hand-off, and the thread running it takes part in every parallel
//! operation instead of waiting on it.

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use candle_core::Device;

use super::{ForwardInputsResult, Pipeline};

/// `pipeline.forward_inputs(inputs, return_raw_logits)`, on a rayon worker when the pipeline
/// runs on the CPU. Other devices keep the calling thread (a CUDA context is bound per thread).
pub(crate) fn forward<P: Pipeline + ?Sized>(
    pipeline: &mut P,
    inputs: Box<dyn Any>,
    return_raw_logits: bool,
) -> Result<ForwardInputsResult, candle_core::Error> {
    if !matches!(pipeline.device(), Device::Cpu) || rayon::current_thread_index().is_some() {
        return pipeline.forward_inputs(inputs, return_raw_logits);
    }
    let inputs = Blocked(inputs);
    let done = AtomicBool::new(false);
    rayon::scope(|scope| {
        // The pool's other workers stay awake for the pass, running whatever work its parallel
        // operations offer, instead of going to sleep after each one and being woken (a
        // futex round trip) for the next: with two threads that was still a tenth of decode
        // time. Only when every worker has a core of its own: with more workers than cores,
        // the waiting ones took the cores from the ones with work (a test ran 17x slower),
        // and an idle one gives its core up (`sched_yield`) whenever something else can run.
        // The worker running the pass skips its own copy, which it could otherwise pick up
        // while it waits inside the pass, and never return from.
        if rayon::current_num_threads() <= cores() {
            let forward_thread = rayon::current_thread_index();
            let done = &done;
            scope.spawn_broadcast(move |_, worker| {
                if Some(worker.index()) == forward_thread {
                    return;
                }
                while !done.load(Ordering::Acquire) {
                    if rayon::yield_now() != Some(rayon::Yield::Executed) {
                        std::thread::yield_now();
                    }
                }
            });
        }
        let out = pipeline.forward_inputs(inputs.into_inner(), return_raw_logits);
        done.store(true, Ordering::Release);
        out
    })
}

/// The model inputs, moved to the worker that runs the pass.
struct Blocked(Box<dyn Any>);

// SAFETY: `rayon::scope` blocks the calling thread until the closure has returned, so the
// inputs are used by one thread at a time and never outlive the call. They hold tensors,
// vectors and `Arc`s of thread-safe state, nothing tied to the thread that built them.
unsafe impl Send for Blocked {}

impl Blocked {
    // A method, so that the closure captures the whole wrapper rather than its field.
    fn into_inner(self) -> Box<dyn Any> {
        self.0
    }
}

/// The cores this process may run on.
fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
