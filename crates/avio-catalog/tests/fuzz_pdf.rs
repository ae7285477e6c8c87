//! Property test hammering the PDF text layer with mutated fixture bytes.
//!
//! The fixtures are also decompressed first, so mutations land in content operators, fonts
//! and CMaps rather than only breaking Flate streams. A panic anywhere (even one the
//! converter's guard turns into an error) fails the test. `FUZZ_CASES=N` runs longer.

use std::path::PathBuf;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use avio_catalog::{Limits, SourceKind, convert};
use proptest::prelude::*;

static PANICKED: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();

fn seeds() -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/catalog_corpus/fixtures");
    let mut out = Vec::new();
    for name in ["price_libreoffice.pdf", "price_reportlab.pdf", "price_chromium.pdf"] {
        let bytes = std::fs::read(dir.join(name)).expect("fixture");
        let mut doc = lopdf::Document::load_mem(&bytes).expect("fixture loads");
        doc.decompress();
        // Keep the seeds small so each case stays fast: the first two pages are enough.
        let pages: Vec<u32> = doc.get_pages().keys().copied().filter(|n| *n > 2).collect();
        doc.delete_pages(&pages);
        let mut plain = Vec::new();
        doc.save_to(&mut plain).expect("save");
        out.push(plain);
        out.push(bytes);
    }
    out
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Duplicate(usize, usize),
    Token(usize, &'static [u8]),
}

const TOKENS: &[&[u8]] = &[
    b" q ",
    b" Q ",
    b" BT ",
    b" ET ",
    b" 1e308 ",
    b" -1 ",
    b" 0 ",
    b" Tj ",
    b" TJ ",
    b" cm ",
    b" Do ",
    b"[",
    b"]",
    b"<",
    b">",
    b"(",
    b")",
    b"<<",
    b">>",
    b" R ",
    b"/Identity-H",
    b"/ToUnicode",
    b" beginbfrange ",
    b" endbfrange ",
    b"<0000> <FFFF> <0041>",
    b"/W [0 [",
    b" 99999999999 ",
    b"/Length 0",
    b"endstream",
    b"stream\n",
    b" Tf ",
    b" Tz ",
    b" 0 0 0 0 0 0 Tm ",
    b"/Form",
    b"/Matrix [0 0 0 0 0 0]",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Mutation::Flip(at, b)),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16)).prop_map(|(at, v)| Mutation::Insert(at, v)),
        (any::<usize>(), 1usize..512).prop_map(|(at, n)| Mutation::Delete(at, n)),
        (any::<usize>(), 1usize..256).prop_map(|(at, n)| Mutation::Duplicate(at, n)),
        (any::<usize>(), proptest::sample::select(TOKENS)).prop_map(|(at, t)| Mutation::Token(at, t)),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let len = bytes.len().max(1);
    match mutation {
        Mutation::Flip(at, b) => {
            if let Some(slot) = bytes.get_mut(at % len) {
                *slot ^= b | 1;
            }
        }
        Mutation::Insert(at, v) => {
            let at = at % len;
            bytes.splice(at..at, v.iter().copied());
        }
        Mutation::Delete(at, n) => {
            let at = at % len;
            let end = (at + n).min(bytes.len());
            bytes.drain(at..end);
        }
        Mutation::Duplicate(at, n) => {
            let at = at % len;
            let end = (at + n).min(bytes.len());
            let copy: Vec<u8> = bytes[at..end].to_vec();
            bytes.splice(at..at, copy);
        }
        Mutation::Token(at, token) => {
            let at = at % len;
            bytes.splice(at..at, token.iter().copied());
        }
    }
}

fn cases() -> u32 {
    std::env::var("FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_pdfs_never_panic(seed in 0usize..6, mutations in proptest::collection::vec(mutation(), 1..24)) {
        HOOK.call_once(|| {
            let default = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                PANICKED.store(true, Ordering::SeqCst);
                default(info);
            }));
        });
        thread_local! { static SEEDS: Vec<Vec<u8>> = seeds(); }
        let mut bytes = SEEDS.with(|s| s[seed % s.len()].clone());
        for m in &mutations {
            apply(&mut bytes, m);
        }
        let limits = Limits {
            max_ops: 2_000_000,
            max_decompressed_bytes: 64 << 20,
            deadline: Some(Instant::now() + Duration::from_secs(30)),
            ..Limits::default()
        };
        let started = Instant::now();
        let _ = convert(&bytes, SourceKind::Pdf, &limits);
        prop_assert!(started.elapsed() < Duration::from_secs(40), "took {:?}", started.elapsed());
        prop_assert!(!PANICKED.swap(false, Ordering::SeqCst), "a parser panicked on {:?}", mutations);
    }
}
