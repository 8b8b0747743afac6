use super::*;
use zbus::fdo;

#[test]
fn exit_codes() {
    assert_eq!(Failure::Usage("x".into()).exit_code(), 2);
    assert_eq!(Failure::Failed("x".into()).exit_code(), 1);
    assert_eq!(Failure::Quiet(0).exit_code(), 0);
    assert_eq!(Failure::Quiet(0).line(), None);
}

#[test]
fn daemon_errors_read_as_name_and_sentence() {
    let f = from_daemon(
        DaemonError::InvalidArgument("incoming-port: 0 is not a valid port".into()),
        On::Manager,
    );
    assert_eq!(
        f,
        Failure::Failed("InvalidArgument: incoming-port: 0 is not a valid port".into())
    );
}

#[test]
fn no_owner_means_the_daemon_is_not_running() {
    for e in [
        fdo::Error::ServiceUnknown("The name is not activatable".into()),
        fdo::Error::NameHasNoOwner("x".into()),
    ] {
        assert_eq!(
            from_fdo(e, On::Manager),
            Failure::Failed(NOT_RUNNING.into())
        );
    }
}

#[test]
fn unknown_objects_mean_no_such_account() {
    let want = Failure::Failed("NotFound: no account with id 'bob'".into());
    assert_eq!(
        from_fdo(
            fdo::Error::UnknownObject("Unknown object".into()),
            On::Account("bob")
        ),
        want
    );
    assert_eq!(
        from_fdo(
            fdo::Error::UnknownInterface("x".into()),
            On::AccountItem("bob")
        ),
        want
    );
    assert_eq!(
        from_daemon(DaemonError::NotFound("gone".into()), On::Account("bob")),
        want
    );
    // A folder that is not there is the daemon's to word.
    assert_eq!(
        from_daemon(
            DaemonError::NotFound("no folder 'X'".into()),
            On::AccountItem("bob")
        ),
        Failure::Failed("NotFound: no folder 'X'".into())
    );
}

#[test]
fn foreign_errors_keep_their_full_name() {
    let f = from_fdo(fdo::Error::AccessDenied("nope".into()), On::Manager);
    assert_eq!(
        f,
        Failure::Failed("org.freedesktop.DBus.Error.AccessDenied: nope".into())
    );
}

#[test]
fn unknown_method_is_told_apart() {
    let e = DaemonError::from(zbus::Error::from(fdo::Error::UnknownMethod("x".into())));
    assert!(is_unknown_method(&e));
    assert!(!is_unknown_object(&e));
    let e = DaemonError::from(zbus::Error::from(fdo::Error::UnknownObject("x".into())));
    assert!(is_unknown_object(&e));
}
