use proptest::prelude::*;

use super::*;

const HOSTILE: [&str; 10] = [
    "plain",
    "with space",
    "it's",
    "double \"quoted\"",
    "$HOME and ${PATH}",
    "`uname`",
    "a; rm -rf /tmp/x",
    "line\nbreak",
    "back\\slash",
    "*?[glob]~ & | > <",
];

/// The line a remote shell receives for these words: a command value's display, which
/// is what the ssh carrier sends.
fn remote_line(words: &[&str]) -> String {
    Cmd::new(words[0]).args(words[1..].iter().copied()).to_string()
}

/// What a POSIX shell makes of a remote line: each argument on its own, NUL-separated.
fn through_a_shell(line: &str) -> Vec<String> {
    let output = std::process::Command::new("sh").arg("-c").arg(format!("printf '%s\\0' {line}")).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    text.split_terminator('\0').map(str::to_string).collect()
}

#[test]
fn hostile_words_survive_the_remote_shell() {
    let words: Vec<&str> = HOSTILE.to_vec();
    assert_eq!(through_a_shell(&remote_line(&words)), words);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_words_survive_the_remote_shell(words in proptest::collection::vec("[^\u{0}]{0,12}", 1..5)) {
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        prop_assert_eq!(through_a_shell(&remote_line(&refs)), words);
    }
}

#[test]
fn a_command_value_is_one_remote_word_after_double_dash() {
    let mut ssh = Ssh::new(SshTarget::parse("deploy@example.org:2222").unwrap()).unwrap();
    ssh.identity_file = Some("/home/me/.ssh/id_ed25519".into());
    let remote = Cmd::new("mkdir").args(["-p", "/opt/my app; reboot"]);
    let carrier = Transport::Ssh(ssh).carrier(&remote);
    assert_eq!(carrier.program, "ssh");
    let n = carrier.args.len();
    assert_eq!(&carrier.args[n - 3..], ["--", "example.org", "mkdir -p '/opt/my app; reboot'"]);
    let options = carrier.args[..n - 3].join(" ");
    for expected in [
        "BatchMode=yes",
        "ConnectTimeout=10",
        "ControlMaster=auto",
        "ControlPersist=60",
        "-p 2222",
        "-l deploy",
        "-i /home/me/.ssh/id_ed25519",
    ] {
        assert!(options.contains(expected), "{expected} missing from {options}");
    }
    assert!(options.contains("ControlPath=/") && options.contains("/%C"), "{options}");
}

#[test]
fn the_local_transport_runs_the_command_itself() {
    let remote = Cmd::new("echo").arg("hi there");
    assert_eq!(Transport::Local.carrier(&remote), remote);
    assert_eq!(Transport::Local.output(&remote).unwrap(), "hi there");
}

#[test]
fn upload_is_atomic_and_sets_the_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("cultivate-upload-{}", std::process::id()));
    let path = dir.join("sub dir/it's.env");
    Transport::Local.upload(b"SECRET=1\n", &path.to_string_lossy(), 0o600).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"SECRET=1\n");
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "temporary files left behind");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn targets_parse() {
    let target = SshTarget::parse("root@127.0.0.1:2201").unwrap();
    assert_eq!((target.user.as_deref(), target.host.as_str(), target.port), (Some("root"), "127.0.0.1", Some(2201)));
    assert_eq!(target.to_string(), "root@127.0.0.1:2201");
    let target = SshTarget::parse("example.org").unwrap();
    assert_eq!((target.user, target.port), (None, None));
    let target = SshTarget::parse("admin@[::1]:22").unwrap();
    assert_eq!((target.host.as_str(), target.port), ("::1", Some(22)));
    assert_eq!(target.to_string(), "admin@[::1]:22");
}

#[test]
fn hostile_targets_are_refused_before_ssh_runs() {
    for hostile in [
        "-oProxyCommand=touch /tmp/pwned",
        "-p2222 host",
        "host -oProxyCommand=x",
        "user@-oProxyCommand=x",
        "-l@host",
        "host\nsecond",
        "host\t",
        "",
        "host;reboot",
        "$(reboot)",
        "`id`@host",
        "host:0",
        "host:99999",
        "host:22x",
        "[::1",
        "a@",
    ] {
        let message = format!("{:#}", SshTarget::parse(hostile).unwrap_err());
        assert!(message.contains("not a valid SSH target"), "{hostile:?}: {message}");
    }
}

#[test]
fn ssh_failures_are_named() {
    let cases = [
        ("ssh: connect to host 127.0.0.1 port 1: Connection refused", SshFailure::Refused),
        ("ssh: Could not resolve hostname nowhere.invalid: Name or service not known", SshFailure::UnknownHost),
        ("ssh: connect to host 10.0.0.1 port 22: Connection timed out", SshFailure::TimedOut),
        ("Connection timed out during banner exchange", SshFailure::TimedOut),
        ("ssh: connect to host 192.0.2.1 port 22: No route to host", SshFailure::Unreachable),
        ("root@127.0.0.1: Permission denied (publickey).", SshFailure::AuthenticationFailed),
        ("@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@", SshFailure::HostKeyChanged),
        ("Host key verification failed.", SshFailure::HostKeyUnknown),
    ];
    for (stderr, expected) in cases {
        assert_eq!(SshFailure::from_stderr(stderr), expected, "{stderr}");
        assert!(expected.message("root@h:22").contains("root@h:22"));
    }
}

#[test]
fn streams_flow_both_ways_and_failures_name_their_side() {
    let input: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut output = Vec::new();
    let copied = Transport::Local.stream(&Cmd::new("cat"), Some(&mut &input[..]), &mut output).unwrap();
    assert_eq!(copied, input.len() as u64);
    assert_eq!(output, input);
    let mut sink = Vec::new();
    let message = format!(
        "{:#}",
        Transport::Local.stream(&Cmd::new("sh").args(["-c", "echo nope >&2; exit 4"]), None, &mut sink).unwrap_err()
    );
    assert!(message.contains("nope") && message.contains("exit status: 4"), "{message}");
}

#[test]
fn files_upload_streamed() {
    let dir = std::env::temp_dir().join(format!("cultivate-upload-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("source"), b"contents").unwrap();
    let target = dir.join("copy");
    Transport::Local.upload_file(&dir.join("source"), &target.to_string_lossy(), 0o644).unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"contents");
    std::fs::remove_dir_all(&dir).unwrap();
}
