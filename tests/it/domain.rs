//! Validation boundaries of the domain types, through the public API only.

use ticketlog::{
    DESCRIPTION_BYTES_MAX, Status, TITLE_BYTES_MAX, TicketDescription, TicketError, TicketId,
    TicketTitle,
};

// ---------------------------------------------------------------- titles

#[test]
fn title_limit_constant_is_50_bytes() {
    assert_eq!(TITLE_BYTES_MAX, 50);
}

#[test]
fn title_of_0_bytes_is_rejected_as_empty() {
    assert_eq!(TicketTitle::try_from(""), Err(TicketError::TitleEmpty));
    assert_eq!(
        TicketTitle::try_from(String::new()),
        Err(TicketError::TitleEmpty)
    );
}

#[test]
fn title_of_1_byte_is_accepted() {
    assert_eq!(TicketTitle::try_from("x").unwrap().as_str(), "x");
    assert_eq!(
        TicketTitle::try_from("x".to_string()).unwrap().as_str(),
        "x"
    );
}

#[test]
fn title_of_50_bytes_is_accepted() {
    let fifty = "t".repeat(50);
    assert_eq!(
        TicketTitle::try_from(fifty.as_str()).unwrap().as_str(),
        fifty
    );
    assert_eq!(
        TicketTitle::try_from(fifty.clone()).unwrap().as_str(),
        fifty
    );
}

#[test]
fn title_of_51_bytes_is_rejected_as_too_long() {
    let fifty_one = "t".repeat(51);
    let expected = TicketError::TitleTooLong { len: 51, max: 50 };
    assert_eq!(
        TicketTitle::try_from(fifty_one.as_str()),
        Err(expected.clone())
    );
    assert_eq!(TicketTitle::try_from(fifty_one), Err(expected));
}

#[test]
fn title_limit_counts_utf8_bytes_not_chars() {
    // 25 × 'é' (2 bytes each) = 50 bytes: exactly at the limit.
    let at_limit = "é".repeat(25);
    assert_eq!(at_limit.len(), 50);
    assert_eq!(
        TicketTitle::try_from(at_limit.as_str()).unwrap().as_str(),
        at_limit
    );
    assert_eq!(
        TicketTitle::try_from(at_limit.clone()).unwrap().as_str(),
        at_limit
    );

    // 17 × '€' (3 bytes each) = 51 bytes but only 17 chars: rejected.
    let over = "€".repeat(17);
    assert_eq!(over.len(), 51);
    let expected = TicketError::TitleTooLong { len: 51, max: 50 };
    assert_eq!(TicketTitle::try_from(over.as_str()), Err(expected.clone()));
    assert_eq!(TicketTitle::try_from(over), Err(expected));

    // 16 × '€' + "xx" = 50 bytes: accepted.
    let mixed = format!("{}xx", "€".repeat(16));
    assert_eq!(mixed.len(), 50);
    assert!(TicketTitle::try_from(mixed.as_str()).is_ok());
}

#[test]
fn title_error_display_names_limit_and_actual_length() {
    let message = TicketTitle::try_from("€".repeat(17))
        .unwrap_err()
        .to_string();
    assert!(message.contains("title"), "{message}");
    assert!(message.contains("51"), "actual length missing: {message}");
    assert!(message.contains("50"), "limit missing: {message}");

    let message = TicketTitle::try_from("a".repeat(400).as_str())
        .unwrap_err()
        .to_string();
    assert!(message.contains("400"), "actual length missing: {message}");
    assert!(message.contains("50"), "limit missing: {message}");

    let message = TicketTitle::try_from("").unwrap_err().to_string();
    assert!(message.contains("title"), "{message}");
    assert!(message.contains("empty"), "{message}");
    assert!(message.contains("50"), "limit missing: {message}");
}

#[test]
fn title_is_kept_exactly_as_given_including_whitespace() {
    for given in ["  padded  ", "\ttab\n", " ", "a  b", "Ünïcödé ✓ "] {
        let from_str = TicketTitle::try_from(given).unwrap();
        let from_string = TicketTitle::try_from(given.to_string()).unwrap();
        assert_eq!(from_str.as_str(), given);
        assert_eq!(from_str.to_string(), given);
        assert_eq!(from_str, from_string);
        assert_eq!(from_string.into_string(), given);
        assert_eq!(String::from(from_str), given);
    }
}

// ---------------------------------------------------------------- descriptions

#[test]
fn description_limit_constant_is_500_bytes() {
    assert_eq!(DESCRIPTION_BYTES_MAX, 500);
}

#[test]
fn description_of_0_bytes_is_rejected_as_empty() {
    assert_eq!(
        TicketDescription::try_from(""),
        Err(TicketError::DescriptionEmpty)
    );
    assert_eq!(
        TicketDescription::try_from(String::new()),
        Err(TicketError::DescriptionEmpty)
    );
}

#[test]
fn description_of_1_byte_is_accepted() {
    assert_eq!(TicketDescription::try_from("d").unwrap().as_str(), "d");
    assert_eq!(
        TicketDescription::try_from("d".to_string())
            .unwrap()
            .as_str(),
        "d"
    );
}

#[test]
fn description_of_500_bytes_is_accepted() {
    let five_hundred = "d".repeat(500);
    assert_eq!(
        TicketDescription::try_from(five_hundred.as_str())
            .unwrap()
            .as_str(),
        five_hundred
    );
    assert_eq!(
        TicketDescription::try_from(five_hundred.clone())
            .unwrap()
            .as_str(),
        five_hundred
    );
}

#[test]
fn description_of_501_bytes_is_rejected_as_too_long() {
    let over = "d".repeat(501);
    let expected = TicketError::DescriptionTooLong { len: 501, max: 500 };
    assert_eq!(
        TicketDescription::try_from(over.as_str()),
        Err(expected.clone())
    );
    assert_eq!(TicketDescription::try_from(over), Err(expected));
}

#[test]
fn description_limit_counts_utf8_bytes_not_chars() {
    // 250 × 'é' = 500 bytes: accepted.
    let at_limit = "é".repeat(250);
    assert_eq!(at_limit.len(), 500);
    assert_eq!(
        TicketDescription::try_from(at_limit.as_str())
            .unwrap()
            .as_str(),
        at_limit
    );
    // 167 × '€' = 501 bytes: rejected.
    let over = "€".repeat(167);
    assert_eq!(over.len(), 501);
    let expected = TicketError::DescriptionTooLong { len: 501, max: 500 };
    assert_eq!(
        TicketDescription::try_from(over.as_str()),
        Err(expected.clone())
    );
    assert_eq!(TicketDescription::try_from(over), Err(expected));
    // 125 × '🦀' (4 bytes each) = 500 bytes: accepted.
    let crabs = "🦀".repeat(125);
    assert_eq!(crabs.len(), 500);
    assert!(TicketDescription::try_from(crabs).is_ok());
}

#[test]
fn description_error_display_names_limit_and_actual_length() {
    let message = TicketDescription::try_from("d".repeat(501))
        .unwrap_err()
        .to_string();
    assert!(message.contains("description"), "{message}");
    assert!(message.contains("501"), "actual length missing: {message}");
    assert!(message.contains("500"), "limit missing: {message}");

    let message = TicketDescription::try_from("").unwrap_err().to_string();
    assert!(message.contains("description"), "{message}");
    assert!(message.contains("empty"), "{message}");
    assert!(message.contains("500"), "limit missing: {message}");
}

#[test]
fn description_is_kept_exactly_as_given_including_whitespace() {
    for given in [
        "  leading",
        "trailing  ",
        "line one\nline two\n",
        "\t",
        "a\r\nb",
    ] {
        let from_str = TicketDescription::try_from(given).unwrap();
        let from_string = TicketDescription::try_from(given.to_string()).unwrap();
        assert_eq!(from_str.as_str(), given);
        assert_eq!(from_str.to_string(), given);
        assert_eq!(from_str, from_string);
        assert_eq!(from_string.into_string(), given);
        assert_eq!(String::from(from_str), given);
    }
}

// ---------------------------------------------------------------- status

#[test]
fn status_parses_every_accepted_spelling_in_any_case() {
    let cases: &[(&str, Status)] = &[
        ("todo", Status::ToDo),
        ("TODO", Status::ToDo),
        ("ToDo", Status::ToDo),
        ("to-do", Status::ToDo),
        ("To-Do", Status::ToDo),
        ("TO-DO", Status::ToDo),
        ("inprogress", Status::InProgress),
        ("InProgress", Status::InProgress),
        ("INPROGRESS", Status::InProgress),
        ("in-progress", Status::InProgress),
        ("In-Progress", Status::InProgress),
        ("IN-PROGRESS", Status::InProgress),
        ("done", Status::Done),
        ("Done", Status::Done),
        ("DONE", Status::Done),
        ("dOnE", Status::Done),
    ];
    for &(input, expected) in cases {
        assert_eq!(input.parse::<Status>(), Ok(expected), "input {input:?}");
    }
}

#[test]
fn status_display_round_trips_through_parse() {
    for status in Status::ALL {
        assert_eq!(status.to_string(), status.as_str());
        assert_eq!(status.to_string().parse::<Status>(), Ok(status));
    }
    assert_eq!(Status::ToDo.to_string(), "todo");
    assert_eq!(Status::InProgress.to_string(), "in-progress");
    assert_eq!(Status::Done.to_string(), "done");
}

#[test]
fn status_rejects_unknown_values_with_invalid_status() {
    for input in [
        "",
        "bogus",
        "to do",
        "in progress",
        "in_progress",
        "finished",
        "todo ",
        " done",
        "done!",
        "tödo",
    ] {
        assert_eq!(
            input.parse::<Status>(),
            Err(TicketError::InvalidStatus {
                input: input.to_owned()
            }),
            "input {input:?}"
        );
    }
}

#[test]
fn status_error_message_names_the_input_and_the_valid_choices() {
    let message = "bogus-state".parse::<Status>().unwrap_err().to_string();
    assert!(message.contains("bogus-state"), "input missing: {message}");
    for choice in ["todo", "to-do", "inprogress", "in-progress", "done"] {
        assert!(
            message.contains(choice),
            "choice {choice} missing: {message}"
        );
    }
}

// ---------------------------------------------------------------- ticket id

#[test]
fn ticket_id_display_and_parse_round_trip() {
    for n in [1u64, 2, 42, 1_000_000, u64::MAX] {
        let id = TicketId::from(n);
        let shown = id.to_string();
        assert_eq!(shown, n.to_string());
        assert_eq!(shown.parse::<TicketId>(), Ok(id));
    }
}

#[test]
fn ticket_id_converts_from_and_into_u64() {
    let id = TicketId::from(7u64);
    assert_eq!(id.get(), 7);
    let back: u64 = id.into();
    assert_eq!(back, 7);
    assert_eq!(u64::from(TicketId::from(u64::MAX)), u64::MAX);
    let into_id: TicketId = 9u64.into();
    assert_eq!(into_id, TicketId::from(9));
}

#[test]
fn ticket_id_orders_numerically() {
    assert!(TicketId::from(2) < TicketId::from(10));
    assert!(TicketId::from(10) > TicketId::from(9));
}

#[test]
fn ticket_id_rejects_zero_negative_and_non_numbers() {
    for input in ["0", "-1", "abc", "", "1.5", "18446744073709551616", "0x10"] {
        assert_eq!(
            input.parse::<TicketId>(),
            Err(TicketError::InvalidId {
                input: input.to_owned()
            }),
            "input {input:?}"
        );
    }
}

#[test]
fn ticket_id_error_message_names_the_input() {
    let message = "abc".parse::<TicketId>().unwrap_err().to_string();
    assert!(message.contains("abc"), "{message}");
    let message = "0".parse::<TicketId>().unwrap_err().to_string();
    assert!(message.contains("\"0\""), "{message}");
    assert!(message.contains("positive"), "{message}");
}
