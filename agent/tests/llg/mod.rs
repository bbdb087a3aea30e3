//! Runs our Lark grammars through llguidance (the constraint engine inside mistral.rs) with a
//! real tokenizer, the way a constrained generation would consume the model's tokens.
// Shared by several test crates, each using part of it.
#![allow(dead_code)]

use std::path::PathBuf;

use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{TokEnv, TokenId};
use llguidance::{Matcher, ParserFactory};

pub fn fixture(dir: &str) -> PathBuf {
    let home = std::env::var_os("AGENT_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").expect("HOME is not set")).join(".cache/agent")
        });
    let p = home.join(dir);
    assert!(
        p.is_dir(),
        "{} is missing: run tests/fixtures/build.sh first",
        p.display()
    );
    p
}

pub struct Checker {
    env: TokEnv,
    factory: ParserFactory,
}

impl Checker {
    /// `dir`: a fixture directory with a `tokenizer.json`.
    pub fn new(dir: &str) -> Checker {
        let path = fixture(dir).join("tokenizer.json");
        let bt = toktrie_hf_tokenizers::ByteTokenizer::from_file(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let env = bt.into_tok_env(None).expect("token environment");
        let mut factory = ParserFactory::new_simple(&env).expect("parser factory");
        factory.set_stderr_log_level(0);
        Checker { env, factory }
    }

    /// Token ids of `text`; `special`: markers such as `<tool_call>` become their special
    /// tokens (as a model with them in its vocabulary writes them), otherwise plain text.
    pub fn tokens(&self, text: &str, special: bool) -> Vec<TokenId> {
        if special {
            self.env.tokenize_bytes_special(text.as_bytes())
        } else {
            self.env.tok_trie().greedy_tokenize(text.as_bytes())
        }
    }

    /// Compiles the grammar (panics with the grammar on error).
    pub fn matcher(&self, lark: &str) -> Matcher {
        let parser = self
            .factory
            .create_parser(TopLevelGrammar::from_lark(lark.to_string()))
            .unwrap_or_else(|e| panic!("grammar does not compile: {e}\n{lark}"));
        Matcher::new(Ok(parser))
    }

    /// Compiles the grammar; llguidance's error otherwise (e.g. an unsatisfiable schema).
    pub fn try_matcher(&self, lark: &str) -> Result<Matcher, String> {
        let parser = self
            .factory
            .create_parser(TopLevelGrammar::from_lark(lark.to_string()))
            .map_err(|e| e.to_string())?;
        Ok(Matcher::new(Ok(parser)))
    }

    /// Whether the grammar accepts exactly `text` as a whole turn.
    pub fn accepts(&self, lark: &str, text: &str, special: bool) -> Result<(), String> {
        let m = self.matcher(lark);
        self.run(m, text, special)
    }

    /// Feeds `text` to a compiled grammar: `Ok` when it is accepted as a whole turn.
    pub fn run(&self, mut m: Matcher, text: &str, special: bool) -> Result<(), String> {
        let toks = self.tokens(text, special);
        for (i, t) in toks.iter().enumerate() {
            if let Err(e) = m.consume_token(*t) {
                let so_far = self.env.tok_trie().decode_str(&toks[..i]);
                return Err(format!(
                    "token {i} ({:?}) rejected after {so_far:?}: {e}",
                    self.env.tok_trie().token_dbg(*t)
                ));
            }
        }
        match m.is_accepting() {
            Ok(true) => Ok(()),
            Ok(false) => Err("the text is a prefix of the grammar, not a whole turn".into()),
            Err(e) => Err(e.to_string()),
        }
    }
}
