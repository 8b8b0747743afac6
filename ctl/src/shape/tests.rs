use super::*;
use serde_json::json;

#[test]
fn names_become_lower_kebab_case() {
    for (from, to) in [
        ("EmailAddress", "email-address"),
        ("Id", "id"),
        ("PollIntervalMinutes", "poll-interval-minutes"),
        ("SMTPHost", "smtp-host"),
        ("incoming-ok", "incoming-ok"),
        ("new_messages", "new-messages"),
        ("LastErrorCode", "last-error-code"),
    ] {
        assert_eq!(kebab(from), to, "{from}");
    }
}

#[test]
fn times_are_rfc3339_with_unix_seconds_and_zero_is_none() {
    assert_eq!(rfc3339(0).as_deref(), Some("1970-01-01T00:00:00Z"));
    assert_eq!(
        rfc3339(1_700_000_000).as_deref(),
        Some("2023-11-14T22:13:20Z")
    );
    let v = reshape(
        json!({ "date": 1_700_000_000, "LastSync": 0, "NextRetry": 1_700_000_000 }),
        false,
    );
    assert_eq!(v["date"], "2023-11-14T22:13:20Z");
    assert_eq!(v["date-unix"], 1_700_000_000);
    assert_eq!(v["last-sync"], Json::Null);
    assert_eq!(v["last-sync-unix"], 0);
    assert_eq!(v["next-retry"], "2023-11-14T22:13:20Z");
}

#[test]
fn accounts_are_an_id_and_a_path() {
    let path = names::account_path("bob_example_org");
    let v = reshape(
        json!({ "id": "m1", "account": path, "folder": "INBOX" }),
        false,
    );
    assert_eq!(v["id"], "m1");
    assert_eq!(v["account"], "bob_example_org");
    assert_eq!(v["account-path"], path.as_str());
    let a = reshape(
        json!({ "Id": "bob_example_org", "Progress": [3, 10], "UseUnified": true }),
        true,
    );
    assert_eq!(a["account"], "bob_example_org");
    assert_eq!(a["account-path"], path.as_str());
    assert!(a.get("id").is_none());
    assert_eq!(a["progress"], json!({ "done": 3, "total": 10 }));
    assert_eq!(a["use-unified"], true);
}
