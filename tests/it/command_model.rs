//! The `command_stream` property as a proptest state machine on stable:
//! sequences of up to 100 operations (commands, queries, invalid input,
//! pipelined bursts, restarts, crashes that cut the log) run against a real
//! store and are checked step by step against the independent model in
//! `ticketlog::testing::model`, by the same `command_stream::run` the fuzz
//! target calls. A failure shrinks to a minimal operation sequence and prints
//! the seed that replays it.
//!
//! Also here: checks that the model and the checks actually fail when the
//! store misbehaves (an oracle that cannot fail is no oracle).

use proptest::option::of as option;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use ticketlog::inspect::LogEntry;
use ticketlog::testing::fuzz::command_stream::{self, Expect, Op, Pipelined, RawText, Target};
use ticketlog::testing::fuzz::scratch_dir;
use ticketlog::testing::model::{Model, Refusal};
use ticketlog::{
    Change, ClientError, Command, Status, Ticket, TicketDescription, TicketDraft, TicketId,
    TicketPatch, TicketTitle, Timestamp,
};

use crate::common::seed;

/// Cases per run and the longest operation sequence.
const CASES: u32 = 256;
const STEPS_MAX: usize = 100;

fn text_within(bytes_max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9 ]{1,12}",
        1 => "[é中🦀x]{1,20}",
        1 => proptest::string::string_regex(".{1,60}").expect("a valid regex"),
    ]
    .prop_map(move |mut text| {
        let mut cut = text.len().min(bytes_max);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text
    })
    .prop_filter("a non-empty text", |text| !text.is_empty())
}

fn title() -> impl Strategy<Value = TicketTitle> {
    text_within(50).prop_map(|text| TicketTitle::try_from(text).expect("cut to the limit"))
}

fn description() -> impl Strategy<Value = TicketDescription> {
    prop_oneof![
        4 => text_within(500),
        1 => "[a-z]{1,3}".prop_map(|unit| unit.repeat(200)),
    ]
    .prop_map(|mut text| {
        text.truncate(500);
        TicketDescription::try_from(text).expect("cut to the limit")
    })
}

fn status() -> impl Strategy<Value = Status> {
    prop_oneof![
        Just(Status::ToDo),
        Just(Status::InProgress),
        Just(Status::Done)
    ]
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        6 => any::<u8>().prop_map(Target::Live),
        2 => any::<u8>().prop_map(Target::Gone),
        1 => (0..8u64).prop_map(Target::Raw),
        1 => any::<u64>().prop_map(Target::Raw),
    ]
}

fn expect() -> impl Strategy<Value = Expect> {
    prop_oneof![
        3 => Just(Expect::Current),
        1 => any::<i8>().prop_map(Expect::Off),
        1 => (0..4u64).prop_map(Expect::Raw),
    ]
}

/// Raw text around the limits: empty, short, and repeated to just under,
/// at, and over 50 and 500 bytes.
fn raw_text() -> impl Strategy<Value = RawText> {
    prop_oneof![
        1 => Just(RawText::Empty),
        2 => ".{0,20}".prop_map(RawText::Text),
        3 => ("[a-zé]{1,2}", prop_oneof![45..56u16, 495..506u16, 0..1100u16])
            .prop_map(|(text, bytes)| RawText::Repeat { text, bytes }),
    ]
}

fn pipelined() -> impl Strategy<Value = Pipelined> {
    prop_oneof![
        2 => (title(), description())
            .prop_map(|(title, description)| Pipelined::Create { title, description }),
        2 => (target(), option(title()), option(status()),
              option(expect()))
            .prop_map(|(target, title, status, expect)| Pipelined::Update {
                target, title, status, expect,
            }),
        1 => target().prop_map(|target| Pipelined::Delete { target }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (title(), description()).prop_map(|(title, description)| Op::Create { title, description }),
        2 => (raw_text(), raw_text())
            .prop_map(|(title, description)| Op::CreateUnchecked { title, description }),
        8 => (target(), option(title()), option(description()), option(status()), option(expect()))
            .prop_map(|(target, title, description, status, expect)| Op::Update {
                target, title, description, status, expect,
            }),
        2 => (target(), option(raw_text()), option(raw_text()), option(status()), option(expect()))
            .prop_map(|(target, title, description, status, expect)| Op::UpdateUnchecked {
                target, title, description, status, expect,
            }),
        4 => target().prop_map(|target| Op::Delete { target }),
        3 => target().prop_map(|target| Op::Get { target }),
        2 => (option(status()), option(target()), option(0..8u8))
            .prop_map(|(status, after, limit)| Op::List { status, after, limit }),
        2 => proptest::collection::vec(pipelined(), 0..8)
            .prop_map(|commands| Op::Pipeline { commands }),
        1 => prop_oneof![".{0,8}", "[ 0-9]{1,22}"].prop_map(|text| Op::ParseId { text }),
        1 => prop_oneof![".{0,8}", "(?i)(todo|to-do|in-?progress|done)[ ]?"]
            .prop_map(|text| Op::ParseStatus { text }),
        2 => (
            proptest::collection::vec(
                (title(), description())
                    .prop_map(|(title, description)| TicketDraft { title, description }),
                0..6,
            ),
            // Now and then repeated to just under, at and over the limit of 1024.
            option(prop_oneof![8 => 0..40u16, 1 => 1020..1030u16]),
        )
            .prop_map(|(drafts, repeat_to)| Op::CreateMany { drafts, repeat_to }),
        2 => Just(Op::Restart),
        2 => (prop_oneof![0..64u16, any::<u16>()], prop_oneof![Just(0u8), any::<u8>()])
            .prop_map(|(cut, zeros)| Op::Crash { cut, zeros }),
    ]
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 0..=STEPS_MAX)
}

fn runner(test: &str, cases: u32) -> (TestRunner, u64) {
    let seed = seed(test);
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        // Failures are replayed from the printed seed, not from files.
        failure_persistence: None,
        ..Config::default()
    };
    (
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &key)),
        seed,
    )
}

#[test]
fn command_streams_match_the_model_across_restarts_and_crashes() {
    let (mut runner, seed) = runner(
        "command_streams_match_the_model_across_restarts_and_crashes",
        CASES,
    );
    let result = runner.run(&ops(), |ops| {
        run(&ops).map_err(|failure| TestCaseError::fail(failure.to_string()))
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, ops)) => {
            // proptest deletes each operation once, then shrinks the rest
            // (often into other operations); delete again until no single
            // operation can go, so the sequence shown is 1-minimal.
            let minimal = delete_until_fixpoint(ops);
            let failure =
                run(&minimal).expect_err("delete_until_fixpoint keeps a failing sequence");
            panic!(
                "{} operations still fail: {minimal:#?}\n{failure}\n(proptest: {reason})\n\
                 replay with TICKETLOG_SEED={seed}",
                minimal.len()
            );
        }
        Err(error) => panic!("{error}\nreplay with TICKETLOG_SEED={seed}"),
    }
}

/// Runs one sequence in a fresh directory.
fn run(ops: &[Op]) -> Result<(), ticketlog::testing::fuzz::Failure> {
    let dir = scratch_dir().expect("a scratch directory");
    command_stream::run(ops, dir.path())
}

/// Removes single operations while the sequence still fails, until none can go.
fn delete_until_fixpoint(mut ops: Vec<Op>) -> Vec<Op> {
    loop {
        let before = ops.len();
        let mut index = ops.len();
        while index > 0 {
            index -= 1;
            let mut shorter = ops.clone();
            shorter.remove(index);
            if run(&shorter).is_err() {
                ops = shorter;
            }
        }
        if ops.len() == before {
            return ops;
        }
    }
}

#[test]
fn generated_streams_reach_restarts_crashes_and_refusals() {
    // The generator must actually produce what the property is about.
    let (mut runner, _) = runner("generated_streams_reach_restarts_crashes_and_refusals", 1);
    let mut counts = [0usize; 5];
    for _ in 0..64 {
        let ops = ops().new_tree(&mut runner).expect("a value").current();
        for op in &ops {
            match op {
                Op::Restart => counts[0] += 1,
                Op::Crash { .. } => counts[1] += 1,
                Op::CreateUnchecked { .. } | Op::UpdateUnchecked { .. } => counts[2] += 1,
                Op::Pipeline { .. } => counts[3] += 1,
                Op::CreateMany { .. } => counts[4] += 1,
                _ => {}
            }
        }
    }
    assert!(
        counts.iter().all(|&n| n > 10),
        "restart, crash, unchecked, pipeline, create_many: {counts:?}"
    );
}

fn draft(title: &str) -> TicketDraft {
    TicketDraft {
        title: title.try_into().unwrap(),
        description: "d".try_into().unwrap(),
    }
}

fn ticket(id: u64, title: &str, version: u64, at: u64) -> Ticket {
    Ticket {
        id: TicketId::from(id),
        title: title.try_into().unwrap(),
        description: "d".try_into().unwrap(),
        status: Status::ToDo,
        version,
        created_at: Timestamp::from_unix_millis(at),
        updated_at: Timestamp::from_unix_millis(at),
    }
}

#[test]
fn the_model_refuses_replies_the_store_must_not_give() {
    let mut model = Model::default();
    let create = Command::Create(draft("a"));
    // Wrong id, wrong version, wrong title: each rejected.
    for wrong in [
        ticket(2, "a", 1, 5),
        ticket(1, "a", 2, 5),
        ticket(1, "b", 1, 5),
    ] {
        let decision = model.decide(&create).unwrap();
        assert!(
            model.clone().acknowledge(decision, &wrong).is_err(),
            "{wrong:?}"
        );
    }
    let decision = model.decide(&create).unwrap();
    model.acknowledge(decision, &ticket(1, "a", 1, 5)).unwrap();
    // A timestamp that goes backwards.
    let decision = model.decide(&Command::Create(draft("b"))).unwrap();
    assert!(
        model
            .clone()
            .acknowledge(decision, &ticket(2, "b", 1, 4))
            .is_err()
    );
    // Refusals are exact: the right variant with the right fields.
    let stale = Command::Update(
        TicketId::from(1),
        TicketPatch {
            status: Some(Status::Done),
            expected_version: Some(7),
            ..TicketPatch::default()
        },
    );
    let refusal = model.decide(&stale).unwrap_err();
    assert_eq!(
        refusal,
        Refusal::Conflict {
            id: TicketId::from(1),
            expected: 7,
            actual: 1
        }
    );
    assert!(refusal.matches(&ClientError::Conflict {
        id: TicketId::from(1),
        expected: 7,
        actual: 1
    }));
    assert!(!refusal.matches(&ClientError::NotFound(TicketId::from(1))));
}

#[test]
fn the_model_refuses_a_log_that_lost_or_changed_a_record() {
    let mut model = Model::default();
    let decision = model.decide(&Command::Create(draft("a"))).unwrap();
    model.acknowledge(decision, &ticket(1, "a", 1, 5)).unwrap();
    let created = Change::Created {
        id: TicketId::from(1),
        title: "a".try_into().unwrap(),
        description: "d".try_into().unwrap(),
        at: Timestamp::from_unix_millis(5),
    };
    let entry = |changes: Vec<Change>| LogEntry {
        lsn: 1,
        segment: 1,
        offset: 32,
        len: 0,
        changes,
    };
    assert!(model.clone().check_log(&[]).is_err(), "a lost record");
    let changed = Change::Created {
        id: TicketId::from(1),
        title: "A".try_into().unwrap(),
        description: "d".try_into().unwrap(),
        at: Timestamp::from_unix_millis(5),
    };
    assert!(
        model.clone().check_log(&[entry(vec![changed])]).is_err(),
        "a changed record"
    );
    model.check_log(&[entry(vec![created])]).unwrap();
}
