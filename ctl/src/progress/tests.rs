use super::*;

#[test]
fn progress_values_are_two_unsigned_integers() {
    assert_eq!(progress_value(&Value::from((3u32, 10u32))), Some((3, 10)));
    assert_eq!(
        progress_value(&Value::Value(Box::new(Value::from((0u32, 0u32))))),
        Some((0, 0))
    );
    assert_eq!(progress_value(&Value::from((3i32, 10i32))), None);
    assert_eq!(progress_value(&Value::U32(3)), None);
}

#[test]
fn progress_reads_as_counts_or_idle() {
    assert_eq!(progress_text(0, 0), "-");
    assert_eq!(progress_text(120, 3000), "120/3000 messages");
    assert_eq!(progress_line("alice", 5, 9), "alice: 5/9 messages");
}

#[test]
fn plain_lines_are_rate_limited_and_only_for_new_counts() {
    let t0 = Instant::now();
    // The first value with work to do prints; idle never does.
    assert!(line_due(None, 0, 100, t0));
    assert!(!line_due(None, 0, 0, t0));
    // Too soon, then due, then the same count again: not due.
    assert!(!line_due(
        Some((0, t0)),
        10,
        100,
        t0 + Duration::from_millis(500)
    ));
    assert!(line_due(Some((0, t0)), 10, 100, t0 + LINE_INTERVAL));
    assert!(!line_due(Some((10, t0)), 10, 100, t0 + LINE_INTERVAL * 3));
}

#[test]
fn the_bar_appears_with_the_first_total_and_follows_the_counts() {
    let mut d = Display::new("alice", true);
    d.update(0, 0);
    assert!(matches!(d.kind, Kind::Bar(None)), "idle makes no bar");
    d.update(5, 10);
    d.update(12, 20);
    match &d.kind {
        Kind::Bar(Some(bar)) => {
            assert_eq!(bar.length(), Some(20));
            assert_eq!(bar.position(), 12);
        }
        _ => panic!("no bar after a value with a total"),
    }
    d.finish();
}
