#!/usr/bin/env bash
# Run the whole facteur test suite, the same way locally and in CI.
#
# 1. Installs the Debian packages the end-to-end tests start (dbus-daemon,
#    gnome-keyring, secret-tool, gdbus, systemd-analyze, Dovecot, an MTA,
#    …) when they are missing, with apt-get (through sudo when not root).
#    Their system services are not started by the install.
# 2. cargo fmt --check, clippy with warnings denied, a locked build, and
#    cargo test over the whole workspace.
#
# Usage: scripts/test.sh [arguments for the test binaries]
#   e.g. scripts/test.sh keyring      (only tests whose name has "keyring")
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '==> %s\n' "$*"; }
die() { printf 'scripts/test.sh: %s\n' "$*" >&2; exit 1; }

# Debian packages the tests need, and what each is for.
PACKAGES=(
    dbus                # the D-Bus configuration files
    dbus-daemon         # a private bus per test
    dbus-bin            # dbus-monitor, dbus-send
    gnome-keyring       # the Secret Service on the private bus
    libsecret-tools     # secret-tool, to look into the keyring
    libglib2.0-bin      # gdbus, the outside D-Bus client
    systemd             # systemd-analyze verify/security for the units
    procps              # kill, ps
    strace              # checks the unit's system-call filter against the daemon
    openssl             # test certificates for the mail servers
    dovecot-imapd       # IMAP server for the sync tests
    dovecot-pop3d       # POP3 server for the sync tests
    dovecot-lmtpd       # delivery from the MTA into Dovecot
    isync               # mbsync, a reference IMAP client
    fetchmail           # a reference POP3 client
    time                # /usr/bin/time -v, for the benchmarks in bench/
)
# The MTA: Postfix (tests/src/mta.rs runs one per test with its own
# config, queue and ports; OpenSMTPD cannot, its spool and control socket
# are compiled in). Postfix conflicts with every other MTA, so an installed
# one (exim4, sendmail, …) is never replaced behind the user's back; the
# exception is OpenSMTPD, which an earlier version of this script installed.
MTA=postfix

installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

install_missing() {
    if ! command -v dpkg-query >/dev/null 2>&1; then
        say "not a Debian system: make sure the tools these packages provide are installed:"
        say "  ${PACKAGES[*]} $MTA"
        return 0
    fi
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        installed "$p" || missing+=("$p")
    done
    if ! installed postfix; then
        local other
        other=$(dpkg-query -W -f='${binary:Package} ${Status} ${Provides}\n' 2>/dev/null |
            awk '/install ok installed/ && /mail-transport-agent/ && $1 != "opensmtpd" {print $1; exit}') || true
        if [ -n "$other" ]; then
            say "an MTA ($other) is installed: not replacing it with $MTA;" \
                "the SMTP tests need postfix"
        else
            missing+=("$MTA")
        fi
    fi
    if [ "${#missing[@]}" -eq 0 ]; then
        say "all Debian packages the tests need are installed"
        return 0
    fi

    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && { [ -t 0 ] || sudo -n true 2>/dev/null; }; then
            sudo=(sudo)
        else
            die "these Debian packages are missing and I cannot become root to install them:
    sudo apt-get update && sudo apt-get install ${missing[*]}
then run scripts/test.sh again"
        fi
    fi

    say "installing missing Debian packages: ${missing[*]}"
    # Keep the packages' own system services (dovecot, smtpd) from being
    # started by the install: the tests start their own instances. A
    # policy-rc.d that is already there (containers have one) is left alone.
    local policy=/usr/sbin/policy-rc.d made_policy=
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# temporary, from facteur scripts/test.sh\nexit 101\n' |
            "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        made_policy=1
    fi
    local rc=0
    # Postfix's own system configuration is not used by the tests.
    printf 'postfix postfix/main_mailer_type select No configuration\n' |
        "${sudo[@]}" debconf-set-selections 2>/dev/null || true
    {
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
            "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
                --no-install-recommends "${missing[@]}"
    } || rc=$?
    if [ -n "$made_policy" ]; then
        "${sudo[@]}" rm -f "$policy"
    fi
    [ "$rc" -eq 0 ] || die "apt-get failed; install these packages by hand:
    sudo apt-get update && sudo apt-get install ${missing[*]}"
}

command -v cargo >/dev/null 2>&1 ||
    die "cargo is missing: install Rust (https://rustup.rs), then run scripts/test.sh again"

install_missing

say "cargo fmt --all --check"
cargo fmt --all --check
say "cargo clippy --workspace --all-targets --locked -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
say "cargo build --workspace --locked"
cargo build --workspace --locked
say "cargo test --workspace --locked --no-fail-fast"
cargo test --workspace --locked --no-fail-fast -- "$@"
