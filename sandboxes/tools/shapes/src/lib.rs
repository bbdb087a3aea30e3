//! A test guest for typed tools: functions over every kind of WIT type, so the host's schema
//! derivation and value conversion are checked end to end.

wit_bindgen::generate!({ world: "all", path: "wit" });

use exports::test::shapes::shapes::{Color, Guest as Shapes, GuestCounter, Perms, Point, Shape};

#[unsafe(link_section = "agent-tool-wit")]
#[used]
static WIT: [u8; include_bytes!("../wit/shapes.wit").len()] = *include_bytes!("../wit/shapes.wit");

struct Impl;

pub struct Counter;

impl GuestCounter for Counter {
    fn new() -> Counter {
        Counter
    }
}

impl Shapes for Impl {
    type Counter = Counter;

    #[allow(clippy::too_many_arguments)]
    fn show(
        p: Point,
        c: Color,
        s: Shape,
        f: Perms,
        t: (u8, String),
        tags: Vec<String>,
        note: Option<String>,
        big: u64,
        ch: char,
        ratio: f64,
    ) -> String {
        format!("{p:?} {c:?} {s:?} {f:?} {t:?} {tags:?} {note:?} {big} {ch} {ratio}")
    }

    fn diagonal(n: u8) -> Result<Vec<Point>, String> {
        if n > 3 {
            return Err(format!("{n} is more than 3"));
        }
        Ok((0..n as i32)
            .map(|i| Point {
                x: i,
                y: i,
                label: (i == 0).then(|| "origin".to_string()),
            })
            .collect())
    }

    fn mirror(s: Shape, c: Option<Color>) -> (Shape, Option<Color>) {
        (s, c)
    }

    fn uses_resource(_c: exports::test::shapes::shapes::CounterBorrow<'_>) -> u32 {
        0
    }
}

impl Guest for Impl {
    fn ping() -> String {
        "pong".into()
    }

    fn fail() -> Result<u8, PointError> {
        Err(PointError {
            code: 7,
            why: "on purpose".into(),
        })
    }
}

export!(Impl);
