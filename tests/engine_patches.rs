//! The patches to the vendored mistral.rs (agent/vendor/README.md), one deterministic test each
//! that fails on stock 0.8.1. Reuse is measured by the tokens the engine prefilled (the vendored
//! copy counts them), never by time. Tests here run one at a time: the count is the process's.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use agent::Device;
use agent::backend::{Backend, GenRequest, Sampling};
use agent::mistral::{MistralBackend, prefilled_tokens};
use agent::models;
use agent::prompt::{self, Message, RenderOptions};
use common::*;
use mistralrs::{
    Constraint, CustomLogitsProcessor, NormalRequest, Request, RequestMessage, Response,
    SamplingParams, Tensor,
};

/// One engine test at a time: the prefilled-token count is shared by every engine.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

async fn smollm2(prefix_cache: Option<usize>) -> (models::ResolvedModel, MistralBackend) {
    let m = models::resolve("smollm2-135m").unwrap();
    let b = MistralBackend::load_with_prefix_cache(&m, Device::Cpu, prefix_cache)
        .await
        .unwrap();
    (m, b)
}

fn chat(m: &models::ResolvedModel, question: &str) -> String {
    prompt::render(
        &m.family,
        &m.template,
        &[Message::user(question)],
        &[],
        RenderOptions::default(),
    )
    .unwrap()
}

/// Greedy text of `max_tokens` tokens.
async fn greedy(b: &MistralBackend, prompt: &str, max_tokens: usize) -> String {
    let mut sink = |_: &str| {};
    b.generate(
        GenRequest {
            prompt: prompt.to_string(),
            max_tokens,
            sampling: Sampling::default(),
            stop: vec![],
            grammar: None,
            think: Default::default(),
        },
        &mut sink,
    )
    .await
    .unwrap()
    .text
}

/// What the engine prefilled while `f` ran.
async fn prefilled<F: std::future::Future>(f: F) -> (F::Output, usize) {
    let before = prefilled_tokens();
    let out = f.await;
    (out, prefilled_tokens() - before)
}

/// Counts the tokens the engine sampled for one request (it runs once per token).
struct Count(Arc<AtomicUsize>);

impl CustomLogitsProcessor for Count {
    fn apply(&self, logits: &Tensor, _: &[u32]) -> mistralrs::Result<Tensor> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(logits.clone())
    }
}

/// Forces the given tokens, one per step, then lets the model choose.
struct Force(Vec<u32>, usize);

impl CustomLogitsProcessor for Force {
    fn apply(&self, logits: &Tensor, ctx: &[u32]) -> mistralrs::Result<Tensor> {
        let Some(&t) = self.0.get(ctx.len() - self.1) else {
            return Ok(logits.clone());
        };
        let n = logits.dims1()?;
        let mut only = vec![f32::NEG_INFINITY; n];
        only[t as usize] = 0.0;
        Tensor::from_vec(only, n, logits.device())
    }
}

/// Sends a greedy raw-token request straight to the engine; the receiver gets its answer.
async fn send(
    b: &MistralBackend,
    toks: Vec<u32>,
    max_len: usize,
    counter: Arc<AtomicUsize>,
) -> tokio::sync::mpsc::Receiver<Response> {
    send_with(b, toks, max_len, false, Arc::new(Count(counter))).await
}

async fn send_with(
    b: &MistralBackend,
    toks: Vec<u32>,
    max_len: usize,
    streaming: bool,
    processor: Arc<dyn CustomLogitsProcessor>,
) -> tokio::sync::mpsc::Receiver<Response> {
    static ID: AtomicUsize = AtomicUsize::new(1_000_000);
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    let mut params = SamplingParams::deterministic();
    params.max_len = Some(max_len);
    let request = Request::Normal(Box::new(NormalRequest {
        messages: RequestMessage::CompletionTokens(toks),
        sampling_params: params,
        response: tx,
        return_logprobs: false,
        is_streaming: streaming,
        id: ID.fetch_add(1, Ordering::SeqCst),
        constraint: Constraint::None,
        suffix: None,
        tools: None,
        tool_choice: None,
        logits_processors: Some(vec![processor]),
        return_raw_logits: false,
        web_search_options: None,
        model_id: None,
        truncate_sequence: false,
    }));
    b.model()
        .inner()
        .get_sender(None)
        .unwrap()
        .send(request)
        .await
        .unwrap();
    rx
}

/// The text of a finished raw request, or why there is none.
async fn answer(mut rx: tokio::sync::mpsc::Receiver<Response>) -> Result<String, String> {
    while let Some(r) = rx.recv().await {
        match r {
            Response::CompletionDone(d) => {
                return Ok(d
                    .choices
                    .into_iter()
                    .next()
                    .map(|c| c.text)
                    .unwrap_or_default());
            }
            Response::CompletionModelError(e, _) => return Err(e),
            Response::InternalError(e) | Response::ValidationError(e) => {
                return Err(e.to_string());
            }
            _ => {}
        }
    }
    Err("the engine closed the channel without an answer".into())
}

/// Patch 3: a prompt a cached sequence covers whole is prefilled by one token (the last, whose
/// logits are needed), not from scratch.
#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_prompt_prefills_one_token() {
    let _one = serial();
    let (m, on) = smollm2(Some(4)).await;
    let p = chat(
        &m,
        &"Describe the lighthouse, the keeper, the harbour and the storm. ".repeat(6),
    );
    let n = on.tokenize(&p).await.unwrap().len();
    let (_, first) = prefilled(greedy(&on, &p, 2)).await;
    assert_eq!(first, n);
    let (_, again) = prefilled(greedy(&on, &p, 2)).await;
    assert_eq!(again, 1, "a prompt of {n} tokens, sent again");
}

/// Patch 2: on the CPU, finished sequences beyond the cache's size are evicted, oldest first
/// (stock 0.8.1 evicted only GPU entries: a CPU process kept every one forever).
#[tokio::test(flavor = "multi_thread")]
async fn finished_sequences_are_evicted_on_the_cpu() {
    let _one = serial();
    let questions = [
        "Describe a lighthouse at night, with the waves, the gulls and the keeper's lamp.",
        "Explain how bread rises, from the yeast to the oven, for a child of ten.",
        "List the planets of the solar system with one fact about each of them.",
    ];
    for (size, evicted) in [(2, true), (4, false)] {
        let (m, b) = smollm2(Some(size)).await;
        let prompts: Vec<String> = questions.iter().map(|q| chat(&m, q)).collect();
        let mut first = String::new();
        for (i, p) in prompts.iter().enumerate() {
            let text = greedy(&b, p, 1).await;
            if i == 0 {
                first = text;
            }
        }
        // The first conversation goes on: its own entry would leave only the new words.
        let next = format!("{}{first} and more", prompts[0]);
        let (n, own) = (
            b.tokenize(&next).await.unwrap().len(),
            b.tokenize(&prompts[0]).await.unwrap().len(),
        );
        let (_, count) = prefilled(greedy(&b, &next, 1)).await;
        // Kept: only the words after the cached sequence. Evicted: the whole question too (the
        // other entries share only the chat template's opening).
        let new_words = n - own;
        if evicted {
            assert!(
                count > new_words + 10,
                "cache of {size}: {count} of {n} tokens prefilled; the oldest entry was kept"
            );
        } else {
            assert!(
                count <= new_words,
                "cache of {size}: {count} of {n} prefilled"
            );
        }
    }
}

/// Patch 7: a sequence restored from the prefix cache, parked while another one ran its last
/// step, goes on decoding where it was. Stock 0.8.1 sent it back through the prompt step on
/// top of its own KV cache, and it decoded garbage (`agent serve`'s run after a cancelled one).
/// The restored part is a strict prefix of a cached prompt, so the reuse is exact without the
/// other patches; the reference comes from an engine without a prefix cache.
#[tokio::test(flavor = "multi_thread")]
async fn a_parked_sequence_survives_another_finishing() {
    let _one = serial();
    let (m, b) = smollm2(Some(4)).await;
    let (_, off) = smollm2(None).await;
    let story =
        "Tell me about the lighthouse keeper, the storm and the ships in the bay. ".repeat(5);
    let cached = chat(&m, &format!("{story} Then write a poem about it."));
    let asked = chat(&m, &format!("{story} Then list the ships by name."));
    let reference = greedy(&off, &asked, 24).await;
    greedy(&b, &cached, 1).await;
    // `asked` restores most of itself from `cached`'s entry, while a shorter one runs and
    // finishes first. Their lengths never meet, so they are never batched together.
    let short = chat(&m, "Say hello.");
    let (again, _) = tokio::join!(greedy(&b, &asked, 24), greedy(&b, &short, 6));
    assert_eq!(again, reference);
}

/// Patch 8: a sequence that ends in its prompt step (here, at its one allowed token) stays
/// ended; stock 0.8.1 revived it for one more decode step, which sampled (and answered, and
/// cached it) a second time.
#[tokio::test(flavor = "multi_thread")]
async fn a_sequence_ended_in_its_prompt_step_stays_ended() {
    let _one = serial();
    let (m, b) = smollm2(Some(4)).await;
    let toks = b.tokenize(&chat(&m, "Name a colour.")).await.unwrap();
    let sampled = Arc::new(AtomicUsize::new(0));
    let rx = send(&b, toks, 1, sampled.clone()).await;
    answer(rx).await.unwrap();
    // The engine runs its requests in order: once the next one is done, any extra step of the
    // first has run too.
    let other = b.tokenize(&chat(&m, "Name a fruit.")).await.unwrap();
    answer(send(&b, other, 3, Arc::new(AtomicUsize::new(0))).await)
        .await
        .unwrap();
    assert_eq!(sampled.load(Ordering::SeqCst), 1);
}

/// Patch 9: a streamed request whose last token ends inside a multi-byte character (a token
/// that is part of one) still gets its final chunk; stock 0.8.1 sent none, and the caller saw
/// the channel close ("the engine stopped before finishing").
#[tokio::test(flavor = "multi_thread")]
async fn a_stream_that_ends_inside_a_character_is_finished() {
    let _one = serial();
    let (m, b) = smollm2(Some(4)).await;
    let crab = b.tokenize("🦀").await.unwrap();
    assert!(crab.len() > 1, "🦀 is one token: {crab:?}");
    let prompt = b.tokenize(&chat(&m, "Draw a crab.")).await.unwrap();
    let n = prompt.len();
    let mut rx = send_with(&b, prompt, 1, true, Arc::new(Force(crab, n))).await;
    let mut finished = None;
    while let Some(r) = rx.recv().await {
        if let Response::CompletionChunk(c) = r
            && let Some(choice) = c.choices.into_iter().next()
            && choice.finish_reason.is_some()
        {
            finished = Some((choice.text, choice.finish_reason));
        }
    }
    assert_eq!(
        finished,
        Some(("\u{fffd}".to_string(), Some("length".to_string())))
    );
}

/// Patch 5: sequences of the same length and prefix-cache offset whose KV caches differ in
/// capacity (each restored from another cached sequence, a long one and a short one) are
/// batched; stock 0.8.1 panicked ("shape mismatch on dim 2") and took every request in flight
/// with it. With plain caches (SmolLM2) and rotating ones (a sliding-window model).
#[tokio::test(flavor = "multi_thread")]
async fn caches_of_different_capacity_batch_together() {
    let _one = serial();
    let sliding = require_fixture("models/mistral-sliding-tiny/config.json");
    let sliding = sliding.parent().unwrap().to_str().unwrap().to_string();
    for model in ["smollm2-135m", sliding.as_str()] {
        let m = models::resolve(model).unwrap();
        let b = MistralBackend::load_with_prefix_cache(&m, Device::Cpu, Some(8))
            .await
            .unwrap();
        let text = |t: &str| {
            let b = &b;
            let t = t.repeat(80);
            async move { b.tokenize(&t).await.unwrap() }
        };
        let keeper = text("the keeper lit the lamp while the storm rolled over the bay ").await;
        let gull = text("A gull circled over the harbour, crying at the fishing boats. ").await;
        let bread = text("Bread rises when the yeast eats the sugar and breathes out gas. ").await;
        let seas = text("Seven seas, and on each of them a ship with a lantern lit. ").await;
        let firsts = [keeper[0], gull[0], bread[0], seas[0]];
        assert!(
            (1..4).all(|i| !firsts[..i].contains(&firsts[i])),
            "{firsts:?}"
        );
        // Cached: one long sequence (its cache grows to 1024 rows) and one short (512 rows),
        // whose first 40 tokens differ.
        let long: Vec<u32> = keeper[..700].to_vec();
        let short: Vec<u32> = gull[..60].to_vec();
        for cached in [long, short] {
            answer(send(&b, cached, 1, Default::default()).await)
                .await
                .unwrap();
        }
        // Two of the same length, each restoring 40 tokens: one from each cached sequence.
        let from_long: Vec<u32> = keeper[..40].iter().chain(&bread[..80]).copied().collect();
        let from_short: Vec<u32> = gull[..40].iter().chain(&bread[..80]).copied().collect();
        // Sent while the engine prefills another prompt, so that both are scheduled together.
        let blocker = send(&b, seas[..900].to_vec(), 1, Default::default()).await;
        let (x, y) = (
            send(&b, from_long, 8, Default::default()).await,
            send(&b, from_short, 8, Default::default()).await,
        );
        let (blocker, x, y) = tokio::join!(answer(blocker), answer(x), answer(y));
        assert!(
            blocker.is_ok() && x.is_ok() && y.is_ok(),
            "{model}: {blocker:?} {x:?} {y:?}"
        );
    }
}

/// Patch 14: sequences decoded in one batch each attend to their own keys and values. Stock
/// 0.8.1's decode kernel kept one scratch row per head, not per sequence, so every sequence of
/// a batch got the last one's attention output. Two prompts of the same length, decoded alone
/// and then together (scheduled in one batch behind a long prefill), give the same greedy text.
#[tokio::test(flavor = "multi_thread")]
async fn sequences_decoded_together_attend_to_their_own_context() {
    let _one = serial();
    let (_, b) = smollm2(None).await;
    let text = |t: &str, n: usize| {
        let b = &b;
        let t = t.repeat(n);
        async move { b.tokenize(&t).await.unwrap() }
    };
    let keeper = text(
        "The keeper climbed the stairs and lit the lamp at dusk. ",
        6,
    )
    .await;
    let bread = text(
        "Bread rises when the yeast eats the sugar in the dough. ",
        6,
    )
    .await;
    let n = keeper.len().min(bread.len());
    let (keeper, bread) = (keeper[..n].to_vec(), bread[..n].to_vec());
    let mut alone = Vec::new();
    for p in [&keeper, &bread] {
        alone.push(
            answer(send(&b, p.clone(), 16, Default::default()).await)
                .await
                .unwrap(),
        );
    }
    assert_ne!(alone[0], alone[1]);
    let seas = text(
        "Seven seas, and on each of them a ship with a lantern lit. ",
        80,
    )
    .await;
    // Sent while the engine prefills another prompt, so that both are scheduled together.
    let blocker = send(&b, seas[..900].to_vec(), 1, Default::default()).await;
    let (x, y) = (
        send(&b, keeper, 16, Default::default()).await,
        send(&b, bread, 16, Default::default()).await,
    );
    let (blocker, x, y) = tokio::join!(answer(blocker), answer(x), answer(y));
    assert!(blocker.is_ok(), "{blocker:?}");
    assert_eq!(vec![x.unwrap(), y.unwrap()], alone);
}

/// `agent serve`'s run after a cancelled one, 50 times over with the prefix cache on: the
/// cancelled request is dropped at a different point each time (before its first token, or
/// after one to four), and the next request starts while the engine still holds the dropped
/// one, restoring the system prompt and more from the cache (each asks another question, so
/// the hit is a strict prefix, exact on its own). Its text is the text of the same request on
/// an engine without a prefix cache, every time.
#[tokio::test(flavor = "multi_thread")]
async fn fifty_cancelled_runs_leave_the_next_one_right() {
    let _one = serial();
    let (m, b) = smollm2(Some(8)).await;
    let (_, off) = smollm2(None).await;
    let task = |cycle: usize| {
        prompt::render(
            &m.family,
            &m.template,
            &[
                Message::system(agent::planner::SYSTEM_PROMPT),
                Message::user(format!(
                    "Count the letters of the word in the tool's answer, then give the count as \
                     the final answer. This is question {cycle}."
                )),
            ],
            &[],
            RenderOptions::default(),
        )
        .unwrap()
    };
    greedy(&b, &task(1000), 1).await;
    for cycle in 0..50 {
        let reference = greedy(&off, &task(cycle), 16).await;
        let story = chat(
            &m,
            &format!("Write a very long story about the sea, chapter {cycle}, one page a chapter."),
        );
        let seen = Arc::new(AtomicUsize::new(0));
        let enough = Arc::new(tokio::sync::Notify::new());
        let (s, e) = (seen.clone(), enough.clone());
        let wanted = cycle % 5;
        let mut on_text = move |_: &str| {
            if s.fetch_add(1, Ordering::SeqCst) + 1 >= wanted {
                e.notify_one();
            }
        };
        let long = b.generate(
            GenRequest {
                prompt: story,
                max_tokens: 400,
                sampling: Sampling::default(),
                stop: vec![],
                grammar: None,
                think: Default::default(),
            },
            &mut on_text,
        );
        tokio::select! {
            biased;
            out = long => panic!("cycle {cycle}: the long run ended first: {out:?}"),
            () = enough.notified(), if wanted > 0 => {}
            () = std::future::ready(()), if wanted == 0 => {}
        }
        let next = greedy(&b, &task(cycle), 16).await;
        assert_eq!(
            next,
            reference,
            "cycle {cycle}, cancelled after {} tokens",
            seen.load(Ordering::SeqCst)
        );
    }
}
